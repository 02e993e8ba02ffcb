"""The library facade: the one object the CLI, the HTTP API, the UI and the evaluation share.

Every surface is a thin layer over these methods, so the three cannot drift apart. The current
index snapshot is an immutable object swapped by reference after a write (copy-on-write): a
question in flight keeps the snapshot it started with while an ingest builds the next one, and
writes are serialised: by a threading lock within the process and the index's file lock across
processes.

A damaged index is not cached: every call that needs it fails with the repair advice (503 over
HTTP) until someone rolls back to an intact version or rebuilds, after which the next call loads
the new current version without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ingest.sentences import split_sentences
from ingest.sources import Source, collect_sources, doc_id_for
from rag import __version__, results
from rag.chain import AnswerChain, Turn
from rag.config import Settings
from rag.embeddings import EmbeddingModel, load_embedding_model
from rag.errors import DocumentNotFound, IndexCorrupt, IndexMissing, StoreUnavailable
from rag.generate import registry
from rag.generate.base import GenerationOptions, Generator
from rag.indexing import IngestReport, ingest_sources
from rag.rerank import Reranker, load_cross_encoder
from rag.results import Answer, FinalEvent, QuestionEvent, TokenEvent, numbered
from rag.retrieve import Query, hybrid_search
from rag.store.base import IndexVersion
from rag.store.records import ChunkRecord
from rag.store.select import IndexStore, open_store
from rag.store.versions import VersionedDir
from rag.titles import titles_of

log = logging.getLogger(__name__)


def new_text(previous: ChunkRecord | None, chunk: ChunkRecord) -> str:
    """The part of ``chunk`` not already in ``previous``: chunks of one section repeat the last
    sentences of the chunk before them (the overlap), which a reader should see only once."""
    text = chunk.text
    if previous is None or previous.heading != chunk.heading or chunk.location.start >= previous.location.end:
        return text
    shared = 0
    for _, end in split_sentences(text):
        if previous.text.endswith(text[:end].rstrip("\n")):
            shared = end
    return text[shared:].lstrip("\n")


class Tongwen:
    def __init__(self, settings: Settings | None = None, reranker: Reranker | None = None) -> None:
        self.settings = settings or Settings()
        self._reranker = reranker
        self._snapshot: IndexVersion | None = None
        self._store: IndexStore | None = None
        self._write_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._resources_lock = threading.Lock()  # model and generators; never held while loading an index
        self._model: EmbeddingModel | None = None
        self._generators: dict[str, Generator] = {}

    # -- resources ---------------------------------------------------------------------------
    @property
    def model(self) -> EmbeddingModel:
        """Loaded (and built, on the very first run) once per service: re-checking the build on
        every question would cost a dozen file stats under a process-wide lock."""
        if self._model is None:
            with self._resources_lock:
                if self._model is None:
                    self._model = load_embedding_model(self.settings, progress=log.warning)
        return self._model

    @property
    def reranker(self) -> Reranker | None:
        """The reranker given to the constructor, else the CrossEncoder at ``TONGWEN_RERANKER``
        (loaded on first use), else None: the fused ranking stands."""
        if self._reranker is None and self.settings.reranker:
            with self._resources_lock:
                if self._reranker is None:
                    self._reranker = load_cross_encoder(self.settings.reranker)
        return self._reranker

    def count_tokens(self, text: str) -> int:
        """Tokens of a text by the embedding model's tokenizer, without its two special tokens: the
        one tokenizer every backend has (the HTTP API's ``usage`` and ``max_tokens`` use it)."""
        if not text:
            return 0
        valid = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates count as one token each
        return self.model.count_tokens([valid])[0] - 2

    def generator(self, backend: str) -> Generator:
        """One generator per backend for this service's lifetime (an LLM server starts once)."""
        with self._resources_lock:
            if backend not in self._generators:
                self._generators[backend] = registry.build(backend, self.settings)
            return self._generators[backend]

    @property
    def store(self) -> IndexStore:
        """Where index versions live (``TONGWEN_VECTOR_STORE``): one per service, so a Milvus
        connection is opened once."""
        if self._store is None:
            with self._resources_lock:
                if self._store is None:
                    self._store = open_store(self.settings)
        return self._store

    @property
    def snapshot(self) -> IndexVersion:
        """The current index version. Asking the store for the current one on each access (one
        small file for FAISS, one alias lookup for Milvus) lets a server pick up what another
        process (say `tongwen ingest`) committed meanwhile."""
        snap = self._snapshot
        if snap is None or snap.key != self.store.current_key():
            with self._load_lock:  # checked again: another thread may have loaded it meanwhile
                snap = self._snapshot
                if snap is None or snap.key != self.store.current_key():
                    snap = self._snapshot = self._matching_model(self.store.load_current())
        return snap

    def _matching_model(self, snap: IndexVersion) -> IndexVersion:
        """Refuse an index built with another embedding model: its vectors would be compared with
        query vectors from a different space (or of another size) and every answer would be wrong."""
        built_with = snap.manifest.embedding_model
        if built_with != self.settings.embedding_model:
            raise IndexCorrupt(
                f"The index at {self.store.where()} was built with the embedding model {built_with!r}, "
                f"but TONGWEN_EMBEDDING_MODEL is {self.settings.embedding_model!r}. Re-index with "
                "`tongwen ingest --rebuild PATH`, or set the model back."
            )
        # Another backend of the same model is fine: torch and ONNX fp32 agree to cosine 0.99999,
        # int8 to ~0.997, and on the gold set torch queries against an int8-embedded index ranked
        # as well as int8 throughout (hit@5 0.989 both scripts). So no re-index when switching.
        if self.settings.keeps_sentence_vectors and snap.sentences is None:
            log.warning(
                "TONGWEN_SENTENCE_VECTORS is on but the index at %s has no sentence vectors: served "
                "without the sentence_dense ranking until the next `tongwen ingest` adds them",
                self.store.where(),
            )
        if snap.manifest.embedding_backend != self.settings.embedding_backend:
            log.info(
                "Index embedded by the %s backend, queries by %s (same model; compatible vectors)",
                snap.manifest.embedding_backend,
                self.settings.embedding_backend,
            )
        return snap

    def index_error(self) -> IndexMissing | IndexCorrupt | None:
        """Why there is no index to serve (none yet, or damaged), or None when it loads."""
        try:
            self.snapshot  # noqa: B018 - loading is the check
        except (IndexMissing, IndexCorrupt) as exc:
            return exc
        return None

    def has_index(self) -> bool:
        return self.index_error() is None

    def ensure_index(self, show_progress: bool = False) -> IngestReport | None:
        """Index the bundled corpus when no index exists yet (first start of `tongwen serve`).

        A damaged index is left alone: rebuilding it from the bundled corpus would silently drop
        the user's own documents. The caller reports it (see :meth:`index_error`) and serves anyway.
        """
        problem = self.index_error()
        if problem is None:
            return None
        if isinstance(problem, IndexCorrupt):
            log.error("%s", problem)
            return None
        log.warning("No index yet: indexing %s (first start only)", self.settings.corpus_path)
        return self.ingest_paths([self.settings.corpus_path], show_progress=show_progress)

    # -- reading -----------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": __version__,
            "embedding_model": self.settings.embedding_model,
            "embedding_backend": self.settings.embedding_backend,
            "generator": registry.resolve(None, self.settings),
            "index_dir": str(self.settings.index_dir),
            "index_error": None,
        }
        try:
            out["store"] = {"name": self.store.name, "where": self.store.where(), **self.store.capabilities()}
        except StoreUnavailable as exc:
            out["store"] = {"name": self.settings.vector_store, "error": str(exc)}
            return {**out, "index": None, "index_error": {"type": type(exc).__name__, "message": str(exc)}}
        try:
            snap = self.snapshot
        except IndexMissing:
            return {**out, "index": None}
        except (IndexCorrupt, StoreUnavailable) as exc:  # reported, not raised: /health must say what to do
            return {**out, "index": None, "index_error": {"type": type(exc).__name__, "message": str(exc)}}
        described = snap.describe()
        out["index"] = {
            "documents": len(snap.manifest.documents),
            "chunks": len(snap.chunks),
            "embedding_model": snap.manifest.embedding_model,
            "embedding_backend": snap.manifest.embedding_backend,
            "dimension": snap.manifest.dimension,
            "created_at": snap.manifest.created_at,
            "path": described.get("path") or described.get("collection"),
            "bytes": described.get("bytes"),
            "store": described,
            # How the dense side was built: an index from before the sentence vectors (or built
            # with them off) is served without the sentence ranking, and only a log line said so.
            "chunk_vectors": snap.manifest.chunk_vectors,
            "sentence_vectors": 0 if snap.sentences is None else len(snap.sentences.owner),
        }
        return out

    def documents(self, strict: bool = False) -> list[dict[str, Any]]:
        """The indexed documents, by name; none when there is no index yet.

        A damaged index lists nothing too unless ``strict``: the chat UI is built from this list
        and must still come up to show the re-index advice. The HTTP API asks strictly.
        """
        try:
            docs = self.snapshot.manifest.documents.values()
        except IndexMissing:
            return []
        except IndexCorrupt:
            if strict:
                raise
            return []
        return [asdict(d) for d in sorted(docs, key=lambda d: d.name)]

    def document_view(self, ref: str) -> dict[str, Any]:
        """One document as the index holds it: title, record, its chunks and its cleaned text.

        The index keeps no separate copy of a document's text: the text is its chunks read in
        order, each chunk's overlap with the previous one (whole sentences the chunker repeats)
        left out, so ``passages`` tile the text once and every passage keeps its chunk's location.
        """
        doc_id = self.resolve_doc(ref)
        snap = self.snapshot
        record = snap.manifest.documents[doc_id]
        chunks = sorted((c for c in snap.chunks if c.doc_id == doc_id), key=lambda c: c.seq)
        passages, previous = [], None
        for chunk in chunks:
            passages.append(
                {
                    "id": chunk.id,
                    "seq": chunk.seq,
                    "heading": chunk.heading,
                    "text": new_text(previous, chunk),
                    "location": asdict(chunk.location),
                }
            )
            previous = chunk
        return {
            **asdict(record),
            "title": titles_of(snap)[doc_id],
            "text": "\n".join(p["text"] for p in passages),
            "passages": passages,
            "chunks": [
                {"id": c.id, "seq": c.seq, "heading": c.heading, "text": c.text, "location": asdict(c.location)}
                for c in chunks
            ],
        }

    def document_titles(self) -> dict[str, str]:
        """doc_id -> title (see :mod:`rag.titles`), for lists that show titles, not file names."""
        return titles_of(self.snapshot)

    def retrieve(self, query: str, top_k: int | None = None) -> list[results.Source]:
        from rag.chain import clean_question

        text = clean_question(query, self.settings.max_question_chars)
        top_k = top_k or self.settings.top_k
        reranker = self.reranker
        snapshot = self.snapshot  # one version for the search and the titles
        hits = hybrid_search(
            snapshot,
            self.model,
            Query.from_question(text),
            max(top_k, self.settings.candidate_k) if reranker else top_k,
            self.settings.candidate_k,
            self.settings.rrf_k,
            self.settings.signal_weights,
        )
        if reranker is not None:
            hits = list(reranker(text, hits))[:top_k]
        return numbered(hits, titles_of(snapshot))

    def chain(self, llm: str | None = None) -> AnswerChain:
        generator = self.generator(registry.resolve(llm, self.settings))
        return AnswerChain(self.snapshot, self.model, generator, self.settings, self.reranker)

    def ask(
        self,
        question: str,
        history: Sequence[Mapping[str, str]] = (),
        top_k: int | None = None,
        llm: str | None = None,
        options: GenerationOptions | None = None,
    ) -> Answer:
        started = time.perf_counter()
        turn = Turn(question, list(history), top_k or self.settings.top_k, options or GenerationOptions())
        chain = self.chain(llm)
        turn = chain.runnable().invoke(turn)
        turn.timings["total"] = time.perf_counter() - started
        return Answer.from_turn(turn, titles_of(chain.snapshot))

    def ask_stream(
        self,
        question: str,
        history: Sequence[Mapping[str, str]] = (),
        top_k: int | None = None,
        llm: str | None = None,
        options: GenerationOptions | None = None,
    ) -> Iterator[QuestionEvent | TokenEvent | FinalEvent]:
        """Events: ``question`` (condensed, with sources), ``token`` pieces, then ``final``
        (the post-checked answer, which replaces the streamed text)."""
        started = time.perf_counter()
        chain = self.chain(llm)
        turn = Turn(question, list(history), top_k or self.settings.top_k, options or GenerationOptions())
        turn = chain.before_generation().invoke(turn)
        titles = titles_of(chain.snapshot)
        yield QuestionEvent(
            question=turn.question, found=turn.found, sources=numbered(turn.hits, titles), small_talk=turn.small_talk
        )
        pieces = []
        for piece in chain.stream_answer(turn):
            pieces.append(piece)
            yield TokenEvent(text=piece)
        turn.answer = "".join(pieces)
        turn = chain.post_check(turn)
        turn.timings["total"] = time.perf_counter() - started
        yield FinalEvent.from_turn(turn, titles)

    # -- writing -----------------------------------------------------------------------------
    def ingest(
        self,
        sources: Sequence[Source],
        delete: Iterable[str] = (),
        rebuild: bool = False,
        show_progress: bool = False,
        on_progress: Callable[[str], None] | None = None,
    ) -> IngestReport:
        """Add/replace documents and delete others in one new index version.

        ``on_progress`` hears the pipeline's steps ("Reading NAME", "Embedding N chunks"; the UI
        shows them in Chinese); by default they go to the log.

        The previous version is read from disk under the cross-process write lock, not taken from
        memory: another process may have committed since this one loaded its snapshot, and
        building on a stale version would drop that process's documents.
        """
        model = self.model  # loaded before taking the lock, so a waiting writer holds nothing
        with self._write_lock, VersionedDir(self.settings.index_dir).write_lock(on_wait=log.warning):
            try:
                previous = None if rebuild else self.store.load_current()
            except IndexMissing:
                previous = None
            if previous is not None:
                self._matching_model(previous)
            snapshot, report = ingest_sources(
                list(sources), previous, model, self.settings, delete, show_progress, on_progress or log.info
            )
            if snapshot is not None:
                self._snapshot = self.store.save_new_version(snapshot)
            elif previous is not None and (self._snapshot is None or self._snapshot.key != previous.key):
                self._snapshot = previous  # nothing changed here, but another process may have
            return report

    def versions(self) -> list[dict[str, Any]]:
        """The index versions on disk, oldest first: name, created, documents, chunks, whether it is
        current and whether it verifies (with the problem when not)."""
        return [{**asdict(v), "verifies": v.verifies} for v in self.store.versions()]

    def rollback(self, version: str | None = None) -> dict[str, Any]:
        """Make an older intact version current again (default: the newest older one that verifies).

        For a damaged current version: rebuilding from the corpus would drop every uploaded
        document, while the version before the damage is usually intact on disk. Taken under the
        write locks, so it never lands in the middle of an ingest.
        """
        with self._write_lock, VersionedDir(self.settings.index_dir).write_lock(on_wait=log.warning):
            target = self.store.rollback(version)
            self._snapshot = None
        log.info("Rolled the index back to version %s", target.name)
        return {**asdict(target), "verifies": target.verifies}

    def ingest_paths(self, paths: Iterable[Path], rebuild: bool = False, show_progress: bool = False) -> IngestReport:
        return self.ingest(collect_sources(paths), rebuild=rebuild, show_progress=show_progress)

    def resolve_doc(self, ref: str) -> str:
        """A document id from an id or a file name."""
        docs = self.snapshot.manifest.documents
        if ref in docs:
            return ref
        if doc_id_for(ref) in docs:
            return doc_id_for(ref)
        raise DocumentNotFound(f"No document {ref!r} in the index (see `tongwen index info`).")

    def delete(self, ref: str) -> IngestReport:
        return self.ingest([], delete=[self.resolve_doc(ref)])
