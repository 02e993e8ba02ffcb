"""Server-Sent Events through ``sse-starlette``, with the error event a started stream needs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from rag.results import StreamEvent
from ui.api.errors import stream_error

# Characters a JSON string may hold raw that many line splitters (Python's ``str.splitlines``,
# some SSE clients) take for line ends: escaped, so one event's data stays one line.
_LINE_SEPARATORS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def event(name: str | None, data: Any) -> ServerSentEvent:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False).translate(_LINE_SEPARATORS)
    return ServerSentEvent(data=payload, event=name, sep="\n")


def stream_event(item: StreamEvent) -> ServerSentEvent:
    """One event of ``Tongwen.ask_stream``, named by its type, with ``type`` first in its JSON as
    before the events were typed (a final event's ``type`` field comes last in the model)."""
    return event(item.type, {"type": item.type, **item.model_dump(mode="json")})


def event_stream(events: Iterator[ServerSentEvent]) -> EventSourceResponse:
    """The one place the framing is set: LF between lines, a keep-alive comment every 15 s."""
    return EventSourceResponse(events, sep="\n", ping=15)


def sse_response(events: Iterator[ServerSentEvent]) -> EventSourceResponse:
    """Stream ``events``; an exception after the 200 was sent becomes one last ``error`` event."""

    def guarded() -> Iterator[ServerSentEvent]:
        try:
            yield from events
        except Exception as exc:
            yield event("error", stream_error(exc))

    return event_stream(guarded())
