"""The persistent bash: state, exit codes, order, active lines, timeout, stop, waiting-for-input detection."""

from __future__ import annotations

import shlex
import shutil
import sys
import time

import computer_support
import pytest
from computer_support import output_with_timeout, stopped_once_seen, text

from oi_local.computer import Computer
from oi_local.computer.languages.shell import Shell

# The shared fixtures, under this module's names so that pytest finds them.
computer = computer_support.computer
scratch = computer_support.scratch


def test_directory_environment_and_variables_persist(computer, scratch):
    assert computer.run("shell", f"cd {scratch}\nexport OI_TEST_VALUE=kept\nplain=also\nf() {{ echo from-f; }}") == []
    assert text(computer.run("bash", "pwd; echo $OI_TEST_VALUE $plain; f")) == f"{scratch}\nkept also\nfrom-f\n"
    assert text(computer.run("sh", "python3 -c 'import os; print(os.getcwd(), os.environ[\"OI_TEST_VALUE\"])'")) == (
        f"{scratch} kept\n"
    )


def test_a_failing_run_reports_its_exit_code(computer):
    out = text(computer.run("shell", "echo partial\n(exit 7)"))
    assert out.startswith("partial\n") and "[exit code 7]" in out
    assert "exit code" not in text(computer.run("shell", "true"))
    assert computer._instance(computer.get_language("shell")).last_exit_code == 0


def test_stdout_and_stderr_keep_their_order(computer):
    assert text(computer.run("shell", "echo one; echo two >&2; echo three")) == "one\ntwo\nthree\n"


def test_active_lines_only_when_asked_for(computer):
    chunks = list(computer.run("shell", "echo a\n\necho b", stream=True))
    assert [c["content"] for c in chunks if c.get("format") == "active_line"] == [None]

    class TracedShell(Shell):
        active_lines = True

    traced = Computer(languages=[TracedShell])
    try:
        chunks = list(traced.run("shell", "echo a\n\necho b\nf() { echo in-f; }\nf", stream=True))
    finally:
        traced.terminate()
    lines = [c["content"] for c in chunks if c.get("format") == "active_line"]
    assert {1, 3, 5} <= set(lines) and 2 not in lines and lines[-1] is None
    assert text(chunks) == "a\nb\nin-f\n"


def test_output_is_streamed_while_the_command_runs(computer, scratch):
    marker = scratch / "later"
    seen_before = None
    for chunk in computer.run("shell", f"echo first\nsleep 0.6\ntouch {marker}\necho second", stream=True):
        if chunk.get("format") == "output" and "first" in chunk["content"] and seen_before is None:
            seen_before = not marker.exists()
    assert seen_before is True and marker.exists()


@pytest.mark.parametrize(
    "command",
    [
        "read answer",
        f"{sys.executable} -c 'input()'",
        "cat",
        f"{sys.executable} -c 'import getpass; getpass.getpass()'",
        "sudo -S true",
    ],
)
def test_a_command_waiting_for_input_is_stopped_and_explained(computer, scratch, command):
    if command.startswith("sudo") and shutil.which("sudo") is None:
        pytest.skip("sudo is not installed")
    computer.run("shell", "state_before=kept")
    marker = scratch / "after"
    started = time.monotonic()
    out = text(computer.run("shell", f"echo before\n{command}\ntouch {marker}\necho after"))
    if command.startswith("sudo") and "waiting for input" not in out:
        # root runs sudo without a password; elsewhere sudo may refuse at once without a terminal
        assert "after" in out or "terminal" in out or "password" in out
        return
    assert time.monotonic() - started < 60
    assert out.startswith("before\n") and "waiting for input" in out and "echo yes | command" in out
    assert "after" not in out.replace("[Stopped", "") and not marker.exists()
    assert text(computer.run("shell", "echo $state_before")) == "kept\n"


def test_no_controlling_terminal_so_tty_prompts_fail_at_once(computer):
    # sudo and ssh ask for passwords on /dev/tty, not stdin: without a terminal they fail instead of
    # prompting on the user's screen.
    out = text(computer.run("shell", f"{sys.executable} -c \"open('/dev/tty')\"; echo rc=$?"))
    assert "No such device or address" in out and "rc=1" in out


