"""How the core's domain errors become HTTP answers: one status per error class, one JSON shape.

The core (``rag``, ``ingest``) raises errors that say what went wrong and what to do; only this
module knows which status code each deserves, so a new interface (a gRPC server, say) maps the
same errors its own way without the core knowing about HTTP.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse

from rag.errors import (
    CorruptDocument,
    DocumentNotFound,
    DocumentTooLarge,
    EmptyDocument,
    EmptyQuestion,
    IndexCorrupt,
    IndexMissing,
    InvalidText,
    ModelUnavailable,
    QuestionTooLong,
    StoreUnavailable,
    TongwenError,
    UnsupportedFileType,
)

log = logging.getLogger(__name__)


class RequestTooLarge(TongwenError):
    """A request (body, history, upload batch) over a size limit: an HTTP-layer refusal."""


STATUS: dict[type[TongwenError], int] = {
    EmptyQuestion: 422,
    InvalidText: 422,
    QuestionTooLong: 413,
    RequestTooLarge: 413,
    UnsupportedFileType: 415,
    CorruptDocument: 422,
    EmptyDocument: 422,
    DocumentTooLarge: 413,
    DocumentNotFound: 404,
    IndexMissing: 409,
    # The service is unavailable until an operator acts (rebuild, roll back, prepare models);
    # nothing is wrong with the request, so 503 rather than 500.
    IndexCorrupt: 503,
    ModelUnavailable: 503,
    StoreUnavailable: 503,
}


def status_for(kind: type[BaseException]) -> int:
    """The status of an error class: its own entry, else its nearest mapped base, else 400."""
    for cls in kind.__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_response(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"type": kind, "message": message, **extra}})


def domain_error_response(exc: TongwenError) -> JSONResponse:
    return error_response(status_for(type(exc)), type(exc).__name__, str(exc))


def stream_error(exc: Exception) -> dict[str, Any]:
    """The error event of a stream whose 200 was already sent."""
    if isinstance(exc, TongwenError):
        return {"error": {"type": type(exc).__name__, "message": str(exc), "status": status_for(type(exc))}}
    log.exception("a streamed answer failed")
    message = f"Internal error ({type(exc).__name__}); see the server log."
    return {"error": {"type": "InternalError", "message": message, "status": 500}}
