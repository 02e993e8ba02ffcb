"""Index versions in Milvus: one collection per version, an alias that points at the current one.

The same guarantees as the FAISS folders (``versions.py``): a version is built beside the current
one — a new collection ``<prefix>_v<UTC timestamp>_<random>`` holding every chunk (position,
chunk id, document id, the full chunk record as JSON, the dense vector and the canonical text) —
flushed and loaded, its sentence vectors (``rag.store.sentences``) in the companion collection
``<prefix>_s<the same stamp and suffix>``, and its manifest written to the side collection
``<prefix>_manifests``; only
then does the alias ``<prefix>_current`` move to it (``create_alias`` the first time, then
``alter_alias``, which Milvus applies atomically). Readers resolve the alias once and keep the
collection name, so they never see a half-written version, and a reader that resolved the old
one keeps working until pruning drops it (the last ``keep_versions`` stay).

Full-text search runs in Milvus where it can: a BM25 function over the canonical text with the
``jieba`` analyzer (Milvus ≥ 2.5, Milvus Lite 3.x). Older servers (2.3, 2.4) lack it; the store
detects that (``capabilities``) and the keyword side stays in local bm25s.

Why pymilvus and not ``langchain-milvus``: ``langchain_milvus.Milvus`` is a document store — it
owns its schema (text + metadata + vector, auto primary keys), writes into one fixed collection
and has no notion of a version built beside the current one and swapped by alias; it cannot page
back every stored row with its vector (a replica needs the chunk list in memory for citations,
the support check and incremental ingest); and its built-in BM25 wiring is not the hybrid we fuse
with our own bigram side. Everything here is a few ``MilvusClient`` calls, so the dependency is
pymilvus alone. Vectors are L2-normalised e5 vectors, so inner product (``IP``) is the cosine,
exactly as in the FAISS ``IndexFlatIP``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from rag.config import Settings
from rag.errors import IndexCorrupt, IndexMissing, StoreUnavailable
from rag.store.milvus_conn import MilvusConnection, check_name
from rag.store.milvus_manifest import ManifestTable
from rag.store.milvus_schema import (
    chunk_index_params,
    chunk_row,
    chunk_schema,
    sentence_index_params,
    sentence_row,
    sentence_schema,
)
from rag.store.records import ChunkRecord
from rag.store.sentences import SentenceVectors
from rag.store.snapshot import Manifest

KEEP_VERSIONS = 2
BOUNDED_AFTER_SECONDS = 10.0  # twice Milvus's default 5 s staleness window
STALE_BUILD_SECONDS = 3600  # an unpublished version older than this is a crashed build
INSERT_BATCH = 1000
READ_PAGE = 1000

ScoredPositions = list[tuple[int, float]]


class MilvusFeatureMissing(RuntimeError):
    """Asked for server-side full-text search on a Milvus without it: check ``capabilities`` first."""


@dataclass(frozen=True)
class MilvusVersion:
    """What a replica loads from the current version: its collection, manifest and chunk list."""

    collection: str
    manifest: Manifest
    chunks: list[ChunkRecord]


class MilvusStore:
    """Versioned chunk collections in one Milvus (Lite file or server). See the module docstring."""

    def __init__(self, connection: MilvusConnection, prefix: str = "tongwen", keep_versions: int = KEEP_VERSIONS):
        self.conn = connection
        self.prefix = check_name(prefix)
        self.alias = f"{prefix}_current"
        self.manifests = ManifestTable(connection, f"{prefix}_manifests")
        self.keep_versions = max(1, keep_versions)

    @classmethod
    def from_settings(cls, settings: Settings, **connection_options: Any) -> MilvusStore:
        conn = MilvusConnection(
            settings.milvus_address,
            token=settings.milvus_token,
            db_name=settings.milvus_db,
            **connection_options,
        )
        return cls(conn, settings.milvus_collection_prefix)

    @property
    def capabilities(self) -> dict[str, Any]:
        return self.conn.capabilities

    def close(self) -> None:
        self.conn.close()

    # --- versions -----------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """Version collections, oldest first (the name starts with its UTC build time)."""
        return sorted(self._collections("v"))

    def _collections(self, kind: str) -> list[str]:
        """Tongwen's collections of one kind: ``v`` versions, ``s`` their sentence vectors
        (``<prefix>_<kind><UTC build time>_<random>``)."""
        head = f"{self.prefix}_{kind}"
        names = self.conn.call("list collections", "list_collections")
        return [n for n in names if n.startswith(head) and n[len(head) :][:1].isdigit()]

    def current(self) -> str | None:
        """The collection the alias points at, or None when no version was ever published.

        One ``describe_alias`` call, cheap enough to ask before each request (as the FAISS store
        reads its ``CURRENT`` file) to notice that another process published a new version.
        """
        described = self.conn.call_or_none("resolve the current alias", "describe_alias", self.alias)
        return (described or {}).get("collection_name") or None

    def sentence_collection(self, name: str) -> str:
        """The companion collection holding version ``name``'s sentence vectors. Its name does not
        start with ``<prefix>_v``, so it is never listed as a version of its own."""
        return f"{self.prefix}_s{name[len(self.prefix) + 2 :]}"

    def _version_of(self, companion: str) -> str:
        """The version a sentence collection belongs to (the inverse of :meth:`sentence_collection`)."""
        return f"{self.prefix}_v{companion[len(self.prefix) + 2 :]}"

    def write_version(
        self,
        manifest: Manifest,
        chunks: Sequence[ChunkRecord],
        vectors: np.ndarray,
        sentences: SentenceVectors | None = None,
    ) -> str:
        """Build a version, publish it and prune old ones; returns the new collection's name."""
        name = self.build_version(manifest, chunks, vectors, sentences)
        self.publish(name)
        self.prune()
        return name

    def build_version(
        self,
        manifest: Manifest,
        chunks: Sequence[ChunkRecord],
        vectors: np.ndarray,
        sentences: SentenceVectors | None = None,
    ) -> str:
        """Write a complete, loaded version beside the current one without making it current: the
        chunks, then the sentence vectors (when the version has them), then the manifest."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
        name = f"{self.prefix}_v{stamp}_{uuid.uuid4().hex[:6]}"
        bm25 = bool(self.capabilities["bm25"])
        self.conn.call(
            "create a version collection",
            "create_collection",
            name,
            schema=chunk_schema(manifest.dimension, bm25),
            index_params=chunk_index_params(len(chunks), bm25, self.conn.server),
            consistency_level="Strong",
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._insert("insert chunks", name, len(chunks), lambda pos: chunk_row(pos, chunks[pos], vectors[pos]))
        self.conn.call("flush the version", "flush", name)
        self.conn.call("load the version", "load_collection", name)
        self._check_count(name, len(chunks))
        if sentences is not None:
            self._write_sentences(name, sentences)
        self.manifests.write(name, manifest)
        return name

    def _write_sentences(self, name: str, sentences: SentenceVectors) -> None:
        companion = self.sentence_collection(name)
        self.conn.call(
            "create the sentence collection",
            "create_collection",
            companion,
            schema=sentence_schema(sentences.vectors.shape[1]),
            index_params=sentence_index_params(),
            consistency_level="Strong",
        )
        owner = sentences.owner.tolist()
        self._insert(
            "insert sentence vectors",
            companion,
            len(owner),
            lambda row: sentence_row(row, owner[row], sentences.vectors[row]),
        )
        self.conn.call("flush the sentence vectors", "flush", companion)
        self.conn.call("load the sentence vectors", "load_collection", companion)
        try:
            self._check_count(companion, len(owner))
        except StoreUnavailable:
            self.conn.call("drop a bad build", "drop_collection", name)
            raise

    def _insert(self, what: str, name: str, count: int, row: Callable[[int], dict[str, Any]]) -> None:
        """Rows ``row(0)`` … ``row(count - 1)`` into ``name``, ``INSERT_BATCH`` per request."""
        for start in range(0, count, INSERT_BATCH):
            self.conn.call(what, "insert", name, [row(i) for i in range(start, min(start + INSERT_BATCH, count))])

    def _check_count(self, name: str, expected: int) -> None:
        """Every row exactly once before anyone can see the version. A retried insert whose first try
        did land would add rows twice (Milvus does not deduplicate primary keys on insert)."""
        stored = self._count(name)
        if stored != expected:
            self.conn.call("drop a bad build", "drop_collection", name)
            raise StoreUnavailable(
                f"{self.conn.where} stored {stored} rows for {expected} chunks (a retried write?); nothing was "
                "published and the current index is unchanged. Run the ingest again."
            )

    def _count(self, name: str) -> int:
        rows = self.conn.call(
            "count rows", "query", name, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def publish(self, name: str) -> None:
        """Point the alias at a built version: one atomic step for every reader."""
        if self.current() is None:
            self.conn.call("create the current alias", "create_alias", name, self.alias)
        else:
            self.conn.call("move the current alias", "alter_alias", name, self.alias)

    def prune(self) -> list[str]:
        """Drop versions older than the last ``keep_versions`` (never the current one) and crashed builds."""
        current = self.current()
        names = self.versions()
        if current is None:
            return []
        older = [n for n in names if n < current]
        newer = [n for n in names if n > current]
        doomed = older[: max(0, len(older) - (self.keep_versions - 1))]
        cutoff = datetime.now(UTC).timestamp() - STALE_BUILD_SECONDS
        doomed += [n for n in newer if _built_at(n, self.prefix) < cutoff]
        for name in doomed:
            self.conn.call("drop an old version", "drop_collection", name)
            self.manifests.delete(name)
        # A version's sentence vectors go with it. Those whose version no longer exists (a crash
        # between the two drops) go too, once old enough not to be a build in progress: a build
        # creates its version first, but may have done so after the listing above.
        existing = set(self.versions())
        for companion in self._collections("s"):
            version = self._version_of(companion)
            orphan = version not in existing and _built_at(version, self.prefix) < cutoff
            if version in doomed or orphan:
                self.conn.call("drop old sentence vectors", "drop_collection", companion)
        return doomed

    # --- reading back -------------------------------------------------------------------------

    def load_current(self, embedding_model: str | None = None) -> MilvusVersion:
        """Manifest and chunk records of the current version, pinned to its collection name.

        ``embedding_model``: refuse (503) a version built with another model, as the FAISS store does.
        """
        name = self.current()
        if name is None:
            raise IndexMissing(
                f"No index in {self.conn.where} (alias {self.alias}). Build one with `tongwen ingest data/corpus`."
            )
        version = self.read_version(name)
        built_with = version.manifest.embedding_model
        if embedding_model is not None and built_with != embedding_model:
            raise IndexCorrupt(
                f"The index in {self.conn.where} was built with the embedding model {built_with!r}, but "
                f"TONGWEN_EMBEDDING_MODEL is {embedding_model!r}. Re-index with `tongwen ingest --rebuild PATH`, "
                "or set the model back."
            )
        return version

    def read_version(self, name: str) -> MilvusVersion:
        manifest = self.read_manifest(name)
        self.conn.ensure_loaded(name)
        count = sum(d.chunks for d in manifest.documents.values())
        chunks = [ChunkRecord.from_json(json.loads(row["record"])) for row in self._read_rows(name, count, ["record"])]
        if len(chunks) != count:
            raise IndexCorrupt(f"Version {name} in {self.conn.where} holds {len(chunks)} chunks, its manifest {count}.")
        return MilvusVersion(name, manifest, chunks)

    def read_sentences(self, name: str, dimension: int) -> SentenceVectors | None:
        """Version ``name``'s sentence vectors, or None for a version built without them."""
        companion = self.sentence_collection(name)
        if companion not in self._collections("s"):
            return None
        self.conn.ensure_loaded(companion)
        count = self._count(companion)
        rows = self._read_rows(companion, count, ["owner", "vector"], key="row")
        if len(rows) != count:
            raise IndexCorrupt(f"The sentence vectors of {name} in {self.conn.where} read back {len(rows)} of {count}.")
        if not rows:
            return SentenceVectors.empty(dimension)
        return SentenceVectors(
            np.asarray([r["owner"] for r in rows], dtype=np.int64),
            np.asarray([r["vector"] for r in rows], dtype=np.float32),
        )

    def read_vectors(self, name: str, count: int) -> np.ndarray:
        """Every stored vector in position order (incremental ingest reuses them instead of re-embedding)."""
        rows = self._read_rows(name, count, ["vector"])
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.asarray([row["vector"] for row in rows], dtype=np.float32)

    def vectors_at(self, name: str, positions: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of a few positions (the dense side of keyword-only candidates)."""
        rows = self.conn.call(
            "read vectors",
            "query",
            name,
            filter=f"pos in {sorted(int(p) for p in positions)}",
            output_fields=["pos", "vector"],
            consistency_level=self._search_consistency(name),
        )
        return {int(row["pos"]): np.asarray(row["vector"], dtype=np.float32) for row in rows}

    def _read_rows(self, name: str, count: int, fields: list[str], key: str = "pos") -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for start in range(0, count, READ_PAGE):
            page = self.conn.call(
                "read chunks",
                "query",
                name,
                filter=f"{key} >= {start} and {key} < {start + READ_PAGE}",
                output_fields=[key, *fields],
                consistency_level="Strong",
            )
            rows.extend(sorted(page, key=lambda r: r[key]))
        return rows

    def read_manifest(self, name: str) -> Manifest:
        return self.manifests.read(name)

    # --- search -------------------------------------------------------------------------------

    def dense_search(self, name: str, vectors: np.ndarray, k: int) -> list[ScoredPositions]:
        """Top ``k`` (position, cosine) per query vector, best first."""
        data = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1).tolist()
        results = self.conn.call(
            "search vectors",
            "search",
            name,
            data=data,
            anns_field="vector",
            limit=k,
            output_fields=["pos"],
            search_params={"metric_type": "IP"},
            consistency_level=self._search_consistency(name),
        )
        return [[(int(hit["entity"]["pos"]), float(hit["distance"])) for hit in hits] for hits in results]

    def dense_best(self, name: str, vectors: np.ndarray, k: int) -> dict[int, float]:
        """Best cosine per position over several query vectors, as
        ``rag.retrieve.hybrid_search`` computes it from FAISS: a drop-in for that dense side."""
        best: dict[int, float] = {}
        for hits in self.dense_search(name, vectors, k):
            for pos, cosine in hits:
                best[pos] = max(best.get(pos, -1.0), cosine)
        return best

    def keyword_search(self, name: str, text: str, k: int) -> ScoredPositions:
        """Top ``k`` (position, BM25 score) for a canonical-text query, tokenised by Milvus's jieba analyzer."""
        self._need_bm25()
        if not text.strip():
            return []
        results = self.conn.call(
            "search text",
            "search",
            name,
            data=[text],
            anns_field="sparse",
            limit=k,
            output_fields=["pos"],
            search_params={"metric_type": "BM25"},
            consistency_level=self._search_consistency(name),
        )
        # Milvus Lite reports BM25 as a negative distance; the score itself is never negative.
        return [(int(hit["entity"]["pos"]), abs(float(hit["distance"]))) for hit in results[0]]

    def hybrid_search(
        self, name: str, vectors: np.ndarray, text: str, k: int, candidate_k: int = 30, rrf_k: int = 60
    ) -> ScoredPositions:
        """Milvus-side fusion: one dense request per query vector plus BM25, merged by ``RRFRanker(rrf_k)``.

        Returns (position, fused RRF score), best first. Needs ``capabilities["bm25"]``.
        """
        from pymilvus import AnnSearchRequest, RRFRanker

        self._need_bm25()
        reqs = [
            AnnSearchRequest(data=[v.tolist()], anns_field="vector", param={"metric_type": "IP"}, limit=candidate_k)
            for v in np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        ]
        if text.strip():
            reqs.append(
                AnnSearchRequest(data=[text], anns_field="sparse", param={"metric_type": "BM25"}, limit=candidate_k)
            )
        results = self.conn.call(
            "run a hybrid search",
            "hybrid_search",
            name,
            reqs=reqs,
            ranker=RRFRanker(rrf_k),
            limit=k,
            output_fields=["pos"],
            consistency_level=self._search_consistency(name),
        )
        return [(int(hit["entity"]["pos"]), float(hit["distance"])) for hit in results[0]]

    @staticmethod
    def _search_consistency(name: str) -> str:
        """Strong only while a version is fresh: a published version never changes, and once it is
        older than Milvus's bounded-staleness window (5 s by default) Bounded sees every row too, without
        Strong's wait for the newest timestamp (about 25 ms per search in Milvus Lite here)."""
        return "Bounded" if time.time() - _built_at_any(name) > BOUNDED_AFTER_SECONDS else "Strong"

    def _need_bm25(self) -> None:
        if not self.capabilities["bm25"]:
            raise MilvusFeatureMissing(
                f"{self.conn.where} ({self.capabilities['server_version']}) has no BM25 full-text search; "
                "keep the keyword side local (bm25s)."
            )


def _built_at(name: str, prefix: str) -> float:
    stamp = name[len(prefix) + 2 :].split("_", 1)[0]
    try:
        return datetime.strptime(stamp, "%Y%m%d%H%M%S%f").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return time.time()


def _built_at_any(name: str) -> float:
    """Build time from a version name whatever its prefix (``<prefix>_v<stamp>_<random>``)."""
    head, sep, _ = name.rpartition("_")
    stamp = head.rpartition("_v")[2] if sep else ""
    try:
        return datetime.strptime(stamp, "%Y%m%d%H%M%S%f").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return time.time()  # unknown name (an alias?): treat as fresh, i.e. Strong
