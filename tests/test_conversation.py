"""Conversations: follow-ups searched with the conversation, the found/refuse decision for them,
answers led by the asked-for span, and streamed text in the asker's script.

Real index of the corpus slice, real embedding model. The only stand-in is a generator (an LLM
backend's place) that streams fixed Traditional text or a fixed refusal: what is tested is what
the chain does with a generator's output, which no real small model produces on demand.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest

from eval.dialogues import load_dialogues
from eval.metrics import contains_evidence
from ingest.normalise import canonical, detect_script, stream_to_script, to_script
from rag.chain import AnswerChain, referent_tokens
from rag.condense import _pronoun_antecedents, conversation_script, resolved_pronoun, rewrite_by_rules
from rag.evidence import (
    RANK,
    SHARE,
    answer_span,
    answer_unit,
    asked_kind,
    asked_unit,
    asks_rank,
    asks_share,
    has_kind,
    is_caption,
    joined_lines,
    select_evidence,
)
from rag.followup import (
    carried_positions,
    carried_weight,
    last_answer_quotes,
    leans_on_history,
    retrieval_queries,
    valid_condensed,
)
from rag.generate.base import AnswerRequest, Generator
from rag.results import Answer, FinalEvent, TokenEvent
from rag.retrieve import Hit
from rag.service import Tongwen
from rag.store.records import ChunkRecord, Location

pytestmark = pytest.mark.both_stores  # over FAISS and over Milvus Lite (tests/conftest.py)

DIALOGUES = {d.id: d for d in load_dialogues()}


def history_of(*turns: tuple[str, str]) -> list[dict[str, str]]:
    out = []
    for question, answer in turns:
        out += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return out


# -- follow-up query building (no model) -------------------------------------------------------
def test_follow_up_searches_alone_and_with_the_conversation_within_the_history_budget() -> None:
    history = history_of(
        ("台積電在晶片危機時可以協助各國做什麼？", "根據文件：「除了台積電之外，聯電、華邦也能協助。」[1]")
    )
    queries = dict(retrieval_queries("那其他台灣廠商呢？", history, history_chars=600))
    assert queries["那其他台灣廠商呢？"] == 1.0  # the follow-up alone keeps its full weight
    joined = [text for text in queries if text.startswith("台積電在晶片危機時")]
    assert joined and queries[joined[0]] == 1.0  # it leans on the conversation: equal say
    quoted = [text for text in queries if "聯電、華邦" in text]
    assert quoted and "[1]" not in quoted[0] and "根據文件" not in quoted[0]
    bounded = retrieval_queries("那其他台灣廠商呢？", history, history_chars=30)
    assert all(len(text) <= len("那其他台灣廠商呢？") + 30 for text, _ in bounded)
    assert retrieval_queries("那其他台灣廠商呢？", history, history_chars=0) == [("那其他台灣廠商呢？", 1.0)]


@pytest.mark.parametrize("question", ["跟長期目標比起來差了幾年？", "和长期目标相比差了几年？", "相較之下中期目標呢"])
def test_a_comparison_with_what_was_just_said_leans_on_it(question: str) -> None:
    """It names one side only; the other is in the last answer (both 13+ characters, no pronoun)."""
    assert leans_on_history(question)


def test_a_why_or_how_follow_up_carries_the_last_passages_and_their_neighbours_over() -> None:
    def chunk(doc: str, seq: int) -> ChunkRecord:
        return ChunkRecord(f"{doc}:{seq}", doc, f"{doc}.txt", seq, "", "…", "…", (), Location(0, 1, 1, 1))

    chunks = [chunk("a", 0), chunk("a", 1), chunk("a", 2), chunk("b", 0), chunk("b", 1)]
    # The previous question found a:2 then b:0; their neighbours follow, never across documents.
    assert carried_positions([2, 3], chunks) == [2, 3, 1, 4]
    assert carried_weight("為什麼這件事這麼難？") > 0 and carried_weight("他们打算怎么解决？") > 0
    # 「那X呢」 or 「它的…」 may move to another document: nothing is carried over.
    assert carried_weight("那韓國呢？") == 0 and carried_weight("新藍海戰略則主張它的研發中心放在哪裡？") == 0


def test_a_self_contained_new_question_keeps_the_upper_hand() -> None:
    question = "歐洲太空總署由幾個國家組成，總部設在哪個城市的哪一區？"
    assert not leans_on_history(question)
    weights = dict(retrieval_queries(question, history_of(("盧森堡的人口有多少？", "「…」[1]")), 600))
    assert weights[question] == 1.0 and all(w < 1.0 for t, w in weights.items() if t != question)


def test_a_refusal_establishes_nothing_for_the_next_search() -> None:
    assert last_answer_quotes(history_of(("問題？", "文件中沒有提到這個問題的答案。"))) == ""


@pytest.mark.parametrize(
    "previous, follow_up, trusted",
    [
        ("台積電在晶片危機時可以協助各國做什麼？", "那韓國呢？", False),  # a name attached as an attribute
        ("台積電在晶片危機時可以協助各國做什麼？", "那聯電呢？", False),
        ("卢森堡第三次工业革命计划以哪些技术为基础？", "那三大运作原则呢？", True),
        ("盧森堡在2016年發布了什麼策略？", "那臺灣呢？", True),
    ],
)
def test_rule_rewrites_are_shown_only_when_trusted(previous: str, follow_up: str, trusted: bool) -> None:
    rewritten = rewrite_by_rules(follow_up, history_of((previous, "…")))
    assert rewritten is not None and rewritten[1] is trusted


@pytest.mark.parametrize(
    "follow_up", ["那台灣應該怎麼因應？", "那該怎麼辦？", "政府该如何补助这些厂商？", "該不該延長？"]
)
def test_should_is_not_a_pronoun(follow_up: str) -> None:
    """該 / 应该 as "should" stands for nothing: no name of the previous question is put in."""
    rewritten = rewrite_by_rules(follow_up, history_of(("台積電在美國哪一州設廠？", "…")))
    assert rewritten is None or "美國" not in rewritten[0], rewritten
    # 該 before a noun still points back.
    assert rewrite_by_rules("該國的人口有多少？", history_of(("盧森堡在2016年發布了什麼策略？", "…"))) == (
        "盧森堡的人口有多少？",
        True,
    )


@pytest.mark.parametrize(
    "previous, follow_up",
    [
        ("運輸部門在盧森堡的能源消耗裡佔比如何？", "建築部門跟它比起來呢？"),
        ("2023年光是輝達出貨的AI伺服器一年要用多少電？", "到2026年會是它的幾倍？"),
        ("盧森堡的第三次產業革命規劃是以哪一年為目標？", "台灣的目標年跟它一樣嗎？"),
        ("豐泰的自動化製程讓人力成本降了多少？", "每小時產量的變化和它相比呢？"),
    ],
)
def test_a_pronoun_compared_with_is_not_shown_as_a_name(previous: str, follow_up: str) -> None:
    """A pronoun something is compared with stands for what the previous question measured (the
    share, the consumption), not for the name it was measured of: no name is shown as understood."""
    rewritten = rewrite_by_rules(follow_up, history_of((previous, "…")))
    assert rewritten is not None and rewritten[1] is False, rewritten
    # The same name stands for the pronoun outside a comparison.
    assert rewrite_by_rules("它的總量是多少？", history_of((previous, "…")))[1] is True


@pytest.mark.parametrize(
    "previous, follow_up, expected",
    [
        ("盧森堡在2016年發布了什麼策略？", "它的目標年是哪一年？", ("盧森堡的目標年是哪一年？", True)),
        # The Mainland renders foreign names by sound (阿迪达斯 for 愛迪達), and jieba tags those
        # nrt, not nr: the Simplified asker gets the rewrite the Traditional one gets.
        ("愛迪達的高速工廠設在哪個國家？", "它一年的產能目標是多少？", ("愛迪達一年的產能目標是多少？", True)),
        ("阿迪达斯的高速工厂建在哪个国家？", "它一年的产能目标是多少？", ("阿迪达斯一年的产能目标是多少？", True)),
        ("亚马逊在台湾设了几个资料中心？", "它的总部在哪里？", ("亚马逊的总部在哪里？", True)),
        # jieba cuts 中技社是 as 中技 / 社是: the name may be cut short, so it is not shown.
        ("中技社是哪一年創立的？", "它現在有多少名員工？", ("中技現在有多少名員工？", False)),
        # 它們 are the banks counted, not 盧森堡: no name is put in.
        ("盧森堡現在有多少家銀行？", "它們管理的資產總額是多少歐元？", None),
        # 「這個品牌」 is the name the previous question puts beside 品牌, not its first name (法國).
        ("經濟部參訪的法國精品品牌Hermès推出了哪些新產品？", "這個品牌的總部在哪裡？", ("Hermès的總部在哪裡？", True)),
        ("欧盟选了哪个城市巴塞罗那做试点？", "这个城市有多少人口？", ("巴塞罗那有多少人口？", True)),
        # 「X的Y」: the question was about Y, which the pronoun stands for (with X kept, which names it).
        (
            "巴黎的光之博物館開幕第一年吸引了多少遊客？",
            "它的展覽用了幾台投影機？",
            ("巴黎的光之博物館的展覽用了幾台投影機？", True),
        ),
        ("巴黎的光之博物馆原本是什么建筑？", "它用了几台投影仪？", ("巴黎的光之博物馆用了几台投影仪？", True)),
        ("美國的半導體補貼政策有哪些？", "它的規模多大？", ("美國的半導體補貼政策的規模多大？", True)),
        ("日本的出口管制從哪一天開始？", "它針對哪些產品？", ("日本的出口管制針對哪些產品？", True)),
        # 的 with no noun after it (高速 is tagged an adverb): the name alone.
        ("愛迪達的高速工廠設在哪個國家？", "它在哪一年關閉？", ("愛迪達在哪一年關閉？", True)),
    ],
)
def test_a_pronoun_is_replaced_by_a_whole_singular_name_only(
    previous: str, follow_up: str, expected: tuple[str, bool] | None
) -> None:
    assert rewrite_by_rules(follow_up, history_of((previous, "…"))) == expected


@pytest.mark.parametrize(
    "previous, follow_up, expected",
    [
        # jieba cuts 中技社 as 中技 / 社: the name that stands whole (日本) is the one replaced.
        ("中技社的報告說，日本的出生率是多少？", "那韓國呢？", "中技社的報告說，韓國的出生率是多少？"),
        ("盧森堡在2016年發布了什麼策略？", "那臺灣呢？", "臺灣在2016年發布了什麼策略？"),
    ],
)
def test_an_elliptical_subject_replaces_a_whole_name(previous: str, follow_up: str, expected: str) -> None:
    assert rewrite_by_rules(follow_up, history_of((previous, "…"))) == (expected, True)


@pytest.mark.parametrize(
    "previous, follow_up, expected",
    [
        # A Latin-script term stands for a Latin-script term, and a modified head noun (PPP模式)
        # for the same head with its modifier: before, 「BOT模式最大的PPP是什麼？」 was shown.
        ("BOT模式最大的挑戰是什麼？", "那PPP呢？", "PPP模式最大的挑戰是什麼？"),
        ("BOT模式面临的主要挑战是什么？", "那PPP模式呢？", "PPP模式面临的主要挑战是什么？"),
        ("中國市場的規模有多大？", "那美國市場呢？", "美國市場的規模有多大？"),  # jieba: 美国市场 one word
    ],
)
def test_a_term_stands_for_a_term_of_its_kind(previous: str, follow_up: str, expected: str) -> None:
    assert rewrite_by_rules(follow_up, history_of((previous, "…"))) == (expected, True)


def test_a_follow_up_on_a_follow_up_leans_on_the_question_as_understood() -> None:
    """「那ODA呢？」 after 「那PPP呢？」 swaps ODA into the question PPP was understood as, not into
    the ellipsis 「那PPP呢？」."""
    history = history_of(("BOT模式最大的挑戰是什麼？", "…"), ("那PPP呢？", "…"))
    assert rewrite_by_rules("那ODA呢？", history) == ("ODA模式最大的挑戰是什麼？", True)
    assert conversation_script(history_of(("BOT模式面临的主要挑战是什么？", "…"), ("那PPP模式呢？", "…"))) == (
        "simplified"
    )


def test_a_pronoun_after_a_pronoun_points_where_the_one_before_pointed() -> None:
    history = history_of(("巴黎的光之博物館開幕第一年吸引了多少遊客？", "…"), ("它的展覽用了幾台投影機？", "…"))
    assert rewrite_by_rules("那它一年的營收大概多少？", history) == ("巴黎的光之博物館一年的營收大概多少？", True)
    assert resolved_pronoun("那它一年的營收大概多少？", history) == "巴黎的光之博物館一年的營收大概多少？"
    # 「這個計畫」 names its own noun after the name.
    history = history_of(("盧森堡在2016年發布了什麼策略？", "…"), ("它的規劃是以哪一年為目標？", "…"))
    assert rewrite_by_rules("這個計畫動員了多少人？", history) == ("盧森堡計畫動員了多少人？", True)
    # An elliptical turn in between is its own antecedent: 它 is 韓國 here, not 日本.
    history = history_of(("日本的出口管制從哪一天開始？", "…"), ("那韓國呢？", "…"))
    assert rewrite_by_rules("它的人口有多少？", history) == ("韓國的人口有多少？", True)


def test_a_long_chain_of_follow_ups_is_traced_a_few_questions_back_only() -> None:
    """A history of thousands of short follow-ups fits the history cap (20,000 characters); traced
    back one by one, it overflowed Python's recursion limit."""
    history = history_of(*((f"那X{i}呢？", "") for i in range(2000)))
    assert rewrite_by_rules("那ODA呢？", history) is not None


