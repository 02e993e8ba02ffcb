"""Conversation-aware search for a follow-up question.

Rewriting a follow-up by rules (「那韓國呢？」 → a standalone question) is too brittle to carry
retrieval: one wrong guess and the search is off-topic. So the search does not depend on a
rewrite. It runs the follow-up alone, and the follow-up joined with what the conversation was
about (the previous questions and the sentences the last answer quoted), and fuses the rankings
(see :func:`rag.retrieve.fused_search`). The follow-up alone keeps the largest weight, so a
self-contained new question still wins; a follow-up that leans on the conversation (a pronoun,
「那X呢」, 「其他…呢」, 「為什麼」, or just short) gives the conversation an equal say.

A rewrite is still shown to the user as 「已理解為…」, but only when it can be trusted (see
:func:`rag.condense.rewrite_by_rules`), and an LLM's rewrite only after :func:`valid_condensed`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ingest.normalise import Script, detect_script
from ingest.sentences import split_sentences
from rag.bare_question import bare_question
from rag.store.records import ChunkRecord

_CITATION = re.compile(r"\[\d{1,2}\]")
# Signs that a question leans on the turn before it.
_LEANS = re.compile(
    r"^\s*(?:那|至於|至于|還有|还有|另外|而|換成|换成|如果是|若是)|呢\s*[？?]*\s*$|"
    r"它|他們|他们|這個|这个|這些|这些|該|该|其|此|上述|前者|後者|后者|為什麼|为什么|為何|为何|怎麼|怎么|如何|"
    # A comparison with what was just said (「跟長期目標比起來差了幾年？」) names only one side.
    r"比起|相比|相較|相较|差了|差多少|多了多少|少了多少"
)
SHORT_FOLLOW_UP = 12  # characters: a question this short after a conversation leans on it
_ANSWER_LIKE = re.compile(r"根據文件|根据文件|文件中|沒有提到|没有提到|^[「『]")


def leans_on_history(question: str) -> bool:
    """Whether a follow-up needs the conversation to be understood (judged without the greeting or
    thanks around it: 「謝謝！那第二場呢？」 leans on the conversation as 「那第二場呢？」 does)."""
    question = bare_question(question)
    return len(question.strip()) <= SHORT_FOLLOW_UP or _LEANS.search(question) is not None


def previous_questions(history: Sequence[Mapping[str, str]], turns: int = 2) -> list[str]:
    """The last few user questions, most recent first, without the greetings and thanks around
    them (``rag.bare_question``): joined with a follow-up, they are searched."""
    found = [bare_question(str(m.get("content", "")).strip()) for m in history if m.get("role") == "user"]
    return [q for q in reversed(found) if q][:turns]


def last_answer_quotes(history: Sequence[Mapping[str, str]]) -> str:
    """The sentences the last assistant answer cited, without [n] markers, quote brackets or the
    「根據文件：」 lead-in: what the conversation has established so far."""
    for message in reversed(history):
        if message.get("role") != "assistant":
            continue
        text = str(message.get("content", ""))
        if not _CITATION.search(text):
            return ""  # a refusal (or an uncited answer) establishes nothing
        sentences = [text[s:e] for s, e in split_sentences(text)]
        cited = "".join(_CITATION.sub("", s) for s in sentences if _CITATION.search(s))
        return re.sub(r"[「」『』]|\s*(?:根據文件|根据文件)[：:]", "", cited).strip()
    return ""


def retrieval_queries(
    asked: str, history: Sequence[Mapping[str, str]], history_chars: int, understood: str | None = None
) -> list[tuple[str, float]]:
    """The texts to search for one question, each with its fusion weight.

    ``history_chars`` bounds how much of the conversation goes into a query: a long history would
    otherwise drown the follow-up's own words in the keyword and dense searches alike.
    """
    queries = [(asked, 1.0)]
    if not history or history_chars <= 0:
        return queries
    asked = bare_question(asked)  # joined with the conversation, a greeting would sit in the middle
    leans = leans_on_history(asked)
    questions = "".join(previous_questions(history))[:history_chars]
    if questions:
        queries.append((f"{questions}{asked}", 1.0 if leans else 0.5))
    quotes = last_answer_quotes(history)[: max(0, history_chars - len(questions))]
    if quotes:
        queries.append((f"{asked}{quotes}", 0.6 if leans else 0.3))
    if understood and understood != asked:
        queries.append((understood, 1.0))
    return queries


#: How many of the previous question's passages a follow-up carries over (then their neighbours).
PREVIOUS_SOURCES = 3
#: The weight of the carried-over passages in the fusion, for a why/how follow-up.
CARRIED_WEIGHT = 1.0
# 「為什麼這麼難？」, 「他們打算怎麼解決？」: asks the reason or the way of what was just said.
_WHY_HOW = re.compile(r"為什麼|为什么|為何|为何|怎麼|怎么|如何|怎樣|怎样")


def carried_positions(previous: Sequence[int], chunks: Sequence[ChunkRecord]) -> list[int]:
    """The passages the previous question found, then the passages next to them in the same
    document: a follow-up (「為什麼這麼難？」, 「他們打算怎麼解決？」) usually asks about what the
    last answer was quoting, or about what the document says right after it."""
    ranked = list(dict.fromkeys(previous))
    for pos in list(ranked):
        for near in (pos - 1, pos + 1):
            if 0 <= near < len(chunks) and chunks[near].doc_id == chunks[pos].doc_id and near not in ranked:
                ranked.append(near)
    return ranked


def carried_weight(asked: str) -> float:
    """Only a why/how follow-up carries the last passages over: it asks about the same subject by
    nature, while 「那X呢」 or 「它的…」 may well move to another document, where the carried
    passages would crowd out the new evidence."""
    return CARRIED_WEIGHT if _WHY_HOW.search(asked) and leans_on_history(asked) else 0.0


def decision_text(asked: str, history: Sequence[Mapping[str, str]], understood: str | None) -> str:
    """What the found/refuse decision should measure support for: the trusted rewrite, or else a
    leaning follow-up joined with the previous question (「為什麼？」 alone asks about nothing)."""
    if understood:
        return understood
    previous = previous_questions(history, 1)
    if previous and leans_on_history(asked):
        return f"{previous[0]}{bare_question(asked)}"
    return asked


def valid_condensed(text: str, asked: str, script: Script, limit: int) -> bool:
    """Whether an LLM's rewrite of a follow-up can stand for it: one line, in the asker's script,
    no citation markers, bounded in length, a question rather than an answer."""
    text = text.strip()
    if not text or "\n" in text or _CITATION.search(text) or _ANSWER_LIKE.search(text):
        return False
    if len(text) > min(limit, max(60, 4 * len(asked))):
        return False
    if script != "neutral" and detect_script(text) not in (script, "neutral"):
        return False
    # A question, not a statement: it ends with a question mark or carries a question word.
    return bool(re.search(r"[？?]$|什麼|什么|哪|多少|幾|几|如何|怎|為何|为何|為什麼|为什么|嗎|吗|呢", text))
