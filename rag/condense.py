"""Turn a follow-up (「那韓國呢？」) into a standalone question, using the conversation.

Rules first, because they are instant and deterministic: an elliptical follow-up names a new
subject (韓國) to put in place of the same kind of word (a place for a place, an organisation
for an organisation) in the previous question. When no rule applies and an LLM is available,
the condense prompt asks it; otherwise the new subject is prefixed to the previous question.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

from rag.normalise import canonical, detect_script, to_script

# 「那韓國呢？」「至於新加坡？」「還有日本嗎」「韓國呢」
_ELLIPSIS = re.compile(
    r"^\s*(?:那麼|那么|那|至於|至于|還有|还有|另外|換成|换成|如果是|若是|而)?\s*"
    r"(?P<subject>[^？?。，,]{1,16}?)\s*(?:的情況|的情况|的部分|方面)?\s*(?:呢|又如何|怎麼樣|怎么样|如何|嗎|吗)?\s*[？?。!！]*\s*$"
)
_MARKERS = ("那", "至於", "至于", "還有", "还有", "換成", "换成", "如果是", "若是")
_NAME_FLAGS = ("ns", "nr", "nt", "nz")


@lru_cache(maxsize=1)
def _posseg():
    import jieba.posseg

    from rag.store.keyword import quiet_jieba

    quiet_jieba()

    return jieba.posseg


def last_user_message(history: Sequence[Mapping[str, str]]) -> str | None:
    for message in reversed(history):
        if message.get("role") == "user" and str(message.get("content", "")).strip():
            return str(message["content"]).strip()
    return None


def elliptical_subject(question: str) -> str | None:
    """The new subject of a follow-up that leans on the previous question, or None."""
    text = question.strip()
    if len(text) > 20:
        return None
    match = _ELLIPSIS.match(text)
    if not match:
        return None
    leans = text.startswith(_MARKERS) or re.search(r"(呢|又如何)\s*[？?]*\s*$", text)
    return match.group("subject").strip() if leans else None


def substitute_subject(previous: str, subject: str) -> str | None:
    """Replace the word in ``previous`` that has the subject's part of speech (place, org …)."""
    tagged_subject = list(_posseg().cut(canonical(subject)))
    if len(tagged_subject) != 1:
        return None
    flag = tagged_subject[0].flag
    flags = (flag,) if flag in _NAME_FLAGS else _NAME_FLAGS if flag.startswith("n") else ()
    canon_prev = canonical(previous)
    if len(canon_prev) != len(previous):  # offsets must line up to edit the original text
        return None
    offset = 0
    for word in _posseg().cut(canon_prev):
        if word.flag in flags and word.word != canonical(subject):
            return previous[:offset] + subject + previous[offset + len(word.word) :]
        offset += len(word.word)
    return None


def condense_by_rules(question: str, history: Sequence[Mapping[str, str]]) -> str | None:
    """A standalone question, or None when the question doesn't look like a follow-up."""
    previous = last_user_message(history)
    subject = elliptical_subject(question)
    if previous is None or subject is None:
        return None
    script = detect_script(question)
    rewritten = substitute_subject(previous, subject) or f"{subject}：{previous}"
    return to_script(rewritten, script) if script != "neutral" else rewritten


def history_text(history: Sequence[Mapping[str, str]], turns: int = 4) -> str:
    """The last few messages as lines for the condense prompt (answers clipped: they are long)."""
    lines = []
    for message in list(history)[-turns:]:
        who = "使用者" if message.get("role") == "user" else "助理"
        lines.append(f"{who}：{str(message.get('content', ''))[:200]}")
    return "\n".join(lines)
