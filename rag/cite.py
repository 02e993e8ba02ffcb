"""Citations: the ``[n]`` markers of an answer, added where a model left them out, and the
source sentences each marker leans on (what the UI highlights and shows on hover).

Text processing only, no chain state: the chain's post-check and the streaming path both run
these, so a streamed answer and the final one carry the same markers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from ingest.normalise import compact
from ingest.sentences import CLOSERS, END_MARKS, split_sentences
from rag.results import Citation, Location
from rag.retrieve import Hit

CITATION = re.compile(r"\[(\d{1,2})\]")


def has_content(answer: str) -> bool:
    """Whether an answer says anything once its citation markers are taken out."""
    return len(re.sub(r"[\W_]+", "", CITATION.sub("", answer))) >= 2


# Where a sentence ends (as in ingest.sentences, less ASCII "..."): a citation goes before these.
_END_MARK_CHARS = frozenset(END_MARKS + "…\n")
_CLOSERS = frozenset(CLOSERS)


def cite_as_streamed(pieces: Iterator[str], hits: Sequence[Hit]) -> Iterator[str]:
    """A model's streamed text, passed on as it comes, with a citation put before the end mark of
    each sentence the model did not cite (「…的作用[1]。」), so a streaming client sees the same
    [n] markers as the final answer. Only an end mark is held back, until the next character shows
    whether the model cites after it (「…。[1]」) or starts a new sentence."""
    sentence = ""  # the current sentence, already passed on (except a held end mark)
    held = ""  # end mark, closing quotes and a citation the model may be writing after them

    def close() -> str:
        nonlocal sentence, held
        cited = CITATION.search(sentence + held) is not None
        source = None if cited or not has_content(sentence) else best_source_for(sentence, hits)
        out = (f"[{source}]" if source is not None else "") + held
        sentence, held = "", ""
        return out

    for piece in pieces:
        out = []
        for ch in piece:
            if held and (ch in _END_MARK_CHARS or ch in _CLOSERS or ch == "[" or "[" in held):
                held += ch
                if ch == "]":  # the model's own citation after the end mark: the sentence is cited
                    out.append(held)
                    sentence, held = "", ""
                continue
            if held:
                out.append(close())
            if ch in _END_MARK_CHARS:
                held = ch
            else:
                sentence += ch
                out.append(ch)
        if out:
            yield "".join(out)
    tail = close() if held or (sentence and not CITATION.search(sentence)) else ""
    if tail:
        yield tail


def cite_by_overlap(answer: str, hits: Sequence[Hit]) -> str:
    """Cite each uncited sentence of a whole answer, by the same rule as a streamed one."""
    return "".join(cite_as_streamed(iter([answer]), hits))


def best_source_for(text: str, hits: Sequence[Hit]) -> int | None:
    """The source (1-based) sharing the most characters with a text, or None when none shares any."""
    chars = set(compact(text))
    scores = [len(chars & set(compact(h.chunk.text))) for h in hits]
    best = max(range(len(hits)), key=scores.__getitem__, default=None)
    return None if best is None or scores[best] == 0 else best + 1


def best_quote(claim: str, passage: str) -> str:
    """The sentence of ``passage`` that a citing sentence leans on: most characters in common.

    Shared by :func:`citations_for` and the UI (the hover text of each ``[n]``), so what a marker
    shows and what the sources panel highlights are the same sentence.
    """
    claim_chars = set(compact(CITATION.sub("", claim)))
    spans = split_sentences(passage) or [(0, len(passage))]
    best = max(spans, key=lambda s: len(claim_chars & set(compact(passage[s[0] : s[1]]))))
    return passage[best[0] : best[1]].strip()


def citations_for(answer: str, hits: Sequence[Hit]) -> list[Citation]:
    """One entry per cited source: which document, where, and the sentences of it that the answer
    leans on (for highlighting): ``quote`` for the first citing sentence, ``quotes`` for all of them
    (each answer sentence citing the source adds the passage sentence closest to it)."""
    out: dict[int, Citation] = {}
    for start, end in split_sentences(answer):
        sentence = answer[start:end]
        for match in CITATION.finditer(sentence):
            n = int(match.group(1))
            if not 1 <= n <= len(hits):
                continue
            chunk = hits[n - 1].chunk
            quote = best_quote(sentence, chunk.text)
            if n in out:
                if quote not in out[n].quotes:
                    out[n].quotes.append(quote)
                continue
            out[n] = Citation(
                n=n,
                id=chunk.id,
                doc=chunk.doc,
                doc_id=chunk.doc_id,
                heading=chunk.heading,
                quote=quote,
                quotes=[quote],
                location=Location.of(chunk.location),
            )
    return [out[n] for n in sorted(out)]
