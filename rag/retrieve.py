"""Hybrid retrieval: dense (FAISS or Milvus, see ``rag.store.base``) + two keyword rankings (BM25 over
jieba words and over character bigrams) on canonical text, fused by reciprocal rank.

The question is put into canonical form with its vocabulary variants (see ``normalise``). The
keyword sides search the union of the variants' words and bigrams; the dense side embeds the
plain form only (see :attr:`Query.embedded`). Reciprocal-rank fusion then merges
the three rankings without having to make BM25 scores and cosines comparable.

The chain calls :func:`fused_search` directly rather than through a langchain ``BaseRetriever``:
a follow-up searches several weighted queries (the question alone and joined with the
conversation, see ``rag.followup``), which a one-string retriever cannot express. The dense side
still speaks langchain's ``VectorStore`` interface, so another engine can replace FAISS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ingest.normalise import query_wordings
from rag.bare_question import bare_question
from rag.embeddings import EmbeddingModel
from rag.signals import BASE_SIGNALS, DEFAULT_WEIGHTS, extra_rankings, rrf
from rag.store.base import IndexVersion, ScoredPositions
from rag.store.derived import derived
from rag.store.keyword import char_bigrams, tokenize
from rag.store.records import ChunkRecord


@dataclass(frozen=True)
class Hit:
    chunk: ChunkRecord
    score: float  # fused reciprocal-rank score
    dense: float | None  # best cosine to the query, when the dense side found it
    keyword: float | None  # BM25 score, when the keyword side found it


@dataclass(frozen=True)
class Query:
    """A question prepared for search: its canonical variants and their keyword tokens."""

    variants: tuple[str, ...]
    tokens: tuple[str, ...]
    bigrams: tuple[str, ...] = ()
    #: Every vocabulary direction's wording, (direction, text), before deduplication (see
    #: ``ingest.normalise.query_wordings``): two questions' variants pair by direction, since
    #: deduplication can leave them at different places in their lists.
    wordings: tuple[tuple[str, str], ...] = ()

    @property
    def embedded(self) -> tuple[str, ...]:
        """What the dense side embeds: the plain canonical form, not the vocabulary variants.

        The variants are for the keyword sides, which need the exact word (晶片 for 芯片); the
        model already puts such pairs together. Measured on the gold set, embedding every variant
        changed one rank in 174 (a held-out question, 3rd instead of 2nd) and cost about a quarter
        more encoder time for the questions that have variants."""
        return self.variants[:1]

    @classmethod
    def from_question(cls, question: str) -> Query:
        wordings = tuple(query_wordings(bare_question(question)).items())
        variants = tuple(dict.fromkeys(text for _, text in wordings))
        tokens = tuple(dict.fromkeys(t for v in variants for t in tokenize(v)))
        bigrams = tuple(dict.fromkeys(b for v in variants for b in char_bigrams(v)))
        return cls(variants, tokens, bigrams, wordings)

    def directions(self) -> tuple[str, ...]:
        """The direction of each variant: the first one whose wording it is."""
        first: dict[str, str] = {}
        for direction, text in self.wordings:
            first.setdefault(text, direction)
        return tuple(first.get(v, "plain") for v in self.variants)

    def wording(self, direction: str) -> str:
        """This question's wording for ``direction`` (the plain form when unknown)."""
        return dict(self.wordings).get(direction, self.variants[0])


def chunk_positions(snapshot: IndexVersion) -> dict[str, int]:
    """Chunk id → position, built once per snapshot and kept on it (a snapshot never changes)."""
    return derived(snapshot, "_chunk_positions", lambda: {c.id: i for i, c in enumerate(snapshot.chunks)})


