"""``/v1/models`` and ``/v1/chat/completions``: Tongwen as an OpenAI-compatible chat model.

Any OpenAI client (the ``openai`` package, ``langchain_openai.ChatOpenAI``, chat front-ends)
gets the cited answer as the message content with a sources footer; Tongwen's own fields
(``question``, ``sources``, ``citations``, ``found``, ``backend``) ride along on the completion and
on the last stream chunk. ``stop`` and ``max_tokens`` are applied to the answer text whatever the
backend, and ``temperature`` and ``max_tokens`` are passed on to a language model. Token counts
(``usage``, ``max_tokens``) use the embedding model's tokenizer, the one every backend has.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Literal

from fastapi import APIRouter, Depends
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from sse_starlette import EventSourceResponse, ServerSentEvent

from rag.errors import TongwenError
from rag.generate.base import GenerationOptions
from rag.results import Answer, FinalEvent, TokenEvent
from rag.service import Tongwen
from ui.api.errors import stream_error
from ui.api.history import checked_history
from ui.api.schemas import ChatRequest, CitedCompletion, CitedCompletionChunk, model_names
from ui.api.sse import event, event_stream


def cited_fields(result: Answer) -> dict[str, Any]:
    """Tongwen's fields that ride along on a completion (and on the last stream chunk)."""
    return {
        "question": result.question,
        "sources": result.sources,
        "citations": result.citations,
        "found": result.found,
        "backend": result.backend,
    }


def sources_footer(result: Answer) -> str:
    """The cited sources as plain text after the answer, so any client shows them; each with its
    line range, so two passages of one file can be told apart. A refusal cites nothing."""
    if not result.found:
        return ""
    cited = {c.n for c in result.citations}
    lines = []
    for s in result.sources:
        if s.n in cited:
            where = f"第 {s.location.line_start}–{s.location.line_end} 行"
            lines.append(f"[{s.n}] {s.doc} {where} {s.heading}".rstrip())
    if not lines:
        return ""
    title = "来源" if result.script == "simplified" else "來源"
    return f"\n\n{title}：\n" + "\n".join(lines)


class AnswerLimits:
    """``stop`` strings and ``max_tokens`` applied to an answer arriving in pieces.

    A stop string may straddle two pieces, so the longest stop's length minus one characters are
    held back until the next piece shows whether it completes one.
    """

    def __init__(self, body: ChatRequest, count_tokens: Callable[[str], int]) -> None:
        self.stops = body.stops()
        self.max_tokens = body.max_completion_tokens or body.max_tokens
        self.count_tokens = count_tokens
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.sent = ""
        self.pending = ""
        self.finish: Literal["stop", "length"] | None = None  # "stop" (a stop string), "length" once cut

    def feed(self, piece: str) -> str:
        """The part of ``piece`` that may be sent now."""
        if self.finish:
            return ""
        self.pending += piece
        for stop in self.stops:
            at = self.pending.find(stop)
            if at >= 0:
                self.pending, self.finish = self.pending[:at], "stop"
        ready = self.pending if self.finish else self.pending[: max(0, len(self.pending) - self.hold)]
        self.pending = self.pending[len(ready) :]
        return self._within_budget(ready)

    def flush(self) -> str:
        ready, self.pending = self.pending, ""
        return self._within_budget(ready)

    def _within_budget(self, text: str) -> str:
        if not text or self.max_tokens is None or self.finish == "length":
            self.sent += text if self.finish != "length" else ""
            return text if self.finish != "length" else ""
        if self.count_tokens(self.sent + text) <= self.max_tokens:
            self.sent += text
            return text
        keep = ""
        for ch in text:  # the longest prefix within budget (answers are short; this is rare)
            if self.count_tokens(self.sent + keep + ch) > self.max_tokens:
                break
            keep += ch
        self.sent += keep
        self.finish = "length"
        return keep

    def apply(self, answer: str) -> str:
        return self.feed(answer) + self.flush()


