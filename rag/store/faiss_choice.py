"""Which FAISS index to build for a given number of chunks, from the measurements of bench/scale.py.

Exact search (``IndexFlatIP``) costs nothing to build and never misses, but every query scans all
vectors. Measured here (bench/out/scale.json: 384-d vectors, one query at a time, one FAISS
thread, a 2-core machine shared with other jobs at load 10-14), flat search p50 was 0.55 ms at
10k chunks, 2.1 ms at 30k, 12 ms at 50k and 36 ms at 100k: past ~40k chunks (the vectors, ~60 MB,
outgrow the CPU cache) the dense search alone would eat the whole 30 ms retrieve budget
(bench/run.py TARGETS).

Above that, IVF-Flat (``nlist ≈ 4·√n`` lists, ``nprobe`` ≥ 16) answered in 0.2-0.3 ms with
recall@10 = 1.000 against flat at 30k, 50k and 100k, building in 2-20 s. HNSW (M=32,
efSearch=64) was as fast but its recall@10 fell with size (0.995 at 30k, 0.963 at 50k, 0.926 at
100k), it built about 3x slower (56 s at 100k) and takes ~18 % more memory, so IVF it is. The
synthetic vectors are clustered like real e5 passages; real-corpus recall at this size is not
measured (the bundled corpus has 1,582 chunks), which is why ``nprobe`` grows with ``nlist``
instead of staying at the benchmark's 16.

Both kinds keep full vectors, so ``reconstruct_n`` (used by incremental ingest through
``Snapshot.vectors()``) still works: IVF gets a direct map for it.
"""

from __future__ import annotations

import math

import numpy as np

FLAT_UNTIL = 40_000  # chunks; from here on an IVF index (see the module docstring)
MIN_NPROBE = 16
TRAIN_POINTS_PER_LIST = 40


def ivf_lists(n_chunks: int) -> int:
    return max(16, int(4 * math.sqrt(n_chunks)))


def ivf_nprobe(nlist: int) -> int:
    """Lists searched per query: 16 measured recall@10 = 1.0; grow with nlist to keep a margin at 1M."""
    return max(MIN_NPROBE, nlist // 64)


def choose_faiss_index(n_chunks: int) -> str:
    """A ``faiss.index_factory`` description for ``n_chunks`` vectors (inner-product metric)."""
    return "Flat" if n_chunks < FLAT_UNTIL else f"IVF{ivf_lists(n_chunks)},Flat"


def build_faiss_index(vectors: np.ndarray, description: str | None = None):
    """Build, train and fill the chosen index over L2-normalised vectors (inner product = cosine)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    description = description or choose_faiss_index(n)
    if description == "Flat":  # the very type Snapshot.build makes today
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.index_factory(dim, description, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        ivf = faiss.extract_index_ivf(index)
        sample = min(n, TRAIN_POINTS_PER_LIST * ivf.nlist)
        rows = np.random.default_rng(0).choice(n, size=sample, replace=False) if sample < n else slice(None)
        index.train(vectors[rows])
        ivf.nprobe = ivf_nprobe(ivf.nlist)
        ivf.make_direct_map()
    if n:
        index.add(vectors)
    return index
