"""The design's import rules (DESIGN.md): terminal -> agent -> computer; the agent never imports the terminal,
the explorer, a provider or the face; the terminal reaches the computer only through the agent. Read from the
source (every import, also those inside functions), and checked at run time for the agent."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "oi_local"


def imports_of(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
        found[str(path.relative_to(PACKAGE))] = names
    return found


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("agent", ("oi_local.terminal", "oi_local.face", "oi_local.providers", "oi_local.serving")),
    ("computer", ("oi_local.terminal", "oi_local.face", "oi_local.providers", "oi_local.agent")),
    ("terminal", ("oi_local.computer", "oi_local.face", "oi_local.providers")),
])
def test_imports_follow_the_flow(folder, forbidden):
    wrong = {path: sorted(n for n in names if n.startswith(forbidden)) for path, names in imports_of(folder).items()}
    assert {path: names for path, names in wrong.items() if names} == {}


def test_a_chat_without_display_loads_no_terminal_and_a_bare_agent_asks_for_a_display():
    script = (
        "import sys\n"
        "from oi_local.agent.core import OpenInterpreter\n"
        "from oi_local.errors import OiLocalError\n"
        "i = OpenInterpreter(conversation_history=False)\n"
        "i.llm.completions = lambda **kw: iter(['Hi.'])\n"
        "assert i.chat('hello', display=False)[-1]['content'] == 'Hi.'\n"
        "assert [c for c in i.chat('again', stream=True, display=False)]\n"
        "try:\n"
        "    i.chat('shown?')\n"
        "except OiLocalError as error:\n"
        "    assert 'display' in str(error)\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
        "assert not [m for m in sys.modules if m.startswith('oi_local.terminal')], 'terminal imported'\n"
        "class Shown:\n"
        "    def __init__(self): self.turns = []\n"
        "    def turn(self, agent, message):\n"
        "        self.turns.append(message)\n"
        "        return agent.chat(message, display=False)\n"
        "shown = Shown()\n"
        "assert i.chat('through mine', display=shown)[-1]['content'] == 'Hi.' and shown.turns == ['through mine']\n"
        "import oi_local\n"
        "assert oi_local.interpreter.display_factory is not None\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
