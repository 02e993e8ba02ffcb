"""Gold questions behind a clause about the reader: what ``rag.bare_question`` takes off, and what
the clause still costs retrieval.

``python -m eval.prefixes`` asks answerable gold questions again, each behind every clause of
``eval/gold/reader_prefixes.txt`` (「我在看這份報告，」, 「老闆要我整理重點，」: 40 clauses about the
reader, written by a helper session that never saw ``rag/reader_words.txt``) and of
``eval/gold/topic_prefixes.txt`` (20 clauses that name a topic and must stay). The reader clauses
are split in two halves: the even lines are the *tune* half, on whose misses the word list was
extended; the odd lines are the *test* half, never used for it, so its figures show how far the
list carries to clauses nobody wrote it for. Per half: the share of clauses taken off whole, hit@1
beside the bare questions', and how many questions' evidence moved to another rank.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval import metrics as m
from eval.gold import DEFAULT_GOLD, load_gold
from eval.run import retrieval_records
from eval.wrapped import Search, moved, wrapped_search
from rag.bare_question import bare_question
from rag.config import Settings
from rag.service import Tongwen

GOLD_DIR = DEFAULT_GOLD.parent
READER_PREFIXES = GOLD_DIR / "reader_prefixes.txt"
TOPIC_PREFIXES = GOLD_DIR / "topic_prefixes.txt"
_PROBE = "盧森堡的人口是多少？"


def read_prefixes(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]


def prefix_sets() -> dict[str, list[str]]:
    """The clause sets scored: the reader clauses' tune and test halves, and the topic clauses."""
    reader = read_prefixes(READER_PREFIXES)
    return {
        "reader, tune half": reader[0::2],
        "reader, test half": reader[1::2],
        "topic": read_prefixes(TOPIC_PREFIXES),
    }


def taken_off(prefix: str) -> bool:
    """Whether the whole clause is taken off a question it stands before."""
    return bare_question(prefix + _PROBE) == _PROBE


def _hit1(records: Sequence[dict]) -> float | None:
    return m.mean_or_none(m.hit_at_k(r["relevant"], 1) for r in records)


def score(search: Search, questions: int | None = None, seed: int = 5) -> dict[str, Any]:
    items = [i for i in load_gold() if i.answerable]
    if questions is not None:
        random.Random(seed).shuffle(items)
        items = items[:questions]
    bare = retrieval_records("bare", search, items, False)
    out: dict[str, Any] = {"questions": len(items), "bare hit@1": _hit1(bare)}
    for name, prefixes in prefix_sets().items():
        records = [r for p in prefixes for r in retrieval_records(name, wrapped_search(search, (p, "")), items, False)]
        out[name] = {
            "clauses": len(prefixes),
            "taken off": sum(taken_off(p) for p in prefixes) / len(prefixes),
            "hit@1": _hit1(records),
            "moved": moved(bare, records),
        }
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=None, help="A seeded sample of answerable questions.")
    parser.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here.")
    args = parser.parse_args(argv)
    service = Tongwen(Settings())
    service.ensure_index()
    figures = score(lambda q, k: [(h.doc, h.text) for h in service.retrieve(q, k)], args.questions)
    print(f"{figures['questions']} answerable questions × 2 scripts; bare hit@1 {figures['bare hit@1']:.3f}")
    for name, row in figures.items():
        if isinstance(row, dict):
            print(
                f"{name:18} {row['clauses']:2} clauses  taken off {row['taken off']:.2f}  "
                f"hit@1 {row['hit@1']:.3f}  moved {row['moved']:.3f}"
            )
    if args.out is not None:
        args.out.write_text(json.dumps(figures, ensure_ascii=False, indent=1), "utf-8")


if __name__ == "__main__":
    main()
