"""render(): the stream shown as text or rich panels, the y/n/e confirmation, Ctrl-C."""

from __future__ import annotations

import io
import stat

import pytest
from terminal_support import RecordedTurn, answers

from oi_local.terminal import confirmation
from oi_local.terminal.display import PlainDisplay, RichDisplay
from oi_local.terminal.render import STOPPED, render


def run_plain(turn, read):
    out = io.StringIO()
    new = render(turn, "what is 6*7?", display=PlainDisplay(out), read=read)
    return out.getvalue(), new


def test_yes_runs_the_code_and_shows_its_output_in_plain_text():
    turn = RecordedTurn()
    read = answers("y")
    text, new = run_plain(turn, read)
    assert read.asked == [confirmation.QUESTION]
    assert turn.executed == ["print(6 * 7)"]
    assert "```python\nprint(6 * 7)\n```" in text
    assert "42\n" in text and "The answer is 42." in text
    assert "\x1b" not in text  # plain means no escape codes
    assert [m["type"] for m in new] == ["message", "message", "code", "console", "message"]


def test_no_declines_runs_nothing_and_tells_the_model():
    turn = RecordedTurn()
    text, _ = run_plain(turn, answers("n"))
    assert turn.executed == []
    assert turn.messages[-1] == {"role": "user", "type": "message", "content": confirmation.DECLINED}
    assert "42" not in text


def test_unclear_answers_are_asked_again():
    turn = RecordedTurn()
    read = answers("maybe", "y")
    run_plain(turn, read)
    assert len(read.asked) == 2 and turn.executed == ["print(6 * 7)"]


def test_edit_runs_the_code_saved_in_the_editor(tmp_path, monkeypatch):
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/6 \\* 7/6 * 8/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    turn = RecordedTurn()
    text, _ = run_plain(turn, answers("e"))
    assert turn.executed == ["print(6 * 8)\n"] or turn.executed == ["print(6 * 8)"]
    assert "48" in text
    assert not list(tmp_path.glob("oi_local_edit_*"))


def test_an_editor_that_fails_changes_nothing_and_asks_again(monkeypatch):
    monkeypatch.setenv("EDITOR", "false")
    monkeypatch.delenv("VISUAL", raising=False)
    turn = RecordedTurn()
    text, _ = run_plain(turn, answers("e", "y"))
    assert turn.executed == ["print(6 * 7)"] and "exited with status 1" in text


def test_auto_run_never_asks():
    turn = RecordedTurn()
    turn.auto_run = True
    read = answers()
    text, _ = run_plain(turn, read)
    assert read.asked == [] and "42" in text


def test_ctrl_c_while_running_stops_and_returns():
    turn = RecordedTurn(interrupt_while_running=True)
    text, _ = run_plain(turn, answers("y"))
    assert turn.computer.stopped == 1
    assert STOPPED in text


def test_ctrl_c_at_the_confirmation_stops_without_running():
    turn = RecordedTurn()
    text, _ = run_plain(turn, answers(KeyboardInterrupt))
    assert turn.executed == [] and turn.computer.stopped == 1 and STOPPED in text


def test_rich_display_shows_panels_with_code_and_output():
    turn = RecordedTurn()
    out = io.StringIO()
    render(turn, "what is 6*7?", display=RichDisplay(out), read=answers("y"))
    text = out.getvalue()
    assert "print(6 * 7)" in text and "42" in text and "output" in text
    assert "╭" in text  # a panel border
    assert "The answer is 42." in text


def test_rich_display_off_a_terminal_ends_every_block_with_its_own_line():
    """Piped into a file, the answer starts on a line of its own under the output panel, and the text ends."""
    out = io.StringIO()
    render(RecordedTurn(), "what is 6*7?", display=RichDisplay(out), read=answers("y"))
    text = out.getvalue()
    before_answer = text[:text.index("The answer is 42.")]
    assert before_answer.endswith("\n"), repr(before_answer[-40:])
    assert text.endswith("\n"), repr(text[-40:])


def test_rich_display_marks_the_active_line():
    display = RichDisplay(io.StringIO())
    display.console.width = 60
    display.chunk({"role": "assistant", "type": "code", "format": "python", "start": True})
    display.chunk({"role": "assistant", "type": "code", "format": "python", "content": "a = 1\nb = 2\n"})
    display.chunk({"role": "computer", "type": "console", "format": "active_line", "content": 2})
    with display.console.capture() as captured:
        display.console.print(display.view)
    lines = captured.get().splitlines()
    marked = [line for line in lines if "❱" in line]
    assert len(marked) == 1 and "b = 2" in marked[0]
    display.close()


def test_plain_display_of_images_and_computer_messages():
    out = io.StringIO()
    display = PlainDisplay(out)
    display.chunk({"role": "computer", "type": "image", "format": "base64.png", "content": "aGVsbG8="})
    display.chunk({"role": "computer", "type": "message", "content": "Budget exceeded."})
    assert "[image: base64.png" in out.getvalue() and "Budget exceeded." in out.getvalue()


