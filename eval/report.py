"""Present evaluation results: a terminal table, an HTML report with plots, the README table."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval.wrapped import WRAPPERS

#: Tongwen asked every gold question inside each greeting and thanks of ``eval.wrapped``.
WRAPPED = "tongwen, greeting + thanks"
SYSTEM_ORDER = ("tongwen", WRAPPED, "naive-langchain", "bigram-bm25")
README_START, README_END = "<!-- eval:start -->", "<!-- eval:end -->"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def retrieval_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name in SYSTEM_ORDER:
        stats = results["retrieval"].get(name)
        if not stats:
            continue
        for script in ("trad", "simp"):
            s = stats[script]
            rows.append(
                [
                    name,
                    script,
                    *(_fmt(s[k]) for k in ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "ndcg@10", "doc_hit@5")),
                ]
            )
        rows.append(
            [
                name,
                "simp/trad",
                "",
                "",
                _fmt(stats["ratio"]["hit@5"]),
                "",
                _fmt(stats["ratio"]["mrr@10"]),
                _fmt(stats["ratio"]["ndcg@10"]),
                "",
            ]
        )
    return rows


RETRIEVAL_HEADER = ["system", "script", "hit@1", "hit@3", "hit@5", "hit@10", "MRR@10", "nDCG@10", "doc hit@5"]
ANSWER_KEYS = (
    "char_f1",
    "rouge_l",
    "number_recall",
    "citation_correct",
    "refusal_accuracy",
    "false_refusal_rate",
    "script_match",
    "generate_p50_ms",
)
ANSWER_HEADER = [
    "script",
    "char F1",
    "ROUGE-L",
    "number recall",
    "citations ok",
    "refusal acc",
    "false refusals",
    "script match",
    "generate p50 ms",
]


def answer_rows(results: dict[str, Any]) -> list[list[str]]:
    answers = results.get("answers")
    if not answers:
        return []
    rows = [
        [script, *(_fmt(answers[script][k], 1 if k.endswith("_ms") else 3) for k in ANSWER_KEYS)]
        for script in ("trad", "simp")
    ]
    rows.append(
        [
            "simp/trad",
            _fmt(answers["ratio"]["char_f1"]),
            "",
            "",
            _fmt(answers["ratio"]["citation_correct"]),
            _fmt(answers["ratio"]["refusal_accuracy"]),
            "",
            "",
            "",
        ]
    )
    return rows


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(
        [
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows),
        ]
    )


def wrapped_note(results: dict[str, Any]) -> str:
    """What the greeting + thanks row is, with its share of moved evidence ("" before it existed)."""
    if results.get("wrapped_moved") is None:
        return ""
    return (
        f"`{WRAPPED}`: every question again inside each of {len(WRAPPERS)} greetings and thanks (`eval/wrapped.py`); "
        f"the evidence moved to another rank than the bare question's for {results['wrapped_moved']:.3f} of them."
    )


def print_table(results: dict[str, Any]) -> None:
    print(f"\nRetrieval ({results['answerable']} answerable gold questions × 2 scripts)")
    print(_text_table(RETRIEVAL_HEADER, retrieval_rows(results)))
    if note := wrapped_note(results):
        print(note.replace("`", ""))
    if results.get("retrieval_by_split"):
        print("\nRetrieval by split (tune: fusion weights chosen on; test: held out)")
        print(_text_table(RETRIEVAL_SPLIT_HEADER, retrieval_split_rows(results)))
    if results.get("ablation"):
        print("\nAblation (each fusion of rankings, hit@1 / hit@5 / MRR@10)")
        print(_text_table(ABLATION_HEADER, ablation_rows(results)))
    if results.get("answers"):
        print(f"\nAnswers (backend {results['config']['backend']}, {results['items']} questions × 2 scripts)")
        print(_text_table(ANSWER_HEADER, answer_rows(results)))
        if results.get("answers_by_split"):
            print("\nAnswers by split (tune: calibrated on; test: held out)")
            print(_text_table(SPLIT_HEADER, split_rows(results)))
        if results.get("dialogues"):
            print("\nDialogues (follow-up turns)")
            print(_text_table(DIALOGUE_HEADER, dialogue_rows(results)))
        if results.get("tradeoff"):
            print("\nRefusal trade-off (tune split; refused = unanswerable refused)")
            print(_text_table(TRADEOFF_HEADER, tradeoff_rows(results)))
        cal = results.get("calibration", {})
        if cal.get("threshold") is not None:
            print(
                f"calibrated found_threshold: {cal['threshold']:.3f} (refusal acc {cal['refusal_accuracy']:.3f}, "
                f"false refusals {cal['false_refusal_rate']:.3f}); in use: {results['config']['found_threshold']}"
            )


RETRIEVAL_SPLIT_HEADER = ["split", "script", "hit@1", "hit@5", "MRR@10", "n"]
ABLATION_HEADER = [
    "rankings fused",
    *(
        f"{split} {script} {metric}"
        for split in ("tune", "test")
        for script in ("trad", "simp")
        for metric in ("hit@1", "hit@5", "MRR")
    ),
]


def retrieval_split_rows(results: dict[str, Any]) -> list[list[str]]:
    by_split = results.get("retrieval_by_split") or {}
    return [
        [
            split,
            script,
            *(_fmt(by_split[split][script][k]) for k in ("hit@1", "hit@5", "mrr@10")),
            str(by_split[split][script]["n"]),
        ]
        for split in by_split
        for script in ("trad", "simp")
    ]


def ablation_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per configuration of :data:`eval.ablation.ABLATIONS`: hit@1, hit@5, MRR@10 per split and script."""
    table = results.get("ablation") or {}
    return [
        [
            name,
            *(
                _fmt(by_split[split][script][metric])
                for split in ("tune", "test")
                for script in ("trad", "simp")
                for metric in ("hit@1", "hit@5", "mrr@10")
            ),
        ]
        for name, by_split in table.items()
    ]


