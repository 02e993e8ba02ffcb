"""Pick the sentences of the retrieved chunks that answer the question.

Both the extractive backend (which quotes them) and the LLM backends (which get them as compact
context, because on a CPU prompt length is latency) use this one selection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ingest.normalise import canonical
from ingest.sentences import ASCII_CLAUSE_MARK, CLOSERS, END_MARKS, split_sentences
from rag.money import SUM_UNIT
from rag.retrieve import Hit
from rag.store.keyword import tokenize
from rag.store.records import ChunkRecord
from rag.titles import title_line


@dataclass(frozen=True)
class Evidence:
    source: int  # 1-based number of the source (the hit) it comes from: the [n] of a citation
    text: str  # the sentence as in the document (a table row: the row's line)
    score: float
    context: str = ""  # a table row's header line, which says what its cells are


# What kind of answer a (canonical) question asks for: a figure / date, or a list.
_ASKS_FIGURE = re.compile(
    r"多少|几|多大|多久|多长|多高|多远|何时|什么时候|哪一年|哪年|哪一天|哪天|哪个月|年份|日期|比例|比率|百分"
)
_ASKS_LIST = re.compile(r"哪些|哪几|哪[二三四五六七八九十两\d]|有什么|包括什么|包含什么|什么样的")
_FIGURE = re.compile(r"\d|[一二三四五六七八九十百千万亿兩两]+(?:[个項项位家年月日天%％倍成]|分之)")
# A footnote's reference number glued after a word and before a mark (「遊客最多的城市之一12，」): PDF
# text keeps it inline. It is no figure. A number after a word that introduces one (第, 共, 達 …) is.
_FOOTNOTE_MARK = re.compile(
    r"(?<=[\u4e00-\u9fff」）)])(?<![第共達达為为約约至到有增減减佔占是])\d{1,3}(?=[，,。；;：:]|$)"
)
# A citation in brackets (「（Koo, 2019）」, 「（經濟產業省，2017c）」): its year is no figure of the text.
_CITATION = re.compile(r"[（(][^（）()]*[,，]\s*(?:19|20)\d\d[a-z]?[)）]")
# A clause ends at a mark, but not at an ASCII comma or colon inside a figure, a time or a URL
# (ASCII_CLAUSE_MARK).
_CLAUSE_END = re.compile(rf"[，：；;。！？!?]|{ASCII_CLAUSE_MARK}")
KIND_BONUS = 0.25  # a sentence holding the kind of answer asked for beats one that only repeats the question
# What a sentence loses per place its source ranks below the first. With the sentence ranking
# fused (rag.store.sentences), the 2nd and 3rd sources are often chunks holding one sentence much
# like the question, which then out-covered the answer in the 1st; 0.06 (from 0.02) was chosen on
# the tune split (figures kept 0.919 → 0.923 / 0.912, dialogue facts 0.918 → 0.940 / 0.890 → 0.913;
# 0.12 kept fewer).
RANK_STEP = 0.06
# A table's or figure's label (「表 3-3-2 美國 2018 及 2019 年進口額分布」, 「圖二、…」) or its source
# line: it names what the table shows, it states nothing, yet it repeats the question's words.
_LABEL = re.compile(r"^[表图圖]\s*年?\s*[\d一二三四五六七八九十]")
_SOURCE_LINE = re.compile(r"^[资資]料[来來]源\s*[:：]")


def is_caption(text: str) -> bool:
    """A source line, or a label that does not end like a sentence (「表3顯示出口成長5%。」 does)."""
    if _SOURCE_LINE.match(text):
        return True
    return _LABEL.match(text) is not None and not text.rstrip().endswith(tuple("。！？!?"))


def asked_kind(question: str) -> str | None:
    """ "figure", "list" or None (an entity, a reason, a description) for a question. 哪幾 asks
    which ones (「挑了哪幾個重點領域」), a list: read as a figure, the clause with a year in it
    (「2008年的全球金融風暴」) was quoted as the answer."""
    text = canonical(question)
    if _ASKS_FIGURE.search(text.replace("哪几", "哪")):
        return "figure"
    if _ASKS_LIST.search(text):
        return "list"
    return None


#: The words a question names a share by (canonical); :mod:`rag.support` reads them too.
SHARE_WORDS = frozenset({"比例", "占比", "比重", "比率", "百分比", "份额"})
#: The pseudo-unit of a share question (see :func:`asks_share`).
SHARE = "%"
_ASKS_SHARE = re.compile("|".join(sorted(SHARE_WORDS)) + "|几成|百分之几")
#: The pseudo-unit of a rank question (「排第幾」): answered by a place in a ranking (「排名第 7」,
#: 「全球第 6」, 「位居全球首位」), not by the year of the ranking beside it (「2023 年世界銀行發布評比」)
#: nor by an ordinal that counts (「第一座焦炭煉鋼高爐」).
RANK = "第"
_ASKS_RANK = re.compile(r"第\s*几")
_ORDINAL = re.compile(
    r"(?:排名|排行|排|名列|位居|位列|居|全球|世界|全国|全國|亚洲|亞洲|欧洲|歐洲)\s*"
    r"(?:第\s*(?:\d+|[一二三四五六七八九十]+)|首位|之首)|第\s*(?:\d+|[一二三四五六七八九十]+)\s*名(?![单單称稱])"
)

# The unit a figure question names right after 多少/几 (canonical), and the words a passage may
# write it with: 「多少人参加」 is answered by 「300 多人」, not by the 「2023 年」 beside it. Writers
# pick measure words freely (「多少座资料中心」, 「8000 多個資料中心」), so the counting ones are one group.
_THINGS = (
    "个|個|座|家|项|項|件|台|辆|輛|艘|架|所|间|間|种|種|类|類|款|处|處|条|條|场|場|次|双|雙|张|張|颗|顆|枚|栋|棟|块|塊"
)
_PEOPLE = "人|名|位"
_UNIT_WORDS = {
    **dict.fromkeys(_THINGS.split("|"), _THINGS),
    **dict.fromkeys(_PEOPLE.split("|"), _PEOPLE),
    **dict.fromkeys(["钱", "元", "美元", "欧元"], SUM_UNIT),  # a currency, or 萬 / 億 as a sum (rag.money)
    "亿": "亿|億",
    "万": "万|萬",
    "吨": "吨|噸",
    "公斤": "公斤",
    "公顷": "公顷|公頃",
    "千瓦": "千瓦|瓩",
    "兆瓦": "兆瓦",
    "公里": "公里",
    "倍": "倍",
    "天": "天|日",
    "小时": "小时|小時",
    SHARE: "%|％|成|分之",
}
#: 几 asking a count (canonical): not 「那几年」, 「近几年」, 「好几个」, 「十几家」 (those, recent, several,
#: over ten), nor 几乎.
ASKED_JI = r"(?<![这那前近好十后])几(?!乎)"
# Not after 哪 (「哪几个」 asks for a list, not a count).
_ASKED_UNIT = re.compile(
    r"(?<!哪)(?:多少|" + ASKED_JI + r")\s*(" + "|".join(sorted(set(_UNIT_WORDS) - {SHARE}, key=len, reverse=True)) + ")"
)
_NUMERAL = r"(?:\d[\d,.]*|[一二三四五六七八九十百千兩两]+)\s*(?:多|余|餘|几|幾)?\s*(?:[万萬亿億千百]\s*)?"


def asked_unit(question: str) -> str | None:
    """The unit a figure question names (「多少人」: 人), or None."""
    match = _ASKED_UNIT.search(canonical(question))
    return match.group(1) if match else None


def answer_unit(question: str) -> str | None:
    """What a figure question's answer must be written in: the measure word it names (「多少人」),
    else :data:`RANK` for a place in a ranking, else :data:`SHARE` for a share, else None."""
    unit = asked_unit(question)
    if unit is None and asks_rank(question):
        return RANK
    if unit is None and asks_share(question):
        return SHARE
    return unit


def asks_rank(question: str) -> bool:
    """Whether a question asks for a place in a ranking (「排第幾」)."""
    return _ASKS_RANK.search(canonical(question)) is not None


def asks_share(question: str) -> bool:
    """Whether a question asks for a share (「中國和印度分別占多少比例」, 「幾成」): answered by a
    percentage, 成 or 分之, not by the other figures of its sentence (「3,000 多家」)."""
    return _ASKS_SHARE.search(canonical(question)) is not None


def _has_unit_figure(text: str, unit: str) -> bool:
    """A figure in ``unit``, not counting a lone 一: 「一個重要的因素」 is an article, not a count."""
    return any(
        not re.fullmatch(r"[一壹]\s*", m.group(1))
        for m in re.finditer("(" + _NUMERAL + ")(?:" + _UNIT_WORDS[unit] + ")", text)
    )


# A circled item number (「②品牌專利藥品之原料藥供應；」): the reports write some lists one item per
# clause, with no 、 to tell them by. Not 「(五)」 or 「(2)」: those number sections as often as items.
_ITEM_MARK = re.compile(r"[\u2460-\u2473\u2474-\u2487]")


def has_kind(text: str, kind: str | None, unit: str | None = None) -> bool:
    """Whether ``text`` holds the kind of answer asked for; for a figure with a named ``unit``, a
    figure in that unit (a sentence whose only figure is a date does not answer 多少人)."""
    if kind == "figure":
        if unit == RANK:
            return _ORDINAL.search(text) is not None
        if unit is not None:
            return _has_unit_figure(text, unit)
        return _FIGURE.search(_CITATION.sub("", _FOOTNOTE_MARK.sub("", text))) is not None
    if kind == "list":
        return "、" in text or text.count("|") >= 2 or _ITEM_MARK.search(text) is not None
    return False


#: The question's content words with their IDF weights: one mapping, or one per wording of the
#: question (its vocabulary variants, see ``ingest.normalise.query_variants``).
Weights = Mapping[str, float] | Sequence[Mapping[str, float]]


def _wordings(weights: Weights) -> Sequence[Mapping[str, float]]:
    return (weights,) if isinstance(weights, Mapping) else weights


def _share(tokens: set[str], wording: Mapping[str, float]) -> float:
    total = sum(wording.values()) or 1.0
    return sum(w for t, w in wording.items() if t in tokens) / total


def _coverage(sentence: str, weights: Weights) -> float:
    """The IDF-weighted share of the question's words the sentence holds, under the wording it
    covers best: a Mainland question's 数据中心 is met by a Taiwan sentence's 資料中心 only
    through the variant that carries it (the plain wording alone never could)."""
    tokens = set(tokenize(canonical(sentence)))
    return max(_share(tokens, wording) for wording in _wordings(weights))


def _table_header(text: str, start: int) -> str:
    """The header of the table a row at ``start`` belongs to: the first line of the run of
    「a | b」 lines around it (how ingest renders .docx and HTML tables), or "" for prose."""
    lines = text.split("\n")
    offset, index = 0, 0
    for index, line in enumerate(lines):  # noqa: B007 - index is used after the loop
        if offset + len(line) >= start:
            break
        offset += len(line) + 1
    if " | " not in lines[index]:
        return ""
    first = index
    while first > 0 and " | " in lines[first - 1]:
        first -= 1
    return lines[first].strip() if first != index else ""


def _inside_brackets(text: str, at: int) -> bool:
    """Whether ``at`` lies inside round brackets: a citation's comma (「（經濟產業省，2017c）」) ends
    no clause, or the answer led with 「2017c）即提出…」."""
    before = text[:at]
    return before.count("（") + before.count("(") > before.count("）") + before.count(")")


def answer_span(sentence: str, weights: Weights, kind: str | None, unit: str | None = None) -> str:
    """The shortest clause of a sentence that answers: it holds the kind of thing asked for (a
    figure, a list) and at least half of the question words the whole sentence holds, so it is
    the part of the sentence about the question. The sentence itself when the question asks for
    neither kind (a reason or a description needs the whole sentence) or no clause qualifies.
    Verbatim: a substring of the sentence."""
    if kind is None:
        return sentence
    clauses, start = [], 0
    for match in _CLAUSE_END.finditer(sentence):
        if _inside_brackets(sentence, match.start()):
            continue
        clauses.append(sentence[start : match.start()].strip())
        start = match.end()
    clauses.append(sentence[start:].strip())
    candidates = [c for c in clauses if len(c) >= 4 and has_kind(c, kind, unit)]
    if len(clauses) < 2 or not candidates:
        return sentence
    # Clauses are measured under the wording the whole sentence covers best, as select_evidence
    # measures its sentences under one wording: a clause is part of the sentence, so its share
    # is comparable to the sentence's only in the same words.
    sentence_tokens = set(tokenize(canonical(sentence)))
    wording = max(_wordings(weights), key=lambda w: _share(sentence_tokens, w))
    best = max(candidates, key=lambda c: (_coverage(c, wording), -len(c)))
    return best if _coverage(best, wording) >= 0.5 * _share(sentence_tokens, wording) else sentence


# A PDF table cell or a narrow column breaks one sentence over several short lines
# (「根據半導體產業協會的數\n據，2018 年對中國銷售的\n晶片中約有 47.5%來自美\n國」): each line alone
# is a "sentence" that answers nothing, so runs of such lines are also scored as one unit.
BROKEN_LINE_CHARS = 30  # a line this short that ends without an end mark was broken by the layout
_CLAUSE_MARK = re.compile(r"[，,、；;。！？!?]")  # a title has none: a first line with one is prose
MAX_JOINED_CHARS = 160
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LINE_BREAK = re.compile(r"\s*\n\s*")


def joined_lines(text: str) -> str:
    """The lines of a broken sentence put back together: nothing between Chinese characters, one
    space elsewhere (「Dubnica nad Váhom」 keeps its spaces)."""

    def glue(match: re.Match[str]) -> str:
        before, after = text[match.start() - 1 : match.start()], text[match.end() : match.end() + 1]
        return "" if _CJK.fullmatch(before or " ") and _CJK.fullmatch(after or " ") else " "

    return _LINE_BREAK.sub(glue, text)


def sentence_units(text: str) -> list[tuple[int, int]]:
    """The sentence spans of a chunk, plus every run of consecutive short lines that a line break
    alone cut apart (see :data:`BROKEN_LINE_CHARS`), each run as one span."""
    spans = split_sentences(text)
    units = list(spans)
    for i, (start, _) in enumerate(spans):
        for j in range(i + 1, len(spans)):
            previous = text[spans[j - 1][0] : spans[j - 1][1]].strip()
            line = text[spans[j][0] : spans[j][1]].strip()
            broken = previous and previous[-1] not in END_MARKS + CLOSERS + "…." and len(previous) <= BROKEN_LINE_CHARS
            if not broken or len(line) > BROKEN_LINE_CHARS or spans[j][1] - start > MAX_JOINED_CHARS:
                break
            units.append((start, spans[j][1]))
    return units


def _title(chunk: ChunkRecord) -> str | None:
    """The document's title line, when ``chunk`` opens with it: it names the report and states
    nothing, yet it shares the words of every question about it (「推動第三次產業革命之方向：以盧森堡
    為例」 was quoted for 「盧森堡第三次產業革命的規劃…」). The line :func:`rag.titles.title_line`
    takes, if it is the chunk's first, short and without a clause mark (a first line of prose is no
    title)."""
    if chunk.seq != 0 or chunk.heading:
        return None
    first_line = chunk.text.lstrip().split("\n", 1)[0].strip()
    if title_line(chunk.text) != first_line or len(first_line) > BROKEN_LINE_CHARS or _CLAUSE_MARK.search(first_line):
        return None
    return first_line


def select_evidence(
    hits: Sequence[Hit],
    weights: Weights,
    max_sentences: int = 3,
    max_chars: int = 320,
    depth: int = 3,
    kind: str | None = None,
    unit: str | None = None,
) -> list[Evidence]:
    """The best-covering sentences of the top hits, best first, within a character budget.

    A sentence must cover at least half as much of the question as the best one, so the answer
    does not drift into loosely related text; earlier (better-ranked) sources win ties. A sentence
    holding the ``kind`` of answer asked for (a figure, a list) gets a bonus. A table row is scored
    together with its header line, since the row alone (「2019 | 35」) shares no word with a question.
    """
    units: list[tuple[Evidence, int, int, set[str]]] = []
    for n, hit in enumerate(hits[:depth], start=1):
        title = _title(hit.chunk)
        for start, end in sentence_units(hit.chunk.text):
            text = joined_lines(hit.chunk.text[start:end].strip())
            if len(text) < 4 or is_caption(text) or text == title:
                continue
            header = _table_header(hit.chunk.text, start) if " | " in text else ""
            score = -RANK_STEP * (n - 1) + (KIND_BONUS if kind and has_kind(text, kind, unit) else 0.0)
            tokens = set(tokenize(canonical(f"{header}\n{text}" if header else text)))
            units.append((Evidence(n, text, score, header), start, end, tokens))
    if not units:
        return []
    # Every sentence is scored under one wording of the question: the one its best sentence
    # covers best. Scored each under its own best wording, a sentence that merely shares a variant's
    # word (国际能源总署 for 国际能源署) would join the answer beside the one that answers.
    wording = max(_wordings(weights), key=lambda w: max(ev.score + _share(tokens, w) for ev, _, _, tokens in units))
    candidates = [(replace(ev, score=ev.score + _share(tok, wording)), start, end) for ev, start, end, tok in units]
    # Best first; of equal scores the shorter (a sentence before the run of lines holding it).
    candidates.sort(key=lambda c: (-c[0].score, len(c[0].text)))
    chosen: list[Evidence] = []
    taken: list[tuple[int, int, int]] = []  # (source, start, end) of what is quoted
    used = 0
    floor = candidates[0][0].score * 0.5
    for ev, start, end in candidates:
        if len(chosen) >= max_sentences or ev.score < floor:
            break
        if any(ev.text == c.text for c in chosen) or any(n == ev.source and start < e and s < end for n, s, e in taken):
            continue  # the same words, or a run overlapping a quoted sentence
        if chosen and used + len(ev.text) > max_chars:
            continue
        chosen.append(ev)
        taken.append((ev.source, start, end))
        used += len(ev.text)
    return chosen
