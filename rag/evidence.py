"""Pick the sentences of the retrieved chunks that answer the question.

Both the extractive backend (which quotes them) and the LLM backends (which get them as compact
context, because on a CPU prompt length is latency) use this one selection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ingest.normalise import canonical
from ingest.sentences import split_sentences
from rag.retrieve import Hit
from rag.store.keyword import tokenize


@dataclass(frozen=True)
class Evidence:
    source: int  # 1-based number of the source (the hit) it comes from: the [n] of a citation
    text: str  # the sentence as in the document
    score: float


def _coverage(sentence: str, weights: Mapping[str, float]) -> float:
    tokens = set(tokenize(canonical(sentence)))
    total = sum(weights.values()) or 1.0
    return sum(w for t, w in weights.items() if t in tokens) / total


def select_evidence(
    hits: Sequence[Hit],
    weights: Mapping[str, float],
    max_sentences: int = 3,
    max_chars: int = 320,
    depth: int = 3,
) -> list[Evidence]:
    """The best-covering sentences of the top hits, best first, within a character budget.

    A sentence must cover at least half as much of the question as the best one, so the answer
    does not drift into loosely related text; earlier (better-ranked) sources win ties.
    """
    candidates: list[Evidence] = []
    for n, hit in enumerate(hits[:depth], start=1):
        for start, end in split_sentences(hit.chunk.text):
            text = hit.chunk.text[start:end].strip()
            if len(text) < 4:
                continue
            score = _coverage(text, weights) - 0.02 * (n - 1)
            candidates.append(Evidence(n, text, score))
    candidates.sort(key=lambda e: -e.score)
    if not candidates:
        return []
    chosen: list[Evidence] = []
    used = 0
    floor = candidates[0].score * 0.5
    for ev in candidates:
        if len(chosen) >= max_sentences or ev.score < floor:
            break
        if any(ev.text == c.text for c in chosen):
            continue
        if chosen and used + len(ev.text) > max_chars:
            continue
        chosen.append(ev)
        used += len(ev.text)
    return chosen