SPLIT_KEYS = ("number_recall", "citation_correct", "refusal_accuracy", "false_refusal_rate", "script_match")
SPLIT_HEADER = ["split", "script", "number recall", "citations ok", "unanswerable refused", "false refusals", "script"]
DIALOGUE_KEYS = (
    "follow_up_hit@5",
    "false_refusal_rate",
    "unanswerable_refused",
    "facts_in_answer",
    "script_match",
    "n",
)
DIALOGUE_HEADER = [
    "split",
    "script",
    "follow-up evidence@5",
    "false refusals",
    "unanswerable refused",
    "facts in answer",
    "script",
    "n",
]


def split_rows(results: dict[str, Any]) -> list[list[str]]:
    by_split = results.get("answers_by_split") or {}
    return [
        [split, script, *(_fmt(by_split[split][script][k]) for k in SPLIT_KEYS)]
        for split in by_split
        for script in ("trad", "simp")
    ]


def dialogue_rows(results: dict[str, Any]) -> list[list[str]]:
    dialogues = results.get("dialogues") or {}
    return [
        [split, script, *(_fmt(dialogues[split][script][k]) for k in DIALOGUE_KEYS)]
        for split in dialogues
        for script in ("trad", "simp")
    ]


def tradeoff_rows(results: dict[str, Any]) -> list[list[str]]:
    """The refusal / false-refusal curve of the tune split, every other threshold step."""
    curve = (results.get("tradeoff") or {}).get("tune") or []
    return [
        [
            _fmt(p["threshold"], 2),
            *(_fmt(p[s][k]) for s in ("trad", "simp") for k in ("refused", "false_refusals")),
        ]
        for p in curve[::2]
    ]


TRADEOFF_HEADER = ["threshold", "trad refused", "trad false refusals", "simp refused", "simp false refusals"]


# The README's optional tables, in order: (results key, caption, header, rows). A caption may name
# the answer backend (``{backend}``).
_README_TABLES: tuple[tuple[str, str, list[str], Callable[[dict[str, Any]], list[list[str]]]], ...] = (
    (
        "retrieval_by_split",
        "Retrieval by split (tune: fusion weights chosen on; test: held out):",
        RETRIEVAL_SPLIT_HEADER,
        retrieval_split_rows,
    ),
    (
        "ablation",
        "Ablation: which rankings are fused (`python -m eval.ablation`; k = the RRF constant):",
        ABLATION_HEADER,
        ablation_rows,
    ),
    ("answers", "Answers, `{backend}` backend:", ANSWER_HEADER, answer_rows),
    ("answers_by_split", "By split (tune: calibrated on; test: held out):", SPLIT_HEADER, split_rows),
    ("dialogues", "Dialogues (follow-up turns):", DIALOGUE_HEADER, dialogue_rows),
)


def readme_section(results: dict[str, Any]) -> str:
    parts = [
        f"Gold set: {results['items']} questions ({results['answerable']} answerable), each asked in Traditional "
        f"and in Simplified with Mainland vocabulary. Generated by `tongwen eval` on {results['created_at'][:10]}.",
        "",
        markdown_table(RETRIEVAL_HEADER, retrieval_rows(results)),
    ]
    if note := wrapped_note(results):
        parts += ["", note]
    backend = results.get("config", {}).get("backend", "")
    for key, caption, header, rows in _README_TABLES:
        if results.get(key):
            parts += ["", caption.format(backend=backend), "", markdown_table(header, rows(results))]
    return "\n".join(parts)


def replace_between_markers(readme: Path, start: str, end: str, body: str) -> None:
    """Replace the text between two marker comments of the README (markers kept)."""
    text = readme.read_text("utf-8")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {start} … {end} markers")
    readme.write_text(pattern.sub(lambda _: start + "\n" + body + "\n" + end, text), "utf-8")


def update_readme(results: dict[str, Any], readme: Path) -> None:
    """Replace the text between the eval markers in the README with the latest tables."""
    replace_between_markers(readme, README_START, README_END, readme_section(results))


