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
chunks is embedded once and stored for both. Searched by :class:`SentenceSearch`, a full scan of
each distinct sentence once: 8,676 vectors of 384 floats for the bundled corpus, under a millisecond.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ingest.normalise import canonical
from ingest.sentences import merged_sentences
from rag.store.derived import derived
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
        """Chunk positions ranked by their best sentence's cosine to any of the query vectors, at most ``k``.

        The best ``k`` × 8 distinct sentences per query vector are taken from
        :class:`SentenceSearch` and handed to their chunks in score order."""
        if not len(self.owner) or not len(query_vectors):
            return []
        return self._search().chunk_ranking(np.asarray(query_vectors, dtype=np.float32), k)

    def _search(self) -> SentenceSearch:
        """Built on the first question and kept: these rows never change."""
        return derived(self, "_sentence_search", lambda: SentenceSearch.of(self))

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


@dataclass(frozen=True)
class SentenceSearch:
    """The sentence vectors as a question searches them: each distinct sentence once, in FAISS.

    The ranking is a full scan, so its cost is the bytes read per question, and whether they are
    still in the CPU's cache after the encoder ran. The overlap makes the stored rows repeat
    sentences (10,506 rows, 8,676 distinct, for the bundled corpus: 16 MB, 13 MB here), and each
    distinct row names every chunk holding it. FAISS scans on the asking thread, where numpy's
    product went through BLAS threads. Measured on this machine (2-core AMD EPYC, 32 MB L3), a
    fresh process per round, alternating: a whole retrieval took 0.80–0.91 of the time of the numpy
    product over every row (six rounds of 240 gold questions) and 0.87–0.99 of FAISS over every row;
    with an extractive answer between the questions, as ``bench.run`` asks them, 0.87–1.01 (four
    rounds), and two ``bench.run`` pairs read 0.96 and 1.02, within this machine's noise. It holds
    the distinct vectors a second time (+22 MB serving RSS)."""

    index: faiss.Index
    #: The chunks holding distinct row i: ``owners[starts[i]:starts[i + 1]]``, later chunk first.
    starts: np.ndarray
    owners: np.ndarray

    @classmethod
    def of(cls, sentences: SentenceVectors) -> SentenceSearch:
        # A repeated sentence was embedded once, so its rows are equal to the bit.
        first: dict[bytes, int] = {}
        inverse = np.fromiter(
            (first.setdefault(row.tobytes(), len(first)) for row in sentences.vectors),
            dtype=np.int64,
            count=len(sentences.vectors),
        )
        _, leaders = np.unique(inverse, return_index=True)  # the first row of each distinct one
        order = np.lexsort((-sentences.owner, inverse))
        starts = np.searchsorted(inverse[order], np.arange(len(first) + 1))
        index = faiss.IndexFlatIP(sentences.vectors.shape[1])
        index.add(np.ascontiguousarray(sentences.vectors[leaders], dtype=np.float32))
        return cls(index, starts, sentences.owner[order])

    def chunk_ranking(self, query_vectors: np.ndarray, k: int) -> list[int]:
        """Chunks by their best sentence: the ``k`` × 8 best sentences of each query vector, by
        their best score over the vectors, each handing on the chunks holding it.

        Chunks sharing their best sentence (the overlap repeats the end of one chunk at the start
        of the next) tie on it; the later chunk goes first, the one that goes on from the sentence
        rather than leading up to it. This is also the order the scan over every row happened to
        give: of the gold set's 384 questions one moved, from 10th to 9th."""
        scores, rows = self.index.search(query_vectors, min(self.index.ntotal, k * 8))
        best: dict[int, float] = {}
        for row, score in zip(rows.ravel().tolist(), scores.ravel().tolist(), strict=True):
            if row >= 0 and score > best.get(row, -np.inf):
                best[row] = score
        ranked: dict[int, None] = {}
        for row in sorted(best, key=lambda r: (-best[r], r)):
            for owner in self.owners[self.starts[row] : self.starts[row + 1]].tolist():
                ranked.setdefault(owner, None)
            if len(ranked) >= k:
                break
        return list(ranked)[:k]
