"""The provider registry is the one list of providers: the CLI's --provider choices, the first menu, the
missing-flags text and every title come from it, and the faces never name a provider themselves."""

from __future__ import annotations

import argparse
import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

from oi_local import env, providers
from oi_local.errors import OiLocalError
from oi_local.face import cli, explorer, local_mode
from oi_local.face.commands import local_cmd
from oi_local.machine.paths import app_paths
from oi_local.providers.base import Provider, ProviderContext, ProviderStatus
from oi_local.providers.builtin import SUFFIX
from oi_local.providers.openai_compat import OpenAIServer
from oi_local.serving.ports import free_port

FACE = Path(explorer.__file__).resolve().parent


def flags(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"provider": None, "model": None, "api_base": None, **given})


def test_every_registered_provider_is_a_provider_under_its_name():
    titles = set()
    for name in providers.names():
        provider = providers.get(name)
        assert isinstance(provider, Provider) and provider.name == name
        assert provider.title and provider.title not in titles
        titles.add(provider.title)
        if provider.builtin:
            assert provider.format in SUFFIX and provider.suffix == SUFFIX[provider.format]
        assert not (provider.can_start and not provider.start_command)
    assert providers.get(providers.DEFAULT).builtin
    assert {p.format for p in providers.all_providers() if p.builtin} == set(SUFFIX)  # each format has a server


def test_every_provider_module_is_in_the_registry():
    """A module that defines a PROVIDER but is missing from the registry would be reachable from nowhere."""
    package = Path(providers.__file__).parent
    defined = set()
    for module in pkgutil.iter_modules([str(package)]):
        loaded = importlib.import_module(f"oi_local.providers.{module.name}")
        if isinstance(getattr(loaded, "PROVIDER", None), Provider):
            defined.add(loaded.PROVIDER.name)
    assert defined == set(providers.names())


def test_cli_provider_choices_are_the_registry():
    for name in providers.names():
        assert cli.parse(["--local", "--provider", name]).provider == name
    with pytest.raises(cli.UsageError) as refusal:
        cli.parse(["--local", "--provider", "no-such-provider"])
    refused = str(refusal.value)
    assert "invalid choice" in refused
    assert all(f"'{name}'" in refused for name in providers.names())


def test_missing_flags_text_lists_the_registry_in_menu_order():
    assert local_cmd.missing_flags(flags()) == [f"--provider {{{','.join(providers.names())}}}", "--model ID|PATH"]
    for provider in providers.all_providers():
        missing = local_cmd.missing_flags(flags(provider=provider.name, model="m"))
        assert missing == (["--api_base URL"] if provider.needs_url else [])


def test_menu_lines_follow_the_registry():
    statuses = {name: ProviderStatus(name == "custom", True, f"detail of {name}") for name in providers.names()}
    lines = explorer.provider_lines(statuses)
    assert [name for name, _ in lines] == list(providers.names())
    for (name, line), provider in zip(lines, providers.all_providers(), strict=True):
        assert provider.title in line and f"detail of {name}" in line


def test_preselect_asks_providers_what_they_are():
    down = ProviderStatus(False, False, "")
    statuses = {name: down for name in providers.names()}
    assert explorer.preselect(statuses, None) == providers.DEFAULT
    for provider in providers.all_providers():
        picked = explorer.preselect(statuses | {provider.name: ProviderStatus(True, True, "")}, None)
        # only an app the user started on purpose is preselected for running
        expected = provider.name if not provider.builtin and not provider.needs_url else providers.DEFAULT
        assert picked == expected


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
        and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings}


@pytest.mark.parametrize("module", ["explorer.py", "menus.py", "local_mode.py", "commands/local_cmd.py",
                                    "commands/serve_cmd.py"])
def test_the_face_never_names_a_provider(module):
    assert _string_constants(FACE / module) & set(providers.names()) == set()


def test_the_check_sees_a_provider_named_in_code(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""A docstring may say llamacpp."""\nif name == "jan":\n    pass\n')
    assert _string_constants(sample) & set(providers.names()) == {"jan"}


def test_unknown_provider_lists_the_registry():
    with pytest.raises(OiLocalError) as caught:
        providers.get("nope")
    assert all(name in str(caught.value) for name in providers.names())


# --- a provider added to the registry shows up everywhere ----------------------------------------------


class Vllm(OpenAIServer):
    """A new OpenAI-compatible product, added the way a new provider is: one instance in the registry."""

    name = "vllm"
    title = "vLLM (added in a test)"
    server_title = "vLLM's server"
    asks_key = True
    steps = ("Run `vllm serve MODEL --api-key KEY`.",)

    def __init__(self, default_url: str) -> None:
        self.url_variable = env.Variable("OI_TEST_VLLM_API_BASE", default_url, "where the test's vLLM listens")


def test_a_provider_added_to_the_registry_shows_up_everywhere(llama_server, app_home, monkeypatch):
    added = Vllm(llama_server.base_url)
    monkeypatch.setitem(providers.REGISTRY, added.name, added)

    assert providers.get("vllm") is added and providers.names()[-1] == "vllm"
    assert cli.parse(["--local", "--provider", "vllm"]).provider == "vllm"
    assert "vllm}" in local_cmd.missing_flags(flags())[0]

    paths = app_paths().ensure()
    _, statuses = explorer.survey(ProviderContext(paths=paths))
    assert statuses["vllm"].running and "needs an API key" in statuses["vllm"].detail
    line = dict(explorer.provider_lines(statuses))["vllm"]
    assert line.startswith("● vLLM (added in a test)") and llama_server.base_url in line

    endpoint, server = local_mode.prepare_endpoint("vllm", "smollm2-135m", ProviderContext(paths=paths),
                                                   api_key=llama_server.api_key)
    assert server is None and endpoint.provider == "vllm" and endpoint.api_base == llama_server.base_url
    assert local_mode.summary_line(endpoint).startswith(f"Model smollm2-135m via vLLM (added in a test) at {llama_server.base_url}")

    with pytest.raises(OiLocalError) as caught:  # its own words when it is not running
        local_mode.prepare_endpoint("vllm", "m", ProviderContext(paths=paths, api_base=f"http://127.0.0.1:{free_port()}/v1"))
    assert "vLLM's server is not running" in str(caught.value) and "vllm serve MODEL" in str(caught.value)