@pytest.mark.parametrize(
    "first, script", [("BOT模式面临的主要挑战是什么？", "simp"), ("BOT模式最大的挑戰是什麼？", "trad")]
)
def test_a_follow_up_without_a_script_of_its_own_is_answered_in_the_conversations(
    service: Tongwen, first: str, script: str
) -> None:
    """「ODA呢？」 holds no character of either script; the conversation does, though the turn just
    before it (「那PPP模式呢？」) may not."""
    history = history_of((first, "…"), ("那PPP模式呢？", "…"))
    result = service.ask("ODA呢？", history=history)
    expected = "simplified" if script == "simp" else "traditional"
    assert detect_script(result.answer) == expected, result.answer


def test_other_is_not_a_pronoun() -> None:
    """「其他」 is not 「其」: replacing it by a name gave 「台積電他台灣廠商呢」."""
    assert rewrite_by_rules("那其他台灣廠商呢？", history_of(("台積電在晶片危機時可以協助各國做什麼？", "…"))) is None


@pytest.mark.parametrize(
    "text, ok",
    [
        ("韓國在晶片危機時可以協助各國做什麼？", True),
        ("韓國可以協助各國[1]。", False),  # an answer with a citation
        ("根據文件：韓國可以協助。", False),
        ("韩国在芯片危机时可以协助各国做什么？", False),  # not the asker's script
        ("韓國" * 80 + "嗎？", False),  # unbounded
        ("", False),
    ],
)
def test_an_llm_rewrite_is_checked(text: str, ok: bool) -> None:
    assert valid_condensed(text, "那韓國呢？", "traditional", 2000) is ok


