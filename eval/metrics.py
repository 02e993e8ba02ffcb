"""Pure metric functions for the Tongwen evaluation harness.

Everything here is deterministic, side-effect free and independent of the
retriever / LLM stack, so it can be unit-tested by hand-computed examples and
reused by any runner (CLI eval, benchmarks, notebooks).

Design notes that apply throughout:

* Chinese has no word boundaries, so answer-overlap metrics work on
  **characters**.  Word-based scorers (e.g. ragas' ROUGE) split on whitespace
  and therefore score ~0 on Chinese text.
* Tongwen treats Traditional and Simplified Chinese as one language, so every
  text comparison first folds both scripts onto Simplified (OpenCC ``t2s``).
  Otherwise a correct answer in the "other" script would be scored as wrong.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation

from ingest.normalise import compact, detect_script

__all__ = [
    "PUNCTUATION",
    "char_f1",
    "contains_evidence",
    "detect_script",
    "hit_at_k",
    "mean_or_none",
    "ndcg_at_k",
    "normalise_for_match",
    "number_recall",
    "percentile",
    "ratio",
    "reciprocal_rank",
    "refusal_metrics",
    "rouge_l_chars",
    "script_match",
]

# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------

#: Characters ignored by the character-level answer metrics.  Punctuation is
#: stylistic (full-width vs ASCII, 「」 vs “”) and would otherwise inflate or
#: deflate overlap.  The set lists both the full-width forms and their ASCII
#: NFKC images, because NFKC turns e.g. ``，`` into ``,`` but leaves ``。`` and
#: ``「」`` alone.  Any other Unicode punctuation (category ``P*``) is also
#: dropped by :func:`_is_punctuation`, so exotic marks never count as content.
PUNCTUATION: frozenset[str] = frozenset(
    string.punctuation
    + "，。！？；：「」『』（）、《》"  # required full-width / CJK marks
    + "〈〉【】〔〕〖〗“”‘’…—–～·・‧﹁﹂﹃﹄｛｝［］〝〞〃"  # other common CJK marks
)


def normalise_for_match(text: str) -> str:
    """NFKC, no whitespace, Simplified, lower-case: so script and PDF line breaks don't matter.

    The same canonical form the index uses (``ingest.normalise.compact``): evaluation and retrieval
    must agree on what "the same text" means.
    """
    return compact(text)


def contains_evidence(chunk_text: str, evidence: str) -> bool:
    """Whether a retrieved chunk contains the gold evidence span.

    Used to label retrieval results as relevant without requiring chunk ids in
    the gold set (chunking can change between runs).  Both sides are
    normalised, so a Traditional chunk matches Simplified evidence and line
    breaks inside the chunk do not matter.  Empty evidence returns ``False``
    because ``"" in s`` is always true and would mark every chunk relevant.
    """
    needle = normalise_for_match(evidence)
    if not needle:
        return False
    return needle in normalise_for_match(chunk_text)


def _is_punctuation(ch: str) -> bool:
    return ch in PUNCTUATION or unicodedata.category(ch).startswith("P")


def _answer_chars(text: str) -> list[str]:
    """Normalised character sequence with punctuation removed (for answer metrics)."""
    return [ch for ch in normalise_for_match(text) if not _is_punctuation(ch)]


# ---------------------------------------------------------------------------
# Retrieval metrics (binary relevance, rank 1 first)
# ---------------------------------------------------------------------------


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def hit_at_k(relevant: Sequence[bool], k: int) -> float:
    """1.0 if any of the top-``k`` results is relevant, else 0.0.

    ``k`` larger than the list simply looks at the whole list; an empty list is
    a miss.  Returned as float so it can be averaged directly.
    """
    _check_k(k)
    return 1.0 if any(relevant[:k]) else 0.0


def reciprocal_rank(relevant: Sequence[bool], k: int = 10) -> float:
    """``1 / rank`` of the first relevant result within the top ``k``, else 0.0.

    Averaging this over queries gives MRR@k.  The cut-off keeps MRR comparable
    between retrievers that return different list lengths.
    """
    _check_k(k)
    for rank, is_rel in enumerate(relevant[:k], start=1):
        if is_rel:
            return 1.0 / rank
    return 0.0


def _dcg(gains: Iterable[bool]) -> float:
    # Rank r (1-based) is discounted by log2(r + 1): rank 1 -> 1, rank 2 -> 1/log2(3), ...
    return sum(1.0 / math.log2(rank + 1) for rank, g in enumerate(gains, start=1) if g)


def ndcg_at_k(relevant: Sequence[bool], k: int = 10) -> float:
    """Normalised DCG@k with binary gains and a log2 discount.

    **Choice of ideal ranking:** the gold set only tells us which *retrieved*
    chunks contain the evidence (via :func:`contains_evidence`); it does not
    know how many chunks in the whole index would qualify.  The ideal DCG is
    therefore computed by sorting *the same retrieved list* (all relevant
    items first) and truncating at ``k``.  Consequences:

    * nDCG measures **ordering quality** of what was retrieved, not recall –
      a list whose only relevant item is at rank 1 scores 1.0.  Pair it with
      :func:`hit_at_k` for coverage.
    * Relevant items retrieved *below* ``k`` still count toward the ideal, so
      pushing them out of the top ``k`` is penalised.

    Returns 0.0 when the list contains no relevant item (nothing to order).
    """
    _check_k(k)
    ideal = _dcg(sorted(relevant, reverse=True)[:k])
    if ideal == 0.0:
        return 0.0
    return _dcg(relevant[:k]) / ideal


# ---------------------------------------------------------------------------
# Answer metrics (character level)
# ---------------------------------------------------------------------------


def _f_measure(overlap: int, pred_len: int, ref_len: int) -> float:
    """Balanced F (β=1) from an overlap count; handles empty sides.

    Both empty counts as a perfect match (SQuAD convention: an empty answer to
    an empty reference is correct); exactly one empty scores 0.
    """
    if pred_len == 0 or ref_len == 0:
        return 1.0 if pred_len == ref_len else 0.0
    if overlap == 0:
        return 0.0
    # 2PR/(P+R) with P=o/p, R=o/r simplifies to 2o/(p+r).
    return 2.0 * overlap / (pred_len + ref_len)


def char_f1(prediction: str, reference: str) -> float:
    """Bag-of-characters F1 between prediction and reference.

    The SQuAD token-F1 with characters as tokens, which is the usual choice for
    Chinese (CMRC, DRCD).  Texts are normalised with
    :func:`normalise_for_match` and punctuation (:data:`PUNCTUATION`) is
    removed, so script, spacing and full-width/ASCII differences do not matter.
    Multiset overlap: a character counts at most ``min(count_pred, count_ref)``
    times.
    """
    pred, ref = _answer_chars(prediction), _answer_chars(reference)
    overlap = sum((Counter(pred) & Counter(ref)).values())
    return _f_measure(overlap, len(pred), len(ref))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, O(len(a)*len(b)) time, O(len(b)) memory."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        curr = [0]
        for j, y in enumerate(b, start=1):
            curr.append(prev[j - 1] + 1 if x == y else max(prev[j], curr[j - 1]))
        prev = curr
    return prev[-1]


def rouge_l_chars(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (β=1) on normalised, punctuation-free character sequences.

    Unlike :func:`char_f1` this is order-sensitive: ``北京上海`` vs ``上海北京``
    has char-F1 1.0 but ROUGE-L 0.5.  Computed on characters because
    whitespace-tokenised ROUGE sees a Chinese sentence as a single "word".
    """
    pred, ref = _answer_chars(prediction), _answer_chars(reference)
    return _f_measure(_lcs_length(pred, ref), len(pred), len(ref))


