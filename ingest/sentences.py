"""Chinese sentence boundaries, shared by the chunker and the answer steps."""

from __future__ import annotations

import re

END_MARKS = "。！？；!?;"
"""Characters that end a sentence (an ellipsis and a line break end one too)."""
CLOSERS = "」』”’）)】〕》"
"""Closing quotes and brackets that belong to the sentence they follow."""

ASCII_CLAUSE_MARK = r"(?:(?<!\d)[,:]|[,:](?!\d))(?!//)"
"""An ASCII comma or colon that ends a clause (a regex): not the one inside a figure or a time
(「3,000 多家」, 「10:30」) nor a URL's (「https://」). Cut at them, a chunk began with 「510占比」
and an answer led with 「000 多家原料藥公司」."""

# A sentence ends at an end mark, a line break or an ellipsis, plus any closing quotes/brackets
# after it, plus any citation markers right after those (「…。」[2] cites the quote before the marker).
_SENTENCE_END = re.compile(rf"(?:[{END_MARKS}\n]+|…{{1,2}}|\.{{3,}})[{re.escape(CLOSERS)}\]]*(?:\[\d{{1,2}}\])*")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences of a text; trailing text without an end mark is a sentence too."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


# Sentences shorter than this are merged into the next one: a lone 「一、」 or 「（註）」 carries no meaning.
MIN_SENTENCE_CHARS = 8


def merged_sentences(text: str) -> list[str]:
    """The sentences of a chunk, very short ones joined to the next (what the sentence-level
    rankings index: a chunk is found through its best sentence)."""
    out: list[str] = []
    carry = ""
    for start, end in split_sentences(text):
        piece = carry + text[start:end].strip()
        if len(piece) < MIN_SENTENCE_CHARS:
            carry = piece
            continue
        out.append(piece)
        carry = ""
    if carry:
        out.append(carry)
    return out
