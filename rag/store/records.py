"""What the index stores per chunk and per document: the contract between ingest and retrieval."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ingest.pipeline import Location

__all__ = ["ChunkRecord", "DocumentRecord", "Location"]


@dataclass(frozen=True)
class ChunkRecord:
    id: str
    doc_id: str
    doc: str  # source file name
    seq: int
    heading: str  # heading path, e.g. 「第三章 … > 二、…」
    text: str  # cleaned text in the original script: what users see and citations quote
    canonical: str  # heading + text in canonical form: what is embedded
    tokens: tuple[str, ...]  # keyword-index tokens of `canonical`
    location: Location

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens"] = list(self.tokens)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkRecord:
        return cls(**{**data, "tokens": tuple(data["tokens"]), "location": Location(**data["location"])})


@dataclass(frozen=True)
class DocumentRecord:
    doc_id: str
    name: str
    sha256: str
    kind: str
    encoding: str | None
    chars: int
    chunks: int
    ingested_at: str
    extra: dict[str, Any] = field(default_factory=dict)
