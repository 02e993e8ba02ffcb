"""An index version held in Milvus, behind the same :class:`rag.store.base.IndexVersion` seam as FAISS.

A replica keeps the version's chunk list in memory (citations, the support check and incremental
ingest need every chunk) and the collection name it resolved, so it keeps reading that version
until the alias moves. Milvus answers the dense side, and the word side too when the server has
its BM25 function (``capabilities["bm25"]``); the character-bigram ranking stays local (bm25s,
built when the version is loaded: about a second for the bundled corpus), since no Milvus
analyzer produces overlapping bigrams, and the word index is built locally as well on servers
without BM25 (Milvus 2.3, 2.4). The three rankings are fused by our own RRF in
``rag.retrieve``, exactly as over FAISS.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from rag.store.keyword import KeywordIndex
from rag.store.milvus import MilvusStore
from rag.store.records import ChunkRecord
from rag.store.sentences import SentenceVectors
from rag.store.snapshot import Manifest, best_cosines, bigram_index, retokenized, word_index


class MilvusSnapshot:
    """One published Milvus version pinned by collection name (see the module docstring)."""

    def __init__(
        self,
        store: MilvusStore,
        collection: str,
        manifest: Manifest,
        chunks: list[ChunkRecord],
        bigrams: KeywordIndex | None = None,
        keyword: KeywordIndex | None = None,
        sentences: SentenceVectors | None = None,
    ) -> None:
        self.store = store
        self.collection = collection
        self.manifest = manifest
        fresh = retokenized(manifest, chunks, collection)
        if fresh is not None:  # the local word index and the support check's counts need today's tokens
            chunks, bigrams, keyword = fresh, None, None
        self.chunks = chunks
        #: Read back whole from the version's sentence collection and ranked in memory
        #: (``SentenceSearch``): a Milvus Lite search took 24 ms at 10,000 rows (README, Benchmarks).
        #: None for a version built without them; the next ingest adds them.
        self.sentences = sentences
        self.server_bm25 = bool(store.capabilities["bm25"])
        self.bigrams = bigrams if bigrams is not None else bigram_index(chunks)
        if self.server_bm25:
            self.keyword = None
        else:
            self.keyword = keyword if keyword is not None else word_index(chunks)

    @property
    def key(self) -> str | None:
        return self.collection

    @cached_property
    def doc_freq(self) -> Counter[str]:
        return Counter(t for c in self.chunks for t in set(c.tokens))

    def dense_best(self, vectors: np.ndarray, k: int) -> dict[int, float]:
        if not self.chunks or len(vectors) == 0:
            return {}
        return self.store.dense_best(self.collection, vectors, k)

    def dense_scores(self, vectors: np.ndarray, positions: Sequence[int]) -> dict[int, float]:
        if not positions or len(vectors) == 0:
            return {}
        stored = self.store.vectors_at(self.collection, positions)
        if not stored:
            return {}
        found = list(stored)
        return best_cosines(vectors, found, np.stack([stored[p] for p in found]))

    def sentence_ranking(self, vectors: np.ndarray, k: int) -> list[int]:
        return self.sentences.chunk_ranking(vectors, k) if self.sentences is not None else []

    def keyword_search(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        if self.keyword is not None:
            return self.keyword.search(tokens, k)
        if not self.chunks or not tokens:
            return []
        # Our jieba search-mode tokens, space-joined: Milvus's jieba analyzer cuts them again, which
        # leaves whole words whole, so the server ranks the same words the local index would.
        return self.store.keyword_search(self.collection, " ".join(dict.fromkeys(tokens)), k)

    def bigram_search(self, bigrams: Sequence[str], k: int) -> list[tuple[int, float]]:
        return self.bigrams.search(bigrams, k)

    def vectors(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros((0, self.manifest.dimension), dtype=np.float32)
        return self.store.read_vectors(self.collection, len(self.chunks))

    def describe(self) -> dict[str, Any]:
        caps = self.store.capabilities
        keyword = (
            "milvus: BM25 function with the jieba analyzer; bigrams local (bm25s)"
            if self.server_bm25
            else f"local: server has no BM25 ({caps.get('server_version')}); bm25s over words and bigrams"
        )
        return {
            "engine": caps.get("engine", "milvus"),
            "address": self.store.conn.where,
            "collection": self.collection,
            "alias": self.store.alias,
            "capabilities": dict(caps),
            "keyword": keyword,
        }
