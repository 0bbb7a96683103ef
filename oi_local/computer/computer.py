"""The Computer: runs code in the model's languages and speaks LMC chunks (seed: code-execution pages).

`computer.run("python", "print(1)")` returns the output messages; `stream=True` yields chunks as the code
runs: `{"role": "computer", "type": "console", "format": "active_line" | "output", "content": ...}` and
`{"role": "computer", "type": "image", "format": "base64.png", "content": ...}`. `computer.languages` is a
list of language classes (the seed's custom-language interface: `name`, `run(code)`, `stop()`,
`terminate()`; optional `aliases`); a class is instantiated on its first run and kept, so state carries over.
Nothing here raises for bad code or a missing runtime: the model is told in an output chunk instead.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from oi_local.computer.forbidden import DEFAULT_FORBIDDEN_COMMANDS, find_forbidden
from oi_local.computer.languages.base import active_line, output, run_once_chunks
from oi_local.computer.safe_mode import NOT_INSTALLED, SafetyReport, check_mode, scan, semgrep_path
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError

# Names models write in fence tags, mapped to the language they mean (used when a language class has no
# `aliases` of its own, e.g. a custom class named "python").
ALIASES = {
    "py": "python", "python3": "python", "ipython": "python",
    "sh": "shell", "bash": "shell", "zsh": "shell", "console": "shell", "shell-session": "shell",
    "js": "javascript", "node": "javascript", "nodejs": "javascript",
    "htm": "html", "rscript": "r", "osascript": "applescript", "pwsh": "powershell", "ps1": "powershell",
}


class Computer:
    """Runs code. Settings (seed names): languages, forbidden_commands, safe_mode, offline, verbose,
    emit_images, import_computer_api; ours: timeout (seconds per run, None for no limit) and
    semgrep_config (the rules safe_mode scans with)."""

    def __init__(
        self,
        languages: list | None = None,
        *,
        forbidden_commands: list[str] | None = None,
        safe_mode: str = "off",
        timeout: float | None = TIMEOUTS.code_run,
        offline: bool = True,
        verbose: bool = False,
    ) -> None:
        from oi_local.computer.languages import default_languages

        self._languages: list = list(languages) if languages is not None else default_languages()
        self._active: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.forbidden_commands: list[str] = (
            list(forbidden_commands) if forbidden_commands is not None else list(DEFAULT_FORBIDDEN_COMMANDS)
        )
        self._safe_mode = check_mode(safe_mode)
        self.semgrep_config = "auto"
        self.timeout = timeout
        self.offline = offline
        self.verbose = verbose
        self.emit_images = True
        self.import_computer_api = False
        self.system_message = ""
        self._semgrep_notice_given = False
        _LIVE.add(self)

    # -- settings -------------------------------------------------------------------------------------

    @property
    def languages(self) -> list:
        return self._languages

    @languages.setter
    def languages(self, value: list) -> None:
        """Language classes (or instances); a name such as "python" picks that built-in language (as OI
        profiles do with `computer.languages: [python, shell]`)."""
        resolved = [_builtin(item) if isinstance(item, str) else item for item in value]
        self.terminate()  # the seed's tip: old languages must not keep their state
        self._languages = resolved

    @property
    def safe_mode(self) -> str:
        return self._safe_mode

    @safe_mode.setter
    def safe_mode(self, value: str) -> None:
        self._safe_mode = check_mode(value)

    # -- languages ------------------------------------------------------------------------------------

    def get_language(self, name: str) -> Any | None:
        """The language (class or instance from `languages`) that `name` means, aliases included."""
        wanted = str(name or "").strip().lower()
        for language in self._languages:
            if str(getattr(language, "name", "")).lower() == wanted:
                return language
        for language in self._languages:
            if wanted in {str(alias).lower() for alias in getattr(language, "aliases", ()) or ()}:
                return language
        canonical = ALIASES.get(wanted)
        if canonical and canonical != wanted:
            return self.get_language(canonical)
        return None

    def language_names(self) -> list[str]:
        return [str(getattr(language, "name", language)) for language in self._languages]

    def _instance(self, language: Any) -> Any:
        with self._lock:
            key = id(language)
            if key not in self._active:
                if inspect.isclass(language):
                    self._active[key] = _construct(language, self)
                else:
                    self._active[key] = language
            return self._active[key]

    def warm_up(self, *names: str) -> None:
        """Start the named languages' runtimes in the background (only those that support it), so the
        model's first run does not wait: e.g. `computer.warm_up("python")` when a chat begins."""
        for name in names or ("python",):
            language = self.get_language(name)
            if language is None:
                continue
            instance = self._instance(language)
            if hasattr(instance, "warm_up"):
                instance.warm_up()

    # -- running --------------------------------------------------------------------------------------

    def run(self, language: str, code: str, stream: bool = False, display: bool = False) -> list[dict] | Iterator[dict]:
        """Run `code`; with stream=False the output messages (consecutive outputs merged), else a generator
        of chunks. Closing the generator early stops the code."""
        chunks = self._run(language, code, display)
        return chunks if stream else run_once_chunks(chunks)

    def _run(self, language_name: str, code: str, display: bool) -> Iterator[dict]:
        language = self.get_language(language_name)
        refused = self.refusal(language_name, code)
        if refused is not None:
            chunks: Iterator[dict] = iter([output(refused), active_line(None)])
        elif language is None:
            chunks = iter([output(self._unknown(language_name)), active_line(None)])
        else:
            chunks = self._run_language(language, language_name, code)
        for chunk in chunks:
            chunk = {"role": "computer", **chunk}
            if display:
                _display(chunk)
            yield chunk

    def _run_language(self, language: Any, language_name: str, code: str) -> Iterator[dict]:
        instance = self._instance(language)
        finished = False
        inner = None
        try:
            inner = instance.run(code)
            yield from inner
            finished = True
        except Exception as error:  # a broken custom language must not end the conversation
            finished = True
            yield output(f"The {language_name} language failed: {type(error).__name__}: {error}\n")
        finally:
            if not finished:
                if inner is not None and hasattr(inner, "close"):
                    inner.close()
                try:
                    instance.stop()
                except Exception:
                    pass

    def refusal(self, language: str, code: str) -> str | None:
        """Why `code` must not run (one paragraph for the model), or None: see computer/forbidden.py."""
        resolved = self.get_language(language)
        name = str(getattr(resolved, "name", language)).lower()
        found = find_forbidden(code, self.forbidden_commands, name, self._working_directory(resolved, name))
        return found.message() if found is not None else None

    def _working_directory(self, language: Any, name: str) -> str | None:
        """Where the language's next run starts, when it keeps one (the shell); a new shell starts here."""
        instance = self._active.get(id(language)) if language is not None else None
        folder = getattr(instance, "cwd", None)
        if isinstance(folder, str):
            return folder
        return os.getcwd() if name == "shell" else None

    def _unknown(self, name: str) -> str:
        names = ", ".join(self.language_names()) or "none"
        return f"Code in `{name}` cannot run: no such language here. The languages available are: {names}.\n"

    def stop(self) -> None:
        """Stop the code now running (from any thread); the languages keep their state."""
        for instance in list(self._active.values()):
            try:
                instance.stop()
            except Exception:
                pass

    def terminate(self) -> None:
        """End every language's process (state is lost; the next run starts fresh)."""
        with self._lock:
            instances, self._active = list(self._active.values()), {}
        for instance in instances:
            try:
                instance.terminate()
            except Exception:
                pass

    # -- safety ---------------------------------------------------------------------------------------

    def safety_report(self, language: str, code: str) -> SafetyReport | None:
        """What safe_mode says about `code` before it runs: None when safe_mode is off. Without semgrep the
        first report says so (scanned=False) and later ones are None, so the notice is shown once."""
        if self._safe_mode == "off":
            return None
        resolved = self.get_language(language)
        name = str(getattr(resolved, "name", language))
        if semgrep_path() is None:
            if self._semgrep_notice_given:
                return None
            self._semgrep_notice_given = True
            return SafetyReport(name, scanned=False, message=NOT_INSTALLED)
        return scan(name, code, config=self.semgrep_config)


def _builtin(name: str) -> type:
    from oi_local.computer.languages import default_languages

    language = Computer(languages=default_languages()).get_language(name)
    if language is None:
        names = ", ".join(lang.name for lang in default_languages())
        raise OiLocalError(f"computer.languages names {name!r}, which is not a language here; use some of: {names}.")
    return language


def _construct(language: type, computer: Computer) -> Any:
    """Instantiate a language class, passing the computer when its constructor takes an argument (as OI does)."""
    try:
        parameters = [
            p for p in inspect.signature(language).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
        ]
    except (TypeError, ValueError):
        parameters = []
    return language(computer) if parameters else language()


def _display(chunk: dict) -> None:
    if chunk.get("type") == "console" and chunk.get("format") == "output":
        sys.stdout.write(str(chunk.get("content", "")))
        sys.stdout.flush()
    elif chunk.get("type") == "image":
        sys.stdout.write(f"[image: {chunk.get('format')}]\n")


_LIVE: weakref.WeakSet[Computer] = weakref.WeakSet()


def _terminate_all() -> None:
    for computer in list(_LIVE):
        computer.terminate()


import atexit  # noqa: E402

atexit.register(_terminate_all)
