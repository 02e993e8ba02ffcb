"""One document through the bottom layer: loaded text → cleaned → chunks located in the original.

The result is what the index stores per chunk, minus what only the index knows (ids, keyword
tokens, vectors): ``rag.indexing`` turns these chunks into index records. Nothing here touches
an index, a model or the network; the token counter is passed in.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ingest.chunk import TokenCounter, chunk_document
from ingest.clean import clean_text
from ingest.load import LoadedDocument
from ingest.normalise import canonical


@dataclass(frozen=True)
class Location:
    """Where a chunk lies in its original file, so a reader can check the citation."""

    start: int  # char offset in the original text
    end: int
    line_start: int  # 1-based lines in the original text
    line_end: int
    page: int | None = None  # 1-based PDF page, when known


@dataclass(frozen=True)
class LocatedChunk:
    heading: str  # heading path, e.g. 「第三章 … > 二、…」
    text: str  # cleaned text in the original script: what users see and citations quote
    canonical: str  # heading + text in canonical form: what is embedded and keyword-indexed
    location: Location


def chunk_loaded(
    loaded: LoadedDocument, count_tokens: TokenCounter, max_tokens: int, overlap_tokens: int
) -> list[LocatedChunk]:
    """Clean and chunk one loaded document; each chunk knows its span, lines and page."""
    cleaned = clean_text(loaded.text)
    located = []
    for chunk in chunk_document(cleaned, count_tokens, max_tokens, overlap_tokens):
        first, last = chunk.pieces[0], chunk.pieces[-1]
        start = cleaned.original_span(first.block, first.start, first.end)[0]
        end = cleaned.original_span(last.block, last.start, last.end)[1]
        page = bisect.bisect_right(loaded.pages, start) if loaded.pages else None
        located.append(
            LocatedChunk(
                heading=chunk.heading,
                text=chunk.text,
                canonical=canonical(f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text),
                location=Location(
                    start=start,
                    end=end,
                    line_start=cleaned.line_of(start),
                    line_end=cleaned.line_of(max(start, end - 1)),
                    page=page,
                ),
            )
        )
    return located
