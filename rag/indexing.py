"""Indexing: documents → chunk records → vectors → the next index snapshot.

Unchanged files (same name, same content hash) are skipped; a changed file replaces its old
chunks; every other document's vectors are reused, not recomputed. The caller (the service)
writes the snapshot as a new version beside the old one and switches it in atomically, so a crash
leaves the old index in service.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ingest.load import SUPPORTED_SUFFIXES, LoadedDocument, load_bytes
from ingest.pipeline import chunk_loaded
from ingest.sources import Source, doc_id_for, last_of_each_name
from rag.config import Settings
from rag.embeddings import EmbeddingModel
from rag.errors import EmptyDocument, TongwenError, UnsupportedFileType
from rag.store.base import IndexVersion
from rag.store.keyword import analyzer_fingerprint, tokenize
from rag.store.records import ChunkRecord, DocumentRecord
from rag.store.sentences import SentenceVectors
from rag.store.snapshot import CHUNK_VECTORS_EMBEDDED, CHUNK_VECTORS_POOLED, FORMAT_VERSION, Manifest, Snapshot

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What one ingest did. ``failed`` maps a name to its message and ``failed_kinds`` to the
    error class, so a caller can answer with the right status (413/415/422) without parsing text.
    ``duplicates`` lists names given more than once in the batch; only the last copy was used."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    failed_kinds: dict[str, type[TongwenError]] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    #: Sentence rows added (rag.store.sentences); a sentence the chunk overlap repeats counts per chunk.
    sentences_embedded: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


def index_records(loaded: LoadedDocument, doc_id: str, model: EmbeddingModel, settings: Settings) -> list[ChunkRecord]:
    """The index records of one loaded document (not yet embedded)."""
    chunks = chunk_loaded(loaded, model.count_tokens, settings.chunk_max_tokens, settings.chunk_overlap_tokens)
    return [
        ChunkRecord(
            id=f"{doc_id}:{seq}",
            doc_id=doc_id,
            doc=loaded.name,
            seq=seq,
            heading=chunk.heading,
            text=chunk.text,
            canonical=chunk.canonical,
            tokens=tokenize(chunk.canonical),
            location=chunk.location,
        )
        for seq, chunk in enumerate(chunks)
    ]


def ingest_sources(
    sources: list[Source],
    previous: IndexVersion | None,
    model: EmbeddingModel,
    settings: Settings,
    delete: Iterable[str] = (),
    show_progress: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[Snapshot | None, IngestReport]:
    """Compute the next snapshot from the previous one; None when nothing changed.

    A file that fails to load is reported and skipped: the rest of the batch still lands, and
    nothing of the bad file enters the index. A name given twice counts once (the last copy).
    """
    started = time.perf_counter()
    report = IngestReport()
    sources, report.duplicates = last_of_each_name(sources, lambda s: s.name)
    for name in report.duplicates:
        log.warning("%s was given more than once in one batch; only the last copy is ingested", name)
    say = on_progress or (lambda _msg: None)
    old_docs = dict(previous.manifest.documents) if previous else {}
    docs = dict(old_docs)
    new_records: list[ChunkRecord] = []

    for doc_id in delete:
        if doc_id in docs:
            report.deleted.append(docs.pop(doc_id).name)
    for source in sources:
        doc_id = doc_id_for(source.name)
        digest = hashlib.sha256(source.data).hexdigest()
        if doc_id in docs and docs[doc_id].sha256 == digest:
            report.unchanged.append(source.name)
            continue
        try:
            if Path(source.name).suffix.lower() not in SUPPORTED_SUFFIXES:
                raise UnsupportedFileType(
                    f"{source.name}: unsupported type; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
                )
            say(f"Reading {source.name}")
            loaded = load_bytes(source.data, source.name)
            records = index_records(loaded, doc_id, model, settings)
            if not records:
                raise EmptyDocument(f"{source.name}: no text left to index after cleaning")
        except TongwenError as exc:
            report.failed[source.name] = str(exc)
            report.failed_kinds[source.name] = type(exc)
            continue
        (report.updated if doc_id in docs else report.added).append(source.name)
        docs[doc_id] = DocumentRecord(
            doc_id=doc_id,
            name=source.name,
            sha256=digest,
            kind=loaded.kind,
            encoding=loaded.encoding,
            chars=len(loaded.text),
            chunks=len(records),
            ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        new_records.extend(records)

    # A version cut by other keyword analyzers was cut again when it was read (see
    # rag.store.snapshot.retokenized); writing it out, even with no document changed, saves every
    # later load that work. Nothing is embedded again.
    recut = previous is not None and previous.manifest.keyword_analyzer != analyzer_fingerprint()
    # Sentence vectors (rag.store.sentences), when asked for, are kept by either store, and the
    # chunk vectors are then pooled from them. A version whose chunk vectors were made the other
    # way, or that lacks its sentence vectors, gets all of them again on the next ingest, even
    # with no document changed: one version never mixes the two kinds of chunk vector.
    with_sentences = settings.keeps_sentence_vectors
    mode = CHUNK_VECTORS_POOLED if with_sentences else CHUNK_VECTORS_EMBEDDED
    remade = (
        previous is not None
        and bool(previous.chunks)
        and (previous.manifest.chunk_vectors != mode or (with_sentences and previous.sentences is None))
    )
    if not report.changed and not recut and not remade:
        report.seconds = time.perf_counter() - started
        return None, report

    replaced = {doc_id for doc_id in old_docs if doc_id not in docs or docs[doc_id] is not old_docs[doc_id]}
    kept_positions = [i for i, c in enumerate(previous.chunks) if c.doc_id not in replaced] if previous else []
    chunks = [previous.chunks[i] for i in kept_positions] if previous else []
    chunks += new_records
    first = 0 if remade else len(chunks) - len(new_records)  # the first chunk whose vectors are made now
    # Positions before ``first`` keep what the previous version stored for them.
    keeps = previous is not None and first > 0
    kept_vectors = previous.vectors()[kept_positions] if keeps else np.zeros((0, model.dimension), np.float32)
    new_vectors, fresh = chunk_vectors(chunks[first:], first, model, with_sentences, say, show_progress)
    report.chunks_embedded = len(chunks) - first
    sentences = None
    if fresh is not None:
        stored = previous.sentences if keeps else None
        kept = stored.kept(kept_positions) if stored is not None else SentenceVectors.empty(model.dimension)
        sentences = kept.plus(fresh)
        report.sentences_embedded = len(fresh.owner)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        embedding_model=model.name,
        embedding_backend=model.backend,
        dimension=model.dimension,
        chunk_max_tokens=settings.chunk_max_tokens,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        documents=docs,
        keyword_analyzer=analyzer_fingerprint(),
        chunk_vectors=mode,
    )
    snapshot = Snapshot.build(manifest, chunks, np.vstack([kept_vectors, new_vectors]), sentences)
    report.seconds = time.perf_counter() - started
    return snapshot, report


def chunk_vectors(
    chunks: list[ChunkRecord],
    first: int,
    model: EmbeddingModel,
    with_sentences: bool,
    say: Callable[[str], None],
    show_progress: bool = False,
) -> tuple[np.ndarray, SentenceVectors | None]:
    """The vectors of ``chunks`` (index positions ``first``, ``first`` + 1, …) and, when sentence
    vectors are kept, theirs: then each chunk's vector is the mean of its sentences' (one encoder
    pass over the text instead of two), and only a chunk with no sentence is embedded whole."""

    def embed(texts: list[str], unit: str = "chunk") -> np.ndarray:
        if not texts:
            return np.zeros((0, model.dimension), np.float32)
        return model.embed_passages(texts, show_progress=show_progress, unit=unit)

    if not with_sentences:
        say(f"Embedding {len(chunks)} chunks")
        return embed([c.canonical for c in chunks]), None
    say(f"Embedding {len(chunks)} chunks, sentence by sentence")
    sentences = SentenceVectors.embed(chunks, lambda texts: embed(texts, "sentence"), model.dimension, first=first)
    vectors, without = sentences.pooled(len(chunks), first)
    if without:
        vectors[without] = embed([chunks[i].canonical for i in without])
    return vectors, sentences
