"""Python through a real IPython kernel: state, streaming, tracebacks, images, interrupt, timeout, crash."""

from __future__ import annotations

import base64
import struct
import time
import zlib

import computer_support
from computer_support import output_with_timeout, stopped_once_seen, text

from oi_local.computer import Computer

# The shared fixtures, under this module's names so that pytest finds them.
computer = computer_support.computer
scratch = computer_support.scratch


def tiny_png() -> bytes:
    def block(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\x00\xff\x00" * 2)
    return b"\x89PNG\r\n\x1a\n" + block(b"IHDR", header) + block(b"IDAT", pixels) + block(b"IEND", b"")


def test_variables_survive_between_runs(computer):
    assert computer.run("python", "answer = 6 * 7") == []
    assert text(computer.run("python", "print(answer)")) == "42\n"


def test_the_last_expression_is_shown_and_chunks_are_lmc(computer):
    chunks = list(computer.run("python", "x = 20\nx + 1", stream=True))
    assert all(c["role"] == "computer" for c in chunks)
    assert text(chunks) == "21\n"
    lines = [c["content"] for c in chunks if c.get("format") == "active_line"]
    assert lines[:2] == [1, 2] and lines[-1] is None


def test_active_lines_follow_loops_but_not_function_bodies(computer):
    code = "import time\ndef f():\n    return 1\n\nfor i in range(5):\n    f(); time.sleep(0.1)\nprint('done')"
    chunks = list(computer.run("python", code, stream=True))
    lines = [c["content"] for c in chunks if c.get("format") == "active_line"]
    assert 3 not in lines  # inside the function defined by the cell
    assert {1, 2, 5, 6, 7} <= set(lines[:-1]) and lines[-1] is None
    assert text(chunks) == "done\n"


def test_output_is_streamed_while_the_cell_runs(computer, scratch):
    marker = scratch / "second-half"
    code = (
        "import time\nprint('first', flush=True)\ntime.sleep(0.6)\n"
        f"open({str(marker)!r}, 'w').close()\nprint('second')"
    )
    seen_before_second_half = None
    for chunk in computer.run("python", code, stream=True):
        if chunk.get("format") == "output" and "first" in chunk["content"] and seen_before_second_half is None:
            seen_before_second_half = not marker.exists()
    assert seen_before_second_half is True and marker.exists()


def test_stdout_and_stderr_keep_their_order(computer):
    code = "import sys\nprint('out1', flush=True)\nprint('err', file=sys.stderr, flush=True)\nprint('out2')"
    assert text(computer.run("python", code)) == "out1\nerr\nout2\n"


def test_tracebacks_name_the_users_lines(computer):
    code = "a = 1\n\ndef broken():\n    return 1 / 0\n\nbroken()"
    out = text(computer.run("python", code))
    assert "ZeroDivisionError: division by zero" in out
    assert "line 6" in out and "line 4" in out and "return 1 / 0" in out
    assert "__oi_local" not in out and "\x1b[" not in out


def test_syntax_errors_are_reported(computer):
    out = text(computer.run("python", "x = (1,\nprint(x"))
    assert "SyntaxError" in out


def test_images_become_lmc_image_chunks(computer):
    png = tiny_png()
    code = (
        "from IPython.display import Image, display\nimport base64\n"
        f"display(Image(data=base64.b64decode({base64.b64encode(png).decode()!r})))"
    )
    images = [c for c in computer.run("python", code) if c["type"] == "image"]
    assert len(images) == 1 and images[0]["format"] == "base64.png"
    assert base64.b64decode(images[0]["content"]) == png


def test_input_is_refused_with_an_explanation(computer):
    out = text(computer.run("python", "name = input('name? ')"))
    assert "StdinNotImplementedError" in out and "nobody can type" in out


def test_stop_from_another_thread_interrupts_a_long_cell(computer):
    computer.run("python", "kept = 'yes'")
    started = time.monotonic()
    code = "import time\nprint('sleeping', flush=True)\ntime.sleep(30)"
    chunks = stopped_once_seen(computer, "python", code, "sleeping")
    assert time.monotonic() - started < 20  # it did not sleep the 30 s out
    assert "KeyboardInterrupt" in text(chunks)
    assert text(computer.run("python", "print(kept)")) == "yes\n"


def test_closing_the_stream_interrupts_the_cell(computer, scratch):
    marker = scratch / "not-reached"
    stream = computer.run("python", f"import time\ntime.sleep(30)\nopen({str(marker)!r}, 'w').close()", stream=True)
    next(stream)
    stream.close()
    assert text(computer.run("python", "print('next')")) == "next\n"
    assert not marker.exists()


def test_timeout_stops_the_cell_and_keeps_the_kernel(computer):
    computer.run("python", "survivor = 5")
    out = output_with_timeout(computer, "python", "import time\ntime.sleep(20)")
    assert "longer than 1 seconds" in out and "KeyboardInterrupt" in out
    assert text(computer.run("python", "print(survivor)")) == "5\n"


def test_a_dead_kernel_is_reported_and_replaced(computer):
    out = text(computer.run("python", "import os\nos._exit(3)"))
    assert "kernel died" in out
    assert text(computer.run("python", "print('alive')")) == "alive\n"


def test_aliases_reach_the_same_kernel(computer):
    computer.run("py", "shared = 'same'")
    assert text(computer.run("python3", "print(shared)")) == "same\n"


def test_a_kernel_that_cannot_start_is_explained(monkeypatch):
    monkeypatch.setattr("sys.executable", "/bin/false")
    broken = Computer()
    try:
        out = text(broken.run("python", "1"))
    finally:
        broken.terminate()
    assert "kernel did not start" in out and "ipykernel" in out


# -- everyday modules already imported (issue 10 point 1) -------------------------------------------------


def test_everyday_modules_work_without_an_import(computer):
    code = (
        "print(math.sqrt(144), json.dumps([1]), re.sub('a', 'b', 'aa'), statistics.mean([1, 3]),\n"
        "      datetime.date(2020, 1, 2), Path('.').exists(), shutil.which('sh') is not None,\n"
        "      subprocess.run(['echo', 'hi'], capture_output=True, text=True).stdout.strip(),\n"
        "      collections.Counter('aab')['a'], list(itertools.islice(itertools.count(), 2)),\n"
        "      os.getcwd() == str(Path.cwd()), sys.version_info.major, random.randint(1, 1), time.time() > 0)"
    )
    assert text(computer.run("python", code)) == (
        "12.0 [1] bb 2 2020-01-02 True True hi 2 [0, 1] True 3 1 True\n"
    )


def test_preloaded_modules_take_no_name_in_the_namespace_and_survive_reset():
    fresh = Computer()
    try:
        names = "print(sorted(k for k in globals() if not k.startswith('_')))"
        assert text(fresh.run("python", names)) == "['In', 'Out', 'exit', 'get_ipython', 'open', 'quit']\n"
        fresh.run("python", "answer = 42")
        assert text(fresh.run("python", "%reset -f\nprint('answer' in globals(), math.pi > 3)")) == "False True\n"
    finally:
        fresh.terminate()


def test_a_variable_of_the_same_name_shadows_a_preloaded_module(computer):
    assert text(computer.run("python", "time = 'noon'\nprint(time)")) == "noon\n"
    assert text(computer.run("python", "del time\nprint(time.time() > 0)")) == "True\n"


def test_preload_can_be_turned_off():
    from oi_local.computer.languages.python import Python

    computer = Computer(languages=[Python])
    try:
        computer._instance(Python).preload = ()
        assert "NameError" in text(computer.run("python", "print(math.pi)"))
    finally:
        computer.terminate()
