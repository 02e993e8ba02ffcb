"""The HTTP API: Tongwen's own JSON routes plus an OpenAI-compatible chat endpoint.

Thin over :class:`rag.service.Tongwen`; one router per feature (``health``, ``qa``, ``openai``,
``documents``). Every user error becomes a JSON answer with a 4xx status and a readable message
(``ui.api.errors`` maps the core's domain errors to statuses); a damaged index or a missing model
is a 503 saying how to fix it; a 500 (still JSON) means a bug. Handlers are plain functions, so
FastAPI runs them in its thread pool: concurrent questions proceed while an upload builds the
next index version (the service swaps snapshots by reference).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag import __version__
from rag.errors import TongwenError
from rag.service import Tongwen
from ui.api import documents, health, openai, qa
from ui.api.auth import read_guard, write_guard
from ui.api.errors import domain_error_response, error_response
from ui.api.guards import BodyLimit, MethodGuard

JSON_ROUTES = ("/api/retrieve", "/api/ask", "/v1/chat/completions")
"""Routes whose bodies ``max_request_bytes`` caps (uploads have their own limits)."""


def create_api(service: Tongwen) -> FastAPI:
    settings = service.settings
    api = FastAPI(
        title="Tongwen 同文 API",
        version=__version__,
        description="Q&A over Chinese documents with citations; Traditional and Simplified alike.",
    )

    @api.exception_handler(TongwenError)
    def _tongwen_error(_: Request, exc: TongwenError) -> JSONResponse:
        return domain_error_response(exc)

    @api.exception_handler(RequestValidationError)
    def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        message = f"{where}: {first['msg']}" if where else first["msg"]
        return error_response(422, "ValidationError", message, details=details)

    @api.exception_handler(StarletteHTTPException)
    def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "Unauthorized" if exc.status_code == 401 else "HTTPError"
        return error_response(exc.status_code, kind, str(exc.detail))

    @api.exception_handler(Exception)
    def _bug(_: Request, exc: Exception) -> JSONResponse:
        """A bug: still JSON, so clients parse one error shape; the details go to the server log only."""
        return error_response(500, "InternalError", f"Internal error ({type(exc).__name__}); see the server log.")

    reading, writing = read_guard(settings), write_guard(settings)
    routers = [
        health.router(service),
        qa.router(service, reading),
        openai.router(service, reading),
        documents.router(service, writing),
    ]
    for router in routers:
        api.include_router(router)
    # The routers' own routes: `api.routes` may wrap them (FastAPI's included-router entries).
    api.add_middleware(MethodGuard, routes=lambda: [route for router in routers for route in router.routes])
    api.add_middleware(BodyLimit, limit=settings.max_request_bytes, paths=JSON_ROUTES)
    return api
