"""Throughput and latency of the HTTP API under concurrent clients, on loopback.

    python -m bench.api_load [--duration 20] [--clients 10] [--out bench/out/api_load.json] [--url URL]

Starts the real app (no UI) over the index of the default settings (``TONGWEN_*`` environment;
with no index yet, the bundled corpus is indexed first), serves it with uvicorn on a free
127.0.0.1 port, then runs ``--clients`` concurrent clients against ``/api/retrieve`` and against
extractive ``/api/ask``, one endpoint after the other, for ``--duration`` seconds each. Prints a
table and writes requests/s and p50/p95 latency per endpoint to a JSON file.

With ``--url`` it loads a server that runs in a process of its own (``tongwen serve``) instead: in
one process the client's Python work and the server's share an interpreter lock, which adds to
every request's time.

The pieces here (a loopback server in a thread, a bounded async load driver and its statistics)
are shared with ``bench.soak`` and the reliability tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from eval.metrics import percentile

FALLBACK_QUESTIONS = (
    "盧森堡的人口有多少？",
    "卢森堡的人均所得排名如何？",
    "數位發展部是什麼時候成立的？",
    "数字发展部是什么时候成立的？",
    "台積電在晶片危機時能發揮什麼作用？",
    "台湾的蓝海策略是什么？",
)
GOLD = Path(__file__).resolve().parent.parent / "eval" / "gold" / "corpus_gold.jsonl"


# -- a real server on loopback ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(app: Any, start_timeout: float = 60.0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL.

    Waits for uvicorn's own start-up flag rather than a route, so an app whose index is broken
    (and whose ``/health`` therefore fails) can be served too.
    """
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=30)
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# -- requests and their statistics --------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One request: which endpoint it counts under, where it goes, and how to check a 200 body."""

    endpoint: str
    path: str
    payload: dict[str, Any]
    check: Callable[[Any], bool]


def retrieve_call(question: str, top_k: int = 5) -> Call:
    return Call("retrieve", "/api/retrieve", {"query": question, "top_k": top_k}, _hits_ok)


def ask_call(question: str, top_k: int = 5) -> Call:
    return Call("ask", "/api/ask", {"question": question, "llm": "extractive", "top_k": top_k}, _answer_ok)


def chat_call(question: str) -> Call:
    payload = {"model": "tongwen-extractive", "messages": [{"role": "user", "content": question}]}
    return Call("chat", "/v1/chat/completions", payload, _chat_ok)


def _hits_ok(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("hits"), list) and bool(body["hits"])


def _answer_ok(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("answer"), str) and isinstance(body.get("sources"), list)


def _chat_ok(body: Any) -> bool:
    try:
        return isinstance(body["choices"][0]["message"]["content"], str)
    except (KeyError, IndexError, TypeError):
        return False


@dataclass
class EndpointStats:
    sent: int = 0
    answered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    bad_bodies: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # a few failures, for the report

    def note_failure(self, text: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(text[:300])

    def summary(self, seconds: float) -> dict[str, Any]:
        ok = self.statuses.get(200, 0)
        return {
            "sent": self.sent,
            "answered": self.answered,
            "ok": ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors_5xx": sum(v for k, v in self.statuses.items() if k >= 500),
            "errors_4xx": sum(v for k, v in self.statuses.items() if 400 <= k < 500),
            "exceptions": dict(self.exceptions),
            "bad_bodies": self.bad_bodies,
            "requests_per_s": round(self.answered / seconds, 2) if seconds > 0 else None,
            "p50_ms": _rounded(percentile(self.latencies_ms, 50)),
            "p95_ms": _rounded(percentile(self.latencies_ms, 95)),
            "max_ms": _rounded(max(self.latencies_ms, default=None)),
            "failure_examples": self.examples,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class LoadResult:
    seconds: float
    clients: int
    per_endpoint: dict[str, EndpointStats]
    capped: bool  # the request cap ended the run before the duration

    @property
    def total(self) -> EndpointStats:
        out = EndpointStats()
        for stats in self.per_endpoint.values():
            out.sent += stats.sent
            out.answered += stats.answered
            out.statuses.update(stats.statuses)
            out.exceptions.update(stats.exceptions)
            out.bad_bodies += stats.bad_bodies
            out.latencies_ms += stats.latencies_ms
            out.examples += stats.examples[: 5 - len(out.examples)]
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1),
            "clients": self.clients,
            "capped": self.capped,
            "total": self.total.summary(self.seconds),
            "endpoints": {name: s.summary(self.seconds) for name, s in sorted(self.per_endpoint.items())},
        }


async def send(client: httpx.AsyncClient, call: Call, stats: EndpointStats) -> None:
    """One request, recorded: status, latency, a checked body, or the exception it raised."""
    stats.sent += 1
    started = time.perf_counter()
    try:
        response = await client.post(call.path, json=call.payload)
    except Exception as exc:  # every failure to get an answer counts; none may escape the load
        stats.exceptions[type(exc).__name__] += 1
        stats.note_failure(f"{call.endpoint}: {type(exc).__name__}: {exc}")
        return
    stats.latencies_ms.append((time.perf_counter() - started) * 1000)
    stats.answered += 1
    stats.statuses[response.status_code] += 1
    if response.status_code != 200:
        stats.note_failure(f"{call.endpoint} {response.status_code}: {response.text}")
        return
    try:
        good = call.check(response.json())
    except ValueError:
        good = False
    if not good:
        stats.bad_bodies += 1
        stats.note_failure(f"{call.endpoint} bad body: {response.text}")


