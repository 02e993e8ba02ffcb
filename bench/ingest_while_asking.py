"""Retrieve latency while a large document is embedded, and what the questions cost the ingest.

    python -m bench.ingest_while_asking [--chunks 1000] [--interval 0.25] [--out bench/out/ingest_while_asking.json]

Builds one synthetic document of about ``--chunks`` chunks from the bundled corpus (its paragraphs,
shuffled with a fixed seed and numbered, so no two chunks are identical), then for each way of
sharing the one embedding model (see :class:`rag.embeddings.Sharing`):

* ``concurrent`` (what Tongwen does): queries encode at once, beside the passage batch in flight
  (one query at a time among themselves);
  a separate query model instance or an ingest worker process amounts to the same on a shared CPU,
  with a second copy of the model in memory;
* ``turns``: one encode at a time, and a waiting query goes before the next passage batch;
* ``whole-document`` (before issue 8): one lock held for all passages of the document;

ingests the document into a small index twice: alone, and while one client asks ``/api/retrieve``
questions (through the service, no HTTP) every ``--interval`` seconds. Reports retrieve p50/p95/max
during the ingest and the ingest's slowdown. Targets: p95 ≤ 1 s, slowdown ≤ 20 %.

The figures depend on what else runs on the machine; re-measure on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.api_load import FALLBACK_QUESTIONS
from eval.metrics import percentile
from ingest.load import load_bytes
from ingest.sources import Source, doc_id_for
from rag.config import Settings
from rag.embeddings import EmbeddingModel, Sharing
from rag.indexing import index_records
from rag.service import Tongwen

TARGET_P95_MS = 1000.0
TARGET_SLOWDOWN = 0.20
BASE_DOCUMENT = "000_6e77f61679c9a0c3.txt"  # small: the index questions are answered from meanwhile
BIG_NAME = "big-synthetic.txt"


class Turns(Sharing):
    """``turns``: one encode at a time, a waiting query first before the next passage batch.

    (``threading.Lock`` alone would not do: the ingest loop's release-then-acquire usually beats
    the waiting query thread, which could then starve for the whole document.)"""

    def __init__(self) -> None:
        super().__init__()
        self._turn = threading.Condition()
        self._busy = False
        self._queries_waiting = 0

    @contextmanager
    def query(self) -> Iterator[bool]:
        with self._turn:
            self._queries_waiting += 1
            try:
                self._turn.wait_for(lambda: not self._busy)
            finally:
                self._queries_waiting -= 1
            self._busy = True
        try:
            yield True  # nothing else is encoded meanwhile
        finally:
            self._release()

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._turn:
            self._turn.wait_for(lambda: not self._busy and not self._queries_waiting)
            self._busy = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        with self._turn:
            self._busy = False
            self._turn.notify_all()


class WholeDocument(Sharing):
    """``whole-document`` (Tongwen before issue 8): one lock held for all of a document's passages."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    @contextmanager
    def document(self) -> Iterator[None]:
        with self._lock:
            yield

    @contextmanager
    def query(self) -> Iterator[bool]:
        with self._lock:
            yield True  # nothing else is encoded meanwhile


STRATEGIES: dict[str, type[Sharing]] = {"concurrent": Sharing, "turns": Turns, "whole-document": WholeDocument}


def synthetic_document(corpus: Path, model: EmbeddingModel, settings: Settings, chunks: int) -> bytes:
    """Paragraphs of the corpus, shuffled and numbered, until the document chunks to ~``chunks``."""
    paragraphs = [
        p.strip() for f in sorted(corpus.glob("*.txt")) for p in f.read_text("utf-8").splitlines() if p.strip()
    ]
    rng = random.Random(8)

    def build(n_paragraphs: int) -> str:
        picked = [rng.choice(paragraphs) for _ in range(n_paragraphs)]
        return "\n\n".join(f"第{i + 1}段：{p}" for i, p in enumerate(picked))

    def count(text: str) -> int:
        return len(index_records(load_bytes(text.encode("utf-8"), BIG_NAME), doc_id_for(BIG_NAME), model, settings))

    n = chunks * 3  # a first guess; corrected once from the measured chunks per paragraph
    text = build(n)
    n = max(1, round(n * chunks / count(text)))
    return build(n).encode("utf-8")


