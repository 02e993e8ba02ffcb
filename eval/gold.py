"""Gold Q&A files: load, validate, and check every evidence quote against its document.

The format is documented in ``eval/GOLD_FORMAT.md``; a user's own file for their own documents
goes through the same validator, so a typo fails loudly with its line number instead of
silently scoring zero.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.load import load_document
from ingest.normalise import compact
from rag.errors import TongwenError

DEFAULT_GOLD = Path(__file__).resolve().parent / "gold" / "corpus_gold.jsonl"
KEYS = ("id", "doc", "question_trad", "question_simp", "answer", "evidence", "type")
OPTIONAL_KEYS = ("split",)
SPLITS = ("tune", "test")
TYPES = frozenset({"fact", "number", "list", "why", "compare", "unanswerable"})


class GoldFormatError(TongwenError):
    """A gold file that does not follow GOLD_FORMAT.md."""


@dataclass(frozen=True)
class GoldItem:
    id: str
    doc: str
    question_trad: str
    question_simp: str
    answer: str
    evidence: str
    type: str
    split: str = "tune"  # "test" items are held out from calibration and tuning; absent means "tune"

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"

    def question(self, script: str) -> str:
        return self.question_trad if script == "trad" else self.question_simp


def json_object(line_no: int, raw: str, keys: Sequence[str], optional: Sequence[str] = ()) -> dict[str, Any]:
    """One JSONL line as an object with exactly ``keys`` (plus any of ``optional``), or an error
    naming the line: shared by every gold file format."""
    where = f"line {line_no}"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise GoldFormatError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise GoldFormatError(f"{where}: expected a JSON object")
    missing = [k for k in keys if k not in data]
    extra = [k for k in data if k not in (*keys, *optional)]
    if missing or extra:
        raise GoldFormatError(f"{where}: missing keys {missing}, unknown keys {extra}")
    return data


def _item(line_no: int, raw: str) -> GoldItem:
    where = f"line {line_no}"
    data = json_object(line_no, raw, KEYS, OPTIONAL_KEYS)
    if not all(isinstance(data[k], str) for k in KEYS):
        raise GoldFormatError(f"{where}: every field must be a string")
    item = GoldItem(**{k: data[k] for k in KEYS}, split=data.get("split", "tune"))
    if item.split not in SPLITS:
        raise GoldFormatError(f"{where}: split {item.split!r} is not one of {list(SPLITS)}")
    if item.type not in TYPES:
        raise GoldFormatError(f"{where}: type {item.type!r} is not one of {sorted(TYPES)}")
    if not item.question_trad.strip() or not item.question_simp.strip():
        raise GoldFormatError(f"{where}: both questions are required")
    if item.answerable and not item.evidence.strip():
        raise GoldFormatError(f"{where}: an answerable item needs an evidence quote")
    if not item.answerable and (item.evidence or item.answer):
        raise GoldFormatError(f"{where}: an unanswerable item has empty answer and evidence")
    return item


def require_unique_ids(ids: Sequence[str]) -> None:
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise GoldFormatError(f"duplicate ids: {duplicates}")


def load_gold(path: Path = DEFAULT_GOLD) -> list[GoldItem]:
    if not path.is_file():
        raise GoldFormatError(f"No gold file at {path}")
    items = [_item(n, line) for n, line in enumerate(path.read_text("utf-8").splitlines(), 1) if line.strip()]
    require_unique_ids([i.id for i in items])
    if not items:
        raise GoldFormatError(f"{path} holds no items")
    return items


def evidence_problems(items: list[GoldItem], corpus_dir: Path) -> list[str]:
    """Items whose document is missing or whose evidence is not in it (whitespace-insensitive)."""
    problems, texts = [], {}
    for item in items:
        if not item.answerable:
            continue
        if item.doc not in texts:
            path = corpus_dir / item.doc
            texts[item.doc] = compact(load_document(path).text) if path.is_file() else None
        if texts[item.doc] is None:
            problems.append(f"{item.id}: document {item.doc} not found in {corpus_dir}")
        elif compact(item.evidence) not in texts[item.doc]:
            problems.append(f"{item.id}: evidence not found in {item.doc}: {item.evidence}")
    return problems