# -- answers lead with the span that answers --------------------------------------------------
def chunk_hit(text: str) -> Hit:
    chunk = ChunkRecord("c", "d", "doc.docx", 0, "", text, canonical(text), (), Location(0, len(text), 1, 1))
    return Hit(chunk, 1.0, None, None)


def test_the_clause_with_the_asked_for_figure_leads() -> None:
    sentence = "盧森堡在2016年11月所發布「第三次產業革命策略」，以2050年為目標制定政策藍圖，動員超過三百位研究人員。"
    weights = {"发布": 3.0, "第三次": 2.0, "策略": 2.0, "时候": 0.5}
    span = answer_span(sentence, weights, asked_kind("盧森堡是在什麼時候發布「第三次產業革命策略」的？"))
    assert span == "盧森堡在2016年11月所發布「第三次產業革命策略」" and span in sentence


def test_the_documents_title_line_is_never_quoted() -> None:
    """A report's title shares the words of every question about it and states nothing: the
    sentence below it answers. A later chunk's identical line is no title and may still be quoted."""
    text = (
        "推動第三次產業革命之方向：以盧森堡為例\n"
        "「第三次產業革命」的規劃分由九個工作小組負責，分別對應於六大產業主題。\n"
    )
    weights = {"卢森堡": 2.0, "第三次": 2.0, "产业": 1.0, "革命": 1.0, "规划": 1.0, "工作": 1.0, "小组": 1.0}
    texts = [ev.text for ev in select_evidence([chunk_hit(text)], weights, kind="figure")]
    assert texts == ["「第三次產業革命」的規劃分由九個工作小組負責，分別對應於六大產業主題。"], texts
    later = chunk_hit(text)
    later = Hit(replace(later.chunk, seq=3), 1.0, None, None)
    assert any(t.startswith("推動第三次") for t in (ev.text for ev in select_evidence([later], weights)))


