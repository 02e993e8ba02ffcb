"""The two baselines Tongwen is measured against, on the same gold set in the same run.

- ``bigram-bm25``: BM25 over character bigrams of the raw text, no cleaning, no normalisation:
  what a keyword engine does with Chinese out of the box.
- ``naive-langchain``: the textbook langchain pipeline: RecursiveCharacterTextSplitter(500, 50)
  over the raw text, the same embedding model, FAISS; no cleaning, no script normalisation, no
  keyword side.

Both return chunks as (doc, text) so the same relevance test scores all three systems.
"""

from __future__ import annotations

import hashlib
from itertools import pairwise
from pathlib import Path

import bm25s
import numpy as np
from langchain_community.vectorstores import FAISS
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.embeddings import EmbeddingModel, TongwenEmbeddings


def _split(raw_docs: dict[str, str]) -> list[tuple[str, str]]:
    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
    return [(name, piece) for name, text in raw_docs.items() for piece in splitter.split_text(text)]


def _bigrams(text: str) -> list[str]:
    chars = [c for c in text if not c.isspace()]
    return [a + b for a, b in pairwise(chars)] or chars


class BigramBM25:
    name = "bigram-bm25"

    def __init__(self, raw_docs: dict[str, str]) -> None:
        self.chunks = _split(raw_docs)
        self.bm25 = bm25s.BM25()
        self.bm25.index([_bigrams(text) for _, text in self.chunks], show_progress=False)

    def search(self, question: str, k: int) -> list[tuple[str, str]]:
        scores = self.bm25.get_scores(list(dict.fromkeys(_bigrams(question))))
        top = np.argsort(-scores)[:k]
        return [self.chunks[i] for i in top]


class NaiveLangchain:
    name = "naive-langchain"

    def __init__(self, raw_docs: dict[str, str], model: EmbeddingModel, cache_dir: Path) -> None:
        chunks = _split(raw_docs)
        embeddings = TongwenEmbeddings(model)
        key = hashlib.sha256(
            (model.name + "\x00" + model.backend + "\x00" + "\x00".join(f"{n}\x00{t}" for n, t in chunks)).encode()
        ).hexdigest()[:16]
        folder = cache_dir / f"naive-langchain-{key}"
        if (folder / "index.faiss").is_file():
            # Our own cache, written below by this code: safe to unpickle.
            self.store = FAISS.load_local(str(folder), embeddings, allow_dangerous_deserialization=True)
        else:
            vectors = model.embed_passages([t for _, t in chunks], show_progress=True)
            self.store = FAISS.from_embeddings(
                [(t, v.tolist()) for (_, t), v in zip(chunks, vectors, strict=True)],
                embeddings,
                metadatas=[{"doc": n} for n, _ in chunks],
                distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
            )
            self.store.save_local(str(folder))

    def search(self, question: str, k: int) -> list[tuple[str, str]]:
        docs = self.store.similarity_search(question, k=k)
        return [(d.metadata["doc"], d.page_content) for d in docs]
