"""Server-Sent Events through ``sse-starlette``, with the error event a started stream needs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from ui.api.errors import stream_error


def event(name: str | None, data: Any) -> ServerSentEvent:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return ServerSentEvent(data=payload, event=name, sep="\n")


def sse_response(events: Iterator[ServerSentEvent]) -> EventSourceResponse:
    """Stream ``events``; an exception after the 200 was sent becomes one last ``error`` event."""

    def guarded() -> Iterator[ServerSentEvent]:
        try:
            yield from events
        except Exception as exc:
            yield event("error", stream_error(exc))

    return EventSourceResponse(guarded(), sep="\n", ping=15)