def test_a_table_row_is_found_with_its_header() -> None:
    """ingest renders a .docx table as one 「a | b」 line per row: the row holding the asked-for
    year and count shares no word with the question; its header does."""
    table = "各年度試點情形如下。\n年度 | 試點城市數 | 經費（萬歐元）\n2019 | 3 | 120\n2020 | 5 | 260\n"
    hits = [chunk_hit(table)]
    weights = {"2020": 6.0, "试点": 3.0, "城市": 2.0}
    evidence = select_evidence(hits, weights, kind="figure")
    assert evidence[0].text == "2020 | 5 | 260" and evidence[0].context.startswith("年度 | 試點城市數")


@pytest.mark.parametrize(
    "question, unit",
    [
        ("2023年那場論壇大概有多少人參加？", "人"),
        ("全球現在大約有多少座資料中心？", "座"),
        ("Peloton併購期美科技花了多少錢？", "钱"),
        ("台灣智慧體驗中心是以哪幾個經營理念來運作的？", None),  # a list, not a count
        ("盧森堡是在什麼時候發布的？", None),
        ("那家工廠一年要生產多少雙鞋？", "双"),  # measure words of things count alike
        ("這座市場占地多少公頃？", "公顷"),
        ("離岸風場的裝置容量有多少兆瓦？", "兆瓦"),
        ("有多少本地企業參加？", None),  # 本地 is no measure word
        ("近幾年台灣有幾家新創上市？", "家"),  # 近幾年 asks nothing; 幾家 does
        ("好幾家廠商都參與了嗎？", None),  # several, not how many
    ],
)
def test_a_figure_question_names_its_unit(question: str, unit: str | None) -> None:
    assert asked_unit(question) == unit


def test_a_figure_in_another_unit_or_a_label_is_not_the_asked_count() -> None:
    """「多少雙鞋」 is answered by 「50萬雙」, not by a box label's numbering (方塊 5-4-2) or a share."""
    assert has_kind("設定目標一年生產50萬雙鞋子", "figure", asked_unit("一年要生產多少雙鞋？"))
    assert not has_kind("方塊 5-4-2 高速工廠案例，逾 90%產品在亞洲生產", "figure", asked_unit("一年要生產多少雙鞋？"))
    assert has_kind("該市場占地共 7 公頃", "figure", asked_unit("占地多少公頃？"))


