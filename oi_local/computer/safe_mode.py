"""safe_mode: scan code with semgrep before it runs, and say so plainly when semgrep is not there.

The seed's modes: "off" (no scan), "ask" (the user is asked whether to scan; the terminal shows the
result before the run confirmation), "auto" (every block is scanned before the confirmation). The
scan is offline: semgrep runs with `--metrics=off` and the rules in `config` (a local rules file or folder;
semgrep's registry configs such as "auto" need the network, so they only work online). Scanning never
runs the code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError

MODES = ("off", "ask", "auto")
SUFFIXES = {"python": ".py", "shell": ".sh", "javascript": ".js", "html": ".html", "r": ".r", "powershell": ".ps1"}
NOT_INSTALLED = (
    "safe_mode is on, but semgrep is not installed, so code is NOT scanned before it runs. "
    "Install it with `pip install semgrep` (and give it local rules: computer.semgrep_config) to scan code."
)


@dataclass
class Finding:
    rule: str
    line: int
    message: str
    severity: str = ""


@dataclass
class SafetyReport:
    """The result of scanning one block. `scanned` is False when no scan could be made (`message` says why)."""

    language: str
    scanned: bool
    findings: list[Finding] = field(default_factory=list)
    message: str = ""

    @property
    def safe(self) -> bool | None:
        return None if not self.scanned else not self.findings

    def summary(self) -> str:
        if not self.scanned:
            return self.message
        if not self.findings:
            return "semgrep found no issues in this code."
        lines = [f"semgrep found {len(self.findings)} issue(s):"]
        lines += [f"- line {f.line}: {f.message} ({f.rule})" for f in self.findings]
        return "\n".join(lines)


def check_mode(mode: str) -> str:
    value = str(mode or "off").lower()
    if value not in MODES:
        raise OiLocalError(f"safe_mode is {mode!r}; use one of off, ask, auto.")
    return value


def semgrep_path() -> str | None:
    return shutil.which("semgrep")


def scan(language: str, code: str, *, config: str = "auto", timeout: float = TIMEOUTS.safe_mode_scan) -> SafetyReport:
    """Scan `code` with semgrep (never runs it)."""
    semgrep = semgrep_path()
    if semgrep is None:
        return SafetyReport(language, scanned=False, message=NOT_INSTALLED)
    with tempfile.TemporaryDirectory(prefix="oi-local-scan-") as folder:
        path = Path(folder) / f"code{SUFFIXES.get(language, '.txt')}"
        path.write_text(code)
        try:
            result = subprocess.run(
                [semgrep, "scan", "--config", config, "--json", "--quiet", "--metrics=off", str(path)],
                capture_output=True, text=True, timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return SafetyReport(language, scanned=False, message=f"semgrep could not scan the code: {error}.")
    try:
        data = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        data = {}
    if result.returncode not in (0, 1) or "results" not in data:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return SafetyReport(
            language, scanned=False,
            message=f"semgrep could not scan the code (exit {result.returncode}: {detail[0]}). "
            f"Offline it needs local rules: set computer.semgrep_config to a rules file.",
        )
    findings = [
        Finding(
            rule=item.get("check_id", ""),
            line=item.get("start", {}).get("line", 0),
            message=item.get("extra", {}).get("message", ""),
            severity=item.get("extra", {}).get("severity", ""),
        )
        for item in data["results"]
    ]
    return SafetyReport(language, scanned=True, findings=findings)
