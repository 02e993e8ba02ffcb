"""The Mainland/Taiwan vocabulary bridge (``ingest/vocabulary.tsv``): what the file claims of each
pair holds, and a Mainland question reaches a Taiwan-worded passage through it."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import opencc
import pytest

from ingest.normalise import canonical, query_variants
from rag.evidence import asked_kind, select_evidence
from rag.retrieve import Hit, Query
from rag.store.keyword import KeywordIndex, char_bigrams
from rag.store.records import ChunkRecord

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
CORPUS_SECTION = "# From the corpus"
GENERAL_SECTION = "# General cross-strait pairs"


def vocabulary_lines() -> list[str]:
    return resources.files("ingest").joinpath("vocabulary.tsv").read_text("utf-8").splitlines()


def pairs(lines: list[str]) -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in lines if line.strip() and not line.startswith("#")]  # type: ignore[misc]


def corpus_section() -> list[tuple[str, str]]:
    lines = vocabulary_lines()
    start = next(i for i, line in enumerate(lines) if line.startswith(CORPUS_SECTION))
    return pairs(lines[start:])


def general_section() -> list[tuple[str, str]]:
    lines = vocabulary_lines()
    start = next(i for i, line in enumerate(lines) if line.startswith(GENERAL_SECTION))
    end = next(i for i, line in enumerate(lines) if line.startswith(CORPUS_SECTION))
    return pairs(lines[start:end])


def test_every_line_is_a_mainland_taiwan_pair_once() -> None:
    every = pairs(vocabulary_lines())
    assert all(len(p) == 2 and all(p) for p in every)
    assert len(set(every)) == len(every)
    assert len(corpus_section()) > 100


@pytest.mark.parametrize("section", [corpus_section, general_section], ids=["corpus", "general"])
def test_no_corpus_or_general_pair_is_one_opencc_already_bridges(section) -> None:
    """A corpus or general pair earns its line only where OpenCC's phrase tables do not already
    turn one word into the other; the rest would only add duplicate variants. (The first
    hand-written pairs include some OpenCC bridges too: they keep 大数据 whole before 数据 is
    bridged.)"""
    to_mainland, to_taiwan = opencc.OpenCC("tw2sp"), opencc.OpenCC("s2twp")
    pairs_ = section()
    assert len(pairs_) > 30
    bridged = [
        (m, t)
        for m, t in pairs_
        if canonical(to_mainland.convert(t)) == canonical(m) and canonical(to_taiwan.convert(m)) == canonical(t)
    ]
    assert bridged == []


def test_the_corpus_section_names_words_the_reports_use() -> None:
    """Its Taiwan side was read off the bundled reports, so each word must occur in them (lines
    joined: the PDF extraction breaks words across lines)."""
    text = "".join(re.sub(r"\s+", "", p.read_text("utf-8")) for p in sorted(CORPUS.glob("*.txt")))
    absent = [t for _, t in corpus_section() if t not in text]
    assert absent == []


@pytest.mark.parametrize(
    "question, taiwan_word",
    [
        ("仿制药的市场规模是多少？", "学名药"),  # 學名藥
        ("增材制造主要用在哪些领域？", "积层制造"),  # 積層製造
        ("东盟国家的投资情况如何？", "东协"),  # 東協
        ("特朗普政府提出了什么关税措施？", "川普"),
        # General pairs: words no report here uses, which a Mainland asker will.
        ("美联储加息对台湾出口有什么影响？", "联准会"),  # 聯準會
        ("普京对欧洲能源政策说了什么？", "普丁"),
        ("海上风电的装机目标是多少？", "离岸风电"),  # 離岸風電
        ("光刻机出口管制涉及哪些国家？", "曝光机"),  # 曝光機
        # Organisations: the reports write the acronym, a reader of either script the name.
        ("2023年经合组织绿色增长论坛在哪里召开？", "oecd"),
        ("經合組織的論壇在哪裡舉辦？", "oecd"),
        ("世贸组织对补贴有什么规定？", "wto"),
    ],
)
def test_a_mainland_question_gets_the_taiwan_word_as_a_variant(question: str, taiwan_word: str) -> None:
    assert taiwan_word not in canonical(question)
    assert any(taiwan_word in v for v in query_variants(question)[1:])


@pytest.mark.parametrize(
    ("question", "not_wanted"),
    [
        ("现在单纯向海外卖硬件已经不够了吗？", "海外送"),  # 外卖 / 外送 would cut 海外 | 卖
        ("2008年金融海嘯之後，盧森堡挑了哪幾個領域？", "养老金融"),  # 年金 / 养老金 would cut 2008年 | 金融
        ("台灣的再生醫療雙法是哪一天通過的？", "再生物"),  # 生医 / 生物医学 would cut 再生 | 医疗
    ],
)
def test_a_vocabulary_term_is_never_swapped_where_it_cuts_a_word_in_two(question: str, not_wanted: str) -> None:
    assert all(not_wanted not in v for v in query_variants(question))


def test_a_vocabulary_term_is_swapped_where_it_is_a_word_or_inside_one() -> None:
    assert any("外送平台" in v for v in query_variants("外卖平台有哪些？"))
    assert any("软体业" in v for v in query_variants("软件业的产值是多少？"))  # 软件业 is one word
    assert any("碳边境调整机制" in v for v in query_variants("欧盟的碳边境调节机制是什么？"))


def test_a_mainland_question_ranks_the_taiwan_worded_passage_first() -> None:
    passages = ["我國學名藥廠商近年擴大外銷，產值持續成長。", "原廠藥的專利保護期間較長，市場規模較大。"]
    index = KeywordIndex.build([char_bigrams(canonical(p)) for p in passages])
    ranked = index.search(Query.from_question("仿制药厂商的外销情况").bigrams, 2)
    assert ranked[0][0] == 0


def test_character_pairs_are_the_same_for_either_scripts_quotation_marks() -> None:
    """Taiwan quotes 「白名單」, the Mainland “白名单”: the pairs may not carry the marks, or the
    Traditional question alone would match a passage's 「白 and 单」."""
    taiwan = char_bigrams(canonical("日本把韓國移出「白名單」後"))
    mainland = char_bigrams(canonical("日本把韩国移出“白名单”后"))
    assert taiwan == mainland
    assert "白名" in taiwan and "名单" in taiwan
    assert not any(ch in pair for pair in taiwan for ch in "「」“”")


