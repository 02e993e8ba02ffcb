"""Running a GGUF model in-process behind an OpenAI-compatible HTTP endpoint (xllamacpp).

Why an HTTP server rather than calling the model directly: the rest of Tongwen talks to *any*
OpenAI-compatible endpoint (Ollama, vLLM, a cloud API) through one client; serving the local
model the same way means one code path, streaming included. ``xllamacpp.Server`` runs
llama.cpp's own C++ server on background threads of this process, so there is no child process
to babysit and nothing to download at run time.

Facts about xllamacpp this module relies on (checked against 0.2.14 and 2026.10.11549):

* ``Server(params)`` blocks until the model is loaded *and holds the GIL while doing so* (about
  2–4 s for the 0.5B model): every other Python thread stalls for that long. Start the server
  before serving requests, or accept one freeze on first use.
* After that, inference runs on C++ threads without the GIL; HTTP requests never block Python.
* There is no ``stop()``: the server shuts down (terminate + join, ~0.2 s) when the ``Server``
  object is deallocated, so we keep exactly one reference and drop it in :meth:`stop`.
* ``params.port = 0`` picks a free port; the real address is ``server.listening_address``.
* The chat template comes from the GGUF (``use_jinja`` on, ``chat_template`` empty), which for
  Qwen2.5 is the ChatML ``<|im_start|>`` template.
* 0.2.x hijacks SIGINT/SIGTERM during start-up; :func:`_signal_handlers_kept` undoes that.
* The server closes the connection after every streamed answer while advertising keep-alive:
  use :func:`loopback_http_client` (no keep-alive) or a client that retries.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from rag.errors import ModelUnavailable

log = logging.getLogger(__name__)

# One slot: on 2 cores parallel slots only split the context and the CPU; requests queue instead.
_N_PARALLEL = 1
# llama.cpp's host-RAM prompt cache defaults to 8 GiB; a small cap keeps RSS predictable while
# still letting a follow-up question reuse the shared system-prompt prefix.
_CACHE_RAM_MIB = 256
# llama.cpp log levels: 1 = errors only, 2 = + warnings, 3 = + info (per-request timings).
_QUIET, _VERBOSE = 1, 3
_HEALTH_TIMEOUT_S = 60.0


class LocalLLMServer:
    """One GGUF model served on ``127.0.0.1:<free port>`` with OpenAI-compatible endpoints.

    Usage::

        with LocalLLMServer(path, threads=2, context=4096) as srv:
            client = OpenAI(base_url=srv.base_url, api_key=srv.api_key)
            client.chat.completions.create(model=srv.model_name, messages=[...])

    ``start()`` is idempotent and thread-safe; ``stop()`` likewise. Nothing is loaded until
    ``start()``.
    """

    def __init__(
        self,
        model_path: Path,
        threads: int = 2,
        context: int = 4096,
        *,
        model_name: str | None = None,
        api_key: str | None = None,
        verbose: bool = False,
    ) -> None:
        """Describe the server; load nothing yet.

        Args:
            model_path: GGUF file.
            threads: CPU threads for prompt processing and generation. Size this to *free*
                cores: on a 2-core box with another busy process, 1 thread beats 2 by far.
            context: context window in tokens (prompt + answer).
            model_name: the name the endpoint reports and accepts; default the file's stem.
            api_key: when set, inference endpoints demand ``Authorization: Bearer <key>``
                (``/health`` stays public). Off by default: the socket is loopback-only.
            verbose: let llama.cpp log info lines (per-request timings) to stderr.
        """
        if threads < 1:
            raise ValueError("threads must be >= 1")
        if context < 256:
            raise ValueError("context must be >= 256 tokens")
        self.model_path = Path(model_path).expanduser().resolve()
        self.threads = threads
        self.context = context
        self.model_name = model_name or self.model_path.stem
        self._api_key = api_key
        self._verbose = verbose
        self._lock = threading.Lock()
        self._server: Any = None  # xllamacpp.Server; Any so importing this module stays cheap
        self._address: str | None = None
        self.load_seconds: float | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalLLMServer:
        """Load the model and start serving; return ``self``. No-op if already running.

        Raises:
            ModelUnavailable: xllamacpp is not installed, the file is missing, or llama.cpp
                refuses the file (not a GGUF, truncated, unsupported architecture …).
        """
        with self._lock:
            if self._server is not None:
                return self
            try:
                import xllamacpp
            except ImportError:
                raise ModelUnavailable(
                    "The local LLM backend needs xllamacpp. Install it with: pip install 'tongwen[local]'"
                ) from None
            if not self.model_path.is_file():
                raise ModelUnavailable(f"Local model file not found: {self.model_path}")

            params = self._params(xllamacpp)

            log.info("loading local model %s (threads=%d, context=%d)", self.model_path, self.threads, self.context)
            t0 = time.perf_counter()
            try:
                with _signal_handlers_kept():
                    server = xllamacpp.Server(params)  # blocks (holding the GIL) until loaded
            except RuntimeError as exc:
                raise ModelUnavailable(
                    f"llama.cpp could not load {self.model_path}: {exc} "
                    "(is it a complete GGUF file? its error is printed on stderr)"
                ) from exc
            address = str(server.listening_address).rstrip("/")
            try:
                _wait_healthy(address, _HEALTH_TIMEOUT_S)
            except BaseException:
                del server  # dealloc shuts the C++ server down
                raise
            self._server = server
            self._address = address
            self.load_seconds = time.perf_counter() - t0
            log.info("local model ready at %s in %.1f s", address, self.load_seconds)
            return self

    def _params(self, xllamacpp: Any) -> Any:
        """Build ``xllamacpp.CommonParams``; tolerant of the attribute renames between releases.

        0.2.x has ``hostname: str`` and ``webui``; 2026.x has ``hostnames: list[str]`` and
        ``ui``. Everything else used here exists in both.
        """
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {self.model_name}
        params.n_ctx = self.context
        params.n_parallel = _N_PARALLEL
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        if hasattr(params, "hostnames"):
            params.hostnames = ["127.0.0.1"]
        else:
            params.hostname = "127.0.0.1"
        params.port = 0  # llama.cpp binds a free port; read it back from listening_address
        params.use_jinja = True  # apply the GGUF's own chat template (ChatML for Qwen)
        params.chat_template = ""
        params.cache_ram_mib = _CACHE_RAM_MIB
        for ui_flag in ("ui", "webui"):  # no web UI assets are bundled anyway
            if hasattr(params, ui_flag):
                setattr(params, ui_flag, False)
        params.verbosity = _VERBOSE if self._verbose else _QUIET
        if self._api_key:
            params.api_keys = [self._api_key]
        return params

    def stop(self) -> None:
        """Shut the server down and free the model. Safe to call twice or before ``start``."""
        with self._lock:
            # Dropping the only reference runs xllamacpp's destructor: terminate the main loop,
            # stop HTTP, join the thread (~0.2 s). Inside the lock, so a concurrent start()
            # never loads a second copy while the first is still shutting down.
            self._server = None
            self._address = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connection details --------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``): for ``/health``, ``/props``, ``/tokenize``."""
        if self._address is None:
            raise RuntimeError("LocalLLMServer is not running; call start() first")
        return self._address

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, ``http://127.0.0.1:PORT/v1``."""
        return self.address + "/v1"

    @property
    def api_key(self) -> str:
        """The key clients must send; a placeholder when none is required (OpenAI SDKs want one)."""
        return self._api_key or "not-needed"

    def __repr__(self) -> str:
        state = self._address or "stopped"
        return f"LocalLLMServer({self.model_path.name!r}, threads={self.threads}, context={self.context}, {state})"


