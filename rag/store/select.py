"""The index store chosen by ``TONGWEN_VECTOR_STORE``: FAISS folders or Milvus collections.

Both offer the same operations to the service: what the current version is (a cheap check made
on every request), load it, publish a newly built one atomically, list versions and roll back.
Indexing builds the next version in memory the same way for both (``rag.indexing``); only where
it is written differs. Writers still serialise on the file lock in ``TONGWEN_HOME`` (see
``rag.service``), which covers replicas on one machine; replicas on several machines must leave
ingest to one of them (docs/milvus.md).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from rag.config import Settings
from rag.errors import IndexCorrupt, IndexMissing
from rag.store import snapshot as faiss_store
from rag.store.base import IndexVersion
from rag.store.snapshot import Snapshot, VersionInfo


class IndexStore(Protocol):
    name: str

    def current_key(self) -> str | None: ...

    def load_current(self) -> IndexVersion: ...

    def save_new_version(self, built: Snapshot) -> IndexVersion: ...

    def versions(self) -> list[VersionInfo]: ...

    def rollback(self, name: str | None = None) -> VersionInfo: ...

    def where(self) -> str: ...

    def capabilities(self) -> dict[str, Any]: ...


class FaissStore:
    """Version folders under ``TONGWEN_HOME/index`` (``rag.store.snapshot``, ``rag.store.versions``)."""

    name = "faiss"

    def __init__(self, settings: Settings) -> None:
        self.root: Path = settings.index_dir
        self.keep = settings.keep_versions

    def current_key(self) -> str | None:
        folder = faiss_store.current_folder(self.root)
        return None if folder is None else str(folder)

    def load_current(self) -> IndexVersion:
        return faiss_store.load_current(self.root)

    def save_new_version(self, built: Snapshot) -> IndexVersion:
        faiss_store.save_new_version(self.root, built, keep=self.keep)
        return built

    def versions(self) -> list[VersionInfo]:
        return faiss_store.list_versions(self.root)

    def rollback(self, name: str | None = None) -> VersionInfo:
        return faiss_store.rollback(self.root, name)

    def where(self) -> str:
        return str(self.root)

    def capabilities(self) -> dict[str, Any]:
        return {"engine": "faiss", "bm25": True, "keyword": "local (bm25s)"}


class MilvusIndexStore:
    """Version collections behind an alias in Milvus (``rag.store.milvus``)."""

    name = "milvus"

    def __init__(self, settings: Settings, **connection_options: Any) -> None:
        """``connection_options``: timeout and retries of :class:`rag.store.milvus_conn.MilvusConnection`."""
        from rag.store.milvus import MilvusStore
        from rag.store.milvus_conn import MilvusConnection

        conn = MilvusConnection(
            settings.milvus_address, token=settings.milvus_token, db_name=settings.milvus_db, **connection_options
        )
        self.store = MilvusStore(conn, settings.milvus_collection_prefix, keep_versions=settings.keep_versions)

    def current_key(self) -> str | None:
        return self.store.current()

    def load_current(self) -> IndexVersion:
        from rag.store.milvus_snapshot import MilvusSnapshot

        version = self.store.load_current()  # the service checks the embedding model for both stores
        sentences = self.store.read_sentences(version.collection, version.manifest.dimension)
        return MilvusSnapshot(self.store, version.collection, version.manifest, version.chunks, sentences=sentences)

    def save_new_version(self, built: Snapshot) -> IndexVersion:
        """Write the built version as a new collection (its sentence vectors in a companion) and move
        the alias to it; the bigram (and, without server BM25, word) indexes and the sentence
        vectors built in memory are reused rather than read back."""
        from rag.store.milvus_snapshot import MilvusSnapshot

        name = self.store.write_version(built.manifest, built.chunks, built.vectors(), built.sentences)
        return MilvusSnapshot(
            self.store, name, built.manifest, built.chunks, built.bigrams, built.keyword, built.sentences
        )

    def versions(self) -> list[VersionInfo]:
        current = self.store.current()
        out = []
        for name in self.store.versions():
            try:
                manifest = self.store.read_manifest(name)
            except (IndexCorrupt, IndexMissing) as exc:
                out.append(VersionInfo(name, None, None, None, name == current, str(exc), True))
                continue
            chunks = sum(d.chunks for d in manifest.documents.values())
            # "checksummed": no files of ours to hash; a version's row count is checked before it is published.
            info = VersionInfo(name, manifest.created_at, len(manifest.documents), chunks, name == current, None, True)
            out.append(info)
        return out

    def rollback(self, name: str | None = None) -> VersionInfo:
        """Point the alias at an older version (default: the newest one before the current)."""
        versions = self.versions()
        current = self.store.current()
        intact = [v for v in versions if v.verifies and not v.current]
        if name is None:
            older = [v for v in intact if current is None or v.name < current]
            if not older:
                raise IndexMissing(
                    f"No intact version older than the current one in {self.where()}. "
                    "Rebuild with `tongwen ingest --rebuild data/corpus` (or your documents)."
                )
            target = older[-1]
        else:
            matches = [v for v in versions if v.name == name]
            if not matches:
                known = ", ".join(v.name for v in versions) or "none"
                where = self.where()
                raise IndexMissing(f"No version {name!r} in {where}; `tongwen index versions` lists them ({known}).")
            target = matches[0]
            if not target.verifies:
                raise IndexCorrupt(f"Version {target.name} is damaged too: {target.problem}.")
        self.store.publish(target.name)
        return replace(target, current=True)

    def where(self) -> str:
        return self.store.conn.where

    def capabilities(self) -> dict[str, Any]:
        caps = dict(self.store.capabilities)
        caps["keyword"] = (
            "milvus BM25 (jieba analyzer) for words; bigrams local"
            if caps.get("bm25")
            else f"local: server has no BM25 ({caps.get('server_version')})"
        )
        return caps


def open_store(settings: Settings) -> IndexStore:
    """The store ``settings.vector_store`` names (Milvus is imported only when chosen)."""
    if settings.vector_store == "milvus":
        return MilvusIndexStore(settings)
    return FaissStore(settings)