# Thousands-separated numbers first (1,234,567.8), then plain integers/decimals.
_NUMBER_RE = re.compile(r"(百分之)?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(%)?")
# A full-width comma that is not between two full-width digits.
_CLAUSE_COMMA_RE = re.compile(r"(?<![０-９])，|，(?![０-９])")


def _extract_numbers(text: str) -> set[str]:
    """Canonical set of Arabic-digit numbers in ``text``.

    * NFKC first, so full-width ``１２３`` and ``％`` become ASCII.  The
      full-width comma ``，`` is normally a Chinese clause separator, and NFKC
      would turn ``共12，345人`` into the thousands-separated ``12,345``; so
      before NFKC it becomes a space unless both neighbours are full-width
      digits (``１，２３４`` is typeset entirely in full-width and *is* a
      thousands separator).
    * Thousands separators are dropped and decimals canonicalised via
      :class:`~decimal.Decimal` (``1,234`` == ``1234``, ``3.50`` == ``3.5``).
    * Percentages keep a ``%`` marker, so ``3.5%`` does not match a bare
      ``3.5``; ``百分之3.5`` is treated as ``3.5%``.
    """
    text = unicodedata.normalize("NFKC", _CLAUSE_COMMA_RE.sub(" ", text))
    found: set[str] = set()
    for m in _NUMBER_RE.finditer(text):
        try:
            value = Decimal(m.group(2).replace(",", "")).normalize()
        except InvalidOperation:  # pragma: no cover - regex only yields valid literals
            continue
        canonical = format(value, "f")
        if m.group(1) or m.group(3):
            canonical += "%"
        found.add(canonical)
    return found