def test_a_footnote_reference_is_no_figure() -> None:
    """PDF text keeps a footnote's number inline (「遊客最多的城市之一12，」): a 多少 question's
    answer needs a real figure, and a number a word introduces (達12) still is one."""
    assert not has_kind("是世界上遊客最多的城市之一12，該如何轉變為永續之都", "figure")
    assert has_kind("2019年共有約 2900萬人訪問法國首都", "figure")
    assert has_kind("成長率達12，創下新高", "figure") and has_kind("排名第12。", "figure")


def test_a_count_in_ten_thousands_is_no_sum_of_money() -> None:
    """「120 萬遊客」 counts visitors: it does not answer 「門票多少錢」, while 「3 億」 at a mark does."""
    unit = asked_unit("它的門票多少錢？")
    assert not has_kind("第一年便吸引了 120 萬遊客參訪。", "figure", unit)
    assert has_kind("總經費約新台幣 3 億。", "figure", unit)
    assert has_kind("以85億美元的高價被Microsoft收購", "figure", unit)
    # Every currency ends a sum, in either script: a bare magnitude no longer counts before one.
    for text in ("投入 5 億日幣", "約 3 億台幣", "10 亿港币", "2 萬英鎊", "7 億人民幣"):
        assert has_kind(text, "figure", unit), text


def test_the_figure_in_the_asked_unit_beats_a_date_beside_the_questions_words() -> None:
    """「多少人參加」: the sentence holding the year the question names and more of its words
    has a figure too, a date; only the head count answers. Measure words vary by writer
    (多少座 is answered by 「8000 多個」)."""
    text = "數位部於 2023 年 11 月間派員參與綠色成長論壇。這場成長論壇共有各國政府、企業 300 多人參加。"
    weights = {"2023": 1.0, "绿色": 1.5, "成长": 1.0, "论坛": 2.0, "参加": 1.5}
    question = "2023年那場綠色成長論壇大概有多少人參加？"
    kind, unit = asked_kind(question), asked_unit(question)
    evidence = select_evidence([chunk_hit(text)], weights, max_sentences=1, kind=kind, unit=unit)
    assert [e.text for e in evidence] == ["這場成長論壇共有各國政府、企業 300 多人參加。"]
    assert has_kind("全球目前約 8000 多個資料中心", "figure", asked_unit("全球有多少座資料中心？"))
    assert not has_kind("於 2023 年 11 月間", "figure", "人")


def test_a_share_question_is_answered_by_the_share_clause() -> None:
    """「分別占多少比例」: a clause with a percentage answers, not the one with the count the
    question repeats; and 「3,000」 is one figure, not a clause 「000 多家…」 after a cut. Here the
    two shares' clauses each hold too little of the question, so the whole sentence is quoted."""
    sentence = "全球有 3,000 多家原料藥公司，中國佔了 48%，印度則有 19%。"
    weights = {"全球": 2.0, "3000": 2.0, "原料药": 3.0, "公司": 1.0, "中国": 1.0, "印度": 1.0, "比例": 1.0}
    question = "全球3,000多家原料藥公司中，中國和印度分別占多少比例？"
    assert asked_kind(question) == "figure" and asks_share(question) and asks_share("大約占幾成？")
    assert not asks_share("有多少家原料藥公司？")
    assert answer_span(sentence, weights, "figure", SHARE) == sentence
    one_share = "全球 3,000 多家原料藥公司之中，中國的原料藥公司佔了 48%"
    assert answer_span(one_share, weights, "figure", SHARE) == "中國的原料藥公司佔了 48%"
    assert answer_span(one_share, weights, "figure") == "全球 3,000 多家原料藥公司之中"
    # Without the share, the count's clause is still whole.
    assert answer_span(sentence, weights, "figure") == "全球有 3,000 多家原料藥公司"
    assert has_kind("逾 9 成", "figure", SHARE) and has_kind("約三分之一", "figure", SHARE)
    assert not has_kind("全球有 3,000 多家原料藥公司", "figure", SHARE)


