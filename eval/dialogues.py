"""Gold dialogues: load, validate, and check every evidence quote and expected fact against its document.

A follow-up (那韓國呢？, 為什麼？, 其他兩種模式呢？) only means something after the turns before it, so the
single-turn gold set cannot measure whether conversations hold up. The format is documented in
``eval/GOLD_FORMAT.md`` ("Dialogues"); like ``eval.gold`` the validator names the dialogue and the turn, so
a typo in a hand-written file fails loudly instead of silently scoring zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.gold import SPLITS, GoldFormatError, json_object, require_unique_ids
from ingest.load import load_document
from ingest.normalise import compact

DEFAULT_DIALOGUES = Path(__file__).resolve().parent / "gold" / "dialogues.jsonl"
KEYS = ("id", "category", "turns")
OPTIONAL_KEYS = ("split",)
TURN_KEYS = ("question_trad", "question_simp", "answerable", "doc", "evidence", "answer_facts")
CATEGORIES = frozenset({"pronoun", "topic_shift", "other", "why_how", "compare", "cross_doc", "unanswerable"})
MIN_TURNS, MAX_TURNS = 2, 3


@dataclass(frozen=True)
class Turn:
    question_trad: str
    question_simp: str
    answerable: bool
    doc: str
    evidence: tuple[str, ...]
    answer_facts: tuple[str, ...]

    def question(self, script: str) -> str:
        return self.question_trad if script == "trad" else self.question_simp


@dataclass(frozen=True)
class Dialogue:
    id: str
    category: str
    turns: tuple[Turn, ...]
    split: str = "tune"

    @property
    def doc(self) -> str:
        """The document the conversation starts from: what the held-out split is stratified by."""
        return self.turns[0].doc

    @property
    def follow_ups(self) -> tuple[Turn, ...]:
        return self.turns[1:]


def _turn(where: str, data: Any) -> Turn:
    if not isinstance(data, dict):
        raise GoldFormatError(f"{where}: a turn must be a JSON object")
    missing = [k for k in TURN_KEYS if k not in data]
    extra = [k for k in data if k not in TURN_KEYS]
    if missing or extra:
        raise GoldFormatError(f"{where}: missing keys {missing}, unknown keys {extra}")
    if not all(isinstance(data[k], str) for k in ("question_trad", "question_simp", "doc")):
        raise GoldFormatError(f"{where}: question_trad, question_simp and doc must be strings")
    if not isinstance(data["answerable"], bool):
        raise GoldFormatError(f"{where}: answerable must be true or false")
    for key in ("evidence", "answer_facts"):
        if not isinstance(data[key], list) or not all(isinstance(s, str) and s.strip() for s in data[key]):
            raise GoldFormatError(f"{where}: {key} must be a list of non-empty strings")
    turn = Turn(**{**data, "evidence": tuple(data["evidence"]), "answer_facts": tuple(data["answer_facts"])})
    if not turn.question_trad.strip() or not turn.question_simp.strip():
        raise GoldFormatError(f"{where}: both questions are required")
    if not turn.doc.strip():
        raise GoldFormatError(f"{where}: doc is required (for an unanswerable turn, the document it sounds closest to)")
    if turn.answerable and not turn.evidence:
        raise GoldFormatError(f"{where}: an answerable turn needs at least one evidence quote")
    if not turn.answerable and (turn.evidence or turn.answer_facts):
        raise GoldFormatError(f"{where}: an unanswerable turn has empty evidence and answer_facts")
    return turn


def _check_dialogue(where: str, dialogue: Dialogue) -> None:
    """Rules that tie the turns together: what makes it a dialogue of its category."""
    first = dialogue.turns[0]
    if not first.answerable:
        raise GoldFormatError(f"{where}: the first turn must be answerable, or there is no context to follow up on")
    for n, turn in enumerate(dialogue.follow_ups, 2):
        if compact(turn.question_trad) == compact(first.question_trad) or turn.question_simp == first.question_simp:
            raise GoldFormatError(f"{where}, turn {n}: a follow-up repeats the first question")
    last_unanswerable = not dialogue.turns[-1].answerable
    if (dialogue.category == "unanswerable") != last_unanswerable:
        raise GoldFormatError(
            f"{where}: category 'unanswerable' and an unanswerable last turn go together "
            f"(category {dialogue.category!r}, last turn answerable={not last_unanswerable})"
        )
    if any(not t.answerable for t in dialogue.turns[:-1]):
        raise GoldFormatError(f"{where}: only the last turn may be unanswerable")
    if dialogue.category == "cross_doc" and all(t.doc == first.doc for t in dialogue.follow_ups):
        raise GoldFormatError(f"{where}: a cross_doc dialogue needs a follow-up answered from another document")


def _dialogue(line_no: int, raw: str) -> Dialogue:
    where = f"line {line_no}"
    data = json_object(line_no, raw, KEYS, OPTIONAL_KEYS)
    if not isinstance(data["id"], str) or not data["id"].strip():
        raise GoldFormatError(f"{where}: id must be a non-empty string")
    where = f"{where} ({data['id']})"
    if data["category"] not in CATEGORIES:
        raise GoldFormatError(f"{where}: category {data['category']!r} is not one of {sorted(CATEGORIES)}")
    split = data.get("split", "tune")
    if split not in SPLITS:
        raise GoldFormatError(f"{where}: split {split!r} is not one of {list(SPLITS)}")
    turns = data["turns"]
    if not isinstance(turns, list) or not MIN_TURNS <= len(turns) <= MAX_TURNS:
        raise GoldFormatError(f"{where}: turns must be a list of {MIN_TURNS} to {MAX_TURNS} turns")
    dialogue = Dialogue(
        id=data["id"],
        category=data["category"],
        turns=tuple(_turn(f"{where}, turn {n}", t) for n, t in enumerate(turns, 1)),
        split=split,
    )
    _check_dialogue(where, dialogue)
    return dialogue


def load_dialogues(path: Path = DEFAULT_DIALOGUES) -> list[Dialogue]:
    if not path.is_file():
        raise GoldFormatError(f"No dialogue file at {path}")
    lines = path.read_text("utf-8").splitlines()
    dialogues = [_dialogue(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    require_unique_ids([d.id for d in dialogues])
    if not dialogues:
        raise GoldFormatError(f"{path} holds no dialogues")
    return dialogues


def dialogue_problems(dialogues: list[Dialogue], corpus_dir: Path) -> list[str]:
    """Turns whose document is missing, whose quote is not in it, or whose expected fact is not in the quotes.

    Quotes and facts are compared in compact form (whitespace removed, Simplified), the way the evaluation
    matches them, so PDF line breaks and the asker's script do not matter.
    """
    problems: list[str] = []
    texts: dict[str, str | None] = {}
    for dialogue in dialogues:
        for n, turn in enumerate(dialogue.turns, 1):
            if not turn.answerable:
                continue
            where = f"{dialogue.id} turn {n}"
            if turn.doc not in texts:
                path = corpus_dir / turn.doc
                texts[turn.doc] = compact(load_document(path).text) if path.is_file() else None
            text = texts[turn.doc]
            if text is None:
                problems.append(f"{where}: document {turn.doc} not found in {corpus_dir}")
                continue
            quotes = [compact(q) for q in turn.evidence]
            problems += [
                f"{where}: evidence not found in {turn.doc}: {q}"
                for q, c in zip(turn.evidence, quotes, strict=True)
                if c not in text
            ]
            problems += [
                f"{where}: fact {f!r} is in none of its evidence quotes"
                for f in turn.answer_facts
                if not any(compact(f) in c for c in quotes)
            ]
    return problems