def base_rankings(
    snapshot: IndexVersion, query: Query, query_vectors: np.ndarray, candidate_k: int
) -> tuple[dict[str, list[int]], dict[int, float], ScoredPositions]:
    """The base rankings of one query (dense, its sentences' dense ranking where the store keeps
    sentence vectors, BM25 words, BM25 bigrams), each chunk's best cosine, and the word side's
    BM25 scores.

    Every candidate of the keyword sides gets its cosine too, and the dense ranking covers them
    all: ranked without one, a chunk both keyword sides put first (g007 of the gold set, dense
    31st) lost to chunks that every side found merely because the dense list was cut at
    ``candidate_k``."""
    cosine = snapshot.dense_best(query_vectors, candidate_k)
    by_sentence = snapshot.sentence_ranking(query_vectors, candidate_k)
    keyword_hits = snapshot.keyword_search(query.tokens, candidate_k)
    bigram_hits = snapshot.bigram_search(query.bigrams, candidate_k)
    found = [p for p, _ in keyword_hits + bigram_hits] + by_sentence
    cosine |= snapshot.dense_scores(query_vectors, [p for p in dict.fromkeys(found) if p not in cosine])
    rankings = {
        "dense": sorted(cosine, key=cosine.__getitem__, reverse=True),
        "sentence_dense": by_sentence,
        "words": [pos for pos, _ in keyword_hits],
        "bigrams": [pos for pos, _ in bigram_hits],
    }
    return rankings, cosine, keyword_hits


def hybrid_search(
    snapshot: IndexVersion,
    model: EmbeddingModel,
    query: Query,
    top_k: int,
    candidate_k: int = 30,
    rrf_k: int = 20,
    weights: Mapping[str, float] | None = None,
) -> list[Hit]:
    return fused_search(snapshot, model, [(query, 1.0)], top_k, candidate_k, rrf_k, weights)


def fused_search(
    snapshot: IndexVersion,
    model: EmbeddingModel,
    queries: Sequence[tuple[Query, float]],
    top_k: int,
    candidate_k: int = 30,
    rrf_k: int = 20,
    weights: Mapping[str, float] | None = None,
    carried: tuple[Sequence[int], float] = ((), 0.0),
) -> list[Hit]:
    """Weighted reciprocal-rank fusion of the three rankings of every query.

    One query is the plain hybrid search. Several (a follow-up alone, and joined with the
    conversation) are fused with a weight each, so a ranking that several queries agree on wins
    while a query that leans on nothing (the follow-up alone) keeps its say. The queries are
    embedded in one call (one run each, see ``EmbeddingModel.embed_queries``). ``weights`` weigh
    each ranking (see :mod:`rag.signals`: the base three and the extra signals); default
    :data:`rag.signals.DEFAULT_WEIGHTS`. ``carried`` is one more ranking of positions with its
    weight: the passages a follow-up's conversation was about (see
    :func:`rag.followup.carried_positions`).
    """
    weights = DEFAULT_WEIGHTS if weights is None else weights
    if not snapshot.chunks or not queries:
        return []
    vectors = model.embed_queries([v for q, _ in queries for v in q.embedded])
    best_cosine: dict[int, float] = {}
    keyword_score: dict[int, float] = {}
    fused: dict[int, float] = {}
    offset = 0
    for query, weight in queries:
        query_vectors = vectors[offset : offset + len(query.embedded)]
        offset += len(query.embedded)
        rankings, cosine, keyword_hits = base_rankings(snapshot, query, query_vectors, candidate_k)
        for pos, score in cosine.items():
            best_cosine[pos] = max(best_cosine.get(pos, -1.0), score)
        for pos, score in keyword_hits:
            keyword_score[pos] = max(keyword_score.get(pos, 0.0), score)
        base = rrf(rankings, {name: weights.get(name, 0.0) for name in BASE_SIGNALS}, rrf_k)
        candidates = sorted(base, key=lambda p: (-base[p], -cosine.get(p, -1.0)))
        rankings |= extra_rankings(snapshot, query.variants, query.bigrams, candidates, candidate_k, weights)
        for pos, score in rrf(rankings, weights, rrf_k).items():
            fused[pos] = fused.get(pos, 0.0) + weight * score
    positions, carried_weight = carried
    for pos, score in rrf({"carried": positions}, {"carried": carried_weight}, rrf_k).items():
        fused[pos] = fused.get(pos, 0.0) + score
    ranked = sorted(fused, key=lambda p: (-fused[p], -best_cosine.get(p, -1.0)))[:top_k]
    return [Hit(snapshot.chunks[p], fused[p], best_cosine.get(p), keyword_score.get(p)) for p in ranked]