def test_a_rank_question_is_answered_by_an_ordinal() -> None:
    """「排名第幾」 is answered by 「第 7」 or 「第二名」, not by the year of the ranking beside it."""
    assert asks_rank("台灣在物流績效指數整體排名第幾？") and not asks_rank("第一場座談會在哪裡舉行？")
    # The measure word a question names comes first, then a rank, then a share.
    assert answer_unit("台灣整體排名第幾？") == RANK and answer_unit("中國占多少比例？") == SHARE
    assert answer_unit("有多少人參加？") == "人" and answer_unit("盧森堡是何時發布的？") is None
    assert has_kind("臺灣整體排名第 7", "figure", RANK) and has_kind("名列全球第二", "figure", RANK)
    assert has_kind("其位居全球首位的高人均所得", "figure", RANK)
    assert not has_kind("2023 年世界銀行發布評比", "figure", RANK)
    assert not has_kind("設立第一座焦炭煉鋼高爐", "figure", RANK)  # an ordinal that counts, no rank
    weights = {"2023": 2.0, "世界银行": 2.0, "评比": 1.0, "台湾": 1.0, "排名": 1.0}
    sentence = "2023 年世界銀行發布評比，臺灣整體排名第 7"
    assert answer_span(sentence, weights, "figure") == "2023 年世界銀行發布評比"  # a year is a figure
    assert answer_span(sentence, weights, "figure", RANK) == sentence  # the year's clause never leads


def test_a_comma_in_brackets_ends_no_clause() -> None:
    """A citation's comma (「（經濟產業省，2017c）」) is inside its brackets: cut there, the answer led
    with 「2017c）即提出…」."""
    sentence = "日本經產省產業構造審議會（經濟產業省，2017c）於 2017 年即提出「新產業結構願景」政策，引起關注"
    span = answer_span(sentence, {"日本": 1.0, "经产省": 2.0, "提出": 1.0, "愿景": 1.0}, "figure")
    assert span.startswith("日本經產省") and span.endswith("政策"), span
    # A citation's year is no figure of its text: 「…報告（Koo, 2019）指出」 answers no 多少.
    assert not has_kind("韓國電信經濟與管理研究報告（Koo, 2019）指出", "figure")
    assert has_kind("報告指出 2019 年成長 5%", "figure")


@pytest.mark.parametrize(
    "question, kind",
    [
        ("盧森堡挑了哪幾個重點領域？", "list"),
        ("卢森堡选定了哪几个重点发展领域？", "list"),
        ("是哪幾年？", "figure"),  # 哪年: a year
        ("一共有幾個工作小組？", "figure"),
        ("為什麼要推動產業多元化？", None),
    ],
)
def test_which_ones_asks_a_list_not_a_figure(question: str, kind: str | None) -> None:
    """哪幾 asks which ones: read as a figure, the clause with a year (「2008年的全球金融風暴」) was
    quoted as the answer to 「挑了哪幾個重點領域」."""
    assert asked_kind(question) == kind


@pytest.mark.parametrize(
    "line, caption",
    [
        ("表 3-3-2 美國 2018 及 2019 年進口額分布（美國對中國大陸加徵的三波關稅清單項目）", True),
        ("圖二、聖圖安跳蚤市場", True),
        ("資料來源：本計畫計算，資料獲取自 Global Trade Atlas 資料庫。", True),
        ("表示未來將擴大投資。", False),  # 表示 is a verb
        ("表3顯示出口成長5%。", False),  # a sentence about a table states a fact
    ],
)
def test_captions_are_labels_not_sentences(line: str, caption: bool) -> None:
    assert is_caption(line) is caption


def test_a_caption_is_never_quoted_as_the_answer() -> None:
    """A table's label repeats the question's words (美國, 2019, 進口額) and states nothing; the
    sentence beside it holds the figure."""
    text = (
        "表 3-3-2 美國 2018 及 2019 年進口額分布（三波關稅清單項目）\n"
        "美國自臺灣的進口額，相對於 2018 年共增加 26.5 億美元。\n"
    )
    weights = {"美国": 1.0, "2018": 2.0, "2019": 2.0, "进口额": 3.0, "分布": 1.0, "台湾": 1.0}
    texts = [ev.text for ev in select_evidence([chunk_hit(text)], weights, kind="figure")]
    assert texts and texts[0].startswith("美國自臺灣的進口額")
    assert not any(t.startswith("表") for t in texts)


def test_a_sentence_broken_over_short_lines_is_quoted_whole() -> None:
    """A PDF table cell breaks one sentence over several lines; each line alone answers nothing,
    the run of them does, and it is quoted once, lines joined (no space between Chinese)."""
    cell = (
        "半導體\n根據半導體產業協會的數\n據，2018 年對中國銷售的\n晶片中約有 47.5%來自美\n國\n"
        "一些估計中國的晶片技術比美國和台灣落後五至七年，因為尖端晶片也在不斷變化。\n"
    )
    weights = {"半导体": 2.0, "协会": 3.0, "2018": 4.0, "中国": 1.0, "销售": 2.0, "芯片": 1.0, "晶片": 1.0, "美国": 1.0}
    evidence = select_evidence([chunk_hit(cell)], weights, kind="figure")
    assert "47.5%來自美國" in evidence[0].text and "\n" not in evidence[0].text
    assert evidence[0].text.endswith("據，2018 年對中國銷售的晶片中約有 47.5%來自美國")
    assert not any("數據" in ev.text for ev in evidence[1:]), "no second quote of the same lines"
    # A long line that ends without an end mark is prose, not a broken cell: not joined.
    prose = "這是一段很長的說明文字沒有句號但是已經超過三十個字元所以不是表格裡被切斷的儲存格內容\n下一行\n"
    texts = [ev.text for ev in select_evidence([chunk_hit(prose)], {"说明": 1.0, "下": 1.0})]
    assert texts and not any("內容下一行" in t for t in texts), texts
    assert [joined_lines("Dubnica\nnad Váhom\n市")] == ["Dubnica nad Váhom 市"]


