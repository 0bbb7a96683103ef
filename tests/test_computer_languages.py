"""The Computer itself: aliases, custom languages, node, missing runtimes, forbidden commands, safe_mode."""

from __future__ import annotations

import shutil

import computer_support
import pytest
from computer_support import stopped_once_seen, text

from oi_local.computer import Computer, SafetyReport
from oi_local.computer.languages.javascript import JavaScript
from oi_local.errors import OiLocalError

# The shared fixtures, under this module's names so that pytest finds them.
computer = computer_support.computer
scratch = computer_support.scratch


@pytest.mark.parametrize(
    "alias, name",
    [
        ("python", "python"), ("py", "python"), ("Python3", "python"),
        ("shell", "shell"), ("sh", "shell"), ("bash", "shell"), ("zsh", "shell"),
        ("js", "javascript"), ("javascript", "javascript"), ("node", "javascript"),
        ("html", "html"), ("r", "r"), ("applescript", "applescript"), ("powershell", "powershell"), ("pwsh", "powershell"),
    ],
)
def test_aliases_resolve(computer, alias, name):
    assert computer.get_language(alias).name == name


def test_an_unknown_language_is_explained_not_raised(computer):
    out = text(computer.run("cobol", "DISPLAY 'HI'."))
    assert "cobol" in out and "python" in out and "shell" in out
    assert computer.get_language("cobol") is None


@pytest.mark.parametrize("language, executable", [("r", "Rscript"), ("applescript", "osascript"), ("powershell", "pwsh")])
def test_a_missing_runtime_says_so(computer, language, executable):
    if shutil.which(executable):
        pytest.skip(f"{executable} is installed here")
    out = text(computer.run(language, "1"))
    assert "not installed" in out and executable in out


def test_missing_node_says_so(monkeypatch, scratch):
    monkeypatch.setenv("PATH", str(scratch))
    computer = Computer(languages=[JavaScript])
    try:
        out = text(computer.run("js", "1 + 1"))
    finally:
        computer.terminate()
    assert "JavaScript" in out and "not installed" in out and "node" in out


node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


@node
def test_javascript_keeps_state_and_shows_values(computer):
    assert text(computer.run("javascript", "let total = 40; function add(a) { return total + a }")) == ""
    assert text(computer.run("node", "console.log('sum'); add(2)")) == "sum\n42\n"


@node
def test_javascript_errors_name_the_users_line(computer):
    out = text(computer.run("js", "const a = 1;\nnull.property"))
    assert "TypeError" in out and "code.js:2" in out and "[eval]" not in out


@node
def test_javascript_top_level_await(computer):
    assert text(computer.run("js", "const v = await Promise.resolve(9); console.log(v)")) == "9\n"


@node
def test_javascript_stop_interrupts_a_busy_loop(computer):
    computer.run("js", "var survivor = 'ok'")
    chunks = stopped_once_seen(computer, "js", "console.log('spinning'); while (true) {}", "spinning")
    assert "interrupted" in text(chunks)
    assert text(computer.run("js", "survivor")) == "'ok'\n"


def test_html_is_saved_for_a_browser(computer, scratch):
    out = text(computer.run("html", "<h1>hi</h1>"))
    path = out.split("saved to ")[1].split(";")[0]
    with open(path) as handle:
        assert handle.read() == "<h1>hi</h1>"


class Upper:
    """A custom language written like the seed's example (no constructor arguments)."""

    name = "upper"
    system_message = "Upper-cases text."
    stopped = 0

    def run(self, code):
        yield {"type": "console", "format": "output", "content": code.upper()}

    def stop(self):
        Upper.stopped += 1

    def terminate(self):
        pass


class Counter:
    """A custom language that takes the computer, as OI passes it, and keeps state."""

    name = "python"

    def __init__(self, computer):
        self.computer = computer
        self.runs = 0

    def run(self, code):
        self.runs += 1
        yield {"type": "console", "format": "output", "content": f"run {self.runs}: {code}"}

    def stop(self):
        pass

    def terminate(self):
        pass


def test_custom_languages_replace_the_builtins():
    computer = Computer()
    computer.languages = [Upper, Counter]
    assert computer.run("upper", "hello") == [
        {"role": "computer", "type": "console", "format": "output", "content": "HELLO"}
    ]
    assert text(computer.run("py", "a")) == "run 1: a"  # the alias table reaches a custom class too
    assert text(computer.run("python", "b")) == "run 2: b"
    computer.languages = [Counter]  # a new list: old instances are dropped
    assert text(computer.run("python", "c")) == "run 1: c"
    assert computer.get_language("upper") is None
    computer.terminate()


def test_a_broken_custom_language_becomes_output():
    class Broken:
        name = "python"

        def run(self, code):
            raise RuntimeError("it broke")
            yield  # pragma: no cover

        def stop(self):
            pass

        def terminate(self):
            pass

    computer = Computer(languages=[Broken])
    assert "it broke" in text(computer.run("python", "1"))


def test_closing_a_custom_language_stream_calls_stop():
    class Slow:
        name = "slow"

        def run(self, code):
            yield {"type": "console", "format": "output", "content": "a"}
            yield {"type": "console", "format": "output", "content": "b"}

        stop_calls = 0

        def stop(self):
            Slow.stop_calls += 1

        def terminate(self):
            pass

    computer = Computer(languages=[Slow])
    stream = computer.run("slow", "", stream=True)
    next(stream)
    stream.close()
    assert Slow.stop_calls == 1


def test_display_prints_the_output(capsys):
    computer = Computer(languages=[Upper])
    computer.run("upper", "shown", display=True)
    assert "SHOWN" in capsys.readouterr().out


def test_forbidden_commands_are_not_run(computer, scratch):
    marker = scratch / "ran"
    out = text(computer.run("shell", f"touch {marker}\nrm  -rf  /"))
    assert "forbidden_commands" in out and "`rm  -rf  /`" in out and not marker.exists()
    assert text(computer.run("shell", "echo rm -rf /")) == "rm -rf /\n"  # only an equal line is refused


def test_forbidden_commands_can_be_changed():
    computer = Computer(languages=[Upper], forbidden_commands=["drop table"])
    assert "forbidden" in text(computer.run("upper", "  drop   table  "))
    computer.forbidden_commands = []
    assert text(computer.run("upper", "drop table")) == "DROP TABLE"


def test_safe_mode_values(computer):
    with pytest.raises(OiLocalError, match="off, ask, auto"):
        computer.safe_mode = "sometimes"
    fresh = Computer(languages=[Upper])
    assert fresh.safety_report("python", "print(1)") is None  # off: no scan


@pytest.mark.skipif(shutil.which("semgrep") is not None, reason="semgrep is installed here")
def test_safe_mode_without_semgrep_says_so_once():
    computer = Computer(languages=[Upper], safe_mode="auto")
    report = computer.safety_report("py", "import os\nos.system('ls')")
    assert isinstance(report, SafetyReport) and report.scanned is False and report.safe is None
    assert "semgrep is not installed" in report.summary() and "NOT scanned" in report.summary()
    assert computer.safety_report("py", "print(2)") is None


def test_languages_can_be_named_as_in_profiles():
    computer = Computer(languages=[Upper])
    computer.languages = ["python", "Shell"]
    assert computer.language_names() == ["python", "shell"]
    with pytest.raises(OiLocalError, match="cobol"):
        computer.languages = ["cobol"]
