"""Magic commands, exports, multi-line input and the chat loop's control flow."""

from __future__ import annotations

import io
import json

from terminal_support import RecordedTurn, answers

from oi_local.terminal import export, magic
from oi_local.terminal.chat_loop import chat_loop
from oi_local.terminal.display import PlainDisplay
from oi_local.terminal.line_input import read_message

CONVERSATION = [
    {"role": "user", "type": "message", "content": "list files"},
    {"role": "assistant", "type": "message", "content": "Listing them."},
    {"role": "assistant", "type": "code", "format": "shell", "content": "ls ```x"},
    {"role": "computer", "type": "console", "format": "output", "content": "a.txt\nb.txt\n"},
    {"role": "assistant", "type": "message", "content": "Two files."},
    {"role": "user", "type": "message", "content": "and python?"},
    {"role": "assistant", "type": "code", "format": "python", "content": "print(1)"},
    {"role": "computer", "type": "console", "format": "output", "content": "1\n"},
]


def run_magic(turn, text):
    out = io.StringIO()
    magic.handle(turn, text, PlainDisplay(out))
    return out.getvalue()


def test_save_and_load_messages_round_trip(tmp_path):
    turn = RecordedTurn()
    turn.messages = list(CONVERSATION)
    path = tmp_path / "saved.json"
    assert str(path) in run_magic(turn, f"%save_message {path}")
    other = RecordedTurn()
    assert "Loaded 8 message(s)" in run_magic(other, f"%load_message {path}")
    assert other.messages == CONVERSATION


def test_load_message_refuses_bad_files_and_keeps_the_conversation(tmp_path):
    turn = RecordedTurn()
    turn.messages = list(CONVERSATION)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "shape.json").write_text('{"role": "user"}')
    assert "not valid JSON" in run_magic(turn, f"%load_message {tmp_path / 'bad.json'}")
    assert "JSON list of messages" in run_magic(turn, f"%load_message {tmp_path / 'shape.json'}")
    assert "There is no file" in run_magic(turn, f"%load_message {tmp_path / 'missing.json'}")
    assert turn.messages == CONVERSATION


def test_undo_removes_the_last_user_message_and_its_answer():
    turn = RecordedTurn()
    turn.messages = list(CONVERSATION)
    run_magic(turn, "%undo")
    assert turn.messages == CONVERSATION[:5]
    run_magic(turn, "%undo")
    assert turn.messages == []
    assert "Nothing to undo" in run_magic(turn, "%undo")


def test_verbose_reset_help_and_unknown():
    turn = RecordedTurn()
    turn.messages = list(CONVERSATION)
    run_magic(turn, "%verbose")
    assert turn.verbose is True
    run_magic(turn, "%verbose false")
    assert turn.verbose is False
    assert "Usage" in run_magic(turn, "%verbose perhaps")
    run_magic(turn, "%reset")
    assert turn.messages == []
    assert "%save_message" in run_magic(turn, "%help")
    assert "Unknown command %frobnicate" in run_magic(turn, "%frobnicate")


def test_tokens_counts_and_local_costs_nothing():
    turn = RecordedTurn()
    turn.messages = list(CONVERSATION)
    text = run_magic(turn, "%tokens how about this prompt")
    assert "Tokens sent with the next request:" in text and "no cost (local model)" in text
    assert "Tokens in the prompt:" in text and "Total with the prompt:" in text


def test_info_shows_the_settings():
    text = run_magic(RecordedTurn(), "%info")
    assert "llm.model" in text and "openai/test" in text and "Python" in text


def test_markdown_export(tmp_path):
    turn = RecordedTurn()
    turn.messages = list(CONVERSATION)
    path = tmp_path / "out" / "talk.md"
    run_magic(turn, f"%markdown {path}")
    text = path.read_text()
    assert "## User\n\nlist files" in text
    assert "````shell\nls ```x\n````" in text  # a longer fence around code that has backticks
    assert "a.txt\nb.txt" in text


def test_jupyter_export_is_a_valid_notebook(tmp_path):
    turn = RecordedTurn()
    turn.messages = list(CONVERSATION)
    path = tmp_path / "talk"
    assert "talk.ipynb" in run_magic(turn, f"%jupyter {path}")
    notebook = json.loads((tmp_path / "talk.ipynb").read_text())
    assert notebook["nbformat"] == 4 and notebook["metadata"]["kernelspec"]["name"] == "python3"
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert "".join(code_cells[0]["source"]).startswith("%%bash\nls")
    assert "".join(code_cells[1]["source"]) == "print(1)"
    assert code_cells[1]["outputs"] == [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]
    for cell in notebook["cells"]:
        assert set(cell) >= {"cell_type", "id", "metadata", "source"}


def test_default_export_path_is_in_downloads(tmp_path):
    path = export.default_path(".md", home=tmp_path)
    assert path.parent == tmp_path / "Downloads" and path.suffix == ".md"


def test_multi_line_input():
    assert read_message(multi_line=True, read=answers("'''", "line one", "line two", "'''")) == "line one\nline two"
    assert read_message(multi_line=True, read=answers('"""a', "b\"\"\"")) == "a\nb"
    assert read_message(multi_line=True, read=answers("```python", "print(1)", "```")) == "```python\nprint(1)\n```"
    assert read_message(multi_line=True, read=answers("just one line")) == "just one line"
    assert read_message(multi_line=False, read=answers("'''", "never read")) == "'''"


def test_chat_loop_runs_turns_and_magic_until_ctrl_c(capsys):
    turn = RecordedTurn()
    read = answers("what is 6*7?", "y", "%undo", KeyboardInterrupt)
    assert chat_loop(turn, plain=True, read=read) == 0
    out = capsys.readouterr().out
    assert "42" in out and "Removed" in out
    assert turn.messages == []


def test_ctrl_c_stops_a_run_then_ctrl_c_at_the_prompt_quits(capsys):
    turn = RecordedTurn(interrupt_while_running=True)
    read = answers("run it", "y", KeyboardInterrupt, "never read")
    assert chat_loop(turn, plain=True, read=read) == 0
    assert turn.computer.stopped == 1
    assert read.asked.count("> ") == 2  # back at the prompt after the stop, then quit


def test_chat_loop_ends_at_end_of_input():
    assert chat_loop(RecordedTurn(), plain=True, read=answers()) == 0


def test_ctrl_c_in_a_magic_command_returns_to_the_prompt(capsys):
    turn = RecordedTurn()

    def interrupted_reset():
        raise KeyboardInterrupt

    turn.reset = interrupted_reset
    read = answers("%reset", "%help", KeyboardInterrupt)
    assert chat_loop(turn, plain=True, read=read) == 0
    assert read.asked.count("> ") == 3 and "%jupyter" in capsys.readouterr().out
