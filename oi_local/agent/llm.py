"""Llm: the settings for talking to a language model, and one streamed request at a time.

litellm does the talking; it is imported inside the call (with its cost map read from the package, never
fetched), so creating an interpreter stays fast. `llm.completions` is the seed's custom-model hook: any
function that takes OpenAI-style keyword arguments and yields OpenAI-style delta chunks.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from oi_local import settings as declared
from oi_local.agent.templates import DEFAULT_EXECUTION_INSTRUCTIONS  # noqa: F401 (its old home)
from oi_local.endpoint import is_local_url, server_root, speaks_openai_here
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError

# Text that only shows up when a server renders a chat template's special tokens as plain text (a template
# mismatch): without these the model goes on to write the user's next turn itself.
LOCAL_STOP_SEQUENCES = ["<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|end|>"]

PER_MESSAGE_TOKENS = 8  # role markers a chat template wraps around every message (generous)


def estimate_tokens(text: str) -> int:
    """A conservative token count when the model's tokenizer is out of reach: one token per 2 bytes
    over-counts English and code even for small-vocabulary tokenizers, so trimming errs on the safe side."""
    return math.ceil(len(text.encode("utf-8")) / 2)


def upper_bound_tokens(messages: list[dict]) -> int:
    """More tokens than any tokenizer makes of these messages: at most one per byte (merges only shorten;
    byte fallback is one per byte), plus the chat template's markers."""
    return sum(len(message_text(m).encode("utf-8")) + PER_MESSAGE_TOKENS for m in messages)


