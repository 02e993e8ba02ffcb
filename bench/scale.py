"""Cost as the index grows: build time, memory and retrieve latency at 10k, 100k and 1M chunks.

    python -m bench.scale [--sizes 10000,100000,1000000] [--queries 200] [--skip-milvus]

Synthetic chunks, so embedding time is excluded and any size can be made:

* vectors: 384-d, in 256 clusters around a shared mean direction like real e5 passages (cosine
  between unrelated passages ≈ 0.65, within a cluster ≈ 0.8; random unit vectors, all ≈ 0 apart
  and without structure, would misstate ANN recall); queries are noisy copies of stored vectors;
* text: jieba words drawn by frequency from the bundled corpus (data/corpus), 120 per chunk;
  queries are 6 words of one chunk.

Searches run one query at a time with one FAISS thread. Engines: FAISS flat (exact, today's
index), FAISS HNSW (M=32, efSearch=64) and IVF-Flat (nlist≈4√n, nprobe=16) with recall@10
against flat, bm25s through our ``KeywordIndex``, and Milvus Lite through our ``MilvusStore``
(dense search, and BM25 with the jieba analyzer).
Memory is the index's own size where the engine exposes it (FAISS serialised bytes), else the
process RSS growth during the build (bm25s), else the database folder on disk (Milvus Lite runs
in a child process). Prints a table, writes bench/out/scale.json and plots docs/scale.png.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from eval.metrics import percentile

ROOT = Path(__file__).resolve().parent.parent
DIM = 384
WORDS_PER_CHUNK = 120
QUERY_WORDS = 6
K = 10
LOAD_AT_START = [round(x, 1) for x in os.getloadavg()]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


# --- synthetic data -------------------------------------------------------------------------------


def corpus_vocabulary() -> tuple[list[str], np.ndarray]:
    """Words of the bundled corpus (canonical form, jieba search mode) and their frequencies."""
    from ingest.normalise import canonical
    from rag.store.keyword import tokenize

    counts: Counter[str] = Counter()
    for path in sorted((ROOT / "data" / "corpus").glob("*.txt")):
        counts.update(tokenize(canonical(path.read_text("utf-8"))))
    words, freq = zip(*counts.most_common(), strict=True)
    p = np.asarray(freq, dtype=np.float64)
    return list(words), p / p.sum()


def synthetic_vectors(n: int, rng: np.random.Generator, clusters: int = 256) -> np.ndarray:
    mean = rng.standard_normal(DIM).astype(np.float32)
    mean /= np.linalg.norm(mean)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        part = 1.6 * mean + 0.8 * centres[rng.integers(0, clusters, m)] + 0.045 * rng.standard_normal((m, DIM))
        out[start : start + m] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def synthetic_queries(vectors: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    picked = vectors[rng.integers(0, len(vectors), n)] + 0.03 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (picked / np.linalg.norm(picked, axis=1, keepdims=True)).astype(np.float32)


def synthetic_tokens(n: int, words: list[str], p: np.ndarray, rng: np.random.Generator) -> list[list[str]]:
    ids = rng.choice(len(words), size=(n, WORDS_PER_CHUNK), p=p)
    return [[words[i] for i in row] for row in ids]


def synthetic_chunks(token_lists: list[list[str]]):
    from rag.store.records import ChunkRecord, Location

    for i, tokens in enumerate(token_lists):
        text = "".join(tokens)
        yield ChunkRecord(
            id=f"c{i}",
            doc_id=f"d{i // 50}",
            doc=f"d{i // 50}.txt",
            seq=i % 50,
            heading="",
            text=text,
            canonical=text,
            tokens=(),
            location=Location(0, len(text), 1, 1),
        )


# --- measuring ------------------------------------------------------------------------------------


def latencies_ms(search: Callable[[int], object], n: int) -> dict[str, float]:
    """One query at a time on one FAISS thread (OpenMP threads only spin on a shared 2-core machine);
    builds keep every thread."""
    import faiss

    faiss.omp_set_num_threads(1)
    search(0)  # warm-up
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        search(i)
        times.append((time.perf_counter() - t0) * 1000)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return {"p50_ms": round(percentile(times, 50), 3), "p95_ms": round(percentile(times, 95), 3)}


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)]))


def bench_faiss(vectors: np.ndarray, queries: np.ndarray) -> list[dict]:
    import faiss

    rows = []
    n = len(vectors)
    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    build = time.perf_counter() - t0
    _, exact = flat.search(queries, K)
    rows.append(
        {
            "engine": "faiss-flat",
            "build_s": build,
            "memory_mb": len(faiss.serialize_index(flat)) / 2**20,
            **latencies_ms(lambda i: flat.search(queries[i : i + 1], K), len(queries)),
            "recall@10": 1.0,
        }
    )

    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    hnsw.add(vectors)
    build = time.perf_counter() - t0
    hnsw.hnsw.efSearch = 64
    _, found = hnsw.search(queries, K)
    rows.append(
        {
            "engine": "faiss-hnsw",
            "build_s": build,
            "memory_mb": len(faiss.serialize_index(hnsw)) / 2**20,
            **latencies_ms(lambda i: hnsw.search(queries[i : i + 1], K), len(queries)),
            "recall@10": recall_at_k(found, exact),
        }
    )

    nlist = max(16, int(4 * np.sqrt(n)))
    t0 = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    train = vectors[np.random.default_rng(1).choice(n, size=min(n, 40 * nlist), replace=False)]
    ivf.train(train)
    ivf.add(vectors)
    build = time.perf_counter() - t0
    ivf.nprobe = 16
    _, found = ivf.search(queries, K)
    rows.append(
        {
            "engine": "faiss-ivf",
            "build_s": build,
            "memory_mb": len(faiss.serialize_index(ivf)) / 2**20,
            **latencies_ms(lambda i: ivf.search(queries[i : i + 1], K), len(queries)),
            "recall@10": recall_at_k(found, exact),
            "nlist": nlist,
            "nprobe": 16,
        }
    )
    return rows


def bench_bm25s(token_lists: list[list[str]], query_tokens: list[list[str]]) -> dict:
    from rag.store.keyword import KeywordIndex

    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    index = KeywordIndex.build(token_lists)
    build = time.perf_counter() - t0
    memory = rss_mb() - before
    row = {
        "engine": "bm25s",
        "build_s": build,
        "memory_mb": memory,
        **latencies_ms(lambda i: index.search(query_tokens[i], K), len(query_tokens)),
    }
    return row


def bench_milvus_lite(
    vectors: np.ndarray,
    token_lists: list[list[str]],
    queries: np.ndarray,
    query_tokens: list[list[str]],
    exact: np.ndarray,
) -> list[dict]:
    from rag.store.milvus import BOUNDED_AFTER_SECONDS, MilvusStore, _built_at_any
    from rag.store.milvus_conn import MilvusConnection
    from rag.store.records import DocumentRecord
    from rag.store.snapshot import FORMAT_VERSION, Manifest

    chunks = list(synthetic_chunks(token_lists))
    docs = Counter(c.doc_id for c in chunks)
    manifest = Manifest(
        FORMAT_VERSION,
        datetime.now(UTC).isoformat(),
        "synthetic",
        DIM,
        320,
        48,
        {d: DocumentRecord(d, f"{d}.txt", "0", "txt", None, 0, n, "") for d, n in docs.items()},
    )
    with tempfile.TemporaryDirectory(prefix="tongwen-scale-") as tmp:
        store = MilvusStore(MilvusConnection(str(Path(tmp) / "scale.db"), timeout=600), prefix="scale")
        try:
            store.capabilities  # noqa: B018 - start Milvus Lite before the clock
            t0 = time.perf_counter()
            name = store.build_version(manifest, chunks, vectors)
            store.publish(name)
            build = time.perf_counter() - t0
            memory = folder_mb(Path(tmp))
            # Measure a settled replica: searches of a version older than Milvus's staleness window.
            time.sleep(max(0.0, BOUNDED_AFTER_SECONDS + 1 - (time.time() - _built_at_any(name))))
            found = np.asarray(
                [[p for p, _ in store.dense_search(name, queries[i : i + 1], K)[0]] for i in range(len(queries))]
            )
            dense = {
                "engine": "milvus-lite-dense",
                "build_s": build,
                "memory_mb": memory,
                **latencies_ms(lambda i: store.dense_search(name, queries[i : i + 1], K), len(queries)),
                "recall@10": recall_at_k(found, exact),
            }
            texts = [" ".join(t) for t in query_tokens]
            keyword = {
                "engine": "milvus-lite-bm25",
                "build_s": build,
                "memory_mb": memory,
                **latencies_ms(lambda i: store.keyword_search(name, texts[i], K), len(texts)),
            }
        finally:
            store.close()
    return [dense, keyword]


def run_size(n: int, n_queries: int, words: list[str], p: np.ndarray, skip_milvus: bool) -> list[dict]:
    import faiss

    rng = np.random.default_rng(n)
    vectors = synthetic_vectors(n, rng)
    queries = synthetic_queries(vectors, n_queries, rng)
    token_lists = synthetic_tokens(n, words, p, rng)
    query_tokens = [
        list(token_lists[i][:: WORDS_PER_CHUNK // QUERY_WORDS][:QUERY_WORDS]) for i in rng.integers(0, n, n_queries)
    ]
    rows = bench_faiss(vectors, queries)
    rows.append(bench_bm25s(token_lists, query_tokens))
    if not skip_milvus:
        flat = faiss.IndexFlatIP(DIM)
        flat.add(vectors)
        exact = flat.search(queries, K)[1]
        rows.extend(bench_milvus_lite(vectors, token_lists, queries, query_tokens, exact))
    for row in rows:
        row["chunks"] = n
        print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    recall = row.get("recall@10")
    return (
        f"{row['chunks']:>9,} {row['engine']:<18} build {row['build_s']:8.2f} s  mem {row['memory_mb']:8.1f} MB  "
        f"p50 {row['p50_ms']:8.2f} ms  p95 {row['p95_ms']:8.2f} ms  "
        f"recall@10 {'' if recall is None else f'{recall:.3f}'}"
    )


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = sorted((r for r in rows if r["engine"] == engine), key=lambda r: r["chunks"])
        xs = [r["chunks"] for r in mine]
        for ax, key in zip(axes, ("build_s", "memory_mb", "p50_ms"), strict=True):
            ax.plot(xs, [max(r[key], 1e-3) for r in mine], marker="o", label=engine)
    for ax, title in zip(axes, ("index build (s)", "memory (MB)", "retrieve p50 (ms)"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("chunks")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-milvus", action="store_true")
    parser.add_argument("--milvus-sizes", default=None, help="sizes to run Milvus Lite at (default: all of --sizes)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "scale.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "scale.png")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    words, p = corpus_vocabulary()
    print(f"vocabulary: {len(words):,} words from data/corpus; sizes {sizes}", flush=True)
    rows = []
    for n in sizes:
        skip = args.skip_milvus or (args.milvus_sizes is not None and str(n) not in args.milvus_sizes.split(","))
        rows.extend(run_size(n, args.queries, words, p, skip))
        gc.collect()
    for row in rows:
        for key in ("build_s", "memory_mb", "recall@10"):
            if key in row:
                row[key] = round(row[key], 4)
    previous = json.loads(args.out.read_text("utf-8"))["results"] if args.out.exists() else []
    measured = {(r["engine"], r["chunks"]) for r in rows}
    merged = [r for r in previous if (r["engine"], r["chunks"]) not in measured] + rows  # a smaller rerun keeps 1M
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "k": K,
                "dimension": DIM,
                "results": sorted(merged, key=lambda r: (r["chunks"], r["engine"])),
            },
            ensure_ascii=False,
            indent=1,
        )
        + "\n",
        "utf-8",
    )
    plot(merged, args.plot)
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
