"""``/api/retrieve`` and ``/api/ask``: Tongwen's own question routes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi import APIRouter, Depends
from sse_starlette import EventSourceResponse, ServerSentEvent

from rag.results import Answer, RetrieveResult
from rag.service import Tongwen
from ui.api.history import checked_history
from ui.api.schemas import AskRequest, RetrieveRequest
from ui.api.sse import sse_response, stream_event


def router(service: Tongwen, read_guard: Callable[..., None]) -> APIRouter:
    api = APIRouter(tags=["qa"], dependencies=[Depends(read_guard)])

    @api.post("/api/retrieve", response_model=RetrieveResult)
    def retrieve(body: RetrieveRequest) -> RetrieveResult:
        """Hybrid search only: the chunks a question would be answered from."""
        return RetrieveResult(hits=service.retrieve(body.query, body.top_k))

    @api.post(
        "/api/ask",
        response_model=Answer,
        responses={200: {"content": {"text/event-stream": {}}, "description": "With `stream: true`: SSE events."}},
    )
    def ask(body: AskRequest) -> Answer | EventSourceResponse:
        """Answer with citations. With `stream: true`, Server-Sent Events: `question`, `token`…,
        then `final` carrying the checked answer, sources and citations (or `error`)."""
        history = checked_history(body.history, service.settings)
        if not body.stream:
            return service.ask(body.question, history, body.top_k, body.llm)
        events = service.ask_stream(body.question, history, body.top_k, body.llm)
        first = next(events)  # validation errors surface here, before the 200 is sent

        def stream() -> Iterator[ServerSentEvent]:
            yield stream_event(first)
            for item in events:
                yield stream_event(item)

        return sse_response(stream())

    return api
