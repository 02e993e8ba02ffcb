"""Does the retrieved evidence support an answer? The decision behind ``found``.

Cosine similarity alone cannot tell 「盧森堡的人口」 (answerable) from 「盧森堡的失業率」 (not in the
documents): both land on the same paragraph. What tells them apart is whether the question's
informative words occur in the evidence. The score is the IDF-weighted share of the question's
content words found in the best of the top chunks; words the corpus never uses weigh most, so a
question about something the documents never mention scores low. The threshold is calibrated on
the gold set (``tongwen eval`` reports the best one), not guessed.

Coverage forgives a missing word or two, because paraphrases and Mainland vocabulary miss words
too. A few things cannot be paraphrased away: a number the question names (「2024年」, 「113年度」),
the unit of an amount it asks for (「多少歐元」), and the thing whose value it asks for (「參數量有
多大」, 「出口產值是多少」). When the top sources lack one of them, the documents answer a
neighbouring question, whatever the coverage; :func:`missing_specifics` finds them. On the gold
set the asked-about noun took refusals of related-sounding unanswerable questions from 0.54 / 0.62
(Traditional / Simplified) to 0.85 / 0.85, with false refusals at 0.06 / 0.08.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache

from ingest.normalise import query_wordings
from ingest.segment import posseg
from rag.condense import PRONOUN
from rag.evidence import ASKED_JI, SHARE_WORDS, asked_unit, has_kind
from rag.money import SUM_UNIT
from rag.retrieve import Hit, Query
from rag.store.base import IndexVersion
from rag.store.derived import derived
from rag.store.keyword import tokenize
from rag.wordlists import word_list


def stopwords() -> frozenset[str]:
    """Question scaffolding in canonical (Simplified) form: carries no topic, so it must not count."""
    return word_list("stopwords.txt")


# Interrogatives: jieba keeps many as one word (哪年哪月, 第几, 几倍, 多久), and no document writes
# them, so as content words they weighed the most and were never covered. 几 opens a question only
# before a counter (几家), not in 几乎 or 几内亚.
_INTERROGATIVE = re.compile(r"哪|什么|多少|第几|^几(?![乎何内])|^多[久长高远快]")


def content_tokens(query_variant: str) -> list[str]:
    """The question's words that say what it is about: not its scaffolding (``stopwords.txt``),
    not its question words."""
    return [t for t in tokenize(query_variant) if t not in stopwords() and not _INTERROGATIVE.search(t)]


def idf(token: str, snapshot: IndexVersion) -> float:
    n = len(snapshot.chunks)
    df = snapshot.doc_freq.get(token, 0)
    return math.log((n - df + 0.5) / (df + 0.5) + 1.0)


def support_score(query: Query, hits: Sequence[Hit], snapshot: IndexVersion, depth: int = 3) -> float:
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


# A parenthesised aside, in canonical form (NFKC made （） ASCII): 「COP28（第28屆聯合國氣候變化大會）」,
# 「回流倡議組織（Reshoring Initiative）」, 「Stiglitz（2016）」.
_ASIDE = re.compile(r"\([^()]*\)")


def without_asides(query: Query) -> Query:
    """The question without its parenthesised asides: the specifics checks accept it in place of
    the whole question (``rag.decide``).

    An aside glosses the term before it: another name (an acronym, the English name, the full
    name of 「COP28」), or a source's year. The documents usually write one of the two names, and
    Mainland questions gloss more often (31 of the gold set's Simplified questions against 18 of
    their Traditional twins), so requiring the gloss's names and ordinals too refused a question
    the documents answer under the other name. Either name will do, since the documents may
    write the aside's (「技術準備度（TRL）」 for a question's 「技术成熟度（TRL）」)."""
    variants = tuple(stripped if (stripped := _ASIDE.sub("", v).strip()) else v for v in query.variants)
    return query if variants == query.variants else replace(query, variants=variants)


_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
# Units an amount question asks for, canonical (Simplified) form: 「多少欧元」 needs 欧元 in the evidence.
_UNIT = re.compile(r"多少(欧元|美元|日元|人民币|新台币|台币|韩元|英镑|港币|公里|公斤|公顷|吨|瓦|千瓦|兆瓦|亿元|万元)")


# An amount of money asked for without naming the currency (「花了多少錢」, 「投入多少經費」,
# 「預算是多少」) is answered only by a sum: a figure in a currency, or in 萬 / 億. A source counting
# the reports (「共計出版 21 本研究報告」) does not say what they cost.
_ASKS_MONEY = re.compile(
    r"多少(?:钱|经费|预算|费用|成本|资金|金额)|花了多少|花费了?多少|"
    r"(?:经费|预算|费用|成本|金额|资金|投资额|投资金额)(?:大概|大约|一共|总共|共)?(?:是|有|为|达到?)?多少"
)
_MONEY = re.compile(
    r"(?:\d|[一二三四五六七八九十百千两])\s*(?:多|余)?\s*(?:千|百)?\s*(?:万|亿|兆)?\s*"
    r"(?:" + SUM_UNIT + r")|[$€£¥]\s*\d"
)


# Units a count check leaves alone: a sum asked for is checked as one (金额 above), and 「多少万」
# / 「多少亿」 ask a magnitude of anything.
_MONEY_UNITS = frozenset(["钱", "元", "美元", "欧元", "亿", "万"])


def _same_units(text: str) -> str:
    return text.replace("日圆", "日元")


def missing_specifics(query: Query, hits: Sequence[Hit], depth: int = 3) -> list[str]:
    """Numbers (two digits or more), asked-for units and the asked-about noun of the question that
    none of the top ``depth`` chunks contains. Thousands separators are ignored (3,000 = 3000); the
    asked-about noun counts as present when any vocabulary variant of it is (服务器 / 伺服器), and a
    share word (比例) when the chunks give any share, beside the year the question names if any. A
    sum asked for without a currency (多少经费) needs a sum in the chunks (``金额`` when none is),
    and a count in a measure word (几家, 多少人) a figure in that measure (the measure word when none
    is: a question the documents cannot answer is otherwise answered with its topic's sentences)."""
    # The canonical text includes the heading path: 「第一場座談會記錄 > …」 says what a chunk is about.
    text = _same_units("\n".join(h.chunk.canonical for h in hits[:depth]).replace(",", ""))
    asked = _same_units(query.variants[0])
    numbers = [n.replace(",", "") for n in _NUMBER.findall(asked)]
    wanted = [n for n in numbers if len(n) >= 2] + _UNIT.findall(asked)
    missing = [w for w in dict.fromkeys(wanted) if w not in text]
    missing += missing_ordinals(asked, text)
    if _ASKS_MONEY.search(asked) and not _MONEY.search(text):
        missing.append("金额")
    # 「找了幾家廠商」, 「多少人參加」: a count in a measure word needs a figure in that measure.
    unit = asked_unit(asked)
    if unit is not None and unit not in _MONEY_UNITS and not has_kind(text, "figure", unit):
        missing.append(unit)
    subject = asked_about(query.variants[0])
    years = _YEAR.findall(asked)
    # Tag the other variants only when the first one's noun is absent (jieba tagging is the cost).
    if (
        subject
        and not subject_given(subject, text, years)
        and all((s := asked_about(v)) and not subject_given(s, text, years) for v in query.variants[1:])
    ):
        missing.append(subject)
    return missing


def subject_given(noun: str, text: str, years: Sequence[str] = ()) -> bool:
    """Whether ``text`` gives what the question asks the value of: the noun (see
    :func:`noun_present`), or for a share word any share (see :func:`share_given`)."""
    return share_given(text, years) if noun in SHARE_WORDS else noun_present(noun, text)


# A share names the kind of answer, as 規模 names an amount: 「自用車的比例是多少」 is answered by
# 「個人用車佔比降低到30%」, 「佔全球總電力需求的 1%」 or 「逾 9 成」, which need not say 比例.
_SHARE = re.compile(r"\d\s*%|百分之|占比|比例|比重|比率|份额|\d\s*成")
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
_SENTENCE_END = re.compile(r"[。!?;\n]")


def share_given(text: str, years: Sequence[str] = ()) -> bool:
    """Whether ``text`` gives a share (a percentage, 百分之, 成, or a share word), and when the
    question names a year, in one sentence with that year: a report that gives other shares and
    names the year elsewhere (「2050年左右達到全面性的電動運輸」 beside 「個人用車居多（約72.5%）」)
    does not give the share for that year."""
    if not years:
        return bool(_SHARE.search(text))
    return any(_SHARE.search(sentence) and all(y in sentence for y in years) for sentence in _SENTENCE_END.split(text))


def noun_present(noun: str, text: str, part_counts: Callable[[str], bool] | None = None) -> bool:
    """Whether ``text`` holds the asked-about noun, or for a compound of two words (占地面积,
    研发经费) either of its words: the documents write 「占地共 7 公頃」 for the area a Mainland
    question calls 占地面积, and a part of the compound still ties the passage to it.
    ``part_counts`` may exclude parts that tie a passage to nothing (see :func:`name_present`)."""
    if noun in text:
        return True
    if len(noun) < 4:
        return False
    words = set(tokenize(noun))
    return any(
        part in words and part in text and (part_counts is None or part_counts(part)) for part in (noun[:2], noun[-2:])
    )


# 「第一座加氫站」, 「第二場座談會」, 「第4波清單」: an ordinal names one instance of a thing, as a year
# names one report. Only measure words of events and built things: 「第一個措施」 often answers a
# list the documents number 一、二、 without the word.
_ORDINAL = re.compile(r"第\s*([一二三四五六七八九十两\d]+)\s*([座场届次期波轮批])")
_DIGITS = dict(zip("一二三四五六七八九", "123456789", strict=True)) | {"两": "2"}


def _arabic(numeral: str) -> str:
    """「二十三」 → 「23」 (one to ninety-nine; Arabic digits pass through)."""
    if numeral.isdigit():
        return numeral
    tens, _, units = numeral.rpartition("十")
    if "十" not in numeral:
        return "".join(_DIGITS.get(c, c) for c in numeral)
    return str(int(_DIGITS.get(tens, "1")) * 10 + int(_DIGITS.get(units, "0")))


def missing_ordinals(asked: str, text: str) -> list[str]:
    """Ordinals of the question (「第一座」) that ``text`` lacks in any form: Chinese or Arabic
    numeral, spaces ignored, 「首座」 for 「第一座」."""
    flat = re.sub(r"\s+", "", text)
    found = {(_arabic(n), m) for n, m in _ORDINAL.findall(flat)}
    found |= {("1", m) for m in re.findall(r"首([座场届次期波轮批])", flat)}
    return [f"第{n}{m}" for n, m in dict.fromkeys(_ORDINAL.findall(asked)) if (_arabic(n), m) not in found]


# 「X是多少」, 「X有多大」, 「X在哪裡」, 「哪個X」…: the noun before these is what the question wants.
_ASKS = re.compile(r"是多少|有多少|有多大|为多少|达到多少|多少|多大|是什么|是哪|在哪|哪一|哪个|哪些|" + ASKED_JI)
_AMOUNT = re.compile(r"多少|多大|" + ASKED_JI)
# Hedges (大概, 差不多) too: 「成功率大概多少」 asks about 成功率 as 「成功率是多少」 does.
_HEDGES = ("大概", "大致", "差不多", "将近", "接近", "一共", "总计", "共计", "合计")
# A forecast (「市場規模預計有多大」) asks about the same noun as the plain question does.
_FORECAST = ("预计", "预估", "预期", "预测", "估计", "可望", "有望", "将", "将会", "可能")
_GLUE = frozenset(
    [
        "是", "有", "为", "的", "达到", "总共", "约", "大约", "共", "要", "会", "在", "占", "到", "了", "花",
        *_HEDGES, *_FORECAST,
    ]
)  # fmt: skip
# 「降到多少」, 「成長到多大」: the word before 到 is a verb of change, however jieba tags it (it cuts
# 「預估會長到多大」 as 預估 / 會長 / 到, and 會長 is a chairman), and a verb asks about no noun.
_REACHES = frozenset(["到", "至"])


# Aspect particles: the word before 「了多少」 is a verb (挹注了多少資金), whose object follows.
_ASPECT = frozenset(["了", "过"])


def _counts_what_follows(rest: str) -> bool:
    """Whether the question word counts the noun right after it (「有幾個國家」, 「多少家中心」):
    then that noun, not the one before (「COP28會議上」, the frame), is what is counted, and it is
    usually a common word the sources hold in other forms. A unit (多少歐元) is checked apart."""
    words = [w for w in posseg().cut(rest[:12]) if w.word.strip()]
    if words and words[0].flag == "q":  # a measure word: 家, 座, 項
        words = words[1:]
    # One character after it (多少人, 幾年) is a counter like a unit, not a thing.
    return (
        bool(words)
        and words[0].flag.startswith("n")
        and len(words[0].word) >= 2
        and not _UNIT.match("多少" + _same_units(words[0].word))
    )


@lru_cache(maxsize=1024)
def asked_about(variant: str) -> str | None:
    """The noun a canonical question asks the value of (「總預算是多少歐元」 → 总预算), or None
    when the question has no such shape or the word before the question word is not a noun."""
    match = _ASKS.search(variant)
    if not match:
        return None
    if _counts_what_follows(variant[match.end() :]):
        return None
    # Within the sentence of the question word: in 「卢森堡为什么要推动产业多元化？是什么事让它警醒的？」
    # the noun before 是什么 is not 多元化, which the first sentence asks about.
    words = [w for w in posseg().cut(_SENTENCE_END.split(variant[: match.start()])[-1]) if w.word.strip()]
    # 「調動了多少人員」: a verb with its aspect particle asks the amount of its object, which
    # follows. The glue verbs (花了多少日圓) keep the noun before them.
    if len(words) >= 2 and words[-1].word in _ASPECT and words[-2].word not in _GLUE:
        return None
    if len(words) >= 2 and words[-1].word in _REACHES and len(words[-2].word) >= 2:
        return None  # a one-character verb (壓到, 降到) is skipped below, as before any 到
    # Skip the glue, any one-character function word jieba split off the noun (差旅费 / 用), and a
    # numeral with its measure word (「全票一張要多少歐元」 asks the price of 全票, not of 一張).
    while words and (
        words[-1].word in _GLUE
        or (len(words[-1].word) == 1 and not words[-1].flag.startswith("n"))
        or words[-1].flag in ("m", "mq")
    ):
        words.pop()
    # One character (「通常卡在哪」: jieba's noun 卡 is the verb "stuck") names too little to require.
    if not words or len(words[-1].word) == 1:
        return None
    last = words[-1]
    # 「號碼是什麼」 asks for the kind of answer, not about a thing; so does a compound ending in such
    # a word (jieba keeps 投資規模 whole, and 「投資規模有多大」 is answered by an amount).
    if last.word in stopwords() or (len(last.word) > 2 and last.word[-2:] in stopwords()):
        return None
    # Nouns, verbal nouns (出口), set phrases (总预算 is tagged l) and Latin-script terms (GDP).
    return last.word if last.flag.startswith("n") or last.flag in ("vn", "l", "eng") else None


# Place and organisation names (jieba's ``ns`` / ``nt``) the question is about.
_ENTITY_FLAGS = frozenset({"ns", "nt"})
# People and companies (jieba's ``nr``, which it also gives 华为) count only when the corpus names
# them in a few chunks: jieba tags common words so too (智慧, 新思维), and a Mainland rendering the
# documents never use (特朗普 for 川普, 谷歌 beside the documents' Google) cannot be looked for.
_PERSON_FLAG = "nr"
PERSON_MIN_CHUNKS = 3
ENTITY_DEPTH = 5
ENTITY_MAX_SHARE = 0.05


def missing_entities(
    query: Query, hits: Sequence[Hit], snapshot: IndexVersion, context: str = "", depth: int = ENTITY_DEPTH
) -> list[str]:
    """Places and organisations the question names that none of the top ``depth`` sources
    mentions: 「越南推動工業4.0的國家戰略」 over sources about Japan and Germany answers a neighbouring
    question. Names that run through the whole corpus (「台灣」 in over 5 % of chunks) are the
    setting, not the subject, and are not required; a two-character pair like 中美 counts in
    either order (美中); names already in the conversation (``context``) were answered before.
    On the tune split this refused 2 more of 18 unanswerable questions with no more false refusals
    (of 124); on the held-out split it refused no more unanswerables and 1 more of 50 answerable."""
    text = "".join(h.chunk.canonical for h in hits[:depth])
    return [name for name in question_names(query, snapshot, context) if not name_present(name, text, snapshot)]


def name_present(name: str, text: str, snapshot: IndexVersion) -> bool:
    """Whether ``text`` names ``name`` as the asked-about noun would be found: in either
    vocabulary (網路通訊 for 网络通信), or for a compound name by either of its words
    (中央財政 by 中央). A word that runs through the corpus (美國, in 31 % of the bundled chunks) is
    the setting and ties a passage to no name, so 美國參議院 needs 參議院's part, not 美國.

    Names were looked for verbatim while the asked-about noun had these forms, so a Mainland
    question naming 中央财政 or 网络通信 was refused over the sources its Traditional twin was
    answered from (g150, g196 of the gold set), and 美國參議院 in either script over sources
    writing 參議院 (g169). No unanswerable gold question was answered for it."""
    if any(f in text for f in _forms(name)):  # the common case, before any conversion
        return True
    wordings = dict.fromkeys([name, *query_wordings(name).values()])
    return any(
        any(f in text for f in _forms(w)) or noun_present(w, text, lambda part: not is_setting(part, snapshot))
        for w in wordings
    )


def is_setting(word: str, snapshot: IndexVersion) -> bool:
    """Whether ``word`` runs through the corpus (in over 5 % of its chunks, as 台灣 or 美國 here):
    the setting of the documents, which singles out no passage and names nothing a question asks."""
    return snapshot.doc_freq.get(word, 0) > ENTITY_MAX_SHARE * max(1, len(snapshot.chunks))


def question_names(query: Query, snapshot: IndexVersion, context: str = "") -> list[str]:
    """The names :func:`missing_entities` requires: tagged as a place, organisation or (well
    attested) person, written somewhere in the corpus (see :func:`corpus_writes`), not the
    corpus's setting, not already in the conversation, and not a word of the scaffolding or a
    common word jieba's dictionary mistags as a name (``rag/not_names.txt``: 波及, 顧問)."""
    names = [
        word
        for word, flag in _tagged(query.variants[0])
        if len(word) >= 2
        and (flag in _ENTITY_FLAGS or (flag == _PERSON_FLAG and snapshot.doc_freq.get(word, 0) >= PERSON_MIN_CHUNKS))
    ]
    return [
        n
        for n in dict.fromkeys(names)
        if n not in context
        and n not in stopwords()
        and n not in word_list("not_names.txt")
        and not is_setting(n, snapshot)
        and corpus_writes(snapshot, n)
    ]


def corpus_writes(snapshot: IndexVersion, name: str) -> bool:
    """Whether any chunk holds ``name``. A place or organisation the documents never write is
    most often a Mainland rendering of one they do (圣旺 for 聖圖安, 波士顿咨询公司 for 波士頓顧問
    公司), which no source can hold; the coverage score already weighs such a word the most."""
    if snapshot.doc_freq.get(name, 0):
        return True
    # ~1 MB for the bundled corpus, joined once per version.
    text = derived(snapshot, "_corpus_text", lambda: "\n".join(c.canonical for c in snapshot.chunks))
    return name in text


@lru_cache(maxsize=1024)
def _tagged(variant: str) -> tuple[tuple[str, str], ...]:
    """jieba's (word, part of speech) of a question, once per question: the entity check and the
    amount binding both read it, and tagging is the costly step."""
    return tuple((w.word, w.flag) for w in posseg().cut(variant))


def _forms(name: str) -> tuple[str, ...]:
    return (name, name[::-1]) if len(name) == 2 else (name,)


def amount_asked(variant: str) -> str | None:
    """The noun whose amount a canonical question asks (「華為的晶片自給率是多少」 → 自给率), or None
    when it asks no amount (「哪一類」, 「是什麼」) or names no such noun."""
    match = _ASKS.search(variant)
    return asked_about(variant) if match and _AMOUNT.search(match.group()) else None


def given_beside(
    subject: str, names: Sequence[str], hits: Sequence[Hit], snapshot: IndexVersion, years: Sequence[str], every: bool
) -> bool:
    """Whether one of ``hits`` gives ``subject`` (see :func:`subject_given`) beside ``every`` name,
    or beside any one of them: a figure belongs to whom it is given for."""
    named = all if every else any
    return any(
        subject_given(subject, h.chunk.canonical, years)
        and named(name_present(n, h.chunk.canonical, snapshot) for n in names)
        for h in hits
    )


def unbound_subject(
    query: Query, hits: Sequence[Hit], snapshot: IndexVersion, context: str = "", depth: int = ENTITY_DEPTH
) -> list[str]:
    """「華為的晶片自給率是多少」 over one source on China's 自給率 and another on 華為 answers
    nothing: a figure belongs to whom it is given for, so the thing whose amount is asked must
    appear in one top source together with every name the question gives. Returns 「华为+自给率」
    when no source holds both. Only amounts: for 「哪一類」 / 「是什麼」 the name is often the
    frame (「美國商務部列出的清單中，SoC 屬哪一類」) and the answer sits in a table without it."""
    subject = amount_asked(query.variants[0])
    names = question_names(query, snapshot, context) if subject else []
    if not subject or not names:
        return []
    if given_beside(subject, names, hits[:depth], snapshot, _YEAR.findall(query.variants[0]), every=True):
        return []
    return ["+".join([*names, subject])]


def unbound_referent(
    query: Query, hits: Sequence[Hit], snapshot: IndexVersion, earlier: Sequence[str], depth: int = ENTITY_DEPTH
) -> list[str]:
    """「那它一年的營收大概多少？」 after questions about 巴黎's 光之博物館: the amount asked for is
    the pronoun's, so a source must give it beside a name the conversation's latest question with
    names gave (``earlier``, most recent first), as :func:`unbound_subject` requires of names the
    question gives itself. Returns 「巴黎/光之博物馆+营收」 when no top source holds both."""
    variant = query.variants[0]
    subject = amount_asked(variant) if PRONOUN.search(variant) else None
    if not subject:
        return []
    # The earlier questions are prepared only here, for the few follow-ups that get this far.
    names = next((found for q in earlier if (found := question_names(Query.from_question(q), snapshot))), [])
    if not names or given_beside(subject, names, hits[:depth], snapshot, _YEAR.findall(variant), every=False):
        return []
    return ["/".join(names) + "+" + subject]
