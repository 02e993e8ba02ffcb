"""Compare answer backends from their ``tongwen eval`` runs: one table per backend × split ×
script, and each backend's refusal / false-refusal curve (tune split) in one plot.

    python -m eval.backends /tmp/out-extractive/results.json /tmp/out-local/results.json \
        --html eval/out/backends.html --readme README.md

The default backend (``auto`` in :data:`rag.generate.registry.AUTO_ORDER`) is chosen from this
table, so it is computed from the runs' per-question records, restricted to the questions every
run answered (the LLMs run on the 35-question subset; extractive may run on all 100).
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path
from typing import Any

from eval import metrics as m
from eval.report import _fmt, _html_table, _png, markdown_table, replace_between_markers
from eval.run import tradeoff_curve

README_START, README_END = "<!-- backends:start -->", "<!-- backends:end -->"
SCRIPTS = ("trad", "simp")
HEADER = [
    "backend",
    "split",
    "script",
    "false refusals",
    "unanswerable refused",
    "number recall",
    "citations ok",
    "p50 s per answer",
    "n",
]


def common_records(runs: list[dict[str, Any]]) -> list[list[dict]]:
    """Each run's answer records, kept to the (question id, script) pairs all runs have."""
    keys = set.intersection(*({(r["id"], r["script"]) for r in run["answer_records"]} for run in runs))
    return [[r for r in run["answer_records"] if (r["id"], r["script"]) in keys] for run in runs]


def summary(records: list[dict]) -> dict[str, Any]:
    """The decision and quality figures of one backend on one split and script."""
    ans = [r for r in records if r["answerable"]]
    una = [r for r in records if not r["answerable"]]
    answered = [r for r in records if r["found"]]
    return {
        "false_refusals": sum(not r["found"] for r in ans) / len(ans) if ans else None,
        "unanswerable_refused": sum(not r["found"] for r in una) / len(una) if una else None,
        "number_recall": m.mean_or_none(r.get("number_recall") for r in ans),
        "citation_correct": m.mean_or_none(
            None if r.get("citation_correct") is None else float(r["citation_correct"]) for r in ans
        ),
        # What a user waits for an answer (not a refusal): retrieval and generation.
        "p50_s": m.percentile([((r["retrieve_ms"] or 0) + (r["generate_ms"] or 0)) / 1000 for r in answered], 50),
        "n": len(records),
    }


def compare(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per backend: the summary per split and script, and the tune-split trade-off curve."""
    out: dict[str, Any] = {}
    for run, records in zip(runs, common_records(runs), strict=True):
        name = run["config"]["backend"]
        out[name] = {
            "splits": {
                split: {
                    script: summary([r for r in records if r["split"] == split and r["script"] == script])
                    for script in SCRIPTS
                }
                for split in ("tune", "test")
            },
            "tradeoff": tradeoff_curve([r for r in records if r["split"] == "tune"]),
            "found_threshold": run["config"]["found_threshold"],
        }
    return out


def table_rows(compared: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, data in compared.items():
        for split, scripts in data["splits"].items():
            for script, s in scripts.items():
                rows.append(
                    [
                        name,
                        split,
                        script,
                        _fmt(s["false_refusals"]),
                        _fmt(s["unanswerable_refused"]),
                        _fmt(s["number_recall"]),
                        _fmt(s["citation_correct"]),
                        _fmt(s["p50_s"], 2),
                        str(s["n"]),
                    ]
                )
    return rows


def curve_rows(compared: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, data in compared.items():
        for point in data["tradeoff"][::4]:
            rows.append(
                [name, _fmt(point["threshold"], 2)]
                + [_fmt(point[s][k]) for s in SCRIPTS for k in ("refused", "false_refusals")]
            )
    return rows


CURVE_HEADER = ["backend", "threshold", "trad refused", "trad false refusals", "simp refused", "simp false refusals"]


def readme_section(compared: dict[str, Any]) -> str:
    return (
        markdown_table(HEADER, table_rows(compared))
        + "\n\nRefusal trade-off per backend over `found_threshold` (tune split; `refused` = unanswerable "
        "questions refused; an LLM's own refusals count at every threshold):\n\n"
        + markdown_table(CURVE_HEADER, curve_rows(compared))
    )


def write_html(compared: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, data in compared.items():
        for script, style in (("trad", "-"), ("simp", "--")):
            curve = data["tradeoff"]
            ax.plot(
                [p[script]["false_refusals"] or 0 for p in curve],
                [p[script]["refused"] or 0 for p in curve],
                style,
                marker=".",
                label=f"{name} ({script})",
            )
    ax.set_xlabel("answerable questions refused (false refusals)")
    ax.set_ylabel("unanswerable questions refused")
    ax.set_title("refusal trade-off per backend over found_threshold (tune split)")
    ax.legend(fontsize=7)
    image = _png(fig)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!doctype html><meta charset='utf-8'><title>Tongwen backends</title><h1>Answer backends</h1>"
        + _html_table(HEADER, table_rows(compared))
        + f"<h2>Refusal trade-off</h2><img src='{html.escape(image)}'>"
        + _html_table(CURVE_HEADER, curve_rows(compared)),
        "utf-8",
    )


def update_readme(compared: dict[str, Any], readme: Path) -> None:
    replace_between_markers(readme, README_START, README_END, readme_section(compared))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.json of each backend's eval run")
    parser.add_argument("--html", type=Path, help="write an HTML report with the trade-off plot")
    parser.add_argument("--json", type=Path, help="write the comparison as JSON")
    parser.add_argument("--readme", type=Path, help="rewrite the README's backends table")
    args = parser.parse_args(argv)
    compared = compare([json.loads(p.read_text("utf-8")) for p in args.results])
    print(readme_section(compared))
    if args.html:
        write_html(compared, args.html)
    if args.json:
        args.json.write_text(json.dumps(compared, ensure_ascii=False, indent=1), "utf-8")
    if args.readme:
        update_readme(compared, args.readme)


if __name__ == "__main__":
    main()
