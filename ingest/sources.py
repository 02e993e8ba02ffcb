"""Documents to ingest, as named bytes: from disk (folders walked) or from an upload.

The file name is a document's identity: ``doc_id_for`` derives its id from the name, so a file
given again under the same name replaces the old copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ingest.errors import DocumentNotFound
from ingest.load import SUPPORTED_SUFFIXES

T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """A document to ingest: its file name and raw bytes (from disk or an upload)."""

    name: str
    data: bytes


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