def test_a_pipe_inside_the_code_is_not_mistaken_for_waiting(computer):
    assert text(computer.run("shell", "sleep 0.7 | cat; echo done")) == "done\n"


def test_timeout_stops_the_run_and_keeps_the_shell(computer):
    computer.run("shell", "survivor=here")
    out = output_with_timeout(computer, "shell", "sleep 20\necho not-reached")
    assert "longer than 1 seconds" in out and "not-reached" not in out
    assert text(computer.run("shell", "echo $survivor")) == "here\n"


def test_stop_from_another_thread(computer):
    computer.run("shell", "kept=1")
    started = time.monotonic()
    chunks = stopped_once_seen(computer, "shell", "echo go\nsleep 30\necho not-reached", "go")
    assert time.monotonic() - started < 20
    assert "not-reached" not in text(chunks)
    assert text(computer.run("shell", "echo $kept")) == "1\n"


def test_stop_inside_a_function_skips_the_rest_of_the_code(computer):
    code = "f() {\n  echo in-f\n  sleep 30\n  echo rest-of-f\n}\nf\necho after-f"
    out = text(stopped_once_seen(computer, "shell", code, "in-f"))
    assert "in-f" in out and "rest-of-f" not in out and "after-f" not in out
    assert text(computer.run("shell", "echo fine")) == "fine\n"


def test_a_busy_bash_loop_is_stopped(computer):
    out = output_with_timeout(computer, "shell", "while true; do :; done\necho not-reached")
    assert "longer than 1 seconds" in out and "not-reached" not in out
    assert text(computer.run("shell", "echo fine")) == "fine\n"


def test_a_program_ignoring_sigint_is_ended_and_the_shell_kept(computer):
    computer.run("shell", "kept_through_sigterm=yes")
    code = f"{sys.executable} -c 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print(1, flush=True); time.sleep(30)'"
    stopped_once_seen(computer, "shell", code, "1")
    assert text(computer.run("shell", "echo $kept_through_sigterm")) == "yes\n"  # SIGTERM, not a new shell


def test_closing_the_stream_stops_the_command(computer, scratch):
    marker = scratch / "not-reached"
    stream = computer.run("shell", f"echo started\nsleep 30\ntouch {marker}", stream=True)
    next(stream)  # "started": the code is running
    stream.close()
    assert text(computer.run("shell", "echo next")) == "next\n"
    assert not marker.exists()


def test_exit_is_reported_and_a_new_shell_keeps_the_directory(computer, scratch):
    computer.run("shell", f"cd {scratch}")
    out = text(computer.run("shell", "exit 4"))
    assert "exited with code 4" in out
    assert text(computer.run("shell", "pwd")) == f"{scratch}\n"


def test_background_jobs_survive_a_stop(computer, scratch):
    done = scratch / "background-finished"
    computer.run("shell", f"(sleep 1.5 && touch {done}) &")  # an interrupted sleep would skip the touch
    stream = computer.run("shell", "echo started\nsleep 30", stream=True)
    for chunk in stream:  # stop during `sleep 30`, once the code is really running
        if "started" in str(chunk.get("content")):
            break
    computer.stop()
    list(stream)
    for _ in range(150):
        if done.exists():
            break
        time.sleep(0.1)
    assert done.exists()


def _wait_for(path, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def test_a_background_job_with_its_own_sigint_handler_survives_a_stop(computer, scratch):
    # Such a job does not show SIGINT as ignored (as a server with a graceful-shutdown handler): it must be
    # known as a job of an earlier run, or the stop's SIGTERM (needed by the stubborn command) would end it.
    ready, done = scratch / "ready", scratch / "done"
    job = (
        "import signal, time; signal.signal(signal.SIGINT, lambda *a: None); "
        f"open({str(ready)!r}, 'w').close(); time.sleep(5); open({str(done)!r}, 'w').close()"
    )
    computer.run("shell", f"{sys.executable} -c {shlex.quote(job)} &")
    assert _wait_for(ready)
    stubborn = f"{sys.executable} -c 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print(1, flush=True); time.sleep(30)'"
    stopped_once_seen(computer, "shell", stubborn, "1")
    assert _wait_for(done)
