"""``tongwen eval``: score retrieval and answers on gold Q&A pairs, per script, against baselines.

Every metric is reported separately for the Traditional and the Simplified wording of each
question, with the simp/trad ratio: that ratio is Tongwen's headline robustness figure.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval import metrics as m
from eval.ablation import ablation_table, build_cases
from eval.baselines import BigramBM25, NaiveLangchain
from eval.dialogue_run import dialogue_records, summarise_dialogues
from eval.dialogues import DEFAULT_DIALOGUES, dialogue_problems, load_dialogues
from eval.gold import DEFAULT_GOLD, SPLITS, GoldItem, evidence_problems, load_gold
from eval.report import WRAPPED, print_table, update_readme, write_html
from eval.wrapped import WRAPPERS, Search, moved, wrapped_search
from ingest.load import load_document
from rag.config import Settings
from rag.service import Tongwen

SCRIPTS = ("trad", "simp")
K_VALUES = (1, 3, 5, 10)


def retrieval_records(name: str, search: Search, items: Sequence[GoldItem], progress: bool) -> list[dict]:
    """One record per (item, script): which of the top 10 contain the evidence, and latency."""
    records = []
    jobs = [(item, script) for item in items if item.answerable for script in SCRIPTS]
    for item, script in tqdm(jobs, desc=f"retrieve {name}", disable=not progress, leave=False):
        started = time.perf_counter()
        results = search(item.question(script), 10)
        latency = (time.perf_counter() - started) * 1000
        records.append(
            {
                "id": item.id,
                "doc": item.doc,
                "type": item.type,
                "split": item.split,
                "script": script,
                "question": item.question(script),
                "evidence": item.evidence,
                "relevant": [m.contains_evidence(text, item.evidence) for _, text in results],
                "doc_relevant": [doc == item.doc for doc, _ in results],
                "retrieved": [{"doc": doc, "text": text[:160]} for doc, text in results[:3]],
                "latency_ms": latency,
            }
        )
    return records


def summarise_retrieval(records: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for script in SCRIPTS:
        rows = [r for r in records if r["script"] == script]
        stats = {f"hit@{k}": m.mean_or_none(m.hit_at_k(r["relevant"], k) for r in rows) for k in K_VALUES}
        stats["mrr@10"] = m.mean_or_none(m.reciprocal_rank(r["relevant"], 10) for r in rows)
        stats["ndcg@10"] = m.mean_or_none(m.ndcg_at_k(r["relevant"], 10) for r in rows)
        stats["doc_hit@5"] = m.mean_or_none(m.hit_at_k(r["doc_relevant"], 5) for r in rows)
        stats["latency_p50_ms"] = m.percentile([r["latency_ms"] for r in rows], 50)
        stats["latency_p95_ms"] = m.percentile([r["latency_ms"] for r in rows], 95)
        stats["n"] = len(rows)
        out[script] = stats
    out["ratio"] = {key: m.ratio(out["simp"][key], out["trad"][key]) for key in ("hit@5", "mrr@10", "ndcg@10")}
    return out


def breakdown(records: list[dict], field: str, metric: Callable[[dict], float]) -> dict[str, dict[str, float]]:
    groups: dict[str, dict[str, list[float]]] = {}
    for r in records:
        groups.setdefault(r[field], {}).setdefault(r["script"], []).append(metric(r))
    return {g: {s: m.mean_or_none(v) for s, v in by.items()} for g, by in sorted(groups.items())}


def answer_records(service: Tongwen, items: Sequence[GoldItem], llm: str, progress: bool) -> list[dict]:
    records = []
    threshold = service.settings.found_threshold
    jobs = [(item, script) for item in items for script in SCRIPTS]
    for item, script in tqdm(jobs, desc=f"answer ({llm})", disable=not progress, leave=False):
        question = item.question(script)
        result = service.ask(question, llm=llm)
        sources = result.sources
        cited = [sources[c.n - 1] for c in result.citations if 1 <= c.n <= len(sources)]
        record = {
            "id": item.id,
            "doc": item.doc,
            "type": item.type,
            "split": item.split,
            "script": script,
            "question": question,
            "answerable": item.answerable,
            "found": result.found,
            # The evidence said "found" but the answer is a refusal: an LLM declined by itself.
            "model_refused": not result.found and not result.missing and result.support >= threshold,
            "support": result.support,
            "missing": result.missing,
            "answer": result.answer,
            "backend": result.backend,
            "script_match": m.script_match(question, result.answer),
            "retrieve_ms": result.timings.get("retrieve"),
            "generate_ms": result.timings.get("generate"),
        }
        if item.answerable:
            record.update(
                {
                    "char_f1": m.char_f1(result.answer, item.answer),
                    "rouge_l": m.rouge_l_chars(result.answer, item.answer),
                    "number_recall": m.number_recall(result.answer, item.answer),
                    "citation_correct": (
                        any(m.contains_evidence(s.text, item.evidence) for s in cited) if result.found else None
                    ),
                }
            )
        records.append(record)
    return records


def summarise_answers(records: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for script in SCRIPTS:
        rows = [r for r in records if r["script"] == script]
        ans = [r for r in rows if r["answerable"]]
        refusal = m.refusal_metrics([(r["answerable"], r["found"]) for r in rows])
        out[script] = {
            "char_f1": m.mean_or_none(r["char_f1"] for r in ans),
            "rouge_l": m.mean_or_none(r["rouge_l"] for r in ans),
            "number_recall": m.mean_or_none(r["number_recall"] for r in ans),
            "citation_correct": m.mean_or_none(
                None if r["citation_correct"] is None else float(r["citation_correct"]) for r in ans
            ),
            "refusal_accuracy": refusal["refusal_accuracy"],
            "false_refusal_rate": refusal["false_refusal_rate"],
            "script_match": m.mean_or_none(float(r["script_match"]) for r in rows),
            "retrieve_p50_ms": m.percentile([r["retrieve_ms"] for r in rows], 50),
            "retrieve_p95_ms": m.percentile([r["retrieve_ms"] for r in rows], 95),
            "generate_p50_ms": m.percentile([r["generate_ms"] for r in rows], 50),
            "generate_p95_ms": m.percentile([r["generate_ms"] for r in rows], 95),
        }
    out["ratio"] = {
        key: m.ratio(out["simp"][key], out["trad"][key]) for key in ("char_f1", "citation_correct", "refusal_accuracy")
    }
    return out


def by_split(records: list[dict]) -> dict[str, Any]:
    """The answer summary of each split: tune (calibrated on) and test (held out, report only)."""
    return {split: summarise_answers([r for r in records if r.get("split", "tune") == split]) for split in SPLITS}


def _refused_at(record: dict, threshold: float) -> bool:
    """Would this answer be a refusal with ``threshold``? Missing specifics or low support refuse at
    any backend; an LLM that declined by itself (``model_refused``) declines at any threshold too.
    (Questions the run did not send to the model are counted as answered: an approximation below
    the threshold in use.)"""
    return bool(record.get("missing")) or record["support"] < threshold or bool(record.get("model_refused"))


def tradeoff_curve(records: list[dict], steps: int = 20) -> list[dict[str, Any]]:
    """Refusals of unanswerable vs false refusals of answerable questions, per script, as the
    support threshold sweeps 0…1: the curve the found_threshold is chosen on, for the backend of
    the run (an LLM's own refusals shift it)."""
    curve = []
    for i in range(steps + 1):
        threshold = round(i / steps, 3)
        point: dict[str, Any] = {"threshold": threshold}
        for script in SCRIPTS:
            rows = [r for r in records if r["script"] == script]
            refused = [(r["answerable"], _refused_at(r, threshold)) for r in rows]
            ans = [ref for a, ref in refused if a]
            una = [ref for a, ref in refused if not a]
            point[script] = {
                "refused": sum(una) / len(una) if una else None,
                "false_refusals": sum(ans) / len(ans) if ans else None,
            }
        curve.append(point)
    return curve


def calibrate_threshold(records: list[dict], max_false_refusal: float = 0.1) -> dict[str, Any]:
    """The support threshold that refuses the most unanswerables while wrongly refusing at most
    ``max_false_refusal`` of the answerables *in each script* (a threshold that only works for
    Traditional questions is no good). Many thresholds usually do equally well; the middle of
    that band is returned, so the nearest answerable and unanswerable questions both keep a
    margin. A question with ``missing`` specifics is refused at any threshold."""
    scripts = sorted({r.get("script", "") for r in records})
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    if not answerable:  # e.g. a gold file that is all held-out: nothing to calibrate on
        return {"threshold": None}

    refused = _refused_at

    def rate(rows: list[dict], threshold: float) -> float:
        return sum(refused(r, threshold) for r in rows) / max(1, len(rows))

    def worst_false(threshold: float) -> float:
        return max(rate([r for r in answerable if r.get("script", "") == s], threshold) for s in scripts)

    # Each candidate is a support value plus a hair: "refuse below it" then refuses that question.
    candidates = [t for t in sorted({r["support"] for r in records} | {0.0}) if worst_false(t) <= max_false_refusal]
    if not candidates:
        return {"threshold": None}
    best_refusal = max(rate(unanswerable, t) for t in candidates)
    band = [t for t in candidates if rate(unanswerable, t) == best_refusal]
    threshold = round((band[0] + band[-1]) / 2, 3)
    return {
        "threshold": threshold,
        "band": [band[0], band[-1]],
        "refusal_accuracy": rate(unanswerable, threshold),
        "false_refusal_rate": rate(answerable, threshold),
        "worst_script_false_refusal_rate": worst_false(threshold),
    }


def _config(settings: Settings, service: Tongwen, llm: str) -> dict[str, Any]:
    info = service.info()
    return {
        "embedding_model": settings.embedding_model,
        "embedding_backend": settings.embedding_backend,
        "chunk_max_tokens": settings.chunk_max_tokens,
        "chunk_overlap_tokens": settings.chunk_overlap_tokens,
        "top_k": settings.top_k,
        "candidate_k": settings.candidate_k,
        "found_threshold": settings.found_threshold,
        "backend": llm,
        "index": info.get("index"),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def run_evaluation(
    settings: Settings,
    gold: Path | None = None,
    llm: str = "extractive",
    out: Path = Path("eval/out"),
    compare: Path | None = None,
    baselines: bool = True,
    retrieval_only: bool = False,
    limit: int | None = None,
    min_hit5: float | None = None,
    min_hit1: float | None = None,
    ablation: bool = True,
    progress: bool = True,
    service: Tongwen | None = None,
    readme: Path | None = None,
    dialogues: Path | None = None,
) -> int:
    """Run everything, write ``results.json`` and ``report.html`` under ``out`` (and the results
    section of ``readme`` when given); return the exit code of the ``min_hit5`` gate."""
    started = time.perf_counter()
    gold_path = gold or DEFAULT_GOLD
    items = load_gold(gold_path)[:limit] if limit else load_gold(gold_path)
    corpus_dir = settings.corpus_path
    problems = evidence_problems(items, corpus_dir)
    service = service or Tongwen(settings)
    service.ensure_index(show_progress=progress)

    def tongwen_search(question: str, k: int) -> list[tuple[str, str]]:
        return [(h.doc, h.text) for h in service.retrieve(question, k)]

    systems: dict[str, Search] = {"tongwen": tongwen_search}
    if baselines:
        raw = {p.name: load_document(p).text for p in sorted(corpus_dir.iterdir()) if p.is_file()}
        systems["bigram-bm25"] = BigramBM25(raw).search
        systems["naive-langchain"] = NaiveLangchain(raw, service.model, settings.home_dir / "eval-cache").search

    results: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "gold": str(gold_path),
        "items": len(items),
        "answerable": sum(i.answerable for i in items),
        "gold_problems": problems,
        "config": _config(settings, service, llm),
        "retrieval": {},
    }
    all_records: dict[str, list[dict]] = {}
    for name, search in systems.items():
        records = retrieval_records(name, search, items, progress)
        all_records[name] = records
        results["retrieval"][name] = summarise_retrieval(records)
    tongwen_records = all_records["tongwen"]
    wrapped = [
        record
        for wrapper in WRAPPERS
        for record in retrieval_records(WRAPPED, wrapped_search(tongwen_search, wrapper), items, progress)
    ]
    results["retrieval"][WRAPPED] = summarise_retrieval(wrapped)
    results["wrapped_moved"] = moved(tongwen_records, wrapped)
    results["retrieval_by_split"] = {
        split: summarise_retrieval([r for r in tongwen_records if r["split"] == split]) for split in SPLITS
    }
    if ablation and settings.vector_store == "faiss":
        cases = build_cases(service, items, settings.candidate_k, settings.rrf_k)
        results["ablation"] = ablation_table(cases)
    results["by_doc"] = breakdown(tongwen_records, "doc", lambda r: m.hit_at_k(r["relevant"], 5))
    results["by_type"] = breakdown(tongwen_records, "type", lambda r: m.hit_at_k(r["relevant"], 5))
    results["retrieval_failures"] = [r for r in tongwen_records if not any(r["relevant"][:5])]
    results["retrieval_latency_ms"] = [r["latency_ms"] for r in tongwen_records]

    if not retrieval_only:
        answers = answer_records(service, items, llm, progress)
        results["answers"] = summarise_answers(answers)
        results["answers_by_split"] = by_split(answers)
        tune = [r for r in answers if r.get("split", "tune") == "tune"]
        results["calibration"] = calibrate_threshold(tune)  # never on the held-out test split
        results["tradeoff"] = {
            "tune": tradeoff_curve(tune),
            "test": tradeoff_curve([r for r in answers if r.get("split") == "test"]),
        }
        results["answer_failures"] = [
            r for r in answers if (r["answerable"] != r["found"]) or r.get("citation_correct") is False
        ]
        results["answer_records"] = answers
        dialogue_path = dialogues or (DEFAULT_DIALOGUES if gold is None else None)  # bundled corpus only
        if dialogue_path is not None:
            played = load_dialogues(dialogue_path)[:limit] if limit else load_dialogues(dialogue_path)
            results["dialogue_problems"] = dialogue_problems(played, corpus_dir)
            turns = dialogue_records(service, played, llm, progress)
            results["dialogues"] = summarise_dialogues(turns)
            results["dialogue_records"] = turns
    results["seconds"] = time.perf_counter() - started

    if compare is not None:
        results["compare"] = {
            "previous": str(compare),
            "deltas": deltas(json.loads(compare.read_text("utf-8")), results),
        }

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), "utf-8")
    write_html(results, out / "report.html")
    if readme is not None:
        update_readme(results, readme)
    print_table(results)
    print(f"\nresults: {out / 'results.json'}  report: {out / 'report.html'}")
    if problems:
        print(f"gold problems ({len(problems)}):\n  " + "\n  ".join(problems))
    return gate(results["retrieval"]["tongwen"], {"hit@5": min_hit5, "hit@1": min_hit1})


def gate(scores: dict[str, Any], minimums: dict[str, float | None]) -> int:
    """1 when any metric with a minimum falls below it in either script (printed), else 0."""
    failed = 0
    for metric, minimum in minimums.items():
        if minimum is None:
            continue
        low = {s: scores[s][metric] for s in SCRIPTS if (scores[s][metric] or 0) < minimum}
        if low:
            print(f"GATE FAILED: {metric} below {minimum}: {low}")
            failed = 1
        else:
            print(f"gate passed: {metric} >= {minimum} for both scripts")
    return failed


def deltas(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Metric-by-metric differences (current − previous) for the numbers both runs have."""

    def walk(a: Any, b: Any) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            return {k: d for k in b if k in a and (d := walk(a[k], b[k])) is not None}
        if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
            return round(b - a, 4)
        return None

    return {key: walk(previous.get(key), current.get(key)) for key in ("retrieval", "answers")}