def test_extractive_answer_quotes_the_span_then_the_sentence(service: Tongwen) -> None:
    result = service.ask("盧森堡是在什麼時候發布「第三次產業革命策略」的？")
    assert result.found and "2016年11月" in result.answer
    body = result.answer.removeprefix("根據文件：")
    marker = re.search(r"\[\d+\]", body)
    assert marker, result.answer
    # The span and its sentence cite one source, whichever number the ranking gave it.
    lead, sentence = (q.strip("『』「」；") for q in body.split(marker.group())[:2])
    assert "2016年11月" in lead and lead in sentence and len(lead) < len(sentence) / 2, result.answer


# -- follow-ups end to end --------------------------------------------------------------------
def play(service: Tongwen, dialogue_id: str, script: str, turns: int | None = None) -> Answer:
    history: list[dict[str, str]] = []
    result: Answer | None = None
    for turn in DIALOGUES[dialogue_id].turns[:turns]:
        question = turn.question(script)
        result = service.ask(question, history=history)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": result.answer}]
    assert result is not None
    return result


@pytest.mark.parametrize("dialogue_id", ["d009", "d016", "d023"])
@pytest.mark.parametrize("script", ["trad", "simp"])
def test_follow_up_finds_its_evidence_and_answers(service: Tongwen, dialogue_id: str, script: str) -> None:
    last = DIALOGUES[dialogue_id].turns[-1]
    result = play(service, dialogue_id, script)
    assert any(contains_evidence(s.text, e) for s in result.sources[:5] for e in last.evidence)
    assert result.found, (result.question, result.support, result.missing)
    assert detect_script(result.answer) == ("traditional" if script == "trad" else "simplified")


@pytest.mark.parametrize("script", ["trad", "simp"])
def test_the_name_standing_for_a_pronoun_weighs_as_the_follow_ups_own_word(service: Tongwen, script: str) -> None:
    """「這個品牌的數位產品護照，消費者要怎麼查看？」 after a question about Chloé: the rules put
    Chloé in place of 「這個品牌」, and the answer quotes the sentence about Chloé's passport (its
    QR code) beside the general ones about digital passports: with Chloé weighed as an inherited
    word, they alone filled the answer."""
    result = play(service, "d065", script, turns=2)
    assert result.question.startswith("Chloé"), result.question
    assert "QRcode" in result.answer, result.answer


def test_referent_tokens_are_only_what_replaced_the_pronoun() -> None:
    history = [{"role": "user", "content": "經濟部參訪的法國精品品牌Hermès推出了哪些新產品？"}]
    named = referent_tokens("這個品牌的總部在哪裡？", "Hermès的總部在哪裡？", history)
    assert named and all(t in canonical("hermès") for t in named)
    # An elliptical follow-up's rewrite is the previous question: its words stay inherited.
    shift = [{"role": "user", "content": "中技社的報告說，日本的出生率是多少？"}]
    assert referent_tokens("那韓國呢？", "中技社的報告說，韓國的出生率是多少？", shift) == frozenset()


def test_a_why_follow_up_carries_the_previous_passages_into_its_search(service: Tongwen) -> None:
    """The chain searches the previous question again and fuses its passages (and their
    neighbours) into a why/how follow-up's ranking, enough to lift one into the sources."""
    from rag.chain import Turn
    from rag.generate.base import GenerationOptions
    from rag.retrieve import Query, chunk_positions, fused_search

    chain, snapshot = service.chain("extractive"), service.snapshot
    first = "新藍海戰略建議成立什麼辦公室？"
    history = [{"role": "user", "content": first}, {"role": "assistant", "content": "「…」[1]"}]
    why = Turn("為什麼推動這個計劃會遇到阻力？", history, 5, GenerationOptions())
    positions, weight = chain.carried(why)
    where = chunk_positions(snapshot)
    first_turn = chain.runnable().invoke(Turn(first, [], 3, GenerationOptions()))
    previous = [where[h.chunk.id] for h in first_turn.hits]
    assert weight > 0 and positions[: len(previous)] == previous
    assert set(positions) - set(previous), "their neighbours follow"
    assert chain.carried(Turn("那韓國呢？", history, 5, GenerationOptions())) == ([], 0.0)
    # Fused with weight 1, a carried passage the question alone ranks low enters the top 5.
    query = Query.from_question(why.asked)
    alone = [where[h.chunk.id] for h in fused_search(snapshot, service.model, [(query, 1.0)], 40)]
    low = next(p for p in positions if p not in alone[:5])
    carried = fused_search(snapshot, service.model, [(query, 1.0)], 5, carried=([low], weight))
    assert low in [where[h.chunk.id] for h in carried]