def message_text(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


class TokenCounter:
    """Counts tokens with the serving model's own tokenizer when the server offers it, else estimates.

    llama-cpp-python's server: POST /extras/tokenize/count {"input"} -> {"count"};
    llama.cpp's own server and llamafile: POST /tokenize {"content"} -> {"tokens"}.
    """

    def __init__(self, api_base: str | None = None, api_key: str | None = None, timeout: float = TIMEOUTS.tokenize) -> None:
        self.api_base = api_base
        self.api_key = api_key
        self.timeout = timeout
        self.mode: str | None = None if api_base else "estimate"  # decided at the first count
        self._cache: dict[str, int] = {}

    @property
    def exact(self) -> bool:
        return self.mode in ("extras", "native")

    def count(self, text: str) -> int:
        if not text:
            return 0
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        n = self._count_uncached(text)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[text] = n
        return n

    def count_messages(self, messages: list[dict]) -> int:
        return sum(self.count(message_text(m)) + PER_MESSAGE_TOKENS for m in messages)

    def _count_uncached(self, text: str) -> int:
        if self.mode == "estimate":
            return estimate_tokens(text)
        import httpx

        root = server_root(self.api_base or "")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        attempts = [("extras", "/extras/tokenize/count", {"input": text}), ("native", "/tokenize", {"content": text})]
        for mode, route, body in attempts:
            if self.mode not in (None, mode):
                continue
            try:
                response = httpx.post(root + route, json=body, headers=headers, timeout=self.timeout)
                if response.status_code == 200:
                    data = response.json()
                    n = data["count"] if mode == "extras" else len(data["tokens"])
                    self.mode = mode
                    return int(n)
            except httpx.TimeoutException:
                break  # a server that does not answer now will not answer the next route either
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                pass
            if self.mode == mode:  # it worked before: a passing failure, estimate this one
                return estimate_tokens(text)
        if self.mode is None:
            self.mode = "estimate"
        return estimate_tokens(text)


def _cut_middle(text: str, keep_chars: int) -> str:
    if len(text) <= keep_chars:
        return text
    keep_chars = max(keep_chars, 0)
    head = keep_chars // 2
    tail = keep_chars - head
    cut = len(text) - keep_chars
    return text[:head] + f"\n... ({cut} characters cut to fit the context window) ...\n" + (text[-tail:] if tail else "")


def merge_consecutive(messages: list[dict]) -> list[dict]:
    """Join neighbouring messages of the same role: many local chat templates insist on alternation."""
    merged: list[dict] = []
    for message in messages:
        if (
            merged
            and merged[-1]["role"] == message["role"]
            and isinstance(merged[-1].get("content"), str)
            and isinstance(message.get("content"), str)
        ):
            merged[-1] = {**merged[-1], "content": merged[-1]["content"] + "\n\n" + message["content"]}
        else:
            merged.append(dict(message))
    return merged


def trim_messages(
    messages: list[dict], budget: int, count: Callable[[list[dict]], int], keep_head: int | None = None
) -> list[dict]:
    """Fit `messages` into `budget` tokens: keep the system message and the user's first task (or the first
    `keep_head` messages), drop whole messages from the middle (oldest first), and as a last resort cut the
    middle out of the longest text."""
    if count(messages) <= budget:
        return messages
    if keep_head is None:
        keep_head = 0
        if messages and messages[0]["role"] == "system":
            keep_head = 1
        if len(messages) > keep_head and messages[keep_head]["role"] == "user":
            keep_head += 1
    head, middle = list(messages[:keep_head]), list(messages[keep_head:])
    while len(middle) > 1 and count(head + middle) > budget:
        middle.pop(0)
    # a conversation sent to a chat model must not start its turns with the assistant after the task
    trimmed = merge_consecutive(head + middle)
    for _ in range(8):
        over = count(trimmed) - budget
        if over <= 0:
            break
        order = sorted(range(len(trimmed)), key=lambda i: (trimmed[i]["role"] == "system", -len(message_text(trimmed[i]))))
        index = order[0]
        text = message_text(trimmed[index])
        # tokens -> characters (about 4 per token for exact counts), plus some slack
        keep = max(len(text) - over * 4 - 64, len(text) // 4 if len(text) > 400 else 0)
        trimmed[index] = {**trimmed[index], "content": _cut_middle(text, keep)}
    return trimmed


def _accepted_kwargs(function: Callable, params: dict) -> dict:
    """Only the arguments a custom completions function declares (the seed's example takes four)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return params
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return params
    return {k: v for k, v in params.items() if k in signature.parameters}


def _delta_text(chunk: Any) -> str:
    """The text of one OpenAI-style streamed chunk (a dict or litellm's object)."""
    if isinstance(chunk, str):
        return chunk
    choices = chunk.get("choices") if isinstance(chunk, dict) else getattr(chunk, "choices", None)
    if not choices:
        return ""
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice, dict) else getattr(choice, "delta", None)
    if delta is None:  # a non-streamed reply
        message = choice.get("message") if isinstance(choice, dict) else getattr(choice, "message", None)
        delta = message
    if delta is None:
        return ""
    content = delta.get("content") if isinstance(delta, dict) else getattr(delta, "content", None)
    return content or ""


def endpoint_error(error: BaseException, *, api_base: str | None, model: str, mid_stream: bool, timeout: float,
                   unmanaged_local: bool = False) -> OiLocalError:
    """One paragraph for a failed request. `unmanaged_local`: a server on this machine that this program did
    not start (nothing here can start it again)."""
    where = api_base or f"the provider of {model}"
    name = type(error).__name__
    detail = str(error).strip().splitlines()[0][:300] if str(error).strip() else name
    if "Timeout" in name or "timed out" in detail.lower():
        what = f"did not send anything for {timeout:g} seconds"
        todo = "Check that the server is still running and not overloaded; raise llm.timeout for a slow machine."
    elif "Authentication" in name or "401" in detail:
        what = "rejected the API key"
        todo = "Pass the server's key with --api_key (or llm.api_key)."
    elif "NotFound" in name or "404" in detail:
        what = f"does not know the model {model!r}"
        todo = "Check the model name the server lists at /v1/models."
    elif mid_stream:
        what = "stopped in the middle of a reply"
        todo = "The server may have crashed or run out of memory: look at its log, restart it, and ask again."
    else:
        what = "could not be reached"
        todo = "Check that the model server is running and that the address and port are right, then try again."
    if unmanaged_local and what in ("could not be reached", "stopped in the middle of a reply"):
        todo = ("oi_local did not start that server, so it cannot start it again: start it yourself (the program "
                f"that serves {where}) and ask again.")
    return OiLocalError(f"The model server at {where} {what} ({name}: {detail}). {todo}")


def import_litellm() -> Any:
    """litellm, with its cost map read locally and no telemetry (oi_local.env.apply_offline, set before the
    import)."""
    from oi_local.env import apply_offline

    apply_offline()
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


class EndpointHTTPError(Exception):
    """An OpenAI-compatible server answered a request with an HTTP error (its status is in the message)."""


def openai_stream(**params: Any) -> Iterator[dict]:
    """A streamed chat completion from a local OpenAI-compatible server over HTTP (httpx), as the dict chunks
    of its SSE stream: what litellm sends for an "openai/<id>" model with an api_base, without litellm's 2-3 s
    import on the way to the first answer. `timeout` is the silence allowed between two pieces."""
    import json

    import httpx

    base = str(params.pop("api_base")).rstrip("/")
    model = str(params.pop("model")).removeprefix("openai/")
    key = params.pop("api_key", None)
    timeout = params.pop("timeout", None)
    for litellm_only in ("api_version", "max_retries", "drop_params"):
        params.pop(litellm_only, None)
    headers = {"Authorization": f"Bearer {key}"} if key and key != "no-key" else {}
    with httpx.stream("POST", f"{base}/chat/completions", json={"model": model, **params}, headers=headers,
                      timeout=httpx.Timeout(timeout)) as response:
        if response.status_code >= 400:
            response.read()
            raise EndpointHTTPError(f"HTTP {response.status_code}: {response.text.strip()[:300]}")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[len("data:"):].strip()
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            if isinstance(chunk, dict) and chunk.get("error"):
                raise EndpointHTTPError(f"the server's error: {str(chunk['error'])[:300]}")
            yield chunk


def litellm_completions(**params: Any) -> Iterator[Any]:
    """The default completions function: a local OpenAI-compatible server straight over HTTP (openai_stream),
    anything else through litellm, imported here (agent/warmup.py may have imported it already)."""
    if speaks_openai_here(params.get("model"), params.get("api_base")):
        return openai_stream(**params)
    return import_litellm().completion(**params)


class Llm:
    """Settings named as in the seed (`interpreter.llm.*`) and `run(messages)`, which streams the reply text."""

    def __init__(self, **settings: Any) -> None:
        """The llm.* settings of oi_local.settings (model, temperature, context_window, ...), each its declared
        default unless given: `Llm(model="openai/x")`. supports_functions is off by default: code travels as
        markdown blocks (see core)."""
        for name, value in declared.initial_values("llm", settings, caller="Llm").items():
            setattr(self, name, value)
        self.completions: Callable[..., Iterable[Any]] = litellm_completions
        self.stop: list[str] | None = None
        self.max_output: int | None = None  # the settings page also names it here; wins over interpreter.max_output
        self.timeout: float = TIMEOUTS.llm_silence  # seconds of silence from the server before giving up
        self.extra_body: dict = {}
        self.trim_margin: int = 16  # tokens kept free besides max_tokens
        self.last_prompt_tokens: int = 0
        self.last_completion_chars: int = 0
        # Set by whoever started the server (the face, from its ManagedServer): called with the exception when
        # a request fails; returns a new endpoint (api_base, api_key) to send the request to once more, or None.
        self.on_endpoint_failure: Callable[[BaseException], Any] | None = None
        self._counter: TokenCounter | None = None

    # -- tokens ---------------------------------------------------------------------------------------

    @property
    def token_counter(self) -> TokenCounter:
        """A counter for the current endpoint (rebuilt when api_base or the key changes)."""
        counter = self._counter
        base = self.api_base if is_local_url(self.api_base) else None
        if counter is None or counter.api_base != base or counter.api_key != self.api_key:
            counter = self._counter = TokenCounter(base, self.api_key)
        return counter

    def count_tokens(self, messages: list[dict] | str) -> int:
        """Tokens in a text, or in messages with their chat-template overhead."""
        if isinstance(messages, str):
            return self.token_counter.count(messages)
        return self.token_counter.count_messages(messages)

    def fit_to_context(self, messages: list[dict], keep_head: int | None = None) -> list[dict]:
        if not self.context_window:
            return messages
        reply_room = self.max_tokens or min(1024, self.context_window // 4)
        budget = max(self.context_window - reply_room - self.trim_margin, 64)
        if all(isinstance(m.get("content"), str) for m in messages) and upper_bound_tokens(messages) <= budget:
            return messages  # text that fits for sure: no need to ask the server's tokenizer
        return trim_messages(messages, budget, self.count_tokens, keep_head)

    # -- requests -------------------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return is_local_url(self.api_base) or self.model.startswith(("ollama/", "ollama_chat/"))

    def request_params(self, messages: list[dict]) -> dict:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "temperature": self.temperature,  # always sent: 0 is a value, not "unset"
        }
        if self.max_tokens:
            params["max_tokens"] = self.max_tokens
        if self.api_base:
            params["api_base"] = self.api_base
        if self.api_key:
            params["api_key"] = self.api_key
        elif self.model.startswith("openai/") and self.api_base:
            params["api_key"] = "no-key"  # litellm insists on one; local servers without a key ignore it
        if self.api_version:
            params["api_version"] = self.api_version
        if self.stop:
            params["stop"] = list(self.stop)
        if self.model.startswith(("ollama/", "ollama_chat/")) and self.context_window:
            params["num_ctx"] = self.context_window  # else Ollama silently truncates to its own default
        params["timeout"] = self.timeout
        if self.is_local:
            params["max_retries"] = 0  # a local server that hung or died will not be back in a second
        params.update(self.extra_body)
        return params

    def run(self, messages: list[dict], keep_head: int | None = None, overrides: dict | None = None) -> Iterator[str]:
        """Stream the reply to `messages` (OpenAI format) as text pieces, trimmed to the context window
        (never the first `keep_head` messages). Endpoint failures from the default completions become
        OiLocalError naming the server; a custom function's errors pass through. When the server fails and
        `on_endpoint_failure` gives a new endpoint (the server was started again), the request is sent once
        more, unless part of the reply had already been streamed."""
        messages = self.fit_to_context(messages, keep_head)
        # only a priced model needs the count (cost()); a local server is not asked for it on every request
        self.last_prompt_tokens = 0 if self.is_local else self.count_tokens(messages)
        function = self.completions
        default = function is litellm_completions
        recovered = False
        while True:
            self.last_completion_chars = 0
            params = self.request_params(messages)
            params.update(overrides or {})  # e.g. a repair reply's own temperature and seed
            if not default:
                params = _accepted_kwargs(function, params)
            started = False
            try:
                for chunk in function(**params):
                    started = True
                    text = _delta_text(chunk)
                    if text:
                        self.last_completion_chars += len(text)
                        yield text
                return
            except OiLocalError:
                raise
            except GeneratorExit:
                raise
            except Exception as error:
                if not default:
                    raise
                if recovered or self._recover(error) is None:
                    raise endpoint_error(error, api_base=self.api_base, model=self.model, mid_stream=started,
                                         timeout=self.timeout,
                                         unmanaged_local=self.on_endpoint_failure is None and self.is_local) from error
                recovered = True
                if started:
                    raise OiLocalError(
                        f"The model server stopped in the middle of this reply and has been started again at "
                        f"{self.api_base}: the reply above is incomplete. Ask again to get a whole one."
                    ) from error

    def _recover(self, error: BaseException) -> Any:
        """The new endpoint from `on_endpoint_failure` (now used for the next request), or None."""
        if self.on_endpoint_failure is None:
            return None
        endpoint = self.on_endpoint_failure(error)
        if endpoint is not None:
            self.api_base = endpoint.api_base
            self.api_key = endpoint.api_key
        return endpoint

    def cost(self) -> float | None:
        """The cost of the last request in USD when litellm knows the model's price; 0 for local models;
        None when unknown."""
        if self.is_local:
            return 0.0
        try:
            prompt, completion = import_litellm().cost_per_token(
                model=self.model,
                prompt_tokens=self.last_prompt_tokens,
                completion_tokens=math.ceil(self.last_completion_chars / 4),
            )
            return float(prompt + completion)
        except Exception:
            return None