def ingest_run(settings: Settings, big: bytes, questions: list[str], interval: float | None) -> dict[str, Any]:
    """Ingest ``big`` into a fresh small index; with ``interval``, ask questions meanwhile."""
    with tempfile.TemporaryDirectory() as home:
        service = Tongwen(settings.model_copy(update={"home": Path(home)}))
        base = settings.corpus_path / BASE_DOCUMENT
        service.ingest([Source(base.name, base.read_bytes())])
        service.retrieve(questions[0])  # warm: snapshot loaded, jieba ready
        latencies: list[float] = []
        done = threading.Event()

        def ask() -> None:
            i = 0
            while not done.is_set():
                started = time.perf_counter()
                service.retrieve(questions[i % len(questions)])
                latencies.append((time.perf_counter() - started) * 1000)
                i += 1
                done.wait(interval)

        asker = threading.Thread(target=ask, daemon=True) if interval is not None else None
        started = time.perf_counter()
        if asker is not None:
            asker.start()
        report = service.ingest([Source(BIG_NAME, big)])
        seconds = time.perf_counter() - started
        done.set()
        if asker is not None:
            asker.join()
        return {
            "ingest_seconds": round(seconds, 2),
            "chunks_embedded": report.chunks_embedded,
            "questions": len(latencies),
            "retrieve_p50_ms": percentile(latencies, 50),
            "retrieve_p95_ms": percentile(latencies, 95),
            "retrieve_max_ms": max(latencies, default=None),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=1000, help="Size of the synthetic document.")
    parser.add_argument("--interval", type=float, default=0.25, help="Seconds between one client's questions.")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--out", type=Path, default=Path("bench/out/ingest_while_asking.json"))
    args = parser.parse_args()

    base = Settings()
    settings = Settings(model_dir=base.models_dir, corpus_dir=base.corpus_dir, llm="extractive")
    model = Tongwen(settings).model
    big = synthetic_document(settings.corpus_path, model, settings, args.chunks)
    questions = list(FALLBACK_QUESTIONS)
    results: dict[str, Any] = {
        "what": "retrieve latency while one large document is ingested (bench/ingest_while_asking.py)",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_before": os.getloadavg()[0],
        "document_bytes": len(big),
        "question_interval_s": args.interval,
        "embedding_batch_size": settings.embedding_batch_size,
        "targets": {"retrieve_p95_ms": TARGET_P95_MS, "ingest_slowdown": TARGET_SLOWDOWN},
        "strategies": {},
    }
    original = model.sharing
    try:
        for name in args.strategies:
            model.sharing = STRATEGIES[name]()
            alone = ingest_run(settings, big, questions, None)
            asked = ingest_run(settings, big, questions, args.interval)
            slowdown = asked["ingest_seconds"] / alone["ingest_seconds"] - 1
            results["strategies"][name] = {"alone": alone, "while_asking": asked, "ingest_slowdown": round(slowdown, 3)}
            print(f"{name}: {json.dumps(results['strategies'][name])}", flush=True)
    finally:
        model.sharing = original
    results["loadavg_after"] = os.getloadavg()[0]

    print(
        f"\n{'strategy':12} {'chunks':>7} {'alone s':>8} {'asked s':>8} {'slower':>7} {'q':>5} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'max ms':>8}  verdict"
    )
    for name, r in results["strategies"].items():
        a, w = r["alone"], r["while_asking"]
        ok = (w["retrieve_p95_ms"] or 0) <= TARGET_P95_MS and r["ingest_slowdown"] <= TARGET_SLOWDOWN
        print(
            f"{name:12} {a['chunks_embedded']:7d} {a['ingest_seconds']:8.1f} {w['ingest_seconds']:8.1f} "
            f"{r['ingest_slowdown']:7.1%} {w['questions']:5d} {w['retrieve_p50_ms'] or 0:8.1f} "
            f"{w['retrieve_p95_ms'] or 0:8.1f} {w['retrieve_max_ms'] or 0:8.1f}  {'ok' if ok else 'MISSED'}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", "utf-8")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