@pytest.mark.parametrize("script", ["trad", "simp"])
def test_an_unanswerable_follow_up_is_refused_without_citations(service: Tongwen, script: str) -> None:
    result = play(service, "d043", script)
    assert result.found is False and result.citations == [] and "[" not in result.answer


# -- an LLM backend's own answer against the evidence -------------------------------------------
class FixedGenerator(Generator):
    """Stands in for an LLM backend: streams fixed text in small pieces."""

    name = "fixed"

    def __init__(self, text: str) -> None:
        self.text = text

    def stream(self, request: AnswerRequest) -> Iterator[str]:
        yield from (self.text[i : i + 3] for i in range(0, len(self.text), 3))


class WithGenerator(Tongwen):
    def __init__(self, service: Tongwen, generator: Generator) -> None:
        super().__init__(service.settings)
        self._snapshot = service.snapshot
        self.generator = generator

    def chain(self, llm: str | None = None) -> AnswerChain:
        return AnswerChain(self.snapshot, self.model, self.generator, self.settings)


ANSWERABLE_SIMP = "卢森堡是在什么时候发布“第三次工业革命战略”的？"


def test_model_refusal_with_strong_evidence_is_answered_from_the_evidence(service: Tongwen) -> None:
    refusing = WithGenerator(service, FixedGenerator("文件中沒有提到這個問題的答案[2]。"))
    result = refusing.ask("盧森堡是在什麼時候發布「第三次產業革命策略」的？")  # every word in one sentence
    assert result.found and "2016" in result.answer and result.backend.startswith("extractive")
    assert any("摘录" in n or "摘錄" in n for n in result.notes)


def test_a_model_refusal_cites_nothing(service: Tongwen) -> None:
    refusing = WithGenerator(service, FixedGenerator("文件中沒有提到這個問題的答案[2]。"))
    question = "盧森堡的金融業在2016年雇用了多少人？"  # leans on a figure the slice does not hold
    result = refusing.ask(question)
    if result.found:  # answered from the evidence instead: then it is cited and says so
        assert result.backend.startswith("extractive")
    else:
        assert "[" not in result.answer and result.citations == []


# -- streaming in the asker's script -----------------------------------------------------------
def joined_tokens(service: Tongwen, question: str, history=()) -> tuple[str, FinalEvent]:
    events = list(service.ask_stream(question, history=list(history)))
    text = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert isinstance(events[-1], FinalEvent)
    return text, events[-1]


TRADITIONAL_ANSWER = "盧森堡在2016年11月發布了第三次產業革命策略[1]，\n這項計畫以2050年為目標。它動員了三百位研究人員"


@pytest.mark.parametrize("question", [ANSWERABLE_SIMP, "盧森堡是在什麼時候發布「第三次產業革命策略」的？"])
def test_streamed_deltas_join_to_the_final_answer_from_an_llm(service: Tongwen, question: str) -> None:
    text, final = joined_tokens(WithGenerator(service, FixedGenerator(TRADITIONAL_ANSWER)), question)
    assert final.found and text == final.answer
    assert detect_script(text) == detect_script(question)


@pytest.mark.parametrize("question", [ANSWERABLE_SIMP, "卢森堡现在有多少家银行？"])
def test_streamed_deltas_join_to_the_final_answer_extractive(service: Tongwen, question: str) -> None:
    text, final = joined_tokens(service, question)
    assert text == final.answer and detect_script(text) == "simplified"


def test_streamed_pieces_are_converted_clause_by_clause() -> None:
    pieces = [TRADITIONAL_ANSWER[i : i + 2] for i in range(0, len(TRADITIONAL_ANSWER), 2)]
    streamed = list(stream_to_script(pieces, "simplified"))
    assert len(streamed) >= 3  # not held back to the end
    assert "".join(streamed) == to_script(TRADITIONAL_ANSWER, "simplified")


def test_a_follow_ups_antecedent_is_traced_once_for_its_rewrite_and_its_understood_line() -> None:
    """The trace runs jieba's tagger over each earlier question; the rewrite and the 「已理解為」
    line of one follow-up both need it."""
    history = [
        {"role": "user", "content": "巴黎的光之博物館是哪一年開幕的？"},
        {"role": "assistant", "content": "2018年。"},
        {"role": "user", "content": "它的展覽用了幾台投影機？"},
        {"role": "assistant", "content": "140台。"},
    ]
    _pronoun_antecedents.cache_clear()
    rewritten = rewrite_by_rules("它一年的營收大概多少？", history)
    understood = resolved_pronoun("它一年的營收大概多少？", history)
    info = _pronoun_antecedents.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert rewritten is not None and understood == rewritten[0] and "光之博物館" in understood