# Room for the platform's ``struct sigaction`` (152 bytes on glibc x86-64); saved and restored
# as opaque bytes, so its layout never matters.
_SIGACTION_BUF = 1024


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Undo the SIGINT/SIGTERM handlers llama.cpp's server installs while it starts.

    xllamacpp 0.2.x runs llama-server's ``init``, which ``sigaction``-s SIGINT and SIGTERM to
    "shut the model down": afterwards Ctrl+C no longer raises ``KeyboardInterrupt`` (it kills
    only the LLM, and a second one ``exit(1)``-s) and SIGTERM no longer ends the process, which
    breaks uvicorn's graceful shutdown and any supervisor. The handlers are installed before
    ``Server()`` returns, so restoring the previous C-level actions afterwards is complete. Done
    with libc ``sigaction`` rather than ``signal.signal`` because the first use may happen in a
    worker thread, where ``signal.signal`` is not allowed.
    """
    libc = _libc()
    saved: list[tuple[int, ctypes.Array[ctypes.c_char]]] = []
    if libc is not None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            buf = ctypes.create_string_buffer(_SIGACTION_BUF)
            if libc.sigaction(int(sig), None, buf) == 0:
                saved.append((int(sig), buf))
    try:
        yield
    finally:
        for sig, buf in saved:
            libc.sigaction(sig, buf, None)  # type: ignore[union-attr]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if os.name != "posix":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.sigaction.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        libc.sigaction.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def _loopback_client_kwargs(timeout: float) -> dict[str, Any]:
    return {
        # Never send loopback traffic through an HTTP(S)_PROXY from the environment.
        "trust_env": False,
        "timeout": httpx.Timeout(timeout, connect=5.0),
        # llama.cpp's server closes the connection right after a streamed (SSE) answer although
        # it advertises keep-alive; a client reusing that connection fails at random with
        # "Server disconnected without sending a response". A fresh loopback connection per
        # request costs well under a millisecond.
        "limits": httpx.Limits(max_keepalive_connections=0),
    }


def loopback_http_client(timeout: float = 120.0) -> httpx.Client:
    """An ``httpx.Client`` fit for this server, e.g. ``ChatOpenAI(http_client=...)``.

    See :func:`_loopback_client_kwargs` for why: no proxies, no keep-alive.
    """
    return httpx.Client(**_loopback_client_kwargs(timeout))


def loopback_async_http_client(timeout: float = 120.0) -> httpx.AsyncClient:
    """Async twin of :func:`loopback_http_client` (``ChatOpenAI(http_async_client=...)``)."""
    return httpx.AsyncClient(**_loopback_client_kwargs(timeout))


def _wait_healthy(address: str, timeout: float) -> None:
    """Poll ``/health`` until it answers 200.

    ``xllamacpp.Server`` only returns once the model is loaded, so this normally succeeds on
    the first try; it guards against a server that is up but not yet ready (503 "Loading
    model") and proves the socket really answers before we hand out its URL.
    """
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    with loopback_http_client(timeout=5.0) as client:
        while True:
            try:
                r = client.get(address + "/health")
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise ModelUnavailable(f"Local LLM server at {address} did not become healthy: {last}")
            time.sleep(0.1)


# -- one server per process ----------------------------------------------------------------------

_servers: dict[tuple[Path, int, int], LocalLLMServer] = {}
_servers_lock = threading.Lock()
_atexit_registered = False


def get_local_server(model_path: Path, threads: int = 2, context: int = 4096) -> LocalLLMServer:
    """Return this process's running server for these arguments, starting it on first use.

    Cached because loading costs seconds and ~0.6 GB: every caller (API, UI, evaluation) shares
    one model. Different arguments mean a different server (and another copy of the model), so
    callers should pass the same settings. Registers an ``atexit`` hook that stops every server
    while the interpreter is still intact, instead of leaving the C++ threads to whatever order
    module teardown happens to deallocate things in.
    """
    global _atexit_registered
    key = (Path(model_path).expanduser().resolve(), int(threads), int(context))
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            server = LocalLLMServer(key[0], threads=key[1], context=key[2])
            _servers[key] = server
        if not _atexit_registered:
            atexit.register(stop_local_servers)
            _atexit_registered = True
    # Started outside the registry lock; the instance's own lock makes concurrent first calls
    # load the model only once (the others wait, then get the running server).
    try:
        return server.start()
    except BaseException:
        with _servers_lock:
            if _servers.get(key) is server:
                del _servers[key]
        raise


def stop_local_servers() -> None:
    """Stop and forget every cached server (atexit hook; also handy in tests)."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()
