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
from typing import Any

from fastapi import APIRouter, Depends
from sse_starlette import EventSourceResponse, ServerSentEvent

from rag.errors import TongwenError
from rag.generate.base import GenerationOptions
from rag.service import Tongwen
from ui.api.errors import stream_error
from ui.api.history import checked_history
from ui.api.schemas import ChatRequest, model_names
from ui.api.sse import event

EXTRA_FIELDS = ("question", "sources", "citations", "found", "backend")


def sources_footer(result: dict[str, Any]) -> str:
    """The cited sources as plain text after the answer, so any client shows them; each with its
    line range, so two passages of one file can be told apart. A refusal cites nothing."""
    if not result["found"]:
        return ""
    cited = {c["n"] for c in result["citations"]}
    lines = []
    for s in result["sources"]:
        if s["n"] in cited:
            loc = s["location"]
            where = f"第 {loc['line_start']}–{loc['line_end']} 行"
            lines.append(f"[{s['n']}] {s['doc']} {where} {s['heading']}".rstrip())
    if not lines:
        return ""
    title = "来源" if result["script"] == "simplified" else "來源"
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
        self.finish: str | None = None  # "stop" (a stop string) or "length" once the answer is cut

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

    @api.post("/v1/chat/completions", response_model=None)
    def chat(body: ChatRequest) -> dict[str, Any] | EventSourceResponse:
        """OpenAI-compatible chat. The model name picks the backend (`tongwen-extractive` …);
        the reply carries `[n]` markers, a footer of the cited sources, `usage`, and extra
        `question`/`sources`/`citations`/`found` fields."""
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

        def usage(content: str) -> dict[str, int]:
            completion = count_tokens(content)
            return {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
            }

        if not body.stream:
            result = service.ask(question, history, body.top_k, backend, options)
            content = limits.apply(result["answer"])
            content += "" if limits.finish else sources_footer(result)
            return {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": limits.finish or "stop",
                    }
                ],
                "usage": usage(content),
                **{k: result[k] for k in EXTRA_FIELDS},
            }

        events = service.ask_stream(question, history, body.top_k, backend, options)
        next(events)  # validation errors surface here, before the 200 is sent

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> ServerSentEvent:
            choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
            return event(None, {**base, "object": "chat.completion.chunk", "choices": choices, **extra})

        def stream() -> Iterator[ServerSentEvent]:
            yield chunk({"role": "assistant", "content": ""})
            try:
                yield from answer_chunks()
            except Exception as exc:  # OpenAI clients raise on a `data: {"error": …}` chunk
                yield event(None, stream_error(exc))
            yield event(None, "[DONE]")

        def answer_chunks() -> Iterator[ServerSentEvent]:
            content = ""
            for item in events:
                if item["type"] == "token":
                    piece = limits.feed(item["text"])
                    if piece:
                        content += piece
                        yield chunk({"content": piece})
                elif item["type"] == "final":
                    tail = limits.flush()
                    footer = "" if limits.finish else sources_footer(item)
                    content += tail + footer
                    extra = {k: item[k] for k in EXTRA_FIELDS}
                    yield chunk({"content": tail + footer}, limits.finish or "stop", answer=item["answer"], **extra)
            if body.stream_options and body.stream_options.include_usage:
                yield event(None, {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage(content)})

        return EventSourceResponse(stream(), sep="\n", ping=15)

    return api
