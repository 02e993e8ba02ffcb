"""Chinese-aware chunking: sentences, headings and the embedding model's token budget.

A chunk never straddles a heading, never cuts a sentence unless the sentence alone exceeds the
budget, and carries its heading path, which is also embedded: a paragraph under 「第七章 韓國」
is about Korea even when it never says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ingest.clean import CleanDocument
from ingest.headings import heading_style
from ingest.sentences import ASCII_CLAUSE_MARK, split_sentences

HEADING_SEPARATOR = " > "

# Where an over-long sentence may be cut when it alone exceeds the budget.
_CLAUSE_END = re.compile(rf"[，、：]|{ASCII_CLAUSE_MARK}")
# A run a cut without a clause mark must not split: a figure (「11,585」, 「2018/10」), a Latin word, a URL.
_UNBREAKABLE = re.compile(r"[0-9A-Za-z.,:/%_\-]+")

TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class Piece:
    """A sentence (or clause) of a block, with its span in the block's cleaned text."""

    block: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Chunk:
    heading: str
    text: str
    pieces: tuple[Piece, ...]


def _split_long(piece: Piece, tokens: int, budget: int) -> list[Piece]:
    """Cut an over-budget sentence at clause marks, else at a proportional character position."""
    parts = max(2, -(-tokens // budget))
    target = max(1, len(piece.text) // parts)
    out, cursor = [], 0
    while len(piece.text) - cursor > target:
        cut = cursor + target
        # Not finditer's endpos: a lookahead would see the text end there (「28,」 of 「28,534」).
        limit = cut + target // 4
        clause = [m for m in _CLAUSE_END.finditer(piece.text, cursor + target // 2) if m.end() <= limit]
        cut = clause[-1].end() if clause else _outside_run(piece.text, cut)
        out.append(Piece(piece.block, piece.start + cursor, piece.start + cut, piece.text[cursor:cut]))
        cursor = cut
    out.append(Piece(piece.block, piece.start + cursor, piece.end, piece.text[cursor:]))
    return out


def _outside_run(text: str, cut: int) -> int:
    """``cut``, or the end of the figure or Latin word it falls inside, so neither half holds a
    piece of a number (a long table row is cut where its text allows, not in 「2018/10」)."""
    for match in _UNBREAKABLE.finditer(text, max(0, cut - 64)):
        if match.start() < cut < match.end():
            return match.end() if match.end() < len(text) else cut
        if match.start() >= cut:
            break
    return cut


def _sections(doc: CleanDocument) -> Iterator[tuple[str, list[int]]]:
    """(heading path, body block indices) for each run of blocks under one heading."""
    stack: list[tuple[int, str | None, str]] = []  # (level, numbering style, text)
    body: list[int] = []
    for i, block in enumerate(doc.blocks):
        if block.kind != "heading":
            body.append(i)
            continue
        if body:
            yield HEADING_SEPARATOR.join(t for _, _, t in stack), body
            body = []
        style = heading_style(block.text)
        sibling = next((j for j, entry in enumerate(stack) if style and entry[1] == style), None)
        # A sibling closes everything from itself down; otherwise the level decides.
        stack = stack[:sibling] if sibling is not None else [e for e in stack if e[0] < block.level]
        stack.append((block.level, style, block.text))
    if body:
        yield HEADING_SEPARATOR.join(t for _, _, t in stack), body


def chunk_document(doc: CleanDocument, count_tokens: TokenCounter, max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Pack sentences into chunks of at most ``max_tokens`` (heading included), with overlap.

    The budget is measured with the embedding model's own tokenizer, so no chunk is silently
    truncated by the model.
    """
    chunks: list[Chunk] = []
    for heading, block_ids in _sections(doc):
        pieces = [
            Piece(b, s, e, doc.blocks[b].text[s:e]) for b in block_ids for s, e in split_sentences(doc.blocks[b].text)
        ]
        if not pieces:
            continue
        heading_cost = count_tokens([heading])[0] if heading else 0
        budget = max(16, max_tokens - heading_cost)
        counts = count_tokens([p.text for p in pieces])
        sized: list[tuple[Piece, int]] = []
        for piece, n in zip(pieces, counts, strict=True):
            if n <= budget:
                sized.append((piece, n))
            else:
                parts = _split_long(piece, n, budget)
                sized.extend(zip(parts, count_tokens([p.text for p in parts]), strict=True))
        chunks.extend(_pack(heading, sized, budget, overlap_tokens))
    return chunks


def _pack(heading: str, sized: list[tuple[Piece, int]], budget: int, overlap: int) -> Iterator[Chunk]:
    current: list[tuple[Piece, int]] = []
    used = 0
    fresh = False  # does `current` hold anything not already emitted?
    for piece, n in sized:
        if current and used + n > budget:
            yield _make(heading, current)
            carried: list[tuple[Piece, int]] = []
            carried_tokens = 0
            for prev in reversed(current):
                if carried_tokens + prev[1] > overlap or carried_tokens + prev[1] + n > budget:
                    break
                carried.insert(0, prev)
                carried_tokens += prev[1]
            current, used = carried, carried_tokens
        current.append((piece, n))
        used += n
        fresh = True
    if current and fresh:
        yield _make(heading, current)


def _make(heading: str, items: list[tuple[Piece, int]]) -> Chunk:
    pieces = tuple(p for p, _ in items)
    text = ""
    for prev, piece in zip((None, *pieces), pieces, strict=False):
        if prev is not None and prev.block != piece.block:
            text += "\n"
        text += piece.text
    return Chunk(heading=heading, text=text.strip(), pieces=pieces)
