"""One connection to Milvus (Lite file or server), with bounded retries and feature detection.

Every call to Milvus goes through :meth:`MilvusConnection.call`, which retries transient failures
(server restarting, network blip, deadline) a few times with exponential backoff and turns any
failure that remains into :class:`rag.errors.StoreUnavailable` (HTTP 503) with a message that says
what to check. Nothing from pymilvus or gRPC escapes as a raw exception, so the API never answers
500 because Milvus is down.

What the server can do is detected, not assumed from its version string: Milvus 2.3 accepts a
schema that declares a BM25 function and silently drops the function (checked here with the
``milvus==2.3.5`` embedded server), so the probe creates a throw-away collection and reads its
schema back.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

from rag.errors import StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_WORDS = ("unavailable", "connect", "deadline", "timeout", "timed out", "too many", "rate limit")
_MISSING_WORDS = ("not exist", "not found", "doesn't exist", "does not exist")
_RELEASED_WORDS = ("released", "not loaded", "call load()")
#: The calls that read a collection, and so need it loaded (their first argument names it).
_READS = frozenset({"query", "search", "hybrid_search", "get"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_server_uri(uri: str) -> bool:
    """``http(s)://``, ``tcp://`` or ``grpc://`` address of a Milvus server; anything else is a Milvus Lite file."""
    return uri.split("://", 1)[0].lower() in ("http", "https", "tcp", "grpc") and "://" in uri


def lite_path(uri: str) -> str:
    """Milvus Lite only opens files ending in ``.db``; a folder (or bare path) gets ``tongwen.db`` inside it."""
    return uri if uri.endswith(".db") else uri.rstrip("/") + "/tongwen.db"


