"""ASGI guards in front of every route, including the Gradio app mounted at ``/``.

They run before routing because two problems cannot be solved inside a route handler:

* a JSON body must be refused *before* it is parsed (a 100 MB conversation costs seconds of CPU and
  hundreds of MB just to become Python objects), so :class:`BodyLimit` counts the bytes as they
  arrive, whether or not ``Content-Length`` is sent;
* a wrong method on an API path (``PUT /api/documents``) would fall through to the Gradio mount
  and get its HTML 404; :class:`MethodGuard` answers 405 in the API's JSON error shape instead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from starlette.routing import BaseRoute, Match

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_json_error(
    send: Send, status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": {"type": kind, "message": message}}, ensure_ascii=False).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes on ``paths`` with a JSON 413.

    The body is read here (JSON bodies are small: the limit is about a megabyte) and replayed to
    the app, so a chunked upload without ``Content-Length`` cannot walk around the count.
    """

    def __init__(self, app: ASGIApp, limit: int, paths: Iterable[str]) -> None:
        self.app, self.limit, self.paths = app, limit, frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        too_large = (
            f"The request body is larger than {self.limit} bytes (TONGWEN_MAX_REQUEST_BYTES); "
            "send a shorter question or history."
        )
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await send_json_error(send, 413, "RequestTooLarge", too_large)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await send_json_error(send, 413, "RequestTooLarge", too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class MethodGuard:
    """A 405 (JSON, with ``Allow``) for a known API path asked with a method it does not take."""

    def __init__(self, app: ASGIApp, routes: Callable[[], Iterable[BaseRoute]]) -> None:
        self.app, self.routes = app, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            allowed: set[str] = set()
            for route in self.routes():
                match, _ = route.matches(scope)
                if match == Match.FULL:
                    allowed.clear()
                    break
                if match == Match.PARTIAL:
                    allowed |= set(getattr(route, "methods", None) or ())
            if allowed:
                methods = ", ".join(sorted(allowed))
                message = f"{scope['method']} is not allowed on {scope['path']}; use {methods}."
                await send_json_error(send, 405, "MethodNotAllowed", message, {"Allow": methods})
                return
        await self.app(scope, receive, send)


class UploadGate:
    """With an API key set, Gradio's temporary upload route needs it too.

    Gradio stores a file sent to ``/gradio_api/upload`` in its temp folder before any event handler
    runs, so checking the key in the handler alone would still let anyone fill the disk. The key
    comes as ``Authorization: Bearer`` (scripts, ``gradio_client``) or as the ``tongwen_key``
    session cookie the UI sets when the 管理金鑰 field is filled in.
    """

    COOKIE = "tongwen_key"

    def __init__(self, app: ASGIApp, allowed: Callable[[str | None], bool], suffix: str = "/gradio_api/upload") -> None:
        self.app, self.allowed, self.suffix = app, allowed, suffix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith(self.suffix):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
            if not self.allowed(self._key(headers)):
                message = (
                    "需要管理金鑰才能上傳文件：請先在「管理金鑰」欄輸入金鑰。"
                    " Uploads need `Authorization: Bearer <TONGWEN_API_KEY>`."
                )
                await send_json_error(send, 401, "Unauthorized", message)
                return
        await self.app(scope, receive, send)

    def _key(self, headers: dict[str, str]) -> str | None:
        from http.cookies import SimpleCookie
        from urllib.parse import unquote

        from ui.auth import bearer_token

        token = bearer_token(headers.get("authorization"))
        if token:
            return token
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is simply no key
            return None
        morsel = cookies.get(self.COOKIE)
        return unquote(morsel.value) if morsel else None
