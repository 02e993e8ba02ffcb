"""The HTTP API: Tongwen's own JSON routes plus an OpenAI-compatible chat endpoint.

Thin over :class:`rag.service.Tongwen`. Every user error becomes a JSON answer with a 4xx status
and a readable message; a damaged index or a missing model is a 503 saying how to fix it; a 500
(still JSON) means a bug. Handlers are plain functions, so FastAPI runs them in
its thread pool: concurrent questions proceed in parallel while an upload builds the next index
version (the service swaps snapshots by reference).
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from ingest.pipeline import IngestReport, Source, last_of_each_name
from rag import __version__
from rag.auth import bearer_token, may_read, may_write
from rag.config import Settings
from rag.errors import DocumentTooLarge, InvalidText, RequestTooLarge, TongwenError, UnsupportedFileType
from rag.guards import BodyLimit, MethodGuard
from rag.service import Tongwen

log = logging.getLogger(__name__)

Backend = Literal["auto", "extractive", "local", "openai"]


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        """The message's text; a ``text`` part whose text is not a string is an error, not "None"."""
        if isinstance(self.content, str):
            return self.content
        texts = [p.get("text") for p in self.content if p.get("type") == "text"]
        if any(not isinstance(t, str) for t in texts):
            raise InvalidText('A content part of type "text" needs a string "text" field.')
        return "".join(texts)


class RetrieveRequest(BaseModel):
    query: str
    top_k: int = Field(default=5, ge=1, le=50)


class AskRequest(BaseModel):
    question: str
    top_k: int = Field(default=5, ge=1, le=50)
    history: list[Message] = Field(default_factory=list)
    llm: Backend | None = None
    stream: bool = False


MODEL_NAMES: dict[str, str | None] = {
    "tongwen": None,
    "tongwen-auto": "auto",
    "tongwen-extractive": "extractive",
    "tongwen-local": "local",
    "tongwen-openai": "openai",
}
"""The model names ``/v1/models`` lists and the backend each picks; no other name is accepted."""

JSON_ROUTES = ("/api/retrieve", "/api/ask", "/v1/chat/completions")
"""Routes whose bodies ``max_request_bytes`` caps (uploads have their own limits)."""


def checked_history(history: list[dict[str, str]], settings: Settings) -> list[dict[str, str]]:
    """The history, refused (413) when it is longer than ``max_history_chars`` all together.

    Refused rather than cut: a client that sends a long conversation should learn that most of it
    was not read, and trimming it silently would change what a follow-up question means.
    """
    size = sum(len(turn["content"]) for turn in history)
    if size > settings.max_history_chars:
        raise RequestTooLarge(
            f"The conversation history has {size} characters; the limit is {settings.max_history_chars} "
            "(TONGWEN_MAX_HISTORY_CHARS). Send only the last turns."
        )
    return history


class ChatRequest(BaseModel):
    model: str = "tongwen"
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    top_k: int = Field(default=5, ge=1, le=50)


def _error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"type": kind, "message": message, **extra}})


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
_LEADING_DOTS_AND_SPACES = re.compile(r"^[\s.]+")
MAX_NAME_CHARS = 200
MAX_SUFFIX_CHARS = 16  # ".markdown" fits; a longer "suffix" is part of the name, not a file type


def safe_filename(name: str | None, data: bytes = b"") -> str:
    """A file name that cannot climb out of the upload folder or carry control or bidi characters.

    Format characters (Unicode category Cf: right-to-left overrides, zero-width joiners …) are
    dropped, since they make a name display differently from what it is ("txt.exe" shown as
    "exe.txt"). Long names are cut in the stem, not at the end: the suffix decides the file type,
    so cutting it would turn a valid upload into an "unsupported type" refusal. A name that is
    empty, or only a suffix (".txt"), is named after the content's hash (``upload-1a2b3c4d.txt``),
    so two nameless uploads never silently replace each other.
    """
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = "".join(c for c in base if unicodedata.category(c) != "Cf")
    base = _UNSAFE_NAME.sub("_", base).strip()
    stripped = _LEADING_DOTS_AND_SPACES.sub("", base)
    suffix_only = stripped and base.startswith(".") and "." not in stripped and len(stripped) <= MAX_SUFFIX_CHARS
    if not stripped or suffix_only:
        suffix = "." + stripped.lower() if suffix_only else ".txt"
        return f"upload-{hashlib.sha256(data).hexdigest()[:8]}{suffix}"
    base = stripped
    if len(base) > MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        keep = dot + suffix if stem and 0 < len(suffix) <= MAX_SUFFIX_CHARS else ""
        base = base[: MAX_NAME_CHARS - len(keep)].rstrip(" .") + keep
    return base


