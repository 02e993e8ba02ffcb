"""``/api/documents``: list, upload and delete documents (writes need the API key when set)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import JSONResponse

from ingest.sources import Source, last_of_each_name
from rag.errors import TongwenError
from rag.indexing import IngestReport
from rag.service import Tongwen
from ui.api.errors import RequestTooLarge, error_response, status_for
from ui.api.uploads import read_upload, upload_name


def _failure(name: str, kind: type[TongwenError], message: str) -> dict[str, Any]:
    return {"name": name, "error": message, "status": status_for(kind), "type": kind.__name__}


def router(service: Tongwen, write_guard: Callable[..., None]) -> APIRouter:
    api = APIRouter(tags=["documents"])
    settings = service.settings
    writing = [Depends(write_guard)]

    @api.get("/api/documents")
    def list_documents() -> dict[str, Any]:
        return {"documents": service.documents(strict=True)}

    @api.get("/api/documents/{doc_id}")
    def read_document(doc_id: str) -> dict[str, Any]:
        """One document (by `doc_id` or file name): its title, text and the chunks the index holds."""
        return service.document_view(doc_id)

    @api.post("/api/documents", dependencies=writing)
    def upload(files: Annotated[list[UploadFile], File(description="One or more documents.")]) -> JSONResponse:
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
        named, duplicates = last_of_each_name(((upload_name(f, settings), f) for f in files), lambda nf: nf[0])
        sources: list[Source] = []
        failed: list[dict[str, Any]] = []
        for name, upload in named:
            try:
                sources.append(read_upload(name, upload, settings.max_upload_bytes))
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
            return error_response(status, kind, message, failed=failed, duplicates=duplicates)
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

    @api.delete("/api/documents/{doc_id}", dependencies=writing)
    def delete_document(doc_id: str) -> dict[str, Any]:
        report = service.delete(doc_id)
        return {"deleted": report.deleted, "documents": service.documents()}

    return api
