"""One immutable index version: chunks, the FAISS vector store and the BM25 keyword index.

Readers hold a snapshot; a write builds a new one and swaps it in, so a query never sees a
half-updated index. The dense side is a langchain ``VectorStore`` (FAISS), so another engine can
replace it without touching the chain.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from langchain_community.docstore.in_memory import InMemoryDocstore
from langchain_community.vectorstores import FAISS
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from rag.errors import IndexCorrupt, IndexMissing
from rag.store.keyword import KeywordIndex, char_bigrams
from rag.store.records import ChunkRecord, DocumentRecord
from rag.store.versions import VersionedDir

FORMAT_VERSION = 1
_REINDEX_HINT = "Rebuild it with `tongwen ingest --rebuild data/corpus` (or your documents)."


@dataclass(frozen=True)
class Manifest:
    format_version: int
    created_at: str
    embedding_model: str
    dimension: int
    chunk_max_tokens: int
    chunk_overlap_tokens: int
    documents: dict[str, DocumentRecord]
    #: What ran the embedding model (``torch``, ``onnx``, ``onnx-int8``); indexes from before the
    #: setting existed were all embedded by torch.
    embedding_backend: str = "torch"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["documents"] = {k: asdict(v) for k, v in self.documents.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        docs = {k: DocumentRecord(**v) for k, v in data["documents"].items()}
        return cls(**{**data, "documents": docs})


class _NoQueryEmbeddings(Embeddings):
    """Placeholder: we always search by vector, embedding queries once for both retrievers."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError("snapshots are built from precomputed vectors")

    def embed_query(self, text: str) -> list[float]:
        raise NotImplementedError("search the snapshot's vector store by vector")


class Snapshot:
    """An index version in memory. Position i in ``chunks``, FAISS and BM25 is the same chunk."""

    def __init__(
        self,
        manifest: Manifest,
        chunks: list[ChunkRecord],
        faiss_index: faiss.Index,
        keyword: KeywordIndex,
        bigrams: KeywordIndex,
        path: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.chunks = chunks
        self.faiss_index = faiss_index
        self.keyword = keyword
        self.bigrams = bigrams
        self.path = path
        self.vector_store = FAISS(
            embedding_function=_NoQueryEmbeddings(),
            index=faiss_index,
            docstore=InMemoryDocstore(
                {c.id: Document(page_content=c.text, metadata={"pos": i}, id=c.id) for i, c in enumerate(chunks)}
            ),
            index_to_docstore_id={i: c.id for i, c in enumerate(chunks)},
            distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        )

    @classmethod
    def build(cls, manifest: Manifest, chunks: list[ChunkRecord], vectors: np.ndarray) -> Snapshot:
        index = faiss.IndexFlatIP(manifest.dimension)
        if len(chunks):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(manifest, chunks, index, KeywordIndex.build([c.tokens for c in chunks]), bigram_index(chunks))

    @cached_property
    def doc_freq(self) -> Counter[str]:
        """In how many chunks each keyword token occurs (for IDF weights in the support check)."""
        return Counter(t for c in self.chunks for t in set(c.tokens))

    def vectors(self) -> np.ndarray:
        """All stored vectors (flat index: exact reconstruction), reused by incremental ingest."""
        if self.faiss_index.ntotal == 0:
            return np.zeros((0, self.manifest.dimension), dtype=np.float32)
        return self.faiss_index.reconstruct_n(0, self.faiss_index.ntotal)

    def write(self, folder: Path) -> None:
        with open(folder / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for chunk in self.chunks:
                fh.write(json.dumps(chunk.to_json(), ensure_ascii=False) + "\n")
        faiss.write_index(self.faiss_index, str(folder / "dense.faiss"))
        self.keyword.save(folder / "keyword")
        self.bigrams.save(folder / "bigram")
        # The manifest goes last: its presence marks the version complete.
        (folder / "manifest.json").write_text(
            json.dumps(self.manifest.to_json(), ensure_ascii=False, indent=1), "utf-8"
        )

    @classmethod
    def read(cls, folder: Path) -> Snapshot:
        try:
            manifest = Manifest.from_json(json.loads((folder / "manifest.json").read_text("utf-8")))
            with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
                chunks = [ChunkRecord.from_json(json.loads(line)) for line in fh if line.strip()]
            index = faiss.read_index(str(folder / "dense.faiss"))
            keyword = KeywordIndex.load(folder / "keyword", len(chunks))
            # Indexes written before the bigram side existed get it built on load (about a second).
            has_bigrams = (folder / "bigram").is_dir() or not chunks
            bigrams = KeywordIndex.load(folder / "bigram", len(chunks)) if has_bigrams else bigram_index(chunks)
        except (OSError, EOFError, ValueError, KeyError, TypeError, RuntimeError) as exc:  # EOFError: an emptied .npy
            raise IndexCorrupt(f"The index at {folder} is damaged ({exc}). {_REINDEX_HINT}") from exc
        if manifest.format_version != FORMAT_VERSION:
            raise IndexCorrupt(f"The index at {folder} has an old format. {_REINDEX_HINT}")
        if index.ntotal != len(chunks) or sum(d.chunks for d in manifest.documents.values()) != len(chunks):
            raise IndexCorrupt(f"The index at {folder} is inconsistent. {_REINDEX_HINT}")
        return cls(manifest, chunks, index, keyword, bigrams, path=folder)


def bigram_index(chunks: list[ChunkRecord]) -> KeywordIndex:
    return KeywordIndex.build([char_bigrams(c.canonical) for c in chunks])


def load_current(root: Path) -> Snapshot:
    """The current snapshot under an index root; a clear error when there is none or it's broken."""
    folder = VersionedDir(root).current()
    if folder is None:
        raise IndexMissing(
            f"No index at {root}. Build one with `tongwen ingest data/corpus` (or `tongwen serve`, "
            "which indexes the bundled corpus on first start)."
        )
    if not folder.is_dir():
        raise IndexCorrupt(f"The current index version {folder} is missing. {_REINDEX_HINT}")
    return Snapshot.read(folder)


def save_new_version(root: Path, snapshot: Snapshot) -> Path:
    """Write a snapshot as the new current version (atomically) and return its folder."""
    versions = VersionedDir(root)
    with versions.new_version() as folder:
        snapshot.write(folder)
    current = versions.current()
    assert current is not None
    snapshot.path = current
    return current
