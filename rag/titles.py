"""What a reader calls a document, for the document list and the reader's header.

Converted reports seldom mark their title. Most open with it as a short first line, but many
open with a section label instead (「摘要」, 「目錄」) or with a cover page that PDF extraction broke
into fragments (「財團 / 法人 / 中技社」). Shown as the title, those name nothing. So the title is
the first line that is neither, else the first heading that is not a numbered section
(「一、目的」 names a part, not the whole), else the opening words of the text, else the file
name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ingest.chunk import HEADING_SEPARATOR
from ingest.normalise import canonical
from rag.store.base import IndexVersion
from rag.store.derived import derived
from rag.store.records import ChunkRecord

TITLE_MAX_CHARS = 60
#: A cover page's fragments (「財團」, 「法人」) are shorter than any title.
MIN_TITLE_CHARS = 4
#: How many characters of the opening words stand in for a missing title.
OPENING_CHARS = 30
# Section labels, canonical (Simplified, lower case), spaces removed: 「摘 要」 is 摘要.
_SECTION_LABELS = frozenset(
    [
        "摘要",
        "提要",
        "内容提要",
        "执行摘要",
        "中文摘要",
        "目录",
        "目次",
        "前言",
        "序",
        "序言",
        "导言",
        "引言",
        "绪论",
        "abstract",
        "summary",
        "executivesummary",
        "contents",
        "tableofcontents",
    ]
)
# 「第八章」, 「一、」, 「（一）」, 「1.」, 「1.2 」: numbered parts. A year (「2023 年度報告」) is not one.
_NUMBERED = re.compile(
    r"^\s*(?:第[一二三四五六七八九十百\d]+[章節节篇部]|[一二三四五六七八九十]+\s*[、.]"
    r"|[(（]\s*[一二三四五六七八九十\d]+\s*[)）]|\d{1,2}\s*[.、](?!\d)|\d{1,2}(?:\.\d{1,2})+\s)"
)
_CLAUSE_END = re.compile(r"[，,。；;！!？?：:]")


def is_part(line: str) -> bool:
    """「摘要」, 「目 錄」, 「Abstract」, 「第一章 緒論」, 「一、目的」: a part of the document, not its name."""
    return "".join(canonical(line).split()) in _SECTION_LABELS or _NUMBERED.match(line) is not None


def title_line(text: str) -> str | None:
    """The first line of ``text`` that can be a title, or None when the body starts first: a
    line too long to be a title, or one that ends a sentence."""
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or is_part(line) or len(line.replace(" ", "")) < MIN_TITLE_CHARS:
            continue
        if len(line) > TITLE_MAX_CHARS or line.endswith("。"):
            return None
        return line
    return None


def opening_words(text: str) -> str:
    """The text's first clause (up to 「，」 or 「。」), cut to :data:`OPENING_CHARS` with 「…」."""
    lines = [ln.strip() for ln in text.split("\n") if ln.strip() and not is_part(ln)]
    first = lines[0] if lines else ""
    match = _CLAUSE_END.search(first)
    clause = first[: match.start()] if match else first
    return clause if len(clause) <= OPENING_CHARS else clause[:OPENING_CHARS] + "…"


def document_title(name: str, chunks: Sequence[ChunkRecord]) -> str:
    """The title of a document from its first chunks, in reading order (see the module)."""
    if chunks and not chunks[0].heading:
        line = title_line(chunks[0].text)
        if line:
            return line
    for chunk in chunks:
        top = chunk.heading.split(HEADING_SEPARATOR)[0].strip() if chunk.heading else ""
        if top and not is_part(top):
            return top
    opening = opening_words(chunks[0].text) if chunks else ""
    return opening or Path(name).stem


def titles_of(snapshot: IndexVersion) -> dict[str, str]:
    """doc_id -> title for every document of an index version, worked out once per version (a
    version never changes) and kept on it: the document list, the reader and every answer's
    sources read this one mapping, so a document has one title wherever it is shown."""

    def build() -> dict[str, str]:
        firsts: dict[str, list[ChunkRecord]] = {}
        for chunk in snapshot.chunks:
            firsts.setdefault(chunk.doc_id, []).append(chunk)
        return {
            doc_id: document_title(record.name, sorted(firsts.get(doc_id, []), key=lambda c: c.seq)[:20])
            for doc_id, record in snapshot.manifest.documents.items()
        }

    return derived(snapshot, "_titles", build)
