"""Sentence vectors beside the chunk vectors: a chunk is found through its best sentence.

A question usually paraphrases one sentence. In a 320-token chunk that sentence is a small part
of the chunk's single vector, so a chunk holding the exact answer (「第一場座談會在 109 年 4 月 22
日舉行」) can rank 40th by cosine behind chatty passages about the same topic. Each sentence
(``ingest.sentences.merged_sentences``) therefore gets a vector of its own at ingest, and the
``sentence_dense`` ranking orders chunks by their best sentence's cosine (small-to-big: match a
sentence, return its chunk). Measured on the gold set's tune split by cross-validation, see
``rag.signals.DEFAULT_WEIGHTS``.

Stored as ``sentences.npz`` in the index version (checksummed with the other files): one row per
(chunk, sentence), ``owner`` the chunk's position. A sentence the chunk overlap repeats in two
chunks is embedded once and stored for both. Searched with one matrix product: ~10,000 rows of 384
floats for the bundled corpus, a millisecond.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.normalise import canonical
from ingest.sentences import merged_sentences
from rag.store.records import ChunkRecord

SENTENCES_FILE = "sentences.npz"


def sentence_texts(chunk: ChunkRecord) -> list[str]:
    """What is embedded for a chunk's sentences: each one in canonical form, as the chunk is."""
    return [canonical(s) for s in merged_sentences(chunk.text)]


@dataclass(frozen=True)
class SentenceVectors:
    """Unit vectors of every chunk's sentences; ``owner[i]`` is the chunk position of row i."""

    owner: np.ndarray  # int64, one per row
    vectors: np.ndarray  # float32, rows × dimension

    @classmethod
    def empty(cls, dimension: int) -> SentenceVectors:
        return cls(np.zeros(0, dtype=np.int64), np.zeros((0, dimension), dtype=np.float32))

    @classmethod
    def embed(
        cls, chunks: Sequence[ChunkRecord], embed: Callable[[list[str]], np.ndarray], dimension: int, first: int = 0
    ) -> SentenceVectors:
        """The sentence vectors of ``chunks`` (positions ``first``, ``first`` + 1, …), each distinct
        sentence embedded once."""
        rows: list[tuple[int, str]] = [(first + i, s) for i, c in enumerate(chunks) for s in sentence_texts(c)]
        distinct = list(dict.fromkeys(s for _, s in rows))
        if not distinct:
            return cls.empty(dimension)
        vectors = np.asarray(embed(distinct), dtype=np.float32)
        where = {s: i for i, s in enumerate(distinct)}
        owner = np.fromiter((p for p, _ in rows), dtype=np.int64, count=len(rows))
        return cls(owner, vectors[[where[s] for _, s in rows]])

    def pooled(self, n_chunks: int, first: int = 0) -> tuple[np.ndarray, list[int]]:
        """Chunk vectors made from these rows: the unit-length mean of each chunk's sentence vectors,
        for the chunks at positions ``first`` … ``first + n_chunks - 1``, and the offsets (0-based)
        of the chunks that own no row, whose vector the caller must embed.

        Ingest embeds the sentences and not the chunks as well: the sentences are the same text
        again, and embedding both doubled ingest. Measured on the gold set's tune split (5-fold CV,
        three fold seeds), fusing these pooled chunk vectors with the sentence ranking put the
        evidence first out of fold at least as often as fusing the embedded ones (README, Evaluation)."""
        sums = np.zeros((n_chunks, self.vectors.shape[1]), dtype=np.float32)
        rows = self.owner - first
        inside = (rows >= 0) & (rows < n_chunks)
        np.add.at(sums, rows[inside], self.vectors[inside])
        norms = np.linalg.norm(sums, axis=1)
        empty = [int(i) for i in np.flatnonzero(norms == 0)]
        return sums / np.maximum(norms, 1e-12)[:, None], empty

    def kept(self, positions: Sequence[int]) -> SentenceVectors:
        """The rows of the chunks at ``positions`` (old positions, in their new order), renumbered
        0, 1, … as incremental ingest renumbers the chunks it keeps."""
        new_position = np.full(int(self.owner.max(initial=-1)) + 1, -1, dtype=np.int64)
        for new, old in enumerate(positions):
            if old < len(new_position):
                new_position[old] = new
        mapped = new_position[self.owner] if len(self.owner) else self.owner
        keep = mapped >= 0
        rows = np.flatnonzero(keep)
        order = rows[np.argsort(mapped[keep], kind="stable")]
        return SentenceVectors(mapped[order], self.vectors[order])

    def plus(self, other: SentenceVectors) -> SentenceVectors:
        return SentenceVectors(np.concatenate([self.owner, other.owner]), np.vstack([self.vectors, other.vectors]))

    def covers(self, n_chunks: int) -> bool:
        """Whether the owners are valid positions of an index with ``n_chunks`` chunks."""
        return len(self.owner) == len(self.vectors) and (len(self.owner) == 0 or int(self.owner.max()) < n_chunks)

    def fits(self, n_chunks: int, dimension: int) -> bool:
        """Whether these rows belong to an index of ``n_chunks`` chunks and ``dimension``-sized vectors."""
        return self.covers(n_chunks) and self.vectors.shape[1:] == (dimension,)

    def chunk_ranking(self, query_vectors: np.ndarray, k: int) -> list[int]:
        """Chunk positions ranked by their best sentence's cosine to any of the query vectors, at most ``k``."""
        if not len(self.owner) or not len(query_vectors):
            return []
        scores = (self.vectors @ np.asarray(query_vectors, dtype=np.float32).T).max(axis=1)
        top = min(len(scores), k * 8)
        best = np.argpartition(-scores, top - 1)[:top]
        ranked: dict[int, None] = {}
        for row in best[np.argsort(-scores[best], kind="stable")]:
            ranked.setdefault(int(self.owner[row]), None)
            if len(ranked) == k:
                break
        return list(ranked)

    def save(self, folder: Path) -> None:
        with open(folder / SENTENCES_FILE, "wb") as fh:
            np.savez(fh, owner=self.owner, vectors=self.vectors)

    @classmethod
    def load(cls, folder: Path) -> SentenceVectors | None:
        """The stored sentence vectors, or None in a version written before they existed."""
        path = folder / SENTENCES_FILE
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return cls(data["owner"].astype(np.int64), data["vectors"].astype(np.float32))
