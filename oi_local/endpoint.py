"""Endpoint: the value handed from whatever serves a model to the agent that talks to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Endpoint:
    api_base: str  # e.g. "http://127.0.0.1:43121/v1" (OpenAI-compatible) or "http://127.0.0.1:11434" (ollama)
    model_id: str  # the id the server knows the model by
    api_key: str | None
    context_window: int
    max_tokens: int
    provider: str  # "llamacpp" | "llamafile" | "ollama" | "lmstudio" | "jan" | "custom"
    pid: int | None = None  # the server process when this program started it
    log_path: Path | None = None
    extra_body: dict = field(default_factory=dict)  # provider-specific request options (ollama: num_ctx)

    @property
    def llm_model(self) -> str:
        """The model name as litellm wants it."""
        if self.provider == "ollama":
            return f"ollama_chat/{self.model_id}"
        return f"openai/{self.model_id}"
