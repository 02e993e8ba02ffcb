"""Does the retrieved evidence support an answer? The decision behind ``found``.

Cosine similarity alone cannot tell 「盧森堡的人口」 (answerable) from 「盧森堡的失業率」 (not in the
documents): both land on the same paragraph. What tells them apart is whether the question's
informative words occur in the evidence. The score is the IDF-weighted share of the question's
content words found in the best of the top chunks; words the corpus never uses weigh most, so a
question about something the documents never mention scores low. The threshold is calibrated on
the gold set (``tongwen eval`` reports the best one), not guessed.

Coverage forgives a missing word or two, because paraphrases and Mainland vocabulary miss words
too. A few things cannot be paraphrased away: a number the question names (「2024年」, 「113年度」)
and the unit of an amount it asks for (「多少歐元」). When the evidence has none of them, the
documents answer a different question, whatever the coverage; :func:`missing_specifics` finds them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

from rag.normalise import canonical
from rag.retrieve import Hit, Query
from rag.store.keyword import tokenize
from rag.store.snapshot import Snapshot


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """Question scaffolding in canonical (Simplified) form: carries no topic, so it must not count."""
    text = resources.files("rag").joinpath("stopwords.txt").read_text("utf-8")
    lines = (line for line in text.splitlines() if not line.startswith("#"))
    return frozenset(word for line in lines for word in line.split())


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


_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
# Units an amount question asks for, canonical (Simplified) form: 「多少欧元」 needs 欧元 in the evidence.
_UNIT = re.compile(r"多少(欧元|美元|日元|人民币|新台币|台币|韩元|英镑|港币|公里|公斤|公顷|吨|瓦|千瓦|兆瓦|亿元|万元)")


def _same_units(text: str) -> str:
    return text.replace("日圆", "日元")


def missing_specifics(question: str, hits: Sequence[Hit], depth: int = 3) -> list[str]:
    """Numbers (two digits or more) and asked-for units of the question that none of the top
    ``depth`` chunks contains. Thousands separators are ignored on both sides (3,000 = 3000)."""
    text = _same_units("".join(canonical(h.chunk.text) for h in hits[:depth]).replace(",", ""))
    asked = _same_units(canonical(question))
    numbers = [n.replace(",", "") for n in _NUMBER.findall(asked)]
    wanted = [n for n in numbers if len(n) >= 2] + _UNIT.findall(asked)
    return [w for w in dict.fromkeys(wanted) if w not in text]
