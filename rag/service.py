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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ingest.sources import Source, collect_sources, doc_id_for
from rag import __version__
from rag.chain import AnswerChain, Turn
from rag.config import Settings
from rag.embeddings import EmbeddingModel, load_embedding_model
from rag.errors import DocumentNotFound, IndexCorrupt, IndexMissing
from rag.generate import registry
from rag.generate.base import Generator
from rag.indexing import IngestReport, ingest_sources
from rag.rerank import Reranker, load_cross_encoder
from rag.retrieve import Hit, Query, hybrid_search
from rag.store.snapshot import Snapshot, current_folder, list_versions, load_current, save_new_version
from rag.store.snapshot import rollback as make_older_version_current
from rag.store.versions import VersionedDir

log = logging.getLogger(__name__)


def hit_dict(hit: Hit, n: int) -> dict[str, Any]:
    chunk = hit.chunk
    return {
        "n": n,
        "id": chunk.id,
        "doc": chunk.doc,
        "doc_id": chunk.doc_id,
        "heading": chunk.heading,
        "text": chunk.text,
        "score": round(hit.score, 6),
        "dense_score": None if hit.dense is None else round(hit.dense, 4),
        "keyword_score": None if hit.keyword is None else round(hit.keyword, 4),
        "location": asdict(chunk.location),
    }


def turn_dict(turn: Turn) -> dict[str, Any]:
    return {
        "answer": turn.answer,
        "found": turn.found,
        "question": turn.question,
        "asked": turn.asked,
        "script": turn.script,
        "backend": turn.backend,
        "notes": turn.notes,
        "support": round(turn.support, 4),
        "missing": turn.missing,
        "sources": [hit_dict(h, n) for n, h in enumerate(turn.hits, start=1)],
        "citations": turn.citations,
        "timings": {k: round(v * 1000, 1) for k, v in turn.timings.items()},
    }