def _upload_name(upload: UploadFile, settings: Settings) -> str:
    """The safe name of an upload; a nameless one is named after its content (read, then rewound)."""
    if safe_filename(upload.filename).startswith("upload-"):
        data = upload.file.read(settings.max_upload_bytes + 1)
        upload.file.seek(0)
        return safe_filename(upload.filename, data)
    return safe_filename(upload.filename)


def _read_upload(name: str, upload: UploadFile, max_bytes: int) -> Source:
    """One upload as a source, refused before any parsing when its type or size is wrong."""
    if not any(name.lower().endswith(s) for s in SUPPORTED_SUFFIXES):
        raise UnsupportedFileType(f"{name}: unsupported type; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    data = upload.file.read(max_bytes + 1)  # never more than one byte past the limit in memory
    if len(data) > max_bytes:
        raise DocumentTooLarge(f"{name} is larger than {max_bytes} bytes.")
    return Source(name, data)


def _failure(name: str, kind: type[TongwenError], message: str) -> dict[str, Any]:
    return {"name": name, "error": message, "status": kind.http_status, "type": kind.__name__}


def _stream_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, TongwenError):
        return {"error": {"type": type(exc).__name__, "message": str(exc), "status": exc.http_status}}
    log.exception("a streamed answer failed")
    message = f"Internal error ({type(exc).__name__}); see the server log."
    return {"error": {"type": "InternalError", "message": message, "status": 500}}


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

    @api.exception_handler(Exception)
    def _bug(_: Request, exc: Exception) -> JSONResponse:
        """A bug: still JSON, so clients parse one error shape; the details go to the server log only."""
        return _error(500, "InternalError", f"Internal error ({type(exc).__name__}); see the server log.")

    def require_key(authorization: Annotated[str | None, Header()] = None) -> None:
        if not may_write(settings, bearer_token(authorization)):
            raise HTTPException(401, "This endpoint needs `Authorization: Bearer <TONGWEN_API_KEY>`.")

    def require_read_key(authorization: Annotated[str | None, Header()] = None) -> None:
        if not may_read(settings, bearer_token(authorization)):
            raise HTTPException(401, "Questions need `Authorization: Bearer <TONGWEN_READ_KEY>` on this server.")

    reading = [Depends(require_read_key)]

    router = APIRouter()

    @router.get("/health", tags=["status"], response_model=None)
    def health() -> dict[str, Any] | JSONResponse:
        """Liveness plus what is loaded: index size, embedding model, generator backend.

        Over a damaged index: 503 with ``status: "degraded"`` and an ``error`` saying how to
        rebuild, so a monitor notices while the process stays up to pick up the rebuilt index.
        """
        info = service.info()
        problem = info.get("index_error")
        if problem:
            return JSONResponse(status_code=503, content={"status": "degraded", **info, "error": problem})
        return {"status": "ok", **info}

    @router.post("/api/retrieve", tags=["qa"], dependencies=reading)
    def retrieve(body: RetrieveRequest) -> dict[str, Any]:
        """Hybrid search only: the chunks a question would be answered from."""
        return {"hits": service.retrieve(body.query, body.top_k)}

    @router.post("/api/ask", tags=["qa"], response_model=None, dependencies=reading)
    def ask(body: AskRequest) -> dict[str, Any] | StreamingResponse:
        """Answer with citations. With `stream: true`, Server-Sent Events: `question`, `token`…,
        then `final` carrying the checked answer, sources and citations."""
        history = checked_history([{"role": m.role, "content": m.text()} for m in body.history], settings)
        if not body.stream:
            return service.ask(body.question, history, body.top_k, body.llm)
        events = service.ask_stream(body.question, history, body.top_k, body.llm)
        first = next(events)  # validation errors surface here, before the 200 is sent

        def stream() -> Iterator[str]:
            yield _sse(first["type"], first)
            try:
                for event in events:
                    yield _sse(event["type"], event)
            except Exception as exc:  # the 200 is sent: an `error` event is the only way left to say so
                yield _sse("error", _stream_error(exc))

        return StreamingResponse(stream(), media_type="text/event-stream")

    @router.get("/v1/models", tags=["openai"], dependencies=reading)
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": n, "object": "model", "owned_by": "tongwen"} for n in MODEL_NAMES],
        }

    @router.post("/v1/chat/completions", tags=["openai"], response_model=None, dependencies=reading)
    def chat(body: ChatRequest) -> dict[str, Any] | StreamingResponse:
        """OpenAI-compatible chat. The model name picks the backend (`tongwen-extractive` …);
        the reply carries `[n]` markers, a sources footer, and extra `sources`/`citations` fields."""
        turns = [m for m in body.messages if m.role != "system"]
        if not turns or turns[-1].role != "user":
            raise TongwenError("The last message must be the user's question.")
        question = turns[-1].text()
        history = checked_history([{"role": m.role, "content": m.text()} for m in turns[:-1]], settings)
        if body.model not in MODEL_NAMES:
            raise TongwenError(f"Unknown model {body.model!r}; use one of {', '.join(MODEL_NAMES)} (GET /v1/models).")
        backend = MODEL_NAMES[body.model]
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
            try:
                yield from chat_chunks()
            except Exception as exc:  # OpenAI clients raise on a `data: {"error": …}` chunk
                yield f"data: {json.dumps(_stream_error(exc), ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"

        def chat_chunks() -> Iterator[str]:
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

        return StreamingResponse(stream(), media_type="text/event-stream")

    @router.get("/api/documents", tags=["documents"])
    def list_documents() -> dict[str, Any]:
        return {"documents": service.documents(strict=True)}

    @router.get("/api/documents/{doc_id}", tags=["documents"])
    def read_document(doc_id: str) -> dict[str, Any]:
        """One document (by `doc_id` or file name): its title, text and the chunks the index holds."""
        return service.document_view(doc_id)

    @router.post("/api/documents", tags=["documents"], dependencies=[Depends(require_key)])
    def upload(
        files: Annotated[list[UploadFile], File(description="One or more documents.")],
    ) -> JSONResponse:
        """Upload and ingest documents (incremental). In a mixed batch the good files land and the
        bad ones are listed under `failed` with their own status; only when every file fails is the
        answer an error: 413 all too large, 415 all unsupported, 422 unreadable (or mixed reasons).
        A name given twice counts once: the last copy wins and the name is listed in `duplicates`."""
        if len(files) > settings.max_upload_files:
            raise RequestTooLarge(
                f"{len(files)} files in one request; the limit is {settings.max_upload_files} "
                "(TONGWEN_MAX_UPLOAD_FILES). Upload them in several requests."
            )
        total = sum(f.size or 0 for f in files)
        if total > settings.max_upload_total_bytes:
            raise RequestTooLarge(
                f"The files of this request have {total} bytes together; the limit is "
                f"{settings.max_upload_total_bytes} (TONGWEN_MAX_UPLOAD_TOTAL_BYTES). Upload them in several requests."
            )
        named, duplicates = last_of_each_name(((_upload_name(f, settings), f) for f in files), lambda nf: nf[0])
        sources: list[Source] = []
        failed: list[dict[str, Any]] = []
        for name, upload in named:
            try:
                sources.append(_read_upload(name, upload, settings.max_upload_bytes))
            except TongwenError as exc:
                failed.append(_failure(name, type(exc), str(exc)))
        report = service.ingest(sources) if sources else IngestReport()
        failed += [
            _failure(name, report.failed_kinds.get(name, TongwenError), why) for name, why in report.failed.items()
        ]
        if failed and not (report.added or report.updated or report.unchanged):
            statuses = {f["status"] for f in failed}
            kinds = {f["type"] for f in failed}
            status = statuses.pop() if len(statuses) == 1 else 422
            kind = kinds.pop() if len(kinds) == 1 else "DocumentsRejected"
            message = (
                failed[0]["error"]
                if len(failed) == 1
                else f"None of the {len(failed)} files was indexed: " + ("; ".join(f["error"] for f in failed))
            )
            return _error(status, kind, message, failed=failed, duplicates=duplicates)
        return JSONResponse(
            {
                "added": report.added,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "failed": failed,
                "duplicates": duplicates,
                "chunks_embedded": report.chunks_embedded,
                "documents": service.documents(),
            }
        )

    @router.delete("/api/documents/{doc_id}", tags=["documents"], dependencies=[Depends(require_key)])
    def delete_document(doc_id: str) -> dict[str, Any]:
        report = service.delete(doc_id)
        return {"deleted": report.deleted, "documents": service.documents()}

    api.include_router(router)
    # The router's own routes: `api.routes` may wrap them (FastAPI's included-router entries).
    api.add_middleware(MethodGuard, routes=lambda: router.routes)
    api.add_middleware(BodyLimit, limit=settings.max_request_bytes, paths=JSON_ROUTES)
    return api