# -- HTML ---------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plots(results: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ks = [1, 3, 5, 10]
    for name in SYSTEM_ORDER:
        stats = results["retrieval"].get(name)
        if not stats:
            continue
        for script, style in (("trad", "-"), ("simp", "--")):
            ax.plot(ks, [stats[script][f"hit@{k}"] for k in ks], style, marker="o", label=f"{name} ({script})")
    ax.set_xlabel("k")
    ax.set_ylabel("hit@k")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(ks)
    ax.legend(fontsize=7)
    ax.set_title("hit@k per script")
    plots.append(("hit@k curves", _png(fig)))
    plt.close(fig)

    for key, title in (("by_doc", "hit@5 per document"), ("by_type", "hit@5 per question type")):
        groups = results.get(key) or {}
        if not groups:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = list(groups)
        for offset, script in ((-0.2, "trad"), (0.2, "simp")):
            ax.bar(
                [i + offset for i in range(len(names))],
                [groups[n].get(script) or 0 for n in names],
                width=0.4,
                label=script,
            )
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n[:14] for n in names], rotation=20, fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.legend()
        ax.set_title(title)
        plots.append((title, _png(fig)))
        plt.close(fig)

    curve = (results.get("tradeoff") or {}).get("tune")
    if curve:
        fig, ax = plt.subplots(figsize=(5, 4))
        for script in ("trad", "simp"):
            ax.plot(
                [p[script]["false_refusals"] or 0 for p in curve],
                [p[script]["refused"] or 0 for p in curve],
                marker=".",
                label=script,
            )
        ax.set_xlabel("answerable questions refused (false refusals)")
        ax.set_ylabel("unanswerable questions refused")
        ax.set_title("refusal trade-off over found_threshold (tune split)")
        ax.legend()
        plots.append(("refusal trade-off", _png(fig)))
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(results.get("retrieval_latency_ms") or [0], bins=30)
    ax.set_xlabel("retrieval latency (ms)")
    ax.set_title("retrieval latency")
    plots.append(("latency histogram", _png(fig)))
    plt.close(fig)
    return plots


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(results: dict[str, Any], path: Path) -> None:
    sections = [
        "<h1>Tongwen evaluation</h1>",
        f"<p>{html.escape(results['created_at'])} · gold {html.escape(results['gold'])} · "
        f"{results['items']} items · {results['seconds']:.0f} s</p>",
        "<h2>Retrieval</h2>",
        _html_table(RETRIEVAL_HEADER, retrieval_rows(results)),
    ]
    if results.get("retrieval_by_split"):
        sections += ["<h2>Retrieval by split</h2>", _html_table(RETRIEVAL_SPLIT_HEADER, retrieval_split_rows(results))]
    if results.get("ablation"):
        sections += ["<h2>Ablation (rankings fused)</h2>", _html_table(ABLATION_HEADER, ablation_rows(results))]
    if results.get("answers"):
        sections += ["<h2>Answers</h2>", _html_table(ANSWER_HEADER, answer_rows(results))]
    if results.get("answers_by_split"):
        sections += ["<h2>Answers by split</h2>", _html_table(SPLIT_HEADER, split_rows(results))]
    if results.get("dialogues"):
        sections += ["<h2>Dialogues (follow-up turns)</h2>", _html_table(DIALOGUE_HEADER, dialogue_rows(results))]
    if results.get("tradeoff"):
        sections += ["<h2>Refusal trade-off (tune split)</h2>", _html_table(TRADEOFF_HEADER, tradeoff_rows(results))]
    if results.get("compare"):
        sections += [
            "<h2>Change against previous run</h2>",
            f"<pre>{html.escape(str(results['compare']['deltas']))}</pre>",
        ]
    sections += [f"<h3>{html.escape(t)}</h3><img src='{src}'>" for t, src in _plots(results)]
    failures = [
        [
            r["id"],
            r["script"],
            r["question"],
            r["evidence"],
            " | ".join(f"{x['doc'][:8]}: {x['text'][:60]}" for x in r["retrieved"]),
        ]
        for r in results.get("retrieval_failures", [])
    ]
    sections += [
        "<h2>Retrieval failures (evidence not in top 5)</h2>",
        _html_table(["id", "script", "question", "expected evidence", "retrieved (top 3)"], failures),
    ]
    answer_failures = [
        [
            r["id"],
            r["script"],
            r["question"],
            str(r["answerable"]),
            str(r["found"]),
            f"{r['support']:.3f}",
            r["answer"][:120],
        ]
        for r in results.get("answer_failures", [])
    ]
    if results.get("answers"):
        sections += [
            "<h2>Answer failures (wrong refusal decision or citation)</h2>",
            _html_table(["id", "script", "question", "answerable", "found", "support", "answer"], answer_failures),
        ]
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;"
        "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
    )
    path.write_text(f"<!doctype html><meta charset='utf-8'><style>{style}</style>{''.join(sections)}", "utf-8")
