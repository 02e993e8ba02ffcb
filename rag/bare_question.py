"""The question without what a reader says around it: greetings, thanks, a clause about the
reader, repeated marks.

A reader types 「你好，想請問一下：盧森堡是在什麼時候發布…？謝謝！」 as often as the bare question.
The wrapper is not about anything, yet it steers every ranking: 謝謝 and 你好 are rare in policy
reports, so BM25 gives them a high IDF and rewards the meeting transcripts that thank their
speakers, and the question's vector drifts towards small talk. Measured on the gold set (192
answerable questions, both scripts), wrapping each question in 「你好，想請問一下：…謝謝！」 lowered
hit@1 from 0.932 / 0.896 (Traditional / Simplified) to 0.917 / 0.875; with the wrapper taken off
the question, hit@1 is the plain question's in every wrapping tried (README, Evaluation).

Only a greeting, thanks or a request to ask at the very start, and thanks at the very end, are
taken off; the same words inside a question (「演講者請問了哪些問題」) stay. A message that is
nothing but courtesy (「謝謝！」) is left as it is, so the chain still sees what was said. Only the
search sees the bare question (``rag.retrieve.Query``): the answer still shows what was asked.

A leading clause about the reader rather than the documents (「我在看這份報告，」, 「根據文件，」,
「老闆要我整理重點：」) moves rankings the same way. It is told from a clause that carries the topic
(「在美國商務部列出的14類關鍵技術出口管制清單中，」) by its words: only a clause whose every word
is in ``rag/reader_words.txt`` or the question scaffolding (``rag/stopwords.txt``) is taken off.
A closed list misses clauses it has no word for; ``python -m eval.prefixes`` measures how many, on
clauses written by someone who never saw the list (README, Evaluation).

Repeated marks (「？？」, 「！！！」) are emphasis, not content; the keyword sides never saw them, but
the question's vector did, and a doubled question mark moved the evidence of 11 of the 384 gold
questions to another rank. A run of one mark becomes one mark.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ingest.normalise import canonical
from rag.store.keyword import tokenize
from rag.wordlists import word_list

_GREETING = r"(?:你好|您好|哈[囉喽啰]|嗨|hi|hello|hey|老[師师]好|大家好|早安|午安|晚安)"
#: 「請問」, 「想請教一下」, 「我想知道」, 「麻煩幫我查一下」: asking to ask.
_ASKING = (
    r"(?:(?:我們|我们|我)?(?:想要|想)?(?:[請请][問问教](?:一下)?|[問问]一下)"
    r"|(?:我們|我们|我)?想知道"
    r"|麻[煩烦](?:你|您)?(?:[幫帮](?:我|忙))?(?:[看查問问]一下)?"
    r"|[幫帮](?:我|忙)[看查問问](?:一下)?)"
)
_THANKS = (
    r"(?:(?:[謝谢][謝谢]|多[謝谢]|感[謝谢])(?:你|您|老[師师])?(?:的(?:回答|解答|[說说]明|[幫帮]忙|[協协]助))?"
    r"|thanks?(?: you)?)"
)
#: Saying one has read the answer: 「好的」, 「了解了」, 「原來如此」, 「OK」.
_ACKNOWLEDGEMENT = (
    r"(?:好的?|好[喔哦啊呀]|了解了?|明白了?|知道了|懂了|收到|ok(?:ay)?|嗯+|原[來来]如此|[沒没]問題|[沒没]问题"
    r"|太好了|不[錯错]|辛苦了|[讚赞])"
)
#: The marks that set off a greeting, thanks or an acknowledgement (a character class's content).
_MARKS = ",，、!！.。~～"
#: A greeting, thanks for the last answer (「謝謝！那第二場呢？」) or an acknowledgement of it
#: (「好的，那韓國呢？」), set off by punctuation, or a greeting or thanks followed by a request to ask;
#: then the request to ask.
_LEADING = re.compile(
    rf"^\s*(?:{_ACKNOWLEDGEMENT}\s*[{_MARKS}]+\s*)?"
    rf"(?:(?:{_GREETING}|{_THANKS})(?:\s*[{_MARKS}]+\s*|(?={_ASKING})))?(?:{_ASKING}[\s,，、:：]*)?",
    re.IGNORECASE,
)
_ENDS_WITH_THANKS = re.compile(rf"{_THANKS}$", re.IGNORECASE)
#: What may stand between the question and the thanks, and after the thanks.
_BEFORE_THANKS = " \t\r\n,，.。!！~～"
_AFTER_THANKS = " \t\r\n.。!！~～"
#: The longest thanks _THANKS matches (「thank you」): only the message's tail is searched, so a
#: long run of punctuation costs linear time, not a regex backtracking over every position.
_LONGEST_THANKS = 9
#: Less than this left after the courtesy is taken off: the message was courtesy, keep it whole.
_SHORTEST_QUESTION = 4


def _without_thanks(question: str) -> str:
    body = question.rstrip(_AFTER_THANKS)
    thanks = _ENDS_WITH_THANKS.search(body[-_LONGEST_THANKS:])
    return body[: len(body) - len(thanks.group())].rstrip(_BEFORE_THANKS) if thanks else question


_REPEATED_MARK = re.compile(r"([?？!！。.,，~～、])\1+")
#: The end of a leading clause.
_CLAUSE_END = re.compile(r"[，,：:；;]")


def _about_the_reader(clause: str) -> bool:
    """Whether a clause says only who reads, what they do with the documents or which document:
    every word in ``rag/reader_words.txt`` or the question scaffolding, one of them the former."""
    reader, scaffolding = word_list("reader_words.txt"), word_list("stopwords.txt")
    words = tokenize(canonical(clause))
    return bool(words) and all(w in reader or w in scaffolding for w in words) and any(w in reader for w in words)


def without_reader_clauses(question: str) -> str:
    """``question`` without the leading clauses about the reader (「我在看這份報告，」, 「根據文件，」,
    「老闆要我整理重點：」); a clause naming anything else (「根據回流倡議組織的統計，」) stops it."""
    while (end := _CLAUSE_END.search(question)) is not None:
        rest = question[end.end() :].lstrip()
        if len(rest) < _SHORTEST_QUESTION or not _about_the_reader(question[: end.start()]):
            break
        question = rest
    return question


def without_courtesy(question: str) -> str:
    """``question`` without a leading greeting, thanks or request to ask and without trailing thanks."""
    bare = _LEADING.sub("", _without_thanks(question), count=1)
    return bare if len(bare.strip()) >= _SHORTEST_QUESTION else question


_SMALL_TALK_PART = rf"(?:{_GREETING}|{_THANKS}|{_ACKNOWLEDGEMENT})"
_SMALL_TALK = re.compile(rf"^\s*(?:{_SMALL_TALK_PART}[\s{_MARKS}]*)+$", re.IGNORECASE)
_IS_THANKS = re.compile(_THANKS, re.IGNORECASE)
_IS_GREETING = re.compile(_GREETING, re.IGNORECASE)


def small_talk(message: str) -> str | None:
    """``thanks``, ``greeting`` or ``acknowledgement`` when the whole message is only that (「謝謝！」,
    「你好」, 「好的，了解了」), else None. Such a message asks the documents nothing: searched, 「謝謝」
    was refused with five unrelated sources, and 「好的，了解了」 was "answered" with a quote about
    smart manufacturing."""
    if len(message) > 40 or not _SMALL_TALK.match(message):
        return None
    if _IS_THANKS.search(message):
        return "thanks"
    return "greeting" if _IS_GREETING.search(message) else "acknowledgement"


@lru_cache(maxsize=1024)
def bare_question(question: str) -> str:
    """What is searched for ``question``: without courtesy and clauses about the reader (a request
    to ask may follow them: 「我在看這份報告，想問一下：…」), each run of one mark made one mark.

    Kept per text: one follow-up turn asks it of the same texts several times (the lean test, the
    joined searches, the decision text, each ``Query``), and a leading clause costs a jieba cut."""
    bare = without_courtesy(without_reader_clauses(without_courtesy(question)))
    return _REPEATED_MARK.sub(r"\1", bare)
