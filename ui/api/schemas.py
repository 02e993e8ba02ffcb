"""The shapes of requests the HTTP API accepts (responses: ``rag.results``, and OpenAI's own
types from the ``openai`` package, with Tongwen's fields added, for ``/v1/chat/completions``).

``top_k`` is optional everywhere: left out, the server's ``TONGWEN_TOP_K`` applies.
"""

from __future__ import annotations

from typing import Any, Literal

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, Field

from rag.errors import InvalidText
from rag.generate.registry import names
from rag.results import Citation, Source

Backend = Literal[names()]  # type: ignore[valid-type]  # built from the registry: one list of names
MODEL_PREFIX = "tongwen"


def model_names() -> dict[str, str | None]:
    """The model names ``/v1/models`` lists and the backend each picks; no other name is accepted."""
    return {MODEL_PREFIX: None, **{f"{MODEL_PREFIX}-{name}": name for name in names()}}


class Message(BaseModel):
    # `developer` is the newer OpenAI name of `system`; both carry instructions, not questions.
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text; a ``text`` part whose text is not a string is an error, not "None"."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = [p.get("text") for p in self.content if p.get("type") == "text"]
        if any(not isinstance(t, str) for t in texts):
            raise InvalidText('A content part of type "text" needs a string "text" field.')
        return "".join(texts)


TopK = Field(default=None, ge=1, le=50, description="Sources to return; default TONGWEN_TOP_K.")


class RetrieveRequest(BaseModel):
    query: str
    top_k: int | None = TopK


class AskRequest(BaseModel):
    question: str
    top_k: int | None = TopK
    history: list[Message] = Field(default_factory=list)
    llm: Backend | None = None  # type: ignore[valid-type]
    stream: bool = False


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat request, with the fields Tongwen honours; others are accepted and ignored."""

    model: str = MODEL_PREFIX
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    top_k: int | None = TopK
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    stop: str | list[str] | None = None

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]


class CitedCompletion(ChatCompletion):
    """OpenAI's chat completion plus what Tongwen knows about the answer. OpenAI clients keep the
    extra fields (their models allow extras), so ``completion.sources`` works in the ``openai``
    package too. Sent with ``exclude_unset``: OpenAI's optional fields we do not fill stay out."""

    question: str = Field(description="The question as understood (a follow-up made standalone).")
    sources: list[Source]
    citations: list[Citation]
    found: bool
    backend: str


class CitedCompletionChunk(ChatCompletionChunk):
    """A stream chunk; the last one (with ``finish_reason``) also carries the fields of
    :class:`CitedCompletion` and the whole ``answer``."""

    answer: str | None = None
    question: str | None = None
    sources: list[Source] | None = None
    citations: list[Citation] | None = None
    found: bool | None = None
    backend: str | None = None
