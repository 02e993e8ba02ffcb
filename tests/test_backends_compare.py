"""Comparing backends' eval runs (eval.backends) and the trade-off curve with an LLM's own refusals."""

from __future__ import annotations

from eval.backends import compare, readme_section
from eval.run import calibrate_threshold, tradeoff_curve


def record(qid: str, answerable: bool, support: float, found: bool, script: str = "trad", **extra) -> dict:
    return {
        "id": qid,
        "split": "tune",
        "script": script,
        "answerable": answerable,
        "support": support,
        "missing": [],
        "found": found,
        "model_refused": False,
        "number_recall": 1.0 if answerable else None,
        "citation_correct": True if answerable and found else None,
        "retrieve_ms": 10.0,
        "generate_ms": 1000.0 if found else 0.0,
        **extra,
    }


def test_a_model_refusal_counts_at_every_threshold() -> None:
    rows = [
        record("a", True, 0.9, False, model_refused=True),  # the LLM declined over strong evidence
        record("b", True, 0.9, True),
        record("u", False, 0.1, False),
    ]
    for point in tradeoff_curve(rows, steps=4):
        assert point["trad"]["false_refusals"] >= 0.5, point
    assert tradeoff_curve(rows, steps=4)[0]["trad"]["refused"] == 0.0  # threshold 0 lets "u" through
    assert calibrate_threshold(rows, max_false_refusal=0.5)["false_refusal_rate"] == 0.5


def test_compare_keeps_the_questions_every_run_has() -> None:
    quoting = {
        "config": {"backend": "extractive", "found_threshold": 0.22},
        "answer_records": [record("a", True, 0.9, True), record("b", True, 0.8, True), record("u", False, 0.1, False)],
    }
    model = {
        "config": {"backend": "local", "found_threshold": 0.22},
        "answer_records": [
            record("a", True, 0.9, False, model_refused=True, number_recall=None),
            record("u", False, 0.1, False),
        ],
    }
    compared = compare([quoting, model])
    tune = {name: data["splits"]["tune"]["trad"] for name, data in compared.items()}
    assert tune["extractive"]["n"] == tune["local"]["n"] == 2  # "b" only in one run
    assert tune["extractive"]["false_refusals"] == 0.0
    assert tune["local"]["false_refusals"] == 1.0
    assert tune["local"]["unanswerable_refused"] == 1.0
    assert "| local | tune | trad | 1.000 |" in readme_section(compared)
