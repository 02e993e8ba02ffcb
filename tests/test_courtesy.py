"""Greetings and thanks around a question are taken off before it is searched (rag.courtesy), and
`tongwen eval` scores the gold questions wrapped in them (eval.wrapped)."""

from __future__ import annotations

import pytest

from eval.gold import load_gold
from eval.wrapped import WRAPPERS, moved, wrap
from ingest.normalise import detect_script
from rag.courtesy import without_courtesy
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


def test_a_wrapped_question_is_searched_as_the_bare_one() -> None:
    """Same words, bigrams and wordings: the wrapper reaches no ranking."""
    for item in load_gold()[:40]:
        for script in ("trad", "simp"):
            bare = item.question(script)
            for before, after in (("你好，想請問一下：", "謝謝！"), ("您好！麻煩幫我查一下，", "多謝")):
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
