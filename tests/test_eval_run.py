"""`tongwen eval` end to end on the corpus slice: real index, both baselines, report, gate, README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.gold import DEFAULT_GOLD, load_gold
from eval.report import README_END, README_START, WRAPPED
from eval.run import run_evaluation
from eval.wrapped import WRAPPERS
from rag.service import Tongwen
from tests.conftest import SLICE


@pytest.fixture(scope="module")
def slice_gold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gold items about the slice's documents: a few answerable ones of each and two unanswerable."""
    items = [i for i in load_gold() if i.doc in SLICE]
    lines = [line for line in DEFAULT_GOLD.read_text("utf-8").splitlines() if line.strip()]
    keep = {i.id for i in items if i.answerable}
    keep = set(sorted(keep)[:12]) | {i.id for i in items if not i.answerable}
    path = tmp_path_factory.mktemp("gold") / "slice_gold.jsonl"
    path.write_text("\n".join(line for line in lines if json.loads(line)["id"] in keep) + "\n", "utf-8")
    assert sum(not i.answerable for i in items) >= 2
    return path


@pytest.fixture(scope="module")
def first_run(service: Tongwen, slice_gold: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("eval-out")
    code = run_evaluation(service.settings, gold=slice_gold, out=out, progress=False, service=service, min_hit5=0.5)
    return code, out


def test_results_cover_all_systems_and_both_scripts(first_run: tuple[int, Path]) -> None:
    code, out = first_run
    assert code == 0
    results = json.loads((out / "results.json").read_text("utf-8"))
    assert set(results["retrieval"]) == {"tongwen", WRAPPED, "bigram-bm25", "naive-langchain"}
    for system in results["retrieval"].values():
        for script in ("trad", "simp"):
            assert 0.0 <= system[script]["hit@5"] <= 1.0 and 0.0 <= system[script]["mrr@10"] <= 1.0
    tongwen = results["retrieval"]["tongwen"]
    assert tongwen["simp"]["hit@5"] >= 0.8 and tongwen["trad"]["hit@5"] >= 0.8
    # Every question again in each wrapper; the greeting and thanks move few of them.
    assert results["retrieval"][WRAPPED]["trad"]["n"] == len(WRAPPERS) * tongwen["trad"]["n"]
    assert 0.0 <= results["wrapped_moved"] < 0.2
    # The unnormalised character-bigram baseline loses Simplified questions: the gap is the point.
    assert results["retrieval"]["bigram-bm25"]["simp"]["hit@5"] < tongwen["simp"]["hit@5"]
    answers = results["answers"]
    assert answers["simp"]["script_match"] == 1.0 and answers["trad"]["script_match"] == 1.0
    assert results["calibration"]["threshold"] is not None
    assert results["config"]["embedding_model"] and results["config"]["backend"] == "extractive"
    assert len(results["answer_records"]) == 2 * results["items"]


def test_report_has_plots_and_failures(first_run: tuple[int, Path]) -> None:
    html = (first_run[1] / "report.html").read_text("utf-8")
    assert html.count("<img") >= 3  # hit@k curves, breakdowns, latency histogram
    assert "data:image/png;base64," in html


def test_gate_fails_below_the_threshold_and_compare_gives_deltas(
    service: Tongwen, slice_gold: Path, first_run: tuple[int, Path], tmp_path: Path
) -> None:
    previous = first_run[1] / "results.json"
    code = run_evaluation(
        service.settings,
        gold=slice_gold,
        out=tmp_path,
        baselines=False,
        retrieval_only=True,
        progress=False,
        service=service,
        compare=previous,
        min_hit5=1.01,
    )
    assert code == 1
    results = json.loads((tmp_path / "results.json").read_text("utf-8"))
    deltas = results["compare"]["deltas"]["retrieval"]["tongwen"]
    assert deltas["trad"]["hit@5"] == 0.0  # same index, same questions: nothing moved


def test_readme_section_is_replaced_between_the_markers(service: Tongwen, slice_gold: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{README_START}\nold table\n{README_END}\n\nAfter.\n", "utf-8")
    run_evaluation(
        service.settings,
        gold=slice_gold,
        out=tmp_path / "out",
        baselines=False,
        retrieval_only=True,
        progress=False,
        service=service,
        readme=readme,
    )
    text = readme.read_text("utf-8")
    assert "old table" not in text and text.startswith("# Title") and text.endswith("After.\n")
    assert "| tongwen" in text and "hit@5" in text


def test_cli_plays_the_dialogue_file_it_is_given(service: Tongwen, slice_gold: Path, tmp_path: Path) -> None:
    """A gold file of one's own comes with no dialogues unless ``--dialogues`` names a file; then
    exactly that file's conversations are played (a blind batch is scored apart from the bundled set)."""
    from typer.testing import CliRunner

    from eval.dialogues import DEFAULT_DIALOGUES
    from ui.cli import app

    lines = DEFAULT_DIALOGUES.read_text("utf-8").splitlines()
    mine = [line for line in lines if all(t["doc"] in SLICE for t in json.loads(line)["turns"])][:1]
    dialogue_file = tmp_path / "mine.jsonl"
    dialogue_file.write_text("\n".join(mine) + "\n", "utf-8")
    s = service.settings
    env = {
        "TONGWEN_HOME": str(s.home),
        "TONGWEN_MODEL_DIR": str(s.models_dir),
        "TONGWEN_CORPUS_DIR": str(s.corpus_dir),
    }
    common = ["eval", "--gold", str(slice_gold), "--limit", "2", "--no-baselines", "--no-ablation"]
    for extra, out in ((["--dialogues", str(dialogue_file)], tmp_path / "with"), ([], tmp_path / "without")):
        result = CliRunner().invoke(app, [*common, *extra, "--out", str(out)], env=env)
        assert result.exit_code == 0, result.output
    played = json.loads((tmp_path / "with" / "results.json").read_text("utf-8"))["dialogue_records"]
    dialogue_id = json.loads(mine[0])["id"]
    assert played and {r["id"].split("#")[0] for r in played} == {dialogue_id}  # its follow-up turns
    assert "dialogue_records" not in json.loads((tmp_path / "without" / "results.json").read_text("utf-8"))
