"""The FAISS index chosen by size: exact below the crossover, IVF above, and an IVF index that
still finds the flat top 10, survives a write/read round trip and gives its vectors back."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from rag.store.faiss_choice import FLAT_UNTIL, build_faiss_index, choose_faiss_index


def clustered(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((32, dim))
    v = centres[rng.integers(0, 32, n)] + 0.5 * rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_choice_by_size() -> None:
    assert choose_faiss_index(0) == "Flat"
    assert choose_faiss_index(FLAT_UNTIL - 1) == "Flat"
    assert choose_faiss_index(FLAT_UNTIL).startswith("IVF")
    assert choose_faiss_index(1_000_000) == "IVF4000,Flat"


def test_ivf_index_recall_round_trip_and_reconstruct(tmp_path: Path) -> None:
    vectors = clustered(6000)
    queries = clustered(50, seed=1)
    flat = build_faiss_index(vectors)
    assert isinstance(flat, faiss.IndexFlatIP)
    ivf = build_faiss_index(vectors, "IVF64,Flat")
    exact = flat.search(queries, 10)[1]
    found = ivf.search(queries, 10)[1]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.95, recall

    faiss.write_index(ivf, str(tmp_path / "ivf.faiss"))
    back = faiss.read_index(str(tmp_path / "ivf.faiss"))
    assert faiss.extract_index_ivf(back).nprobe == faiss.extract_index_ivf(ivf).nprobe
    np.testing.assert_array_equal(back.search(queries, 10)[1], found)
    np.testing.assert_allclose(back.reconstruct_n(0, back.ntotal), vectors, atol=1e-6)