def number_recall(prediction: str, reference: str) -> float | None:
    """Share of distinct numbers in the reference that also appear in the prediction.

    Numbers are the facts an LLM most often gets subtly wrong, and char-F1
    barely notices a changed digit.  Numbers are matched as whole values
    (reference ``50`` is *not* found in prediction ``500``).

    Only **Arabic digits** are recognised (integers, decimals, thousands
    separators, percentages, full-width digits via NFKC).  Chinese numerals
    (``五十``, ``三成``) and magnitude words (``50萬`` vs ``500,000``) are *not*
    converted: doing that reliably needs a real parser, and the gold answers are
    written with Arabic digits.  A prediction that spells a number in Chinese
    therefore scores as missing it.

    Returns ``None`` when the reference has no numbers, so callers can average
    with :func:`mean_or_none` over only the questions where it applies.
    """
    ref_numbers = _extract_numbers(reference)
    if not ref_numbers:
        return None
    pred_numbers = _extract_numbers(prediction)
    return len(ref_numbers & pred_numbers) / len(ref_numbers)


# ---------------------------------------------------------------------------
# Script detection
# ---------------------------------------------------------------------------


def script_match(question: str, answer: str) -> bool:
    """Whether the answer is written in the same script as the question.

    Tongwen should answer a Traditional question in Traditional and a
    Simplified one in Simplified.  A neutral answer (e.g. ``1,234`` or only
    characters shared by both scripts) cannot be in the wrong script and
    passes.  Note that a *neutral question* only matches a neutral answer, as
    specified; callers may want to exclude neutral questions from the rate.
    """
    return answer_in_script(answer, detect_script(question))


def answer_in_script(answer: str, script: str) -> bool:
    """Whether the answer is in ``script`` (``traditional`` / ``simplified``) or neutral: for a
    conversation, whose script is known even when a turn's question has no telling character
    (「加拿大2014年的碳捕集成本大概多少？」 is written alike in both)."""
    answer_script = detect_script(answer)
    return answer_script == "neutral" or answer_script == script


# ---------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------


def _present(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None]


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """Arithmetic mean ignoring ``None``; ``None`` if nothing is left.

    Per-question metrics such as :func:`number_recall` return ``None`` when they
    do not apply; averaging must skip them rather than count them as 0, and an
    empty report cell (``None``) is more honest than a fake 0.0.
    """
    present = _present(values)
    return sum(present) / len(present) if present else None


def percentile(values: Iterable[float | None], p: float) -> float | None:
    """``p``-th percentile (0–100) with linear interpolation, ignoring ``None``.

    Matches ``numpy.percentile(values, p)`` (default ``method="linear"``) but
    is pure Python so latency reports (p50/p95) need no numpy.  Returns
    ``None`` for no values.
    """
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"p must be within [0, 100], got {p}")
    xs = sorted(_present(values))
    if not xs:
        return None
    pos = (len(xs) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    frac = pos - lo
    return xs[lo] + (xs[hi] - xs[lo]) * frac


def ratio(simp: float | None, trad: float | None) -> float | None:
    """Simplified-over-Traditional ratio of a metric (script parity; 1.0 = parity).

    ``None`` if either side is missing or the Traditional value is 0, since a
    ratio with a zero denominator has no meaningful value.
    """
    if simp is None or trad is None or trad == 0:
        return None
    return simp / trad


def refusal_metrics(records: Sequence[tuple[bool, bool]]) -> dict[str, float | int | None]:
    """Refusal behaviour from ``(is_answerable, found_by_system)`` records.

    ``found_by_system`` is True when the system gave an answer (did not say the
    documents lack the information).

    Returns:
        ``refusal_accuracy``: share of *unanswerable* questions the system
        correctly refused (``found`` is False) – high means it does not
        hallucinate.
        ``false_refusal_rate``: share of *answerable* questions it refused – high
        means it is over-cautious.
        ``n_unanswerable`` / ``n_answerable``: the denominators, so a rate over
        3 questions is not mistaken for a robust one.
        Rates are ``None`` when their denominator is 0.
    """
    unanswerable = [found for answerable, found in records if not answerable]
    answerable = [found for answerable, found in records if answerable]
    return {
        "refusal_accuracy": (sum(not f for f in unanswerable) / len(unanswerable) if unanswerable else None),
        "false_refusal_rate": (sum(not f for f in answerable) / len(answerable) if answerable else None),
        "n_unanswerable": len(unanswerable),
        "n_answerable": len(answerable),
    }
