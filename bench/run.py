"""Speed and memory benchmark of the core pipeline (targets live here, not in timed tests).

    python -m bench.run [--skip-llm] [--out bench/out/core.json]

Measures, on the bundled corpus: full ingest seconds (fresh index, model already prepared),
retrieval p50/p95, extractive answer p50 (a question alone, and a dialogue's follow-up with its
first turn as history), local-LLM first-token and total seconds, and peak RSS.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eval.dialogues import load_dialogues
from eval.gold import load_gold
from eval.metrics import percentile
from rag.config import Settings
from rag.service import Tongwen

TARGETS = {
    "ingest_seconds": ("≤", 120),
    "retrieve_p50_ms": ("≤", 30),
    "retrieve_p95_ms": ("≤", 80),
    "extractive_p50_ms": ("≤", 150),
    "serving_rss_mb": ("≤", 1536),
}


def rss_mb() -> float:
    """Current resident set size (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_SERVING_PROBE = """
import json, sys
from pathlib import Path
from rag.config import Settings
from rag.service import Tongwen
args = json.loads(sys.argv[1])
service = Tongwen(Settings(home=Path(args["home"]), model_dir=Path(args["models"]), llm="extractive"))
for q in args["questions"]:
    service.ask(q, llm="extractive")
for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmRSS:"):
        print(int(line.split()[1]) / 1024)
"""


def serving_rss_mb(settings: Settings, questions: list[str]) -> float:
    """RSS of a fresh process that loads the index and model and answers questions, as a server
    does: the ingesting process still holds the memory it used to embed, which a server never has."""
    payload = json.dumps({"home": str(settings.home_dir), "models": str(settings.models_dir), "questions": questions})
    out = subprocess.run([sys.executable, "-c", _SERVING_PROBE, payload], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def follow_up_ms(service: Tongwen, count: int) -> list[float]:
    """Extractive answer time of the second turn of ``count`` gold dialogues, the first turn as
    history: the follow-up path (condensing, several searches, carried passages) that a question
    alone never takes."""
    times = []
    for dialogue in load_dialogues()[:count]:
        first, second = (turn.question("trad") for turn in dialogue.turns[:2])
        history = [{"role": "user", "content": first}, {"role": "assistant", "content": service.ask(first).answer}]
        t = time.perf_counter()
        service.ask(second, history)
        times.append((time.perf_counter() - t) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bench/out/core.json"))
    parser.add_argument("--skip-llm", action="store_true")
    parser.add_argument("--questions", type=int, default=60)
    args = parser.parse_args()

    base = Settings()
    results: dict[str, float | str | None] = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), model_dir=base.models_dir, corpus_dir=base.corpus_dir, llm="extractive")
        service = Tongwen(settings)
        service.model  # noqa: B018 - prepare/load the model outside the timed ingest
        started = time.perf_counter()
        report = service.ensure_index(show_progress=True)
        results["ingest_seconds"] = time.perf_counter() - started
        results["chunks"] = len(service.snapshot.chunks)
        results["chunks_per_second"] = report.chunks_embedded / results["ingest_seconds"] if report else None

        questions = [q for item in load_gold() for q in (item.question_trad, item.question_simp)][: args.questions]
        service.retrieve(questions[0], 5)  # warm-up
        retrieve_ms, answer_ms = [], []
        for q in questions:
            t = time.perf_counter()
            service.retrieve(q, 5)
            retrieve_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            service.ask(q, llm="extractive")
            answer_ms.append((time.perf_counter() - t) * 1000)
        results["retrieve_p50_ms"] = percentile(retrieve_ms, 50)
        results["retrieve_p95_ms"] = percentile(retrieve_ms, 95)
        results["extractive_p50_ms"] = percentile(answer_ms, 50)
        results["extractive_p95_ms"] = percentile(answer_ms, 95)
        follow_ups = follow_up_ms(service, args.questions // 2)
        results["followup_p50_ms"] = percentile(follow_ups, 50)
        results["followup_p95_ms"] = percentile(follow_ups, 95)
        results["serving_rss_mb"] = serving_rss_mb(settings, questions[:10])
        results["rss_after_ingest_mb"] = rss_mb()

        if not args.skip_llm:
            t = time.perf_counter()
            first = None
            for event in service.ask_stream(questions[0], llm="local"):
                if event.type == "token" and first is None:
                    first = time.perf_counter() - t
                if event.type == "final":
                    results["local_backend"] = event.backend
            results["local_first_token_s_incl_load"] = first
            results["local_total_s_incl_load"] = time.perf_counter() - t
            t = time.perf_counter()
            first = None
            for event in service.ask_stream(questions[2], llm="local"):
                if event.type == "token" and first is None:
                    first = time.perf_counter() - t
            results["local_first_token_s"] = first
            results["local_total_s"] = time.perf_counter() - t
        results["peak_rss_mb"] = peak_rss_mb()

    print(f"\n{'metric':34} {'value':>10}  target")
    for key, value in results.items():
        target = TARGETS.get(key)
        shown = f"{value:10.1f}" if isinstance(value, float) else f"{value!s:>10}"
        verdict = ""
        if target and isinstance(value, float):
            verdict = f"{target[0]} {target[1]}  {'ok' if value <= target[1] else 'MISSED'}"
        print(f"{key:34} {shown}  {verdict}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1), "utf-8")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
