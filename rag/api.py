"""The HTTP API: Tongwen's own JSON routes plus an OpenAI-compatible chat endpoint.

Thin over :class:`rag.service.Tongwen`. Every user error becomes a JSON answer with a 4xx status
and a readable message; a 500 means a bug. Handlers are plain functions, so FastAPI runs them in
its thread pool: concurrent questions proceed in parallel while an upload builds the next index
version (the service swaps snapshots by reference).
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Header, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.load import SUPPORTED_SUFFIXES
from ingest.pipeline import Source
from rag import __version__
from rag.errors import DocumentTooLarge, TongwenError, UnsupportedFileType
from rag.service import Tongwen

Backend = Literal["auto", "extractive", "local", "openai"]


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class RetrieveRequest(BaseModel):
    query: str
    top_k: int = Field(default=5, ge=1, le=50)


class AskRequest(BaseModel):
    question: str
    top_k: int = Field(default=5, ge=1, le=50)
    history: list[Message] = Field(default_factory=list)
    llm: Backend | None = None
    stream: bool = False


class ChatRequest(BaseModel):
    model: str = "tongwen"
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    top_k: int = Field(default=5, ge=1, le=50)


def _error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"type": kind, "message": message, **extra}})


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def safe_filename(name: str | None) -> str:
    """A file name that cannot climb out of the upload folder or carry control characters."""
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = _UNSAFE_NAME.sub("_", base).strip().lstrip(".")
    return base[:200] or "upload.txt"


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def sources_footer(result: dict[str, Any]) -> str:
    """Sources as plain text after the answer, so any OpenAI client shows them."""
    if not result["found"]:
        return ""
    lines = [f"[{s['n']}] {s['doc']}  {s['heading']}".rstrip() for s in result["sources"]]
    return "\n\n來源：\n" + "\n".join(lines) if result["script"] != "simplified" else "\n\n来源：\n" + "\n".join(lines)


def create_api(service: Tongwen) -> FastAPI:
    settings = service.settings
    api = FastAPI(
        title="Tongwen 同文 API",
        version=__version__,
        description="Q&A over Chinese documents with citations; Traditional and Simplified alike.",
    )

    @api.exception_handler(TongwenError)
    def _tongwen_error(_: Request, exc: TongwenError) -> JSONResponse:
        return _error(exc.http_status, type(exc).__name__, str(exc))

    @api.exception_handler(RequestValidationError)
    def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return _error(422, "ValidationError", f"{where}: {first['msg']}" if where else first["msg"], details=details)

    @api.exception_handler(StarletteHTTPException)
    def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "Unauthorized" if exc.status_code == 401 else "HTTPError"
        return _error(exc.status_code, kind, str(exc.detail))

    def require_key(authorization: Annotated[str | None, Header()] = None) -> None:
        if settings.api_key and authorization != f"Bearer {settings.api_key}":
            raise HTTPException(401, "This endpoint needs `Authorization: Bearer <TONGWEN_API_KEY>`.")

    router = APIRouter()

    @router.get("/health", tags=["status"])
    def health() -> dict[str, Any]:
        """Liveness plus what is loaded: index size, embedding model, generator backend."""
        return {"status": "ok", **service.info()}

    @router.post("/api/retrieve", tags=["qa"])
    def retrieve(body: RetrieveRequest) -> dict[str, Any]:
        """Hybrid search only: the chunks a question would be answered from."""
        return {"hits": service.retrieve(body.query, body.top_k)}

    @router.post("/api/ask", tags=["qa"], response_model=None)
    def ask(body: AskRequest) -> dict[str, Any] | StreamingResponse:
        """Answer with citations. With `stream: true`, Server-Sent Events: `question`, `token`…,
        then `final` carrying the checked answer, sources and citations."""
        history = [{"role": m.role, "content": m.text()} for m in body.history]
        if not body.stream:
            return service.ask(body.question, history, body.top_k, body.llm)
        events = service.ask_stream(body.question, history, body.top_k, body.llm)
        first = next(events)  # validation errors surface here, before the 200 is sent

        def stream() -> Iterator[str]:
            yield _sse(first["type"], first)
            for event in events:
                yield _sse(event["type"], event)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @router.get("/v1/models", tags=["openai"])
    def models() -> dict[str, Any]:
        names = ["tongwen", "tongwen-extractive", "tongwen-local", "tongwen-openai"]
        return {
            "object": "list",
            "data": [{"id": n, "object": "model", "owned_by": "tongwen"} for n in names],
        }

    @router.post("/v1/chat/completions", tags=["openai"], response_model=None)
    def chat(body: ChatRequest) -> dict[str, Any] | StreamingResponse:
        """OpenAI-compatible chat. The model name picks the backend (`tongwen-extractive` …);
        the reply carries `[n]` markers, a sources footer, and extra `sources`/`citations` fields."""
        turns = [m for m in body.messages if m.role != "system"]
        if not turns or turns[-1].role != "user":
            raise TongwenError("The last message must be the user's question.")
        question = turns[-1].text()
        history = [{"role": m.role, "content": m.text()} for m in turns[:-1]]
        backend = body.model.removeprefix("tongwen").lstrip("-") or None
        if backend not in (None, "auto", "extractive", "local", "openai"):
            raise TongwenError(f"Unknown model {body.model!r}; see GET /v1/models.")
        created, cid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
        base = {"id": cid, "created": created, "model": body.model}
        if not body.stream:
            result = service.ask(question, history, body.top_k, backend)
            return {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": result["answer"] + sources_footer(result),
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "sources": result["sources"],
                "citations": result["citations"],
                "found": result["found"],
                "question": result["question"],
                "backend": result["backend"],
            }
        events = service.ask_stream(question, history, body.top_k, backend)
        next(events)

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            payload = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        def stream() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            for event in events:
                if event["type"] == "token":
                    yield chunk({"content": event["text"]})
                elif event["type"] == "final":
                    # The streamed text was raw; send the checked answer's remainder as a note.
                    yield chunk(
                        {"content": sources_footer(event)},
                        "stop",
                        sources=event["sources"],
                        citations=event["citations"],
                        found=event["found"],
                        answer=event["answer"],
                        backend=event["backend"],
                    )
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    @router.get("/api/documents", tags=["documents"])
    def list_documents() -> dict[str, Any]:
        return {"documents": service.documents()}

    @router.post("/api/documents", tags=["documents"], dependencies=[Depends(require_key)])
    def upload(
        files: Annotated[list[UploadFile], File(description="One or more documents.")],
    ) -> JSONResponse:
        """Upload and ingest documents (incremental). 413 too large, 415 unsupported type,
        422 unreadable; in a mixed batch the good files land and the bad ones are listed."""
        sources = []
        for upload in files:
            name = safe_filename(upload.filename)
            if not any(name.lower().endswith(s) for s in SUPPORTED_SUFFIXES):
                raise UnsupportedFileType(
                    f"{name}: unsupported type; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
                )
            data = upload.file.read(settings.max_upload_bytes + 1)
            if len(data) > settings.max_upload_bytes:
                raise DocumentTooLarge(f"{name} is larger than {settings.max_upload_bytes} bytes.")
            sources.append(Source(name, data))
        report = service.ingest(sources)
        body = {
            "added": report.added,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "failed": report.failed,
            "chunks_embedded": report.chunks_embedded,
            "documents": service.documents(),
        }
        if report.failed and not (report.added or report.updated or report.unchanged):
            first = next(iter(report.failed.values()))
            return _error(422, "DocumentRejected", first, failed=report.failed)
        return JSONResponse(body)

    @router.delete("/api/documents/{doc_id}", tags=["documents"], dependencies=[Depends(require_key)])
    def delete_document(doc_id: str) -> dict[str, Any]:
        report = service.delete(doc_id)
        return {"deleted": report.deleted, "documents": service.documents()}

    api.include_router(router)
    return api