def make_client(base_url: str, clients: int, timeout: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits, trust_env=False)


async def drive(
    client: httpx.AsyncClient,
    pick: Callable[[random.Random], Call],
    clients: int,
    duration: float,
    max_requests: int,
    seed: int = 0,
) -> LoadResult:
    """``clients`` concurrent loops, each sending one request at a time until ``duration`` seconds
    have passed or ``max_requests`` were sent; requests in flight at the end are awaited."""
    per_endpoint: dict[str, EndpointStats] = {}
    budget = [max_requests]
    started = time.perf_counter()
    end = started + duration

    async def loop(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        while time.perf_counter() < end and budget[0] > 0:
            budget[0] -= 1
            call = pick(rng)
            await send(client, call, per_endpoint.setdefault(call.endpoint, EndpointStats()))

    await asyncio.gather(*(loop(n) for n in range(clients)))
    return LoadResult(time.perf_counter() - started, clients, per_endpoint, capped=budget[0] <= 0)


# -- the benchmark ----------------------------------------------------------------------------
def load_questions(limit: int = 60) -> list[str]:
    """Gold questions (both scripts) when the bundled gold file is there, else a fixed few."""
    questions: list[str] = []
    try:
        for line in GOLD.read_text("utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                questions += [item["question_trad"], item["question_simp"]]
    except (OSError, ValueError, KeyError):
        questions = []
    return questions[:limit] or list(FALLBACK_QUESTIONS)


def machine() -> dict[str, Any]:
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def print_table(rows: dict[str, dict[str, Any]]) -> None:
    header = f"{'endpoint':<10} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'non-200':>7}"
    print(header)
    print("-" * len(header))
    for name, s in rows.items():
        bad = s["answered"] - s["ok"] + sum(s["exceptions"].values())
        print(
            f"{name:<10} {s['answered']:>8} {s['requests_per_s'] or 0:>7.2f} {s['p50_ms'] or 0:>8.1f} "
            f"{s['p95_ms'] or 0:>8.1f} {s['max_ms'] or 0:>8.1f} {bad:>7}"
        )


def run(duration: float, clients: int, max_requests: int, timeout: float, url: str | None = None) -> dict[str, Any]:
    """Load the API served here (in a thread of this process) or, with ``url``, a server of its own.

    In this process the load driver and the server share one interpreter lock, so every request
    also waits for the client's own Python work; a separate server process (``tongwen serve``)
    is what a caller sees.
    """
    questions = load_questions()
    calls = {"retrieve": retrieve_call, "ask": ask_call}
    results: dict[str, dict[str, Any]] = {}

    async def measure(base: str) -> None:
        async with make_client(base, clients, timeout) as client:
            for call in calls.values():  # warm-up: first-request costs stay out of the figures
                await send(client, call(questions[0]), EndpointStats())
            for seed, (name, make) in enumerate(calls.items()):
                print(f"{name}: {clients} clients for {duration:g} s …", flush=True)
                result = await drive(
                    client, lambda rng, make=make: make(rng.choice(questions)), clients, duration, max_requests, seed
                )
                results[name] = result.summary()["endpoints"][name] | {
                    "seconds": round(result.seconds, 1),
                    "capped": result.capped,
                }

    if url:
        info = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout, trust_env=False).json()
        asyncio.run(measure(url))
    else:
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        from rag.config import Settings
        from rag.service import Tongwen
        from ui.server import create_app

        service = Tongwen(Settings())
        app = create_app(service=service, with_ui=False)  # indexes the bundled corpus if there is no index
        info = service.info()
        with serve_app(app) as served:
            asyncio.run(measure(served))
    return {
        **machine(),
        "server": url or "in this process (a thread)",
        "clients": clients,
        "duration_s": duration,
        "index": {k: info["index"][k] for k in ("documents", "chunks")} if info.get("index") else None,
        "embedding_model": info["embedding_model"],
        "questions": len(questions),
        "endpoints": results,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds of load per endpoint.")
    parser.add_argument("--clients", type=int, default=10, help="Concurrent clients.")
    parser.add_argument("--max-requests", type=int, default=100_000, help="Hard cap per endpoint.")
    parser.add_argument("--timeout", type=float, default=120.0, help="Seconds before a request gives up.")
    parser.add_argument("--out", type=Path, default=Path("bench/out/api_load.json"))
    parser.add_argument(
        "--url", default=None, help="Load a running server (e.g. `tongwen serve`) instead of one in this process."
    )
    args = parser.parse_args(argv)

    report = run(args.duration, args.clients, args.max_requests, args.timeout, args.url)
    print_table(report["endpoints"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