class Tongwen:
    def __init__(self, settings: Settings | None = None, reranker: Reranker | None = None) -> None:
        self.settings = settings or Settings()
        self._reranker = reranker
        self._snapshot: Snapshot | None = None
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
    def snapshot(self) -> Snapshot:
        """The current index version. Reading the CURRENT pointer on each access (one small file)
        lets a server pick up what another process (say `tongwen ingest`) committed meanwhile."""
        snap = self._snapshot
        if snap is None or snap.path != self._current_path():
            with self._load_lock:  # checked again: another thread may have loaded it meanwhile
                snap = self._snapshot
                if snap is None or snap.path != self._current_path():
                    snap = self._snapshot = self._matching_model(load_current(self.settings.index_dir))
        return snap

    def _current_path(self) -> Path | None:
        return current_folder(self.settings.index_dir)

    def _matching_model(self, snap: Snapshot) -> Snapshot:
        """Refuse an index built with another embedding model: its vectors would be compared with
        query vectors from a different space (or of another size) and every answer would be wrong."""
        built_with = snap.manifest.embedding_model
        if built_with != self.settings.embedding_model:
            raise IndexCorrupt(
                f"The index at {self.settings.index_dir} was built with the embedding model {built_with!r}, "
                f"but TONGWEN_EMBEDDING_MODEL is {self.settings.embedding_model!r}. Re-index with "
                "`tongwen ingest --rebuild PATH`, or set the model back."
            )
        # Another backend of the same model is fine: torch and ONNX fp32 agree to cosine 0.99999,
        # int8 to ~0.997, and on the gold set torch queries against an int8-embedded index ranked
        # as well as int8 throughout (hit@5 0.989 both scripts). So no re-index when switching.
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
            snap = self.snapshot
        except IndexMissing:
            return {**out, "index": None}
        except IndexCorrupt as exc:  # reported, not raised: /health must still say what to do
            return {**out, "index": None, "index_error": {"type": type(exc).__name__, "message": str(exc)}}
        size = sum(f.stat().st_size for f in snap.path.rglob("*") if f.is_file()) if snap.path else 0
        out["index"] = {
            "documents": len(snap.manifest.documents),
            "chunks": len(snap.chunks),
            "embedding_model": snap.manifest.embedding_model,
            "embedding_backend": snap.manifest.embedding_backend,
            "dimension": snap.manifest.dimension,
            "created_at": snap.manifest.created_at,
            "path": str(snap.path),
            "bytes": size,
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

    def retrieve(self, query: str, top_k: int | None = None) -> list[dict[str, Any]]:
        from rag.chain import clean_question

        text = clean_question(query, self.settings.max_question_chars)
        top_k = top_k or self.settings.top_k
        reranker = self.reranker
        hits = hybrid_search(
            self.snapshot,
            self.model,
            Query.from_question(text),
            max(top_k, self.settings.candidate_k) if reranker else top_k,
            self.settings.candidate_k,
            self.settings.rrf_k,
            self.settings.signal_weights,
        )
        if reranker is not None:
            hits = list(reranker(text, hits))[:top_k]
        return [hit_dict(h, n) for n, h in enumerate(hits, start=1)]

    def chain(self, llm: str | None = None) -> AnswerChain:
        generator = self.generator(registry.resolve(llm, self.settings))
        return AnswerChain(self.snapshot, self.model, generator, self.settings, self.reranker)

    def ask(
        self,
        question: str,
        history: Sequence[Mapping[str, str]] = (),
        top_k: int | None = None,
        llm: str | None = None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        turn = Turn(asked=question, history=list(history), top_k=top_k or self.settings.top_k)
        turn = self.chain(llm).runnable().invoke(turn)
        turn.timings["total"] = time.perf_counter() - started
        return turn_dict(turn)

    def ask_stream(
        self,
        question: str,
        history: Sequence[Mapping[str, str]] = (),
        top_k: int | None = None,
        llm: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Events: ``question`` (condensed, with sources), ``token`` pieces, then ``final``
        (the post-checked answer, which replaces the streamed text)."""
        started = time.perf_counter()
        chain = self.chain(llm)
        turn = Turn(asked=question, history=list(history), top_k=top_k or self.settings.top_k)
        turn = chain.before_generation().invoke(turn)
        yield {
            "type": "question",
            "question": turn.question,
            "found": turn.found,
            "sources": [hit_dict(h, n) for n, h in enumerate(turn.hits, start=1)],
        }
        pieces = []
        for piece in chain.stream_answer(turn):
            pieces.append(piece)
            yield {"type": "token", "text": piece}
        turn.answer = "".join(pieces)
        turn = chain.post_check(turn)
        turn.timings["total"] = time.perf_counter() - started
        yield {"type": "final", **turn_dict(turn)}

    # -- writing -----------------------------------------------------------------------------
    def ingest(
        self,
        sources: Sequence[Source],
        delete: Iterable[str] = (),
        rebuild: bool = False,
        show_progress: bool = False,
    ) -> IngestReport:
        """Add/replace documents and delete others in one new index version.

        The previous version is read from disk under the cross-process write lock, not taken from
        memory: another process may have committed since this one loaded its snapshot, and
        building on a stale version would drop that process's documents.
        """
        model = self.model  # loaded before taking the lock, so a waiting writer holds nothing
        with self._write_lock, VersionedDir(self.settings.index_dir).write_lock(on_wait=log.warning):
            try:
                previous = None if rebuild else load_current(self.settings.index_dir)
            except IndexMissing:
                previous = None
            if previous is not None:
                self._matching_model(previous)
            snapshot, report = ingest_sources(
                list(sources), previous, model, self.settings, delete, show_progress, log.info
            )
            if snapshot is not None:
                save_new_version(self.settings.index_dir, snapshot, keep=self.settings.keep_versions)
                self._snapshot = snapshot
            elif previous is not None and (self._snapshot is None or self._snapshot.path != previous.path):
                self._snapshot = previous  # nothing changed here, but another process may have
            return report

    def versions(self) -> list[dict[str, Any]]:
        """The index versions on disk, oldest first: name, created, documents, chunks, whether it is
        current and whether it verifies (with the problem when not)."""
        return [{**asdict(v), "verifies": v.verifies} for v in list_versions(self.settings.index_dir)]

    def rollback(self, version: str | None = None) -> dict[str, Any]:
        """Make an older intact version current again (default: the newest older one that verifies).

        For a damaged current version: rebuilding from the corpus would drop every uploaded
        document, while the version before the damage is usually intact on disk. Taken under the
        write locks, so it never lands in the middle of an ingest.
        """
        with self._write_lock, VersionedDir(self.settings.index_dir).write_lock(on_wait=log.warning):
            target = make_older_version_current(self.settings.index_dir, version)
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
