"""The found / refuse decision: does the retrieved evidence answer the question?

Three checks, all on the top sources:

* support: the IDF-weighted share of the question's content words in the best chunk
  (:func:`rag.support.support_score`), for the question as understood (a follow-up is measured
  together with the question it leans on, since 「為什麼？」 alone asks about nothing);
* specifics: a number, unit or asked-about noun that no top source has means the documents answer
  a neighbouring question (:func:`rag.support.missing_specifics`); so does a place or
  organisation the question names that none of the top five sources mentions
  (:func:`rag.support.missing_entities`); a parenthesised aside (「COP28（第28屆聯合國氣候變化大會）」)
  is another name for the term before it, so the specifics of either name will do;
* for a follow-up, the specifics of the follow-up itself, and the better of its own support and
  the support of the question it is understood as.

After generation, an LLM's own refusal is weighed against the evidence in
:meth:`rag.chain.AnswerChain.post_check`: strong evidence overrides it with an extractive answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.retrieve import Hit, Query
from rag.store.snapshot import Snapshot
from rag.support import (
    content_tokens,
    idf,
    missing_entities,
    missing_specifics,
    support_score,
    unbound_referent,
    unbound_subject,
    without_asides,
)


@dataclass
class Decision:
    found: bool
    support: float
    missing: list[str] = field(default_factory=list)
    own_support: float | None = None  # the follow-up's own words, when it is a follow-up that has some
    dense: float | None = None  # best cosine of the top source


def own_words_support(
    asked: Query, context: str, hits: Sequence[Hit], snapshot: Snapshot, depth: int = 3
) -> float | None:
    """IDF-weighted share of the follow-up's new content words (those not already in the
    conversation) found in one of the top chunks; None when it brings no new word."""
    tokens = [t for t in dict.fromkeys(content_tokens(asked.variants[0])) if t not in context]
    if not tokens or not hits:
        return None
    weights = {t: idf(t, snapshot) for t in tokens}
    total = sum(weights.values()) or 1.0
    return max(sum(w for t, w in weights.items() if t in set(h.chunk.tokens)) / total for h in hits[:depth])


def missing_in_sources(
    question: Query, hits: Sequence[Hit], snapshot: Snapshot, context: str, earlier: Sequence[str] = ()
) -> list[str]:
    """What the question names that the top sources lack: numbers, units, the asked-about noun,
    places and organisations, or a name (its own, or for a pronoun the conversation's) together
    with the amount asked for it."""
    missing = missing_specifics(question, hits) + missing_entities(question, hits, snapshot, context)
    return (
        missing
        or unbound_subject(question, hits, snapshot, context)
        or unbound_referent(question, hits, snapshot, earlier)
    )


def decide(
    query: Query,
    hits: Sequence[Hit],
    snapshot: Snapshot,
    threshold: float,
    asked: Query | None = None,
    context: str = "",
    earlier: Sequence[str] = (),
) -> Decision:
    """``query`` is what the decision measures (the understood question); ``asked``, ``context``
    (canonical text of the conversation) and ``earlier`` (its questions, most recent first) are
    given for a follow-up.

    A follow-up is supported when either the understood question or the follow-up itself is (a
    joined question spreads its words over two topics, so it scores lower than either); its
    specifics are those of the follow-up alone, since the earlier question's were answered."""
    support = support_score(query, hits, snapshot)
    own_question = query if asked is None else asked
    missing = missing_in_sources(own_question, hits, snapshot, context, earlier)
    # 「X（Y）」 names one thing twice; the sources need only write one of the names.
    if missing and (bare := without_asides(own_question)) is not own_question:
        missing = missing if missing_in_sources(bare, hits, snapshot, context, earlier) else []
    own = None
    if asked is not None:
        support = max(support, support_score(asked, hits, snapshot))
        own = own_words_support(asked, context, hits, snapshot)
    dense = hits[0].dense if hits else None
    # The follow-up's own words are reported, not required: a why/how follow-up paraphrases
    # (「為什麼有專家懷疑…」), and requiring its words refused 40 % of answerable follow-ups (tune split).
    found = bool(hits) and not missing and support >= threshold
    return Decision(found, support, missing, own, dense)


STRONG_MARGIN = 0.2  # support this far above the threshold outweighs an LLM's "the sources are silent"


def evidence_is_strong(decision_support: float, threshold: float) -> bool:
    """Evidence strong enough to answer from it even when an LLM says the sources are silent:
    well clear of the refusal threshold (and no specifics missing, which ``found`` already says).
    A Mainland-worded question that the documents answer scores lower than its Traditional twin
    (0.74 vs 1.0 for 「卢森堡是在什么时候发布…」), so the margin cannot be much larger."""
    return decision_support >= max(0.6, threshold + STRONG_MARGIN)
