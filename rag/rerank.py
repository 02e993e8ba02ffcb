"""The reranker seam: any sentence-transformers ``CrossEncoder`` a user has, by path or name.

No offline Chinese cross-encoder ships on the registries, so Tongwen bundles none; set
``TONGWEN_RERANKER`` to a local cross-encoder folder (e.g. a downloaded bge-reranker) and every
question's fused candidate pool (``candidate_k`` chunks) is re-scored by it, the best ``top_k``
kept. Anything with ``predict(list[(question, passage)]) -> scores`` works, which is also how the
tests plug in a stand-in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from rag.retrieve import Hit

# Reorders retrieved hits for a question; it gets the whole candidate pool, the caller keeps top_k.
Reranker = Callable[[str, list[Hit]], list[Hit]]


class PairScorer(Protocol):
    """What a sentence-transformers CrossEncoder offers (and all the seam needs)."""

    def predict(self, sentences: Sequence[tuple[str, str]], **kwargs: Any) -> Sequence[float]: ...


def scorer_reranker(scorer: PairScorer, batch_size: int = 16) -> Reranker:
    """A reranker from a pair scorer: hits sorted by its score (the fused order breaks ties);
    each hit's ``score`` becomes the cross-encoder score so callers see what ranked it."""

    def rerank(question: str, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return []
        scores = [float(s) for s in scorer.predict([(question, h.chunk.text) for h in hits], batch_size=batch_size)]
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
        return [replace(hits[i], score=scores[i]) for i in order]

    return rerank


def load_cross_encoder(path: str) -> Reranker:
    """A CrossEncoder from a local folder or a cached hub name (offline: nothing is downloaded)."""
    from sentence_transformers import CrossEncoder

    return scorer_reranker(CrossEncoder(path, local_files_only=True))
