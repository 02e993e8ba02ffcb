"""``GET /health``: liveness plus what is loaded, and what is wrong when something is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rag.service import Tongwen


def router(service: Tongwen) -> APIRouter:
    api = APIRouter(tags=["status"])

    @api.get("/health", response_model=None)
    def health() -> dict[str, Any] | JSONResponse:
        """Liveness plus what is loaded: index size, embedding model, generator backend.

        Over a damaged index: 503 with ``status: "degraded"`` and an ``error`` saying how to
        roll back or rebuild, so a monitor notices while the process stays up to pick up the
        repaired index.
        """
        info = service.info()
        problem = info.get("index_error")
        if problem:
            return JSONResponse(status_code=503, content={"status": "degraded", **info, "error": problem})
        return {"status": "ok", **info}

    return api
