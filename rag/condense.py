"""Turn a follow-up (「那韓國呢？」) into a standalone question, using the conversation.

Rules first, because they are instant and deterministic: an elliptical follow-up names a new
subject (韓國) to put in place of the same kind of word (a place for a place, an organisation
for an organisation) in the previous question. When no rule applies and an LLM is available,
the condense prompt asks it; otherwise the new subject is prefixed to the previous question.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from ingest.normalise import Script, canonical, detect_script, to_script
from ingest.segment import posseg
from rag.bare_question import bare_question
from rag.followup import previous_questions

# 「那韓國呢？」「至於新加坡？」「還有日本嗎」「韓國呢」
_ELLIPSIS = re.compile(
    r"^\s*(?:那麼|那么|那|至於|至于|還有|还有|另外|換成|换成|如果是|若是|而)?\s*"
    r"(?P<subject>[^？?。，,]{1,16}?)\s*(?:的情況|的情况|的部分|方面)?\s*(?:呢|又如何|怎麼樣|怎么样|如何|嗎|吗)?\s*[？?。!！]*\s*$"
)
_MARKERS = ("那", "至於", "至于", "還有", "还有", "換成", "换成", "如果是", "若是")
# jieba tags a foreign name rendered by sound nrt (亚马逊; 阿迪达斯, where Taiwan writes 愛迪達) and a
# full personal name nrfg. Left out, a pronoun after such a name kept no rewrite, and a Mainland
# asker lost the rewrite the Taiwan asker got for the same company.
_NAME_FLAGS = ("ns", "nr", "nrt", "nrfg", "nt", "nz")


#: How many questions back a follow-up's understood question is traced (「那ODA呢？」 after 「那PPP呢？」
#: after the question both lean on).
FOLLOW_UP_CHAIN = 4


def last_user_message(history: Sequence[Mapping[str, str]]) -> str | None:
    for message in reversed(history):
        if message.get("role") == "user" and str(message.get("content", "")).strip():
            return str(message["content"]).strip()
    return None


def previous_question(history: Sequence[Mapping[str, str]]) -> str | None:
    """The last question of the conversation as the rules understood it: a follow-up of its own
    (「那PPP呢？」) stands for its trusted rewrite (「PPP模式最大的挑戰是什麼？」), so the next
    elliptical follow-up (「那ODA呢？」) has a whole question to swap its subject into.

    Pronouns are resolved against :func:`pronoun_antecedents` instead, which follows pronoun
    rewrites only: the rule takes the first name of the previous question, and in an elliptical
    rewrite that is often the frame, not the referent (「它一年的營收」 after a question about a
    museum in Paris became 巴黎's)."""
    return _traced(
        tuple(previous_questions(history, FOLLOW_UP_CHAIN)),
        lambda question, understood: rewrite_by_rules(question, [{"role": "user", "content": understood}]),
    )


def pronoun_antecedents(history: Sequence[Mapping[str, str]]) -> str | None:
    """The previous question a pronoun is resolved against: as asked, unless it has a pronoun of its
    own that the rules resolved, then as resolved (traced over the last four questions). 「那它一年
    的營收大概多少？」 after 「它的展覽用了幾台投影機？」 after 「巴黎的光之博物館…」 points where the
    turn before pointed, at the museum; against the question as asked it found no name at all.

    Only pronoun rewrites are followed, not elliptical ones (「那韓國呢？」 is its own antecedent): a
    swapped-in question's first name is often its frame (see :func:`previous_question`)."""
    return _pronoun_antecedents(tuple(previous_questions(history, FOLLOW_UP_CHAIN)))


@lru_cache(maxsize=256)
def _pronoun_antecedents(questions: tuple[str, ...]) -> str | None:
    """:func:`pronoun_antecedents` of the last questions (newest first), kept: a follow-up's rewrite
    and its 「已理解為」 line both ask for it, and the trace runs the tagger over every question."""
    return _traced(
        questions,
        lambda question, understood: (
            resolve_pronoun(question, understood) if elliptical_subject(question) is None else None
        ),
    )


def _traced(questions: Sequence[str], read: Callable[[str, str], tuple[str, bool] | None]) -> str | None:
    """The last question as understood, reading each of the last few ``questions`` (newest first)
    against the one before it as understood (``read`` gives a rewrite and whether it is trusted).
    Forward and with a one-question history each time, so a conversation of any length costs a few
    rewrites and never recurses."""
    asked = list(questions)[::-1]  # oldest first
    if not asked:
        return None
    understood = asked[0]
    for question in asked[1:]:
        rewritten = read(question, understood)
        understood = rewritten[0] if rewritten is not None and rewritten[1] else question
    return understood


def conversation_script(history: Sequence[Mapping[str, str]]) -> Script:
    """The script of the last user message that has one: after 「那PPP模式呢？」 (either script) in
    a Simplified conversation, 「ODA呢？」 is answered in Simplified."""
    for message in reversed(history):
        if message.get("role") == "user" and (script := detect_script(str(message.get("content", "")))) != "neutral":
            return script
    return "neutral"


@lru_cache(maxsize=256)
def elliptical_subject(question: str) -> str | None:
    """The new subject of a follow-up that leans on the previous question, or None."""
    text = question.strip()
    if len(text) > 20:
        return None
    match = _ELLIPSIS.match(text)
    if not match:
        return None
    leans = text.startswith(_MARKERS) or re.search(r"(呢|又如何)\s*[？?]*\s*$", text)
    subject = match.group("subject").strip()
    # A subject is a noun phrase: 「它提出了哪些產業」 has a pronoun and a verb, so it is not one.
    flags = [w.flag for w in posseg().cut(canonical(subject))]
    if not leans or any(f.startswith(("r", "v", "p", "u", "d")) and f != "vn" for f in flags):
        return None
    return subject


# 其 and 該 as pronouns only: 其他 / 其中 / 其實 / 該當 are words of their own, and 該 is "should" in
# 應該, 該怎麼, 該如何, 該不該 (「台灣應該怎麼因應？」 became 「台灣應美國怎麼因應？」).
PRONOUN = re.compile(
    r"它們|它们|他們|他们|這個|这个|該國|该国|它|其(?![他它中實实餘余次])|"
    r"(?<![應应本活不])(?:該|该)(?![當当怎如不要會会])"
)


# 它們 / 他們 point at what the previous question counted or listed (「多少家銀行」 → 它們), rarely at
# the place or company it named, so a plural pronoun is not replaced by a name.
_PLURAL = frozenset({"它們", "它们", "他們", "他们"})


@lru_cache(maxsize=256)  # asked again when the answer's sentences are weighed (rag.chain)
def resolve_pronoun(question: str, previous: str) -> tuple[str, bool] | None:
    """「那它提出了哪些產業？」 after 「盧森堡…」 → 「盧森堡提出了哪些產業？」 (first name of the
    previous question in place of the pronoun), or None when there is no singular pronoun or no
    name. Trusted only when the name stands whole: a name jieba cut off before a noun may be part
    of a longer one (「中技社是…」 comes out as 中技 / 社是, and 「中技現在有多少名員工」 is wrong)."""
    match = PRONOUN.search(question)
    if not match or match.group() in _PLURAL:
        return None
    if len(canonical(previous)) != len(previous):
        return None
    spans = tagged_spans(previous)
    lead = re.sub(r"^\s*(?:那麼|那么|那)\s*", "", question[: match.start()])
    compared = _COMPARED.search(question) is not None
    named = named_by_class(question[match.end() :], previous, spans)
    if named is not None:
        # Trusted even when compared (「跟這個品牌比起來呢」): the class noun says what the pronoun
        # stands for, where a bare 它 compared with may stand for what was measured.
        name, class_length = named
        return (lead + name + question[match.end() + class_length :]).strip(), True
    for i, (start, word) in enumerate(spans):
        if word.flag in _NAME_FLAGS:
            # 「這個計畫」 names its own noun: 盧森堡計畫, not 盧森堡的規劃計畫.
            length = len(word.word) if match.group() in ("這個", "这个") else _possessed_length(spans, i)
            name = previous[start : start + length]
            return (lead + name + question[match.end() :]).strip(), not compared and not _cut_short(spans, i)
    return None


# A pronoun something is compared with: 「建築部門跟它比起來呢？」, 「到2026年會是它的幾倍？」.
_COMPARED = re.compile(
    r"(?:跟|和|與|与|同|比|較|较)(?:它|其|這個|这个)|(?:它|其)(?:的)?(?:幾|几|多少)倍|"
    r"(?:它|這個|这个)(?:比起來|比起来|相比|相較|相较|一樣|一样)"
)


# What may stand inside the noun phrase a name possesses: nouns, verbal nouns (出口管制), Latin-script
# terms, numerals (第三次) and 之 (光之博物館); not the adverbs jieba tags as nouns (「…原本是」).
_NOMINAL = re.compile(r"^(?:n|vn|eng|m)")
_ADVERB_NOUNS = frozenset({"原本", "原先"})


def _in_phrase(word: Any) -> bool:
    return word.word == "之" or (_NOMINAL.match(word.flag) is not None and word.word not in _ADVERB_NOUNS)


def _possessed_length(spans: Sequence[tuple[int, Any]], i: int) -> int:
    """The length of the name at ``spans[i]`` with the noun phrase it possesses: 「巴黎的光之博物館」
    for 巴黎, up to the first word that is no noun (開幕, 原本是). A pronoun points at what the
    previous question was about, and in 「X的Y…」 that is Y: 「它的展覽」 after 「巴黎的光之博物館
    開幕第一年吸引了多少遊客？」 is the museum's, not the city's. Kept whole, the phrase still names X.
    Just the name when 的 does not follow or no noun follows it."""
    start, word = spans[i]
    if i + 2 >= len(spans) or spans[i + 1][1].word != "的":
        return len(word.word)
    end = i + 2
    while end < len(spans) and _in_phrase(spans[end][1]):
        end += 1
    if not any(w.flag.startswith(("n", "vn", "eng")) for _, w in spans[i + 2 : end]):
        return len(word.word)
    while spans[end - 1][1].word == "之" or spans[end - 1][1].flag.startswith("m"):
        end -= 1  # a phrase ends in a noun
    last_start, last = spans[end - 1]
    return last_start + len(last.word) - start


def tagged_spans(text: str) -> list[tuple[int, Any]]:
    """jieba's tagged words of the canonical ``text``, each with its offset: where the word stands
    in ``text`` itself when canonical form keeps the length (the callers check that)."""
    spans, offset = [], 0
    for word in posseg().cut(canonical(text)):
        spans.append((offset, word))
        offset += len(word.word)
    return spans


# A Latin-script name as the asker wrote it: jieba's cut of 「Chloé」 stops at the accent.
_LATIN_NAME = re.compile(r"[A-Za-z\u00c0-\u024f][A-Za-z0-9\u00c0-\u024f&'.\-]*")


def named_by_class(rest: str, previous: str, spans: Sequence[tuple[int, Any]]) -> tuple[str, int] | None:
    """「這個品牌的…」 after 「…精品品牌Chloé…」: the name the previous question puts beside the
    class noun (品牌 Chloé, 台積電這家公司), and the class noun's length in ``rest``; None when the
    demonstrative is not followed by a noun the previous question uses that way. Without this,
    「這個品牌」 became the first name of the previous question, a city (巴黎品牌)."""
    following = [w for w in posseg().cut(canonical(rest[:8])) if w.word.strip()]
    if not following or not following[0].flag.startswith("n") or len(following[0].word) < 2:
        return None
    noun = following[0].word
    for i, (_, word) in enumerate(spans):
        if word.word != noun:
            continue
        for j in (i + 1, i - 1):
            if not 0 <= j < len(spans):
                continue
            start, near = spans[j]
            if near.flag == "eng" and (latin := _LATIN_NAME.match(previous, start)):
                return latin.group(), len(noun)
            if near.flag in _NAME_FLAGS:
                return previous[start : start + len(near.word)], len(noun)
    return None


def _kind(flag: str) -> tuple[str, ...]:
    """The flags that may stand for a word tagged ``flag``: jieba confuses name kinds (卢森堡 comes
    out as a person, nr), so any name stands for any name; a Latin-script term (PPP, ODA) for one
    (BOT); a common noun for nothing (it is attached to the topic instead)."""
    if flag == "eng":
        return ("eng",)
    return _NAME_FLAGS if flag.startswith("n") else ()


def substitute_subject(previous: str, subject: str) -> str | None:
    """Replace the word in ``previous`` that has the subject's part of speech (place, org …), or
    for a subject with a head noun (「PPP模式」, 「美國市場」) the same head noun with its modifier
    (「BOT模式」, 「中國市場」)."""
    tagged_subject = list(posseg().cut(canonical(subject)))
    if len(canonical(previous)) != len(previous):  # offsets must line up to edit the original text
        return None
    spans = tagged_spans(previous)
    if len(tagged_subject) == 2:
        return _substitute_modified(previous, subject, tagged_subject, spans)
    if len(tagged_subject) != 1:
        return None
    flags = _kind(tagged_subject[0].flag)
    names = [  # (cut short, offset, length, the word after it)
        (_cut_short(spans, i), start, len(word.word), spans[i + 1][1].word if i + 1 < len(spans) else "")
        for i, (start, word) in enumerate(spans)
        if word.flag in flags and word.word != canonical(subject)
    ]
    if not names:
        return None
    # A name that stands whole first: 「中技社的物流報告說，日本…」 cuts 中技 / 社, and 「那韓國呢」
    # asks about 韓國 in place of 日本, not 「韓國社」.
    _, start, length, after = min(names)
    # jieba keeps 「美國市場」 whole: in place of 中國 in 「中國市場的規模」 it takes 市場 along.
    if after and len(canonical(subject)) > len(after) and canonical(subject).endswith(after):
        length += len(after)
    return previous[:start] + subject + previous[start + length :]


def _substitute_modified(
    previous: str, subject: str, tagged_subject: Sequence[Any], spans: Sequence[tuple[int, Any]]
) -> str | None:
    """「那PPP模式呢？」 after 「BOT模式最大的挑戰是什麼？」: the head noun (模式) stands in
    ``previous`` after a modifier of the modifier's kind (BOT, a Latin-script term), so the two
    words make way for the subject. None when no such pair is there."""
    modifier, head = tagged_subject
    kinds = _kind(modifier.flag)
    if not kinds or not head.flag.startswith("n"):
        return None
    for (start, word), (_, after) in itertools.pairwise(spans):
        if word.flag in kinds and after.word == head.word and word.word != modifier.word:
            return previous[:start] + subject + previous[start + len(word.word) + len(after.word) :]
    return None


def _cut_short(spans: Sequence[tuple[int, Any]], i: int) -> bool:
    """Whether the name at ``spans[i]`` runs on into a noun (中技 / 社): part of a longer name."""
    return i + 1 < len(spans) and spans[i + 1][1].flag.startswith("n")


def attach_to_topic(previous: str, subject: str) -> str:
    """「那三大運作原則呢？」 after 「盧森堡第三次產業革命計畫以哪些技術為基礎？」 →
    「盧森堡第三次產業革命計畫的三大運作原則是什麼？」: the previous question's opening noun
    phrase (up to its first verb, preposition or pronoun) is the topic the subject belongs to."""
    canon_prev = canonical(previous)
    length = 0
    for word in posseg().cut(canon_prev):
        if word.flag.startswith(("v", "p", "r", "u", "d", "c")) or not word.word.strip():
            break
        length += len(word.word)
    topic = previous[:length] if len(canon_prev) == len(previous) else ""
    return f"{topic}的{subject}是什麼？" if topic else f"{subject}是什麼？"


def rewrite_by_rules(question: str, history: Sequence[Mapping[str, str]]) -> tuple[str, bool] | None:
    """A standalone question and whether it can be trusted, or None when the question doesn't
    look like a follow-up. Trusted: a name put in place of a name (那韓國呢 after a question about
    台積電), a pronoun replaced by the previous question's name, or a common noun phrase attached
    to the previous topic (那三大運作原則呢). Not trusted: a name attached as if it were an
    attribute (「台積電的韓國是什麼」), a word too short to tell, which only means the rules could not
    place it, or a name that may be cut short (see :func:`resolve_pronoun`)."""
    asked = last_user_message(history)
    if asked is None:
        return None
    # Read without greetings and thanks (rag.bare_question): 「謝謝！那韓國呢？」 is 「那韓國呢？」.
    question = bare_question(question)
    subject = elliptical_subject(question)
    if subject is None:
        return resolve_pronoun(question, pronoun_antecedents(history) or bare_question(asked))
    previous = bare_question(previous_question(history) or asked)
    script = detect_script(question)
    substituted = substitute_subject(previous, subject)
    if substituted is not None:
        rewritten, trusted = substituted, True
    else:
        is_name = any(w.flag in _NAME_FLAGS for w in posseg().cut(canonical(subject)))
        # A short word jieba does not know (聯電 comes out as 联 / 电) may be a name too.
        rewritten, trusted = attach_to_topic(previous, subject), not is_name and len(subject) >= 3
    return (to_script(rewritten, script) if script != "neutral" else rewritten), trusted


def resolved_pronoun(question: str, history: Sequence[Mapping[str, str]]) -> str | None:
    """The question with its pronoun replaced by the rules' trusted name (「這個品牌的…」 →
    「Chloé的…」), or None when the rules resolved no pronoun of it."""
    previous = pronoun_antecedents(history)
    if previous is None:
        return None
    question = bare_question(question)
    if elliptical_subject(question) is not None:
        return None
    resolved = resolve_pronoun(question, previous)
    return resolved[0] if resolved is not None and resolved[1] else None


def condense_by_rules(question: str, history: Sequence[Mapping[str, str]]) -> str | None:
    """A standalone question, or None when the question doesn't look like a follow-up."""
    rewritten = rewrite_by_rules(question, history)
    return None if rewritten is None else rewritten[0]


def history_text(history: Sequence[Mapping[str, str]], turns: int = 4) -> str:
    """The last few messages as lines for the condense prompt (answers clipped: they are long)."""
    lines = []
    for message in list(history)[-turns:]:
        who = "使用者" if message.get("role") == "user" else "助理"
        lines.append(f"{who}：{str(message.get('content', ''))[:200]}")
    return "\n".join(lines)
