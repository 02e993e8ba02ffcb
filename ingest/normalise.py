"""Traditional/Simplified normalisation: one canonical form for indexing, bridges for queries.

The index stores every chunk twice: the original text (for display and citation) and a canonical
form (NFKC + OpenCC hk2s) that both the keyword and the embedding side see. A question in either
script is put into the same canonical form, so it meets the same index. Vocabulary that differs
between Taiwan and the Mainland (軟體/软件, 晶片/芯片 …) is not a script difference; it is bridged
at query time by adding variants, never by rewriting stored text, because the phrase tables
over-convert some words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import resources
from typing import Literal

import opencc

from ingest.segment import word_spans
from ingest.sentences import END_MARKS

Script = Literal["traditional", "simplified", "neutral"]

# Whitespace plus zero-width characters (they survive NFKC and break substring tests).
_WHITESPACE = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")


@lru_cache(maxsize=8)
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def canonical(text: str) -> str:
    """The form that is indexed and searched: full-width folded (NFKC), Simplified, lower-case.

    ``hk2s`` rather than ``t2s``: it first folds variant forms (衞 → 衛, 粧 → 妝) that t2s leaves
    alone, so a report that writes 「墨子號」衞星 meets a question about 衛星 or 卫星. On the bundled
    corpus those two characters are the only difference from t2s."""
    return _converter("hk2s").convert(unicodedata.normalize("NFKC", text)).lower()


def compact(text: str) -> str:
    """Canonical form without whitespace, for substring tests that PDF line breaks must not foil."""
    return _WHITESPACE.sub("", canonical(text))


def _changed_positions(text: str, config: str) -> int:
    """How many characters of ``text`` OpenCC ``config`` rewrites.

    The whole string is converted at once so phrase tables resolve ambiguous characters from
    context (公里 and 皇后 are valid in both scripts and stay unchanged); if a conversion ever
    changes the length, fall back to per-character conversion rather than misalign positions.
    """
    converter = _converter(config)
    converted = converter.convert(text)
    if len(converted) == len(text):
        return sum(a != b for a, b in zip(text, converted, strict=True))
    return sum(converter.convert(ch) != ch for ch in text)


def detect_script(text: str) -> Script:
    """Which script a text is written in, by counting characters that exist in only one of them.

    A character that t2s changes is Traditional-only; one that s2t changes is Simplified-only.
    The majority wins, because real Traditional text contains characters OpenCC treats as
    Simplified (台 in 台灣). Text with neither, or a tie, is neutral.
    """
    trad = _changed_positions(text, "t2s")
    simp = _changed_positions(text, "s2t")
    if trad == simp:
        return "neutral"
    return "traditional" if trad > simp else "simplified"


_CLAUSE = re.compile(rf"[^{END_MARKS}\n]*[{END_MARKS}\n]?")


def to_script(text: str, script: Script) -> str:
    """Render an answer in the asker's script, by characters only.

    For a Traditional asker only the clauses written in Simplified are converted: s2t would also
    rewrite Traditional text (台灣 → 臺灣), and quotes from the documents must stay as written.
    """
    if script == "simplified":
        return _converter("hk2s").convert(text)  # as canonical: 衞星 reads 卫星
    if script == "traditional":
        return "".join(
            _converter("s2tw").convert(c) if detect_script(c) == "simplified" else c for c in _CLAUSE.findall(text)
        )
    return text


def stream_to_script(pieces: Iterable[str], script: Script) -> Iterator[str]:
    """Streamed text rendered in the asker's script clause by clause, so that the joined pieces
    equal ``to_script(whole text)`` (after ``strip()``): a clause is converted once it is complete
    (OpenCC resolves a character from its phrase, which never spans a clause end), and white
    space is held back until more text follows it, since the final answer is stripped."""
    buffer = ""
    started = False
    for piece in pieces:
        buffer += piece
        if not started:
            buffer = buffer.lstrip()
        end = max(buffer.rfind(c) for c in "。！？；\n")
        if end < 0:
            continue
        done, buffer = buffer[: end + 1], buffer[end + 1 :]
        body = done.rstrip()
        held = done[len(body) :]
        if body:
            started = True
            yield to_script(body, script) if script != "neutral" else body
        buffer = held + buffer
    tail = buffer.strip() if not started else buffer.rstrip()
    if tail:
        yield to_script(tail, script) if script != "neutral" else tail


@lru_cache(maxsize=1)
def _vocabulary_pairs() -> tuple[tuple[str, str], ...]:
    """(canonical Mainland term, canonical Taiwan term) pairs from ``vocabulary.tsv``."""
    pairs = []
    for line in resources.files("ingest").joinpath("vocabulary.tsv").read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        mainland, taiwan = line.split("\t")
        pairs.append((canonical(mainland), canonical(taiwan)))
    # Longest first, so 大数据 is bridged before 数据.
    return tuple(sorted(pairs, key=lambda p: -max(len(p[0]), len(p[1]))))


def _bridge_table(text: str, forward: bool) -> str:
    for mainland, taiwan in _vocabulary_pairs():
        src, dst = (mainland, taiwan) if forward else (taiwan, mainland)
        if src in text and dst not in text:
            text = _replace_words(text, src, dst)
    return text


def _replace_words(text: str, src: str, dst: str) -> str:
    """``text`` with each ``src`` that cuts no word in two replaced by ``dst``: 外卖 → 外送 in
    「外卖平台」, not in 「海外卖家」 (海外 | 卖家). A word holding the whole term (软件业) is no cut."""
    spans = word_spans(text)
    out, cursor = [], 0
    for match in re.finditer(re.escape(src), text):
        start, end = match.span()
        if any(s < start < e or s < end < e for s, e in spans if not (s <= start and end <= e)):
            continue
        out += [text[cursor:start], dst]
        cursor = end
    return "".join(out) + text[cursor:]


def query_wordings(question: str) -> dict[str, str]:
    """The canonical question under each vocabulary, keyed by direction: ``plain`` (as asked),
    ``taiwan`` (Mainland words swapped for Taiwan's) and ``mainland`` (the reverse). Not deduplicated,
    so two questions' wordings can be paired by direction (see ``rag.chain``)."""
    as_taiwan = canonical(_converter("s2twp").convert(question))
    as_mainland = canonical(_converter("tw2sp").convert(question))
    return {
        "plain": canonical(question),
        "taiwan": _bridge_table(as_taiwan, forward=True),
        "mainland": _bridge_table(as_mainland, forward=False),
    }


def query_variants(question: str) -> list[str]:
    """Canonical forms of a question under both vocabularies, the plain one first.

    ``软件`` (Mainland) becomes ``软体`` (Taiwan's 軟體 in canonical form) and vice versa, so the
    question reaches documents written with either vocabulary. Duplicates are dropped.
    """
    return list(dict.fromkeys(query_wordings(question).values()))
