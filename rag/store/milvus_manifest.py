"""Each Milvus index version's manifest, kept in one small side collection.

A manifest (embedding model, chunking settings, documents) can outgrow one VARCHAR (64 KiB), so
it is stored as JSON split into numbered parts, keyed by the version's collection name. It is
written after the version's rows and before the alias moves, so a reader that resolved the alias
always finds it.
"""

from __future__ import annotations

import json

from rag.errors import IndexCorrupt
from rag.store.milvus_conn import MilvusConnection
from rag.store.milvus_schema import manifest_index_params, manifest_schema
from rag.store.snapshot import Manifest

PART_CHARS = 16000  # ≤ 4 bytes per char in UTF-8, so a part always fits Milvus's 65,535-byte VARCHAR


class ManifestTable:
    def __init__(self, conn: MilvusConnection, collection: str) -> None:
        self.conn = conn
        self.collection = collection

    def write(self, version: str, manifest: Manifest) -> None:
        if not self.conn.call("look for the manifest collection", "has_collection", self.collection):
            self.conn.call(
                "create the manifest collection",
                "create_collection",
                self.collection,
                schema=manifest_schema(),
                index_params=manifest_index_params(),
                consistency_level="Strong",
            )
        body = json.dumps(manifest.to_json(), ensure_ascii=False)
        parts = [body[i : i + PART_CHARS] for i in range(0, len(body), PART_CHARS)] or [""]
        rows = [
            {"key": f"{version}:{i}", "version": version, "part": i, "body": p, "vector": [0.0, 0.0]}
            for i, p in enumerate(parts)
        ]
        # upsert, not insert: a retry after a write that did land must not duplicate parts
        self.conn.call("write the manifest", "upsert", self.collection, rows)
        self.conn.call("flush the manifest", "flush", self.collection)

    def read(self, version: str) -> Manifest:
        self.conn.ensure_loaded(self.collection)
        rows = self.conn.call(
            "read the manifest",
            "query",
            self.collection,
            filter=f'version == "{version}"',
            output_fields=["part", "body"],
            consistency_level="Strong",
        )
        if not rows:
            raise IndexCorrupt(
                f"Version {version} in {self.conn.where} has no manifest. "
                "Re-index with `tongwen ingest --rebuild PATH`."
            )
        parts = {int(r["part"]): r["body"] for r in rows}
        try:
            return Manifest.from_json(json.loads("".join(parts[i] for i in sorted(parts))))
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(
                f"The manifest of {version} in {self.conn.where} is damaged ({exc}). "
                "Re-index with `tongwen ingest --rebuild PATH`."
            ) from exc

    def delete(self, version: str) -> None:
        self.conn.ensure_loaded(self.collection)
        self.conn.call("drop an old manifest", "delete", self.collection, filter=f'version == "{version}"')