@pytest.mark.parametrize("content", [{"type": "code", "format": "python", "content": "x"}, {"type": "code", "language": "python", "code": "x"}])
def test_confirmation_content_in_both_documented_shapes(content):
    assert confirmation.code_of({"content": content}) == ("python", "x")


def test_edit_uses_visual_before_editor(tmp_path):
    editor = tmp_path / "ed.sh"
    editor.write_text("#!/bin/sh\necho edited > \"$1\"\n")
    editor.chmod(0o755)
    assert confirmation.edit_code("x", "python", environ={"VISUAL": str(editor), "EDITOR": "false"}) == "edited\n"


# -- the real agent (OpenInterpreter) with a scripted model through llm.completions ---------------------

def real_agent(tmp_path):
    from oi_local.agent.core import OpenInterpreter

    def completions(messages, **kwargs):
        last = messages[-1]["content"]
        if "compute" in str(last):
            yield "Computing.\n```python\nprint(6 * 7)\n```"
        else:
            yield "Finished."

    agent = OpenInterpreter(conversation_history_path=str(tmp_path / "conversations"))
    agent.llm.completions = completions
    agent.llm.model = "scripted"
    return agent


def test_real_agent_decline_runs_nothing_and_is_saved(tmp_path):
    agent = real_agent(tmp_path)
    out = io.StringIO()
    render(agent, "please compute 6*7", display=PlainDisplay(out), read=answers("n"))
    assert agent.messages[-1]["content"] == confirmation.DECLINED
    assert not [m for m in agent.messages if m["type"] == "console"]
    saved = list((tmp_path / "conversations").glob("*.json"))
    assert len(saved) == 1 and confirmation.DECLINED in saved[0].read_text()


def test_real_agent_runs_the_edited_code(tmp_path, monkeypatch):
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/6 \\* 7/6 * 8/' \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    agent = real_agent(tmp_path)
    out = io.StringIO()
    try:
        render(agent, "please compute 6*7", display=PlainDisplay(out), read=answers("e"))
    finally:
        agent.computer.terminate()
    code = [m for m in agent.messages if m["type"] == "code"]
    output = [m for m in agent.messages if m["type"] == "console"]
    assert code[0]["content"].strip() == "print(6 * 8)"
    assert output[0]["content"].strip() == "48"
    assert "Finished." in out.getvalue()


def test_safe_mode_auto_scans_and_asks_even_with_auto_run():
    turn = RecordedTurn()
    turn.auto_run = True
    turn.safe_mode = "auto"
    read = answers("n")
    text, _ = run_plain(turn, read)
    assert read.asked == [confirmation.QUESTION] and turn.executed == []
    assert "semgrep" in text  # the scan's result, or the plain statement that it could not scan


def test_safe_mode_ask_asks_before_scanning():
    from oi_local.terminal.render import SCAN_QUESTION

    turn = RecordedTurn()
    turn.safe_mode = "ask"
    read = answers("n", "y")
    text, _ = run_plain(turn, read)
    assert read.asked == [SCAN_QUESTION, confirmation.QUESTION]
    assert "semgrep" not in text and turn.executed == ["print(6 * 7)"]


def test_rich_display_says_when_code_printed_nothing():
    out = io.StringIO()
    display = RichDisplay(out)
    display.chunk({"role": "assistant", "type": "code", "format": "python", "start": True})
    display.chunk({"role": "assistant", "type": "code", "format": "python", "content": "x = 1"})
    display.chunk({"role": "computer", "type": "console", "start": True})
    display.chunk({"role": "computer", "type": "console", "format": "active_line", "content": None})
    display.chunk({"role": "computer", "type": "console", "end": True})
    display.close()
    assert "(no output)" in out.getvalue()


def test_real_agent_safe_mode_auto_reports_the_scan_before_asking(tmp_path):
    agent = real_agent(tmp_path)
    agent.safe_mode = "auto"
    agent.auto_run = True
    out = io.StringIO()
    read = answers("n")
    try:
        render(agent, "please compute 6*7", display=PlainDisplay(out), read=read)
    finally:
        agent.computer.terminate()
    assert read.asked == [confirmation.QUESTION]
    assert "semgrep" in out.getvalue()  # found issues, none, or plainly: not installed, not scanned
    assert not [m for m in agent.messages if m["type"] == "console"]


def test_two_blocks_in_one_reply_each_output_under_its_own_code(tmp_path):
    from oi_local.agent.core import OpenInterpreter

    def completions(messages, **kwargs):
        if "TWO-BLOCKS" in str(messages[-1]["content"]):
            yield "First:\n```python\nprint('one' * 1)\n```\nThen:\n```python\nprint('two' * 1)\n```"
        else:
            yield "Finished."

    agent = OpenInterpreter(conversation_history=False)
    agent.llm.completions = completions
    agent.llm.model = "scripted"
    agent.auto_run = True
    out = io.StringIO()
    try:
        render(agent, "run TWO-BLOCKS", display=PlainDisplay(out), read=answers())
    finally:
        agent.computer.terminate()
    text = out.getvalue()
    assert text.rindex("print('one' * 1)") < text.index("one\n") < text.rindex("print('two' * 1)") < text.index("two\n")
    assert text.count("Finished.") == 1