class _QuietMissing(logging.Filter):
    """pymilvus logs every failed RPC at ERROR with a traceback, including "alias … does not exist",
    which is how an empty store answers ``describe_alias``. That answer is expected (no index yet);
    drop just those records so logs stay for real failures."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("describe_alias" in message and "does not exist" in message)


logging.getLogger("pymilvus.decorators").addFilter(_QuietMissing())


def _is_transient(exc: BaseException) -> bool:
    try:
        import grpc

        if isinstance(exc, grpc.RpcError) and exc.code() in (  # type: ignore[attr-defined]
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ):
            return True
    except ImportError:  # pragma: no cover - grpc comes with pymilvus
        pass
    from pymilvus.exceptions import ConnectError, MilvusUnavailableException

    if isinstance(exc, ConnectError | MilvusUnavailableException | ConnectionError | TimeoutError):
        return True
    text = str(exc).lower()
    return any(word in text for word in _TRANSIENT_WORDS)


class MilvusConnection:
    """A ``MilvusClient`` opened lazily, called with retries, and asked once what it supports."""

    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        db_name: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 2.0,
    ) -> None:
        self.server = is_server_uri(uri)
        self.uri = uri if self.server else lite_path(uri)
        self.token = token
        self.db_name = db_name
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._client: Any = None
        self._loaded: set[str] = set()

    @property
    def where(self) -> str:
        return f"Milvus at {self.uri}" if self.server else f"Milvus Lite file {self.uri}"

    def _hint(self) -> str:
        if self.server:
            return (
                "Check that the Milvus server is running and reachable, and TONGWEN_MILVUS_URI / TONGWEN_MILVUS_TOKEN."
            )
        return "Check that the file's folder is writable and no other process holds it (Milvus Lite is single-process)."

    @property
    def client(self) -> Any:
        """The pymilvus client, connected on first use (with the same retries as any call)."""
        if self._client is None:
            self._client = self._retry("connect", self._connect)
        return self._client

    def _connect(self) -> Any:
        from pymilvus import MilvusClient

        if not self.server:
            from pathlib import Path

            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        return MilvusClient(uri=self.uri, token=self.token or "", db_name=self.db_name or "", timeout=self.timeout)

    def call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<method>(*args, **kwargs)`` with retries; ``what`` names the step in the error message.

        A read of a collection Milvus has released since this connection loaded it (a restarted
        server, an operator's ``release``) loads it again and is asked once more."""
        client = self.client
        try:
            return self._retry(what, lambda: getattr(client, method)(*args, **kwargs))
        except StoreUnavailable as exc:
            cause = str(exc.__cause__ or "").lower()
            if method not in _READS or not args or not any(w in cause for w in _RELEASED_WORDS):
                raise
        log.warning("%s: %s was released; loading it again", self.where, args[0])
        self._loaded.discard(args[0])
        self.ensure_loaded(args[0])
        return self._retry(what, lambda: getattr(client, method)(*args, **kwargs))

    def ensure_loaded(self, collection: str) -> None:
        """Load ``collection`` before its first read through this connection.

        A version is loaded when it is built, but Milvus Lite starts every process with each
        collection of its file released, so a server started after ``tongwen ingest`` could not
        read the manifest or the chunks ("call load() before search/get/query"); a Milvus server
        can come back from a restart the same way. Loading a loaded collection changes nothing."""
        if collection not in self._loaded:
            self.call("load a collection", "load_collection", collection)
            self._loaded.add(collection)

    def call_or_none(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`call`, but None when Milvus answers that the named thing does not exist."""
        try:
            return self.call(what, method, *args, **kwargs)
        except StoreUnavailable as exc:
            text = str(exc.__cause__ or "").lower()
            if not _is_transient(exc.__cause__) and any(w in text for w in _MISSING_WORDS):  # type: ignore[arg-type]
                return None
            raise

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        delay = self.backoff
        for attempt in range(1, self.retries + 1):
            try:
                return fn()
            except Exception as exc:
                transient = _is_transient(exc)
                if not transient or attempt == self.retries:
                    kind = "unreachable" if transient else "failed"
                    raise StoreUnavailable(
                        f"{self.where} {kind} while trying to {what} ({exc}). {self._hint()}"
                    ) from exc
                log.warning(
                    "%s: %s failed (%s); retry %d/%d in %.1f s", self.where, what, exc, attempt, self.retries, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the client; for Milvus Lite also stop its in-process server (threads otherwise live,
        and log, until the process exits)."""
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
                if not self.server:
                    _release_lite(self.uri)

    @cached_property
    def capabilities(self) -> dict[str, Any]:
        """What this Milvus can do, for ``/health`` and for choosing where the keyword side runs.

        ``bm25``: full-text search with the built-in BM25 function and the jieba analyzer (Milvus ≥ 2.5,
        Milvus Lite 3.x); without it the keyword side stays in local bm25s. ``hybrid_search``: server-side
        fusion of several searches (Milvus ≥ 2.4). ``aliases``: atomic version swaps (every supported Milvus).
        """
        version = str(self.call("read the server version", "get_server_version"))
        lite = version.lower().startswith("milvus_lite") or not self.server
        numbers = re.findall(r"\d+", version.split("lite-", 1)[-1] if "lite-" in version else version)
        major_minor = tuple(int(n) for n in numbers[:2]) if len(numbers) >= 2 else (0, 0)
        hybrid = lite or major_minor >= (2, 4)
        return {
            "engine": "milvus-lite" if lite else "milvus",
            "server_version": version,
            "uri": self.uri if not self.server else self.uri.split("@")[-1],  # never echo credentials
            "aliases": True,
            "hybrid_search": hybrid,
            "bm25": hybrid and self._probe_bm25(),
        }

    def _probe_bm25(self) -> bool:
        """Create a throw-away collection with a jieba BM25 function and check the server kept it."""
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        name = f"tongwen_probe_{uuid.uuid4().hex[:12]}"
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pos", DataType.INT64, is_primary=True)
        schema.add_field(
            "text", DataType.VARCHAR, max_length=256, enable_analyzer=True, analyzer_params={"tokenizer": "jieba"}
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
        schema.add_function(
            Function(
                name="bm25", function_type=FunctionType.BM25, input_field_names=["text"], output_field_names=["sparse"]
            )
        )
        try:
            self.client.create_collection(name, schema=schema)
        except Exception as exc:
            if _is_transient(exc):
                raise StoreUnavailable(
                    f"{self.where} unreachable while probing features ({exc}). {self._hint()}"
                ) from exc
            log.info("%s has no BM25 function (%s); the keyword side stays local", self.where, exc)
            return False
        try:
            functions = self.call("read the probe schema", "describe_collection", name).get("functions") or []
            return any(f.get("name") == "bm25" for f in functions)
        finally:
            self.call("drop the probe collection", "drop_collection", name)


def check_name(prefix: str) -> str:
    """Milvus names are letters, digits and underscores, starting with a letter or underscore."""
    if not _NAME.match(prefix) or len(prefix) > 200:
        raise ValueError(f"TONGWEN_MILVUS_COLLECTION_PREFIX {prefix!r} must match {_NAME.pattern} (max 200 chars)")
    return prefix


def _release_lite(path: str) -> None:
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # another milvus-lite layout: its own atexit hook stops it
        return
    server_manager_instance.release_server(path)