def test_character_pairs_join_across_the_stray_spaces_of_extracted_text() -> None:
    assert "9年" in char_bigrams(canonical("於 2019 年發布"))
    assert char_bigrams("，") == ()


def test_a_mainland_question_is_answered_from_the_taiwan_worded_sentence(service) -> None:
    """The extractive answer chooses its sentences by the question's words: 数据中心 must meet the
    report's 資料中心 there as it does in retrieval. Under the plain wording both sentences hold
    most of the question's words and a figure; only the variant tells the answer apart."""
    evidence = "全球目前約 8000 多個資料中心也將不堪負荷。"
    distractor = "全球目前大約有 3 個研發中心。"
    chunk = ChunkRecord("c", "d", "doc.txt", 0, "", distractor + evidence, canonical(distractor + evidence), (), None)
    question = "全球目前大约有多少个数据中心？"
    weights = service.chain("extractive").question_weights(Query.from_question(question), None)
    chosen = select_evidence([Hit(chunk, 1.0, None, None)], weights, max_sentences=1, kind=asked_kind(question))
    assert [e.text for e in chosen] == [evidence]


def test_a_follow_ups_wordings_pair_with_the_conversations_by_vocabulary(service) -> None:
    """A follow-up's own words are added to each wording of the condensed question from the
    follow-up's wording in the same vocabulary. Deduplication leaves 「那软件呢」 two wordings
    and the condensed question three, so pairing them by place in the list once put the Taiwan
    软体 into the Mainland wording (the one with 芯片)."""
    asked = Query.from_question("那软件呢？")
    condensed = Query.from_question("台灣的晶片產業產值多少？那软件呢？")
    assert len(asked.variants) < len(condensed.variants)
    wordings = service.chain("extractive").question_weights(condensed, asked)
    mainland = [w for w in wordings if "芯片" in w]
    taiwan = [w for w in wordings if "晶片" in w and "软体" in w]
    assert mainland and taiwan
    assert all("软体" not in w for w in mainland)
