"""What retrieval needs from an index version, whatever engine holds it.

``rag.retrieve`` and the support check ask an index version for its chunks, its manifest, the
dense, word and bigram rankings, document frequencies and (for incremental ingest) its vectors.
The FAISS :class:`rag.store.snapshot.Snapshot` answers from memory; the
:class:`rag.store.milvus_snapshot.MilvusSnapshot` asks Milvus for the dense side (and the word
side when the server has BM25). Keeping the seam this small lets retrieval change without
knowing which engine is behind it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.store.records import ChunkRecord
from rag.store.sentences import SentenceVectors
from rag.store.snapshot import Manifest

ScoredPositions = list[tuple[int, float]]


@runtime_checkable
class IndexVersion(Protocol):
    """One immutable index version. Position i means chunk i in every method."""

    manifest: Manifest
    chunks: list[ChunkRecord]
    #: Sentence vectors for the ``sentence_dense`` ranking, where the version has them (either store).
    sentences: SentenceVectors | None

    @property
    def key(self) -> str | None:
        """What identifies this version in its store (folder, collection); compared with the store's
        current one to notice a version another process published."""
        ...

    @property
    def doc_freq(self) -> Counter[str]: ...

    def dense_best(self, vectors: np.ndarray, k: int) -> dict[int, float]:
        """Best cosine per position over several query vectors (top ``k`` of each)."""
        ...

    def dense_scores(self, vectors: np.ndarray, positions: Sequence[int]) -> dict[int, float]:
        """Best cosine over several query vectors for the given positions, however far down the
        dense ranking they are: fills in the dense side of candidates only the keyword sides found."""
        ...

    def sentence_ranking(self, vectors: np.ndarray, k: int) -> list[int]:
        """Chunk positions ranked by their best sentence's cosine (``rag.store.sentences``), at most
        ``k``; empty where the version holds no sentence vectors."""
        ...

    def keyword_search(self, tokens: Sequence[str], k: int) -> ScoredPositions:
        """Top ``k`` (position, BM25 score) over jieba words of the canonical text."""
        ...

    def bigram_search(self, bigrams: Sequence[str], k: int) -> ScoredPositions:
        """Top ``k`` (position, BM25 score) over character bigrams of the canonical text."""
        ...

    def vectors(self) -> np.ndarray:
        """Every stored vector in position order."""
        ...

    def describe(self) -> dict[str, Any]:
        """Where it lives and how it searches, for ``/health`` and ``tongwen index info``."""
        ...
