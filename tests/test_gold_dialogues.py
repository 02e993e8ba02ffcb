"""The bundled gold dialogues are sound, and the dialogue validator says what a hand-written file gets wrong."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import opencc
import pytest

from eval.dialogues import CATEGORIES, DEFAULT_DIALOGUES, dialogue_problems, load_dialogues
from eval.gold import GoldFormatError
from eval.split import SECOND_DIALOGUE_BATCH, assign_splits, bundled_dialogue_splits, dialogue_strata
from ingest.normalise import compact, detect_script
from tests.conftest import CORPUS

MAINLAND_WORDS = ("芯片", "软件", "数据", "网络", "人工智能", "服务器", "数字", "信息", "英伟达", "航天")


BLIND_DIALOGUES = DEFAULT_DIALOGUES.with_name("blind_dialogues_20261205c.jsonl")
BLIND_DIALOGUES_D = DEFAULT_DIALOGUES.with_name("blind_dialogues_20261206d.jsonl")
BLIND_DIALOGUES_E = DEFAULT_DIALOGUES.with_name("blind_dialogues_20261207e.jsonl")
BLIND_DIALOGUE_BATCHES = (BLIND_DIALOGUES, BLIND_DIALOGUES_D, BLIND_DIALOGUES_E)


@pytest.mark.parametrize(
    "path", [DEFAULT_DIALOGUES, *BLIND_DIALOGUE_BATCHES], ids=["bundled", "blind-c", "blind-d", "blind-e"]
)
def test_every_quote_is_in_its_document_and_every_fact_in_its_quotes(path: Path) -> None:
    assert dialogue_problems(load_dialogues(path), CORPUS) == []


@pytest.mark.parametrize("path", BLIND_DIALOGUE_BATCHES, ids=["blind-c", "blind-d", "blind-e"])
def test_the_blind_dialogues_are_held_out_in_every_category_and_both_scripts(path: Path) -> None:
    """Written by helper sessions that saw only the documents and the format (see the README)."""
    blind = load_dialogues(path)
    assert {d.split for d in blind} == {"test"}
    assert set(Counter(d.category for d in blind)) == CATEGORIES
    others = [load_dialogues(), *(load_dialogues(b) for b in BLIND_DIALOGUE_BATCHES if b != path)]
    assert not {d.id for d in blind} & {d.id for other in others for d in other}
    for dialogue in blind:
        # A turn may hold no telling character (「ODA呢？」, or a first question whose every character
        # is written alike in both scripts); the conversation as a whole must tell its script.
        simp = [detect_script(turn.question_simp) for turn in dialogue.turns]
        trad = [detect_script(turn.question_trad) for turn in dialogue.turns]
        assert set(simp) <= {"simplified", "neutral"} and "simplified" in simp, dialogue.id
        assert set(trad) <= {"traditional", "neutral"} and "traditional" in trad, dialogue.id


def test_enough_dialogues_in_every_category_over_every_document() -> None:
    dialogues = load_dialogues()
    assert len(dialogues) >= 40
    per_category = Counter(d.category for d in dialogues)
    assert set(per_category) == CATEGORIES
    assert min(per_category.values()) >= 5, per_category
    assert {t.doc for d in dialogues for t in d.turns} == {p.name for p in CORPUS.iterdir()}
    assert sum(len(d.turns) == 3 for d in dialogues) >= 5  # some conversations go a turn further


def test_every_turn_is_asked_in_both_scripts() -> None:
    t2s = opencc.OpenCC("t2s")
    for dialogue in load_dialogues():
        for n, turn in enumerate(dialogue.turns, 1):
            where = f"{dialogue.id} turn {n}"
            assert t2s.convert(turn.question_simp) == turn.question_simp, f"{where}: Traditional-only characters"
            assert detect_script(turn.question_simp) == "simplified", where
            assert detect_script(turn.question_trad) == "traditional", where
            assert turn.question_trad != turn.question_simp, where


def test_simplified_questions_use_mainland_wording() -> None:
    questions = [t.question_simp for d in load_dialogues() for t in d.turns]
    assert sum(any(w in q for w in MAINLAND_WORDS) for q in questions) >= 8


def test_follow_ups_lean_on_the_earlier_turns() -> None:
    """A follow-up is short or refers back; it never restates the first question."""
    for dialogue in load_dialogues():
        first = compact(dialogue.turns[0].question_trad)
        for turn in dialogue.follow_ups:
            assert compact(turn.question_trad) != first, dialogue.id
            assert compact(turn.question_trad) not in first and first not in compact(turn.question_trad), dialogue.id


def test_figure_questions_name_the_figures_to_keep() -> None:
    dialogues = load_dialogues()
    with_facts = [t for d in dialogues for t in d.turns if t.answer_facts]
    assert len(with_facts) >= 40
    assert all(not t.answer_facts for d in dialogues for t in d.turns if not t.answerable)


def test_the_dialogue_split_is_the_documented_rule_and_covers_everything() -> None:
    dialogues = load_dialogues()
    records = [json.loads(line) for line in DEFAULT_DIALOGUES.read_text("utf-8").splitlines() if line.strip()]
    assert {d.id: d.split for d in dialogues} == bundled_dialogue_splits(records)
    first = [r for r in records if int(r["id"][1:]) < SECOND_DIALOGUE_BATCH]
    assert len(first) < len(records), "the second batch is bundled"
    first_splits = assign_splits((r["id"], dialogue_strata(r)) for r in first)
    assert all(d.split == first_splits[d.id] for d in dialogues[: len(first)])
    for split in ("tune", "test"):
        part = [d for d in dialogues if d.split == split]
        assert {d.doc for d in part} == {p.name for p in CORPUS.iterdir()}, split
        assert {d.category for d in part} == CATEGORIES, split
    assert 0.2 <= sum(d.split == "test" for d in dialogues) / len(dialogues) <= 0.4


def _turn(**changes: object) -> dict:
    return {
        "question_trad": "盧森堡何時發布策略？",
        "question_simp": "卢森堡何时发布战略？",
        "answerable": True,
        "doc": "000_6e77f61679c9a0c3.txt",
        "evidence": ["在2016年11月所發布「第三次產業革命策略」"],
        "answer_facts": ["2016"],
        **changes,
    }


FOLLOW_UP = _turn(
    question_trad="它以哪一年為目標？",
    question_simp="它以哪一年为目标？",
    evidence=["以2050年為目標制定盧森堡「第三次產業革命」的政策藍圖"],
    answer_facts=["2050"],
)
UNANSWERABLE = _turn(
    question_trad="它的預算是多少？", question_simp="它的预算是多少？", answerable=False, evidence=[], answer_facts=[]
)
GOOD = {"id": "x1", "category": "pronoun", "turns": [_turn(), FOLLOW_UP], "split": "test"}


@pytest.mark.parametrize(
    "lines, message",
    [
        (["{not json"], "line 1: not valid JSON"),
        (['["a list"]'], "expected a JSON object"),
        ([json.dumps({k: v for k, v in GOOD.items() if k != "turns"})], "missing keys ['turns']"),
        ([json.dumps({**GOOD, "note": "x"})], "unknown keys ['note']"),
        ([json.dumps({**GOOD, "category": "smalltalk"})], "(x1): category 'smalltalk' is not one of"),
        ([json.dumps({**GOOD, "split": "dev"})], "split 'dev' is not one of ['tune', 'test']"),
        ([json.dumps({**GOOD, "turns": [_turn()]})], "turns must be a list of 2 to 3 turns"),
        ([json.dumps({**GOOD, "turns": [_turn(), {**FOLLOW_UP, "answer": "x"}]})], "turn 2: missing keys [], unknown"),
        ([json.dumps({**GOOD, "turns": [_turn(), {**FOLLOW_UP, "answerable": "yes"}]})], "answerable must be true"),
        ([json.dumps({**GOOD, "turns": [_turn(), {**FOLLOW_UP, "evidence": "一句"}]})], "evidence must be a list"),
        ([json.dumps({**GOOD, "turns": [_turn(), {**FOLLOW_UP, "evidence": []}]})], "needs at least one evidence"),
        ([json.dumps({**GOOD, "turns": [_turn(), {**UNANSWERABLE, "answer_facts": ["1"]}]})], "has empty evidence"),
        ([json.dumps({**GOOD, "turns": [UNANSWERABLE, FOLLOW_UP]})], "first turn must be answerable"),
        ([json.dumps({**GOOD, "turns": [_turn(), _turn(question_simp="x")]})], "turn 2: a follow-up repeats"),
        ([json.dumps({**GOOD, "turns": [_turn(), UNANSWERABLE]})], "category 'unanswerable' and an unanswerable"),
        ([json.dumps({**GOOD, "category": "unanswerable"})], "category 'unanswerable' and an unanswerable"),
        ([json.dumps({**GOOD, "category": "cross_doc"})], "needs a follow-up answered from another document"),
        ([json.dumps(GOOD), json.dumps(GOOD)], "duplicate ids: ['x1']"),
        ([""], "holds no dialogues"),
    ],
)
def test_validator_says_what_is_wrong(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "dialogues.jsonl"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(GoldFormatError, match=re.escape(message)):
        load_dialogues(path)


def test_a_file_without_split_is_all_tune(tmp_path: Path) -> None:
    path = tmp_path / "dialogues.jsonl"
    path.write_text(json.dumps({k: v for k, v in GOOD.items() if k != "split"}) + "\n", "utf-8")
    assert [d.split for d in load_dialogues(path)] == ["tune"]


def test_problems_name_the_dialogue_and_turn(tmp_path: Path) -> None:
    path = tmp_path / "dialogues.jsonl"
    wrong_quote = {**GOOD, "id": "x2", "turns": [_turn(), {**FOLLOW_UP, "evidence": ["這句話不在文件裡"]}]}
    wrong_fact = {**GOOD, "id": "x3", "turns": [_turn(answer_facts=["2017"]), FOLLOW_UP]}
    wrong_doc = {**GOOD, "id": "x4", "turns": [_turn(), {**FOLLOW_UP, "doc": "missing.txt"}]}
    path.write_text("\n".join(json.dumps(d) for d in (GOOD, wrong_quote, wrong_fact, wrong_doc)) + "\n", "utf-8")
    problems = dialogue_problems(load_dialogues(path), CORPUS)
    assert len(problems) == 4, problems
    assert problems[0].startswith("x2 turn 2: evidence not found in 000_")
    assert problems[1].startswith("x2 turn 2: fact '2050' is in none of its evidence quotes")
    assert problems[2].startswith("x3 turn 1: fact '2017' is in none")
    assert problems[3].startswith("x4 turn 2: document missing.txt not found")
