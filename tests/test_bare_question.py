"""Greetings, thanks and repeated marks around a question are taken off before it is searched
(rag.bare_question), and `tongwen eval` scores the gold questions wrapped in them (eval.wrapped)."""

from __future__ import annotations

import pytest

from eval.gold import load_gold
from eval.prefixes import TOPIC_PREFIXES, read_prefixes, taken_off
from eval.wrapped import WRAPPERS, moved, wrap
from ingest.normalise import detect_script
from rag.bare_question import bare_question, small_talk, without_courtesy
from rag.condense import rewrite_by_rules
from rag.followup import decision_text, leans_on_history, retrieval_queries
from rag.prompts import load_prompt
from rag.retrieve import Query
from rag.service import Tongwen
from tests.conftest import SLICE


@pytest.mark.parametrize(
    ("asked", "bare"),
    [
        ("你好，想請問一下：盧森堡是在什麼時候發布的？謝謝！", "盧森堡是在什麼時候發布的？"),
        ("您好！麻烦帮我查一下，芯片出口多少？多谢", "芯片出口多少？"),
        ("请问芯片是什么", "芯片是什么"),
        ("請教：SoC 屬於哪一類？", "SoC 屬於哪一類？"),
        ("Hi, 台积电在哪里？ Thanks!", "台积电在哪里？"),
        ("老师好！问一下，SoC 是什么？谢谢老师", "SoC 是什么？"),
        ("我想知道盧森堡的人口", "盧森堡的人口"),
        ("你好请问卢森堡人口多少", "卢森堡人口多少"),
        ("謝謝！那第二場座談會在哪裡舉行？", "那第二場座談會在哪裡舉行？"),
        ("好的，那韓國呢？", "那韓國呢？"),
        ("了解了。謝謝！那第二場座談會在哪裡舉行？", "那第二場座談會在哪裡舉行？"),
        ("谢谢，请问芯片出口呢", "芯片出口呢"),
    ],
)
def test_courtesy_around_a_question_is_taken_off(asked: str, bare: str) -> None:
    assert without_courtesy(asked) == bare


@pytest.mark.parametrize(
    "asked",
    [
        "演講者請問了哪些問題？",  # 請問 inside the question
        "问题：什么是SoC",  # 问 of 问题 is not a request to ask
        "hello world 是什么",  # a greeting word not set off as a greeting
        "謝謝！",  # nothing but courtesy: kept whole
        "你好",
        "请问一下谢谢",
        "感謝函的格式是什麼？",  # 感謝 at the start is the topic
    ],
)
def test_everything_else_is_left_as_asked(asked: str) -> None:
    assert without_courtesy(asked) == asked


@pytest.mark.parametrize(
    ("asked", "bare"),
    [
        # Repeated marks are one mark.
        ("盧森堡的人口是多少？？", "盧森堡的人口是多少？"),
        ("到底是哪一年？！！！", "到底是哪一年？！"),
        ("您好，請問芯片出口多少？？？謝謝！！", "芯片出口多少？"),
        ("第三次產業革命……是什麼", "第三次產業革命……是什麼"),  # an ellipsis is a mark of its own
        # Leading clauses about the reader are taken off.
        ("我在看這份報告，盧森堡的人口是多少？", "盧森堡的人口是多少？"),
        ("根據文件，芯片出口多少？", "芯片出口多少？"),
        ("老闆要我整理重點：SoC 屬於哪一類？", "SoC 屬於哪一類？"),
        ("你好，我在看这份报告，想问一下：SoC 属于哪一类？谢谢", "SoC 属于哪一类？"),
        ("报告提到，外国专业人才要到台湾工作，月薪至少要达到多少？", "外国专业人才要到台湾工作，月薪至少要达到多少？"),
    ],
)
def test_repeated_marks_and_clauses_about_the_reader_are_taken_off(asked: str, bare: str) -> None:
    assert bare_question(asked) == bare


@pytest.mark.parametrize(
    "asked",
    [
        "根據回流倡議組織的統計，企業最常提到的吸引因素是什麼？",  # names a source in the documents
        "在美國商務部列出的14類關鍵技術出口管制清單中，SoC被歸在哪一類技術？",
        "我國相關法令，對公司組織有何規定？",  # 我國 is Taiwan, not the reader
        "相比之下，哪一年的規模比較大？",  # scaffolding only, nothing about the reader
        "我在看這份報告，呢？",  # too little left: kept whole
    ],
)
def test_clauses_that_name_a_topic_stay(asked: str) -> None:
    assert bare_question(asked) == asked


def test_no_topic_clause_of_the_eval_set_is_taken_off() -> None:
    """The 20 clauses a helper session wrote to name a topic (eval/gold/topic_prefixes.txt): a word
    added to rag/reader_words.txt that one of them uses would make this fail."""
    topics = read_prefixes(TOPIC_PREFIXES)
    assert len(topics) == 20
    question = "盧森堡的人口是多少？"
    assert [p for p in topics if bare_question(p + question) != p + question] == []
    assert taken_off("我在看這份報告，") and not taken_off(topics[0])


def test_a_wrapped_question_is_searched_as_the_bare_one() -> None:
    """Same words, bigrams and wordings: the wrapper reaches no ranking."""
    for item in load_gold()[:40]:
        for script in ("trad", "simp"):
            bare = item.question(script)
            for before, after in (("你好，想請問一下：", "謝謝！"), ("您好！麻煩幫我查一下，", "？？多謝")):
                assert Query.from_question(before + bare + after) == Query.from_question(bare)


