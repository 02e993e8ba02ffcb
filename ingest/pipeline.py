"""Ingest: files → cleaned text → chunks → vectors → a new index version on disk.

Unchanged files (same name, same content hash) are skipped; a changed file replaces its old
chunks; every other document's vectors are reused, not recomputed. The new version is written
beside the old one and switched in atomically, so a crash leaves the old index in service.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np

from ingest.chunk import chunk_document
from ingest.clean import clean_text
from ingest.load import SUPPORTED_SUFFIXES, LoadedDocument, load_bytes
from rag.config import Settings
from rag.embeddings import EmbeddingModel
from rag.errors import DocumentNotFound, EmptyDocument, TongwenError, UnsupportedFileType
from rag.normalise import canonical
from rag.store.keyword import tokenize
from rag.store.records import ChunkRecord, DocumentRecord, Location
from rag.store.snapshot import FORMAT_VERSION, Manifest, Snapshot

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """A document to ingest: its file name and raw bytes (from disk or an upload)."""

    name: str
    data: bytes


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
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


def doc_id_for(name: str) -> str:
    """A short, stable id from the file name: the name is the document's identity."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]


def collect_sources(paths: Iterable[Path]) -> list[Source]:
    """Files named directly, plus supported files found under named folders (sorted, stable)."""
    sources: list[Source] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        elif path.is_file():
            files = [path]
        else:
            raise DocumentNotFound(f"No such file or folder: {path}")
        sources.extend(Source(f.name, f.read_bytes()) for f in files)
    return sources


def last_of_each_name(items: Iterable[T], name_of: Callable[[T], str]) -> tuple[list[T], list[str]]:
    """Keep one item per file name, the last one given, and list the names that repeated.

    The name is the document's identity (its doc_id), so two copies in one batch would both land
    under one id: duplicate chunk ids and a manifest that counts only one copy's chunks, which
    every later load rejects as inconsistent. "Last wins" matches what uploading the two files
    one after the other would leave behind.
    """
    latest: dict[str, T] = {}
    repeated: list[str] = []
    for item in items:
        name = name_of(item)
        if name in latest:
            del latest[name]  # re-inserted below: the kept copy takes the later position
            if name not in repeated:
                repeated.append(name)
        latest[name] = item
    return list(latest.values()), repeated


def chunk_loaded(loaded: LoadedDocument, doc_id: str, model: EmbeddingModel, settings: Settings) -> list[ChunkRecord]:
    """Clean and chunk one loaded document into index records (not yet embedded)."""
    cleaned = clean_text(loaded.text)
    chunks = chunk_document(cleaned, model.count_tokens, settings.chunk_max_tokens, settings.chunk_overlap_tokens)
    records = []
    for seq, chunk in enumerate(chunks):
        first, last = chunk.pieces[0], chunk.pieces[-1]
        start = cleaned.original_span(first.block, first.start, first.end)[0]
        end = cleaned.original_span(last.block, last.start, last.end)[1]
        page = None
        if loaded.pages:
            page = bisect.bisect_right(loaded.pages, start)
        embed_text = canonical(f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text)
        records.append(
            ChunkRecord(
                id=f"{doc_id}:{seq}",
                doc_id=doc_id,
                doc=loaded.name,
                seq=seq,
                heading=chunk.heading,
                text=chunk.text,
                canonical=embed_text,
                tokens=tokenize(embed_text),
                location=Location(
                    start=start,
                    end=end,
                    line_start=cleaned.line_of(start),
                    line_end=cleaned.line_of(max(start, end - 1)),
                    page=page,
                ),
            )
        )
    return records


def ingest_sources(
    sources: list[Source],
    previous: Snapshot | None,
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
            records = chunk_loaded(loaded, doc_id, model, settings)
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

    if not report.changed:
        report.seconds = time.perf_counter() - started
        return None, report

    replaced = {doc_id for doc_id in old_docs if doc_id not in docs or docs[doc_id] is not old_docs[doc_id]}
    kept_positions = [i for i, c in enumerate(previous.chunks) if c.doc_id not in replaced] if previous else []
    kept_vectors = previous.vectors()[kept_positions] if previous else np.zeros((0, model.dimension), np.float32)
    say(f"Embedding {len(new_records)} chunks")
    new_vectors = (
        model.embed_passages([r.canonical for r in new_records], show_progress=show_progress)
        if new_records
        else np.zeros((0, model.dimension), np.float32)
    )
    report.chunks_embedded = len(new_records)
    chunks = [previous.chunks[i] for i in kept_positions] if previous else []
    chunks += new_records
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        embedding_model=model.name,
        embedding_backend=model.backend,
        dimension=model.dimension,
        chunk_max_tokens=settings.chunk_max_tokens,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        documents=docs,
    )
    snapshot = Snapshot.build(manifest, chunks, np.vstack([kept_vectors, new_vectors]))
    report.seconds = time.perf_counter() - started
    return snapshot, report
