"""Does the retrieved evidence support an answer? The decision behind ``found``.

Cosine similarity alone cannot tell 「盧森堡的人口」 (answerable) from 「盧森堡的失業率」 (not in the
documents): both land on the same paragraph. What tells them apart is whether the question's
informative words occur in the evidence. The score is the IDF-weighted share of the question's
content words found in the best of the top chunks; words the corpus never uses weigh most, so a
question about something the documents never mention scores low. The threshold is calibrated on
the gold set (``tongwen eval`` reports the best one), not guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

from rag.retrieve import Hit, Query
from rag.store.keyword import tokenize
from rag.store.snapshot import Snapshot


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """Question scaffolding in canonical (Simplified) form: carries no topic, so it must not count."""
    text = resources.files("rag").joinpath("stopwords.txt").read_text("utf-8")
    return frozenset(w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#"))


def content_tokens(query_variant: str) -> list[str]:
    return [t for t in tokenize(query_variant) if t not in stopwords()]


def idf(token: str, snapshot: Snapshot) -> float:
    n = len(snapshot.chunks)
    df = snapshot.doc_freq.get(token, 0)
    return math.log((n - df + 0.5) / (df + 0.5) + 1.0)


def support_score(query: Query, hits: Sequence[Hit], snapshot: Snapshot, depth: int = 3) -> float:
    """Best IDF-weighted coverage of the question's content words by one of the top chunks."""
    best = 0.0
    top = [set(h.chunk.tokens) for h in hits[:depth]]
    if not top:
        return 0.0
    for variant in query.variants:
        tokens = list(dict.fromkeys(content_tokens(variant)))
        if not tokens:
            continue
        weights = {t: idf(t, snapshot) for t in tokens}
        total = sum(weights.values()) or 1.0
        for chunk_tokens in top:
            covered = sum(w for t, w in weights.items() if t in chunk_tokens)
            best = max(best, covered / total)
    return best