def router(service: Tongwen, read_guard: Callable[..., None]) -> APIRouter:
    api = APIRouter(tags=["openai"], dependencies=[Depends(read_guard)])
    names = model_names()

    count_tokens = service.count_tokens

    @api.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "tongwen"} for n in names]}

    @api.post(
        "/v1/chat/completions",
        response_model=CitedCompletion,
        response_model_exclude_unset=True,  # OpenAI's optional fields we do not fill stay out of the JSON
        responses={200: {"content": {"text/event-stream": {}}, "description": "With `stream: true`: SSE chunks."}},
    )
    def chat(body: ChatRequest) -> CitedCompletion | EventSourceResponse:
        """OpenAI-compatible chat. The model name picks the backend (`tongwen-extractive` …);
        the reply carries `[n]` markers, a footer of the cited sources, `usage`, and extra
        `question`/`sources`/`citations`/`found` fields. With `stream: true`, Server-Sent Events
        of `chat.completion.chunk`s, then `[DONE]`."""
        turns = [m for m in body.messages if m.role in ("user", "assistant")]
        if not turns or turns[-1].role != "user":
            raise TongwenError("The last message must be the user's question.")
        if body.model not in names:
            raise TongwenError(f"Unknown model {body.model!r}; use one of {', '.join(names)} (GET /v1/models).")
        backend = names[body.model]
        question = turns[-1].text()
        history = checked_history(turns[:-1], service.settings)
        prompt_tokens = sum(count_tokens(m.text()) for m in body.messages)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": body.model}
        limits = AnswerLimits(body, count_tokens)
        options = GenerationOptions(body.temperature, limits.max_tokens)

        def usage(content: str) -> CompletionUsage:
            completion = count_tokens(content)
            return CompletionUsage(
                prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion
            )

        if not body.stream:
            result = service.ask(question, history, body.top_k, backend, options)
            content = limits.apply(result.answer)
            content += "" if limits.finish else sources_footer(result)
            message = ChatCompletionMessage(role="assistant", content=content)
            return CitedCompletion(
                **base,
                object="chat.completion",
                choices=[Choice(index=0, message=message, finish_reason=limits.finish or "stop")],
                usage=usage(content),
                **cited_fields(result),
            )

        events = service.ask_stream(question, history, body.top_k, backend, options)
        next(events)  # validation errors surface here, before the 200 is sent

        def chunk(choices: list[ChunkChoice], **extra: Any) -> ServerSentEvent:
            data = CitedCompletionChunk(**base, object="chat.completion.chunk", choices=choices, **extra)
            return event(None, data.model_dump(mode="json", exclude_unset=True))

        def delta(delta: ChoiceDelta, finish: Literal["stop", "length"] | None = None, **extra: Any) -> ServerSentEvent:
            return chunk([ChunkChoice(index=0, delta=delta, finish_reason=finish)], **extra)

        def stream() -> Iterator[ServerSentEvent]:
            yield delta(ChoiceDelta(role="assistant", content=""))
            try:
                yield from answer_chunks()
            except Exception as exc:  # OpenAI clients raise on a `data: {"error": …}` chunk
                yield event(None, stream_error(exc))
            yield event(None, "[DONE]")

        def answer_chunks() -> Iterator[ServerSentEvent]:
            content = ""
            for item in events:
                if isinstance(item, TokenEvent):
                    piece = limits.feed(item.text)
                    if piece:
                        content += piece
                        yield delta(ChoiceDelta(content=piece))
                elif isinstance(item, FinalEvent):
                    tail = limits.flush()
                    footer = "" if limits.finish else sources_footer(item)
                    content += tail + footer
                    last = ChoiceDelta(content=tail + footer)
                    yield delta(last, limits.finish or "stop", answer=item.answer, **cited_fields(item))
            if body.stream_options and body.stream_options.include_usage:
                yield chunk([], usage=usage(content))

        return event_stream(stream())

    return api
