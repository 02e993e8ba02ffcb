"""One immutable index version: chunks, the FAISS vector store and the BM25 keyword index.

Readers hold a snapshot; a write builds a new one and swaps it in, so a query never sees a
half-updated index. The dense side is a langchain ``VectorStore`` (FAISS), so another engine can
replace it without touching the chain.

Every file of a version has its sha256 in the manifest, checked when the version is opened (once:
the open snapshot is cached). Without it an edited chunk text or a flipped bit in ``dense.faiss``
loads fine and is served: a forged quote gets cited, scores turn absurd. A damaged version is
reported with advice that names ``tongwen index rollback`` when an older version is intact, since
rebuilding from the corpus would throw away every uploaded document.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
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
from rag.store.keyword import PAIR_BM25, WORD_BM25, KeywordIndex, analyzer_fingerprint, char_bigrams, tokenize
from rag.store.records import ChunkRecord, DocumentRecord
from rag.store.sentences import SentenceVectors
from rag.store.versions import KEEP_VERSIONS, VersionedDir

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_REINDEX_HINT = "Rebuild it with `tongwen ingest --rebuild data/corpus` (or your documents)."
_HASH_BLOCK = 1 << 20
log = logging.getLogger(__name__)


#: :attr:`Manifest.chunk_vectors`: each chunk through the encoder, or pooled from its sentences'.
CHUNK_VECTORS_EMBEDDED = "embedded"
CHUNK_VECTORS_POOLED = "sentence-mean"


@dataclass(frozen=True)
class Manifest:
    format_version: int
    created_at: str
    embedding_model: str
    dimension: int
    chunk_max_tokens: int
    chunk_overlap_tokens: int
    documents: dict[str, DocumentRecord]
    # sha256 of every other file of the version, by path relative to it; empty in indexes written
    # before checksums existed (those still load, unverified).
    files: dict[str, str] = field(default_factory=dict)
    #: What ran the embedding model (``torch``, ``onnx``, ``onnx-int8``); indexes from before the
    #: setting existed were all embedded by torch.
    embedding_backend: str = "torch"
    #: :func:`rag.store.keyword.analyzer_fingerprint` of the analyzers that cut the keyword
    #: indexes; empty in indexes written before it was recorded (rebuilt on load, see
    #: :func:`retokenized`).
    keyword_analyzer: str = ""
    #: How the chunk vectors were made: ``embedded`` (each chunk through the encoder; indexes
    #: written before this was recorded) or ``sentence-mean`` (the mean of the chunk's sentence
    #: vectors, see :meth:`rag.store.sentences.SentenceVectors.pooled`). Ingest recomputes every
    #: chunk's vector when the setting changes, so one version never mixes the two.
    chunk_vectors: str = CHUNK_VECTORS_EMBEDDED

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["documents"] = {k: asdict(v) for k, v in self.documents.items()}
        return data

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """The manifest from parsed JSON; ValueError when its shape is wrong (hand-edited, damaged)."""
        if not isinstance(data, dict) or not isinstance(data.get("documents"), dict):
            raise ValueError("manifest.json is not an object with a `documents` object")
        if not isinstance(data.get("files", {}), dict):
            raise ValueError("manifest.json `files` is not an object")
        docs = {k: DocumentRecord(**v) for k, v in data["documents"].items()}
        return cls(**{**data, "documents": docs})

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        return cls.from_json(json.loads((folder / MANIFEST).read_text("utf-8")))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def file_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` but the manifest, by relative POSIX path."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST
    }


def checksum_problem(folder: Path, manifest: Manifest) -> str | None:
    """What differs from the checksums recorded at write time, or None when every file matches."""
    for name, expected in manifest.files.items():
        path = folder / name
        if ".." in Path(name).parts or not path.is_file():
            return f"{name} is missing"
        if sha256_file(path) != expected:
            return f"{name} was changed after it was written (checksum mismatch)"
    return None


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
        sentences: SentenceVectors | None = None,
    ) -> None:
        self.manifest = manifest
        self.chunks = chunks
        self.faiss_index = faiss_index
        self.keyword = keyword
        self.bigrams = bigrams
        self.path = path
        #: Sentence vectors (``rag.store.sentences``); None in a version built with
        #: TONGWEN_SENTENCE_VECTORS off (or before they existed); the next ingest with it on adds them.
        self.sentences = sentences
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
    def build(
        cls,
        manifest: Manifest,
        chunks: list[ChunkRecord],
        vectors: np.ndarray,
        sentences: SentenceVectors | None = None,
    ) -> Snapshot:
        index = faiss.IndexFlatIP(manifest.dimension)
        if len(chunks):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(manifest, chunks, index, word_index(chunks), bigram_index(chunks), sentences=sentences)

    @cached_property
    def doc_freq(self) -> Counter[str]:
        """In how many chunks each keyword token occurs (for IDF weights in the support check)."""
        return Counter(t for c in self.chunks for t in set(c.tokens))

    # --- the IndexVersion protocol (rag.store.base) ------------------------------------------

    @property
    def key(self) -> str | None:
        return None if self.path is None else str(self.path)

    def dense_best(self, vectors: np.ndarray, k: int) -> dict[int, float]:
        best: dict[int, float] = {}
        for vector in vectors:
            for doc, score in self.vector_store.similarity_search_with_score_by_vector(vector.tolist(), k=k):
                pos = doc.metadata["pos"]
                best[pos] = max(best.get(pos, -1.0), float(score))
        return best

    def dense_scores(self, vectors: np.ndarray, positions: Sequence[int]) -> dict[int, float]:
        if not positions or len(vectors) == 0:
            return {}
        stored = self.faiss_index.reconstruct_batch(np.asarray(positions, dtype=np.int64))
        return best_cosines(vectors, [int(p) for p in positions], stored)

    def sentence_ranking(self, vectors: np.ndarray, k: int) -> list[int]:
        return self.sentences.chunk_ranking(vectors, k) if self.sentences is not None else []

    def keyword_search(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        return self.keyword.search(tokens, k)

    def bigram_search(self, bigrams: Sequence[str], k: int) -> list[tuple[int, float]]:
        return self.bigrams.search(bigrams, k)

    def describe(self) -> dict[str, Any]:
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()) if self.path else 0
        return {
            "engine": "faiss",
            "path": str(self.path),
            "bytes": size,
            "keyword": "local: bm25s over jieba words and character bigrams",
        }

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
        if self.sentences is not None:
            self.sentences.save(folder)
        # The manifest goes last: its presence marks the version complete, and it carries the
        # checksums of everything written before it.
        self.manifest = replace(self.manifest, files=file_checksums(folder))
        (folder / MANIFEST).write_text(json.dumps(self.manifest.to_json(), ensure_ascii=False, indent=1), "utf-8")

    @classmethod
    def read(cls, folder: Path) -> Snapshot:
        """Load a version, verifying it first; IndexCorrupt (with advice) when anything is off."""
        problem = version_problem(folder)
        if problem is not None:
            raise IndexCorrupt(f"The index at {folder} is damaged: {problem}. {repair_advice(folder.parent.parent)}")
        try:
            manifest = Manifest.read(folder)
            with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
                chunks = [ChunkRecord.from_json(json.loads(line)) for line in fh if line.strip()]
            index = faiss.read_index(str(folder / "dense.faiss"))
            fresh = retokenized(manifest, chunks, str(folder))
            if fresh is not None:
                chunks = fresh
                keyword, bigrams = word_index(chunks), bigram_index(chunks)
            else:
                keyword = KeywordIndex.load(folder / "keyword", len(chunks))
                bigrams = KeywordIndex.load(folder / "bigram", len(chunks))
            sentences = SentenceVectors.load(folder)  # None when built without (TONGWEN_SENTENCE_VECTORS)
            if sentences is not None and not sentences.fits(len(chunks), manifest.dimension):
                raise ValueError("sentences.npz does not match the chunks")
        except _LOAD_ERRORS as exc:
            advice = repair_advice(folder.parent.parent)
            raise IndexCorrupt(f"The index at {folder} is damaged ({exc}). {advice}") from exc
        if index.ntotal != len(chunks) or index.d != manifest.dimension:
            advice = repair_advice(folder.parent.parent)
            raise IndexCorrupt(f"The index at {folder} is inconsistent. {advice}")
        return cls(manifest, chunks, index, keyword, bigrams, path=folder, sentences=sentences)


# EOFError: an emptied .npy; AttributeError/TypeError: JSON of the wrong shape.
_LOAD_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, RuntimeError)


def version_problem(folder: Path) -> str | None:
    """Why a version folder cannot be served (unreadable manifest, wrong format, a file changed or
    missing, counts that disagree), or None. Reads the manifest and hashes the files; loads
    neither FAISS nor BM25, so listing versions stays cheap."""
    if not folder.is_dir():
        return "its folder is missing"
    try:
        manifest = Manifest.read(folder)
    except _LOAD_ERRORS as exc:
        return f"{MANIFEST} cannot be read ({exc})"
    if manifest.format_version != FORMAT_VERSION:
        return f"it has format {manifest.format_version}, this Tongwen reads {FORMAT_VERSION}"
    problem = checksum_problem(folder, manifest)
    if problem is not None:
        return problem
    try:
        with open(folder / "chunks.jsonl", "rb") as fh:
            lines = sum(1 for line in fh if line.strip())
    except OSError as exc:
        return f"chunks.jsonl cannot be read ({exc})"
    if sum(d.chunks for d in manifest.documents.values()) != lines:
        return "the manifest's chunk counts disagree with chunks.jsonl"
    return None


@dataclass(frozen=True)
class VersionInfo:
    """One version on disk, as `tongwen index versions` lists it."""

    name: str
    created_at: str | None
    documents: int | None
    chunks: int | None
    current: bool
    problem: str | None  # None: it verifies
    checksummed: bool

    @property
    def verifies(self) -> bool:
        return self.problem is None


def list_versions(root: Path) -> list[VersionInfo]:
    """Every version under an index root, oldest first, each verified."""
    versions = VersionedDir(root)
    current = versions.current_name()
    out = []
    for folder in versions.numbered():
        problem = version_problem(folder)
        try:
            manifest: Manifest | None = Manifest.read(folder)
        except _LOAD_ERRORS:
            manifest = None
        out.append(
            VersionInfo(
                name=folder.name,
                created_at=manifest.created_at if manifest else None,
                documents=len(manifest.documents) if manifest else None,
                chunks=sum(d.chunks for d in manifest.documents.values()) if manifest else None,
                current=folder.name == current,
                problem=problem,
                checksummed=bool(manifest and manifest.files),
            )
        )
    return out


def rollback_target(root: Path) -> VersionInfo | None:
    """The newest intact version older than the current one (any intact one but the current when
    the pointer itself is damaged), or None."""
    versions = list_versions(root)
    current = VersionedDir(root).current_name()
    candidates = [v for v in versions if v.verifies and not v.current]
    if current is not None:
        candidates = [v for v in candidates if int(v.name) < int(current)]
    return candidates[-1] if candidates else None


def repair_advice(root: Path) -> str:
    """What to run: roll back when an older version is intact (keeps documents uploaded before
    the damage), else rebuild."""
    try:
        target = rollback_target(root)
        pointer_ok = VersionedDir(root).current_name() is not None
    except OSError:
        target, pointer_ok = None, False
    if target is None:
        return _REINDEX_HINT
    about = f"version {target.name} ({target.documents} documents, {target.created_at})"
    lost = " (documents added after it are lost)" if pointer_ok else ""
    return (
        f"The last intact one is {about}: make it current with `tongwen index rollback`{lost}, "
        "or rebuild with `tongwen ingest --rebuild data/corpus` (or your documents)."
    )


def rollback(root: Path, name: str | None = None) -> VersionInfo:
    """Make version ``name`` (default: :func:`rollback_target`) current; it must verify.

    Call under the index's write lock. The damaged newer version is left on disk for inspection;
    pruning removes it in time.
    """
    versions = VersionedDir(root)
    if name is None:
        target = rollback_target(root)
        if target is None:
            raise IndexMissing(f"No intact version older than the current one under {root}. {_REINDEX_HINT}")
    else:
        known = {v.name: v for v in list_versions(root)}
        key = name if name in known else next((k for k in known if name.isdigit() and int(k) == int(name)), None)
        if key is None:
            raise IndexMissing(
                f"No version {name!r} under {root}; `tongwen index versions` lists them ({', '.join(known) or 'none'})."
            )
        target = known[key]
        if not target.verifies:
            raise IndexCorrupt(f"Version {target.name} is damaged too: {target.problem}. {_REINDEX_HINT}")
    versions.set_current(target.name)
    return replace(target, current=True)


def best_cosines(vectors: np.ndarray, positions: Sequence[int], stored: np.ndarray) -> dict[int, float]:
    """Position → best cosine over the query vectors, ``stored`` holding one unit vector per
    position (the ``dense_scores`` of every store)."""
    best = (np.asarray(vectors, dtype=np.float32) @ np.asarray(stored, dtype=np.float32).T).max(axis=0)
    return {p: float(c) for p, c in zip(positions, best, strict=True)}


def retokenized(manifest: Manifest, chunks: list[ChunkRecord], where: str) -> list[ChunkRecord] | None:
    """The chunks with their keyword tokens cut again by today's analyzer, or None when the
    version's own tokens are current (the usual case).

    A version whose keyword side was cut by other analyzers (an older release, or one from before
    the fingerprint was recorded) would rank questions cut one way against chunks cut another,
    silently: about five seconds of tokenising on load for the bundled corpus buys exact keyword
    matching back, and the next ingest writes the new tokens to disk."""
    if manifest.keyword_analyzer == analyzer_fingerprint():
        return None
    log.warning(
        "The keyword indexes at %s were built by other analyzers (%s, today %s): rebuilding them in memory. "
        "The next `tongwen ingest` saves them.",
        where,
        manifest.keyword_analyzer or "unrecorded",
        analyzer_fingerprint(),
    )
    return [replace(c, tokens=tokenize(c.canonical)) for c in chunks]


def word_index(chunks: list[ChunkRecord]) -> KeywordIndex:
    return KeywordIndex.build([c.tokens for c in chunks], WORD_BM25)


def bigram_index(chunks: list[ChunkRecord]) -> KeywordIndex:
    return KeywordIndex.build([char_bigrams(c.canonical) for c in chunks], PAIR_BM25)


def current_folder(root: Path) -> Path | None:
    """The current version's folder (None: no index yet); a damaged pointer is IndexCorrupt with advice."""
    try:
        return VersionedDir(root).current()
    except IndexCorrupt as exc:
        raise IndexCorrupt(f"{exc} {repair_advice(root)}") from None


def load_current(root: Path) -> Snapshot:
    """The current snapshot under an index root; a clear error when there is none or it's broken."""
    folder = current_folder(root)
    if folder is None:
        raise IndexMissing(
            f"No index at {root}. Build one with `tongwen ingest data/corpus` (or `tongwen serve`, "
            "which indexes the bundled corpus on first start)."
        )
    if not folder.is_dir():
        raise IndexCorrupt(f"The current index version {folder} is missing. {repair_advice(root)}")
    return Snapshot.read(folder)


def save_new_version(root: Path, snapshot: Snapshot, keep: int = KEEP_VERSIONS) -> Path:
    """Write a snapshot as the new current version (atomically) and return its folder."""
    versions = VersionedDir(root, keep=keep)
    with versions.new_version() as folder:
        snapshot.write(folder)
    current = versions.current()
    assert current is not None
    snapshot.path = current
    return current
