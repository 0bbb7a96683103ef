"""Saved conversations: atomic writes, listing, loading, and clear errors that leave files alone."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from oi_local.agent import conversations
from oi_local.errors import OiLocalError

MESSAGES = [
    {"role": "user", "type": "message", "content": "What's 34/24? And more words here"},
    {"role": "assistant", "type": "code", "format": "python", "content": "print(34 / 24)"},
    {"role": "computer", "type": "console", "format": "output", "content": "1.4166666666666667\n"},
]


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "deep" / "folder" / "c.json"
    conversations.save(MESSAGES, path)
    assert conversations.load(path) == MESSAGES
    assert [p.name for p in path.parent.iterdir()] == ["c.json"]  # no temporary file left behind


def test_a_failed_save_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    conversations.save(MESSAGES, path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        conversations.save(MESSAGES + MESSAGES, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]


def test_list_saved_newest_first_and_skips_damaged_files(tmp_path):
    older, newer, damaged = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "broken.json"
    conversations.save(MESSAGES, older)
    conversations.save([{"role": "user", "type": "message", "content": "second one"}], newer)
    damaged.write_text("{not json")
    os.utime(older, (1_000_000, 1_000_000))
    saved = conversations.list_saved(tmp_path)
    assert [c.path for c in saved] == [newer, older]
    assert saved[1].title == "What's 34/24? And more words here" and saved[1].message_count == 3
    assert damaged.read_text() == "{not json"  # listed or not, never touched
    assert conversations.list_saved(tmp_path / "missing") == []


def test_load_errors_are_clear_and_touch_nothing(tmp_path):
    with pytest.raises(OiLocalError, match="no saved conversation"):
        conversations.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(OiLocalError, match="cannot be read"):
        conversations.load(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"role": "user"}))
    with pytest.raises(OiLocalError, match="not a list of messages"):
        conversations.load(wrong)
    assert bad.read_text() == "[1, 2"


def test_new_filename_is_safe_and_dated():
    name = conversations.new_filename(MESSAGES, dt.datetime(2026, 1, 2, 3, 4, 5))
    assert name == "What_s_34_24_And_more__January_02_2026_03-04-05.json"
    assert "/" not in name and " " not in name
    assert conversations.new_filename([], dt.datetime(2026, 1, 2)).startswith("conversation__")
