"""Local mode without menus: the command line's flags, its clear errors, and local_setup from Python."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from local_support import INTERPRETER, base_env

from oi_local import local_setup
from oi_local.endpoint import Endpoint
from oi_local.errors import OiLocalError
from oi_local.face import last_choice
from oi_local.face.explorer import preselect
from oi_local.machine.paths import app_paths
from oi_local.providers.base import ProviderStatus
from oi_local.serving.ports import free_port


def run_cli(args: list[str], home, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(INTERPRETER), *args], env=base_env(home, **env), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.mark.parametrize(
    "flags, missing",
    [
        ([], ["--provider", "--model"]),
        (["--provider", "llamacpp"], ["--model"]),
        (["--provider", "custom", "--model", "m"], ["--api_base"]),
    ],
)
def test_no_terminal_and_missing_flags_lists_them(tmp_path, flags, missing):
    result = run_cli(["--local", *flags], tmp_path / "home")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "needs a terminal" in result.stderr
    for flag in missing:
        assert flag in result.stderr
    absent = {"--provider", "--model", "--api_base"} - set(missing)
    for flag in absent:
        assert f"{flag} " not in result.stderr.split("flags are missing:")[1].split("For example")[0]


def test_unknown_catalog_model_is_a_clear_error(tmp_path):
    result = run_cli(["--local", "--provider", "llamacpp", "--model", "no-such-model", "-y", "hi"], tmp_path / "home")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no-such-model" in result.stderr and "smollm2-135m" in result.stderr


def test_missing_file_path_is_a_clear_error(tmp_path):
    result = run_cli(["--local", "--provider", "llamacpp", "--model", str(tmp_path / "nope.gguf"), "-y", "hi"], tmp_path / "home")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "nope.gguf" in result.stderr


def test_server_not_running_gives_guidance_not_traceback(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run_cli(["--local", "--provider", "lmstudio", "--model", "m", "--api_base", url, "-y", "hi"], tmp_path / "home")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Nothing answers" in result.stderr and url in result.stderr


def test_one_shot_against_a_custom_url(tmp_path, llama_server):
    home = tmp_path / "home"
    result = run_cli(
        ["--local", "--provider", "custom", "--api_base", llama_server.base_url, "--api_key", llama_server.api_key,
         "--model", "smollm2-135m", "Reply with one word: hello"], home,
    )
    assert result.returncode == 0, result.stderr
    # the server's real context (--n_ctx 2048) is asked, and the start line says where it came from (issue 10)
    assert f"Model smollm2-135m via Custom OpenAI-compatible URL at {llama_server.base_url} · context 2048 · max tokens 682 (" in result.stdout
    saved = last_choice.load(app_paths({"OI_LOCAL_HOME": str(home)}).config)
    assert saved == last_choice.LastChoice("custom", "smollm2-135m", llama_server.base_url)


def test_approval_notice_without_y(tmp_path, llama_server):
    result = run_cli(
        ["--local", "--provider", "custom", "--api_base", llama_server.base_url, "--api_key", llama_server.api_key,
         "--model", "smollm2-135m", "-x", "8", "Reply with one word: hello"], tmp_path / "home",
    )
    assert "Open Interpreter will require approval before running code." in result.stdout
    assert "Use `interpreter -y` to bypass this." in result.stdout
    assert "max tokens 8" in result.stdout


def test_local_setup_from_python_custom(llama_server, app_home):
    from oi_local import OpenInterpreter

    interpreter = OpenInterpreter()
    server = local_setup(interpreter, provider="custom", model="smollm2-135m", api_base=llama_server.base_url,
                         api_key=llama_server.api_key, max_tokens=32)
    assert server is None
    assert interpreter.llm.model == "openai/smollm2-135m"
    assert interpreter.llm.api_base == llama_server.base_url and interpreter.llm.api_key == llama_server.api_key
    assert interpreter.llm.max_tokens == 32 and interpreter.offline is True
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    messages = interpreter.chat("Reply with one word: hello", display=False)
    assert any(m.get("role") == "assistant" and m.get("content") for m in messages)


def test_local_setup_from_python_builtin_llamacpp(app_home, monkeypatch):
    from oi_local import OpenInterpreter

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    interpreter = OpenInterpreter()
    server = local_setup(interpreter, provider="llamacpp", model="smollm2-135m", progress=False)
    try:
        assert server is not None and server.healthy()
        assert interpreter.llm.api_base == server.endpoint.api_base
        assert interpreter.llm.model == "openai/smollm2-135m"
        assert 0 < interpreter.llm.max_tokens < interpreter.llm.context_window
        assert os.environ.get("HF_HUB_OFFLINE") == "1"  # the model is on disk
        assert (app_home / "models").is_dir()
    finally:
        server.stop()
    assert not server.healthy()


def test_local_setup_needs_a_model(app_home):
    from oi_local import OpenInterpreter

    with pytest.raises(OiLocalError, match="--model"):
        local_setup(OpenInterpreter(), provider="llamacpp")
    with pytest.raises(OiLocalError, match="Unknown provider"):
        local_setup(OpenInterpreter(), provider="nope", model="x")


def test_limits_keep_max_tokens_below_context():
    endpoint = Endpoint("http://127.0.0.1:1/v1", "m", None, 4096, 1024, "ollama", extra_body={"num_ctx": 4096})
    smaller = local_setup_module().with_limits(endpoint, context_window=2048)
    assert (smaller.context_window, smaller.max_tokens, smaller.extra_body) == (2048, 1024, {"num_ctx": 2048})
    assert local_setup_module().with_limits(endpoint, context_window=512).max_tokens == 511
    with pytest.raises(OiLocalError, match="less than the context window"):
        local_setup_module().with_limits(endpoint, context_window=1000, max_tokens=1000)


def local_setup_module():
    import oi_local.face.local_mode as module

    return module


def test_local_setup_is_the_function_even_after_its_module_is_imported():
    import oi_local
    import oi_local.face.local_mode

    assert oi_local.local_setup is oi_local.face.local_mode.local_setup


def test_last_choice_round_trip_and_corrupt_file(tmp_path):
    assert last_choice.load(tmp_path) is None
    last_choice.save(tmp_path, last_choice.LastChoice("ollama", "smollm2:135m"))
    assert last_choice.load(tmp_path) == last_choice.LastChoice("ollama", "smollm2:135m", None)
    (tmp_path / last_choice.FILE_NAME).write_text("{not json")
    assert last_choice.load(tmp_path) is None


def test_preselect_last_then_running_then_builtin():
    down, up = ProviderStatus(False, False, ""), ProviderStatus(True, True, "")
    statuses = {n: down for n in ("llamafile", "ollama", "lmstudio", "jan", "custom")} | {"llamacpp": up}
    assert preselect(statuses, None) == "llamacpp"
    assert preselect(statuses | {"jan": up}, None) == "jan"
    assert preselect(statuses | {"jan": up, "ollama": up}, None) == "ollama"
    assert preselect(statuses | {"jan": up}, last_choice.LastChoice("custom", "m", "http://x")) == "custom"


def test_start_up_path_imports_nothing_heavy():
    code = (
        "import sys, oi_local.face.commands.local_cmd, oi_local.face.explorer, oi_local.face.local_mode;"
        "from oi_local.providers import llamacpp, llamafile, ollama, lmstudio, jan, custom;"
        "heavy = [m for m in ('litellm', 'llama_cpp', 'jupyter_client', 'huggingface_hub', 'ollama', 'httpx') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
