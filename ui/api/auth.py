"""FastAPI dependencies that guard routes with the keys (the checks themselves: ``ui.auth``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException

from rag.config import Settings
from ui.auth import bearer_token, may_read, may_write


def write_guard(settings: Settings) -> Callable[[str | None], None]:
    def require_write_key(authorization: Annotated[str | None, Header()] = None) -> None:
        if not may_write(settings, bearer_token(authorization)):
            raise HTTPException(401, "This endpoint needs `Authorization: Bearer <TONGWEN_API_KEY>`.")

    return require_write_key


def read_guard(settings: Settings) -> Callable[[str | None], None]:
    def require_read_key(authorization: Annotated[str | None, Header()] = None) -> None:
        if not may_read(settings, bearer_token(authorization)):
            raise HTTPException(401, "Questions need `Authorization: Bearer <TONGWEN_READ_KEY>` on this server.")

    return require_read_key