@pytest.mark.both_stores
def test_wrapped_gold_questions_retrieve_what_the_bare_ones_do(service: Tongwen) -> None:
    """Through the service, as /api/retrieve asks: the slice's gold questions with a greeting and
    thanks around them find the same sources in the same order."""
    items = [i for i in load_gold() if i.doc in SLICE and i.answerable][:8]
    assert items
    for item in items:
        for script in ("trad", "simp"):
            bare = item.question(script)
            asked = f"哈囉，請問一下：{bare}感謝您！"
            assert [s.id for s in service.retrieve(asked, 5)] == [s.id for s in service.retrieve(bare, 5)]


@pytest.mark.both_stores
def test_a_wrapped_question_gets_the_bare_questions_answer(service: Tongwen) -> None:
    """End to end through the answer chain: the same sources, decision and quoted answer; only
    ``asked`` keeps what was typed."""
    item = next(i for i in load_gold() if i.doc in SLICE and i.answerable)
    for script in ("trad", "simp"):
        bare = item.question(script)
        asked = f"你好，想請問一下：{bare}謝謝！"
        plain, wrapped_answer = service.ask(bare), service.ask(asked)
        assert [s.id for s in wrapped_answer.sources] == [s.id for s in plain.sources]
        assert (wrapped_answer.found, wrapped_answer.answer) == (plain.found, plain.answer)


def test_eval_wrappers_keep_the_question_and_its_script() -> None:
    for item in load_gold()[:30]:
        for script in ("trad", "simp"):
            question = item.question(script)
            for wrapper in WRAPPERS:
                asked = wrap(question, wrapper)
                assert question in asked and asked != question
                assert detect_script(asked) == detect_script(question)


def test_moved_counts_the_wrapped_questions_whose_evidence_changed_rank() -> None:
    bare = [
        {"id": "g1", "script": "trad", "relevant": [False, True]},
        {"id": "g1", "script": "simp", "relevant": [False, False]},
    ]
    wrapped_records = [
        {"id": "g1", "script": "trad", "relevant": [False, True]},  # same rank
        {"id": "g1", "script": "trad", "relevant": [True, False]},  # moved up
        {"id": "g1", "script": "simp", "relevant": [False, False]},  # still not found
        {"id": "g1", "script": "simp", "relevant": [False, True]},  # found now
    ]
    assert moved(bare, wrapped_records) == 0.5


_HISTORY = [
    {"role": "user", "content": "你好，請問台積電在美國的投資有多少？謝謝！"},
    {"role": "assistant", "content": "根據文件：「台積電宣布在美國亞利桑那州投資120億美元」[1]。"},
]
_BARE_HISTORY = [
    {"role": "user", "content": "台積電在美國的投資有多少？"},
    _HISTORY[1],
]


@pytest.mark.parametrize("follow_up", ["謝謝！那韓國呢？", "謝謝您，請問它在日本呢？多謝", "好的，那韓國呢？"])
def test_a_follow_up_is_read_without_the_greetings_around_it(follow_up: str) -> None:
    """A follow-up and the question before it, each inside courtesy, are rewritten, judged and
    searched as the bare ones: the thanks would otherwise sit in the middle of the joined query."""
    bare = bare_question(follow_up)
    assert leans_on_history(follow_up) and leans_on_history(bare)
    assert rewrite_by_rules(follow_up, _HISTORY) == rewrite_by_rules(bare, _BARE_HISTORY)
    assert rewrite_by_rules(follow_up, _HISTORY) is not None
    joined = [text for text, _ in retrieval_queries(follow_up, _HISTORY, 400)[1:]]
    assert joined == [text for text, _ in retrieval_queries(bare, _BARE_HISTORY, 400)[1:]]
    assert all("謝" not in text and "你好" not in text for text in joined)
    assert decision_text(follow_up, _HISTORY, None) == decision_text(bare, _BARE_HISTORY, None)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("謝謝！", "thanks"),
        ("谢谢你的回答", "thanks"),
        ("您好，謝謝老師！", "thanks"),
        ("你好", "greeting"),
        ("Hello!", "greeting"),
        ("好的，了解了", "acknowledgement"),
        ("OK", "acknowledgement"),
        ("原来如此", "acknowledgement"),
        ("好的，那韓國呢？", None),  # a follow-up
        ("你好，盧森堡人口多少？", None),  # a question behind a greeting
        ("感謝函的格式是什麼？", None),
        ("好消息是什麼？", None),
    ],
)
def test_small_talk_is_told_from_questions(message: str, kind: str | None) -> None:
    assert small_talk(message) == kind


@pytest.mark.both_stores
def test_small_talk_gets_a_reply_in_its_script_without_a_search(service: Tongwen) -> None:
    """Searched, 「謝謝！」 was refused with five unrelated sources and 「好的，了解了」 was answered
    with a quote; now they get a reply and no sources, streamed or not."""
    thanks = service.ask("謝謝！")
    assert (thanks.found, thanks.sources, thanks.citations) == (False, [], [])
    assert thanks.answer == load_prompt("small_talk_thanks", "traditional")
    understood = service.ask("好的，了解了")
    assert understood.answer == load_prompt("small_talk_acknowledgement", "simplified") and not understood.sources
    history = [
        {"role": "user", "content": "卢森堡的人口有多少？"},
        {"role": "assistant", "content": "根据文件：「卢森堡大公国的总人口雖然仅有50余万人」[1]。"},
    ]
    ok = service.ask("OK", history=history)  # no script of its own: the conversation's
    assert ok.answer == load_prompt("small_talk_acknowledgement", "simplified") and not ok.sources
    events = list(service.ask_stream("你好"))
    assert events[0].sources == [] and events[-1].answer == load_prompt("small_talk_greeting", "traditional")
    assert events[0].small_talk == events[-1].small_talk == "greeting"
