"""Which ranking earns its place: every signal's rankings computed once per gold question, then
fused under any weights in pure Python (milliseconds), so ablations and cross-validated weights
cost one pass over the questions.

``python -m eval.ablation`` prints the ablation table per split and script and the weights chosen
by k-fold cross-validation on the tune split (each fold's questions are scored with weights fit on
the other folds only; the held-out test split is never fit on).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eval import metrics as m
from eval.gold import DEFAULT_GOLD, GoldItem, load_gold
from rag.config import Settings
from rag.retrieve import Query, base_rankings
from rag.service import Tongwen
from rag.signals import BASE_SIGNALS, DEFAULT_WEIGHTS, cue_ranking, question_cues, rrf, signal_indexes
from rag.store.sentences import SentenceVectors

SCRIPTS = ("trad", "simp")
#: Configurations of the ablation table: name -> (weights, rrf_k); absent signals weigh 0.
_BEFORE = {"dense": 1.0, "words": 1.0, "bigrams": 1.0}
#: The defaults without the sentence ranking: what an index without sentence vectors serves
#: (TONGWEN_SENTENCE_VECTORS off, or built before they existed), over this index's chunk vectors.
_NO_SENTENCE_VECTORS = {**DEFAULT_WEIGHTS, "sentence_dense": 0.0}
ABLATIONS: dict[str, tuple[dict[str, float], int]] = {
    "dense alone": ({"dense": 1.0}, 60),
    "BM25 words alone": ({"words": 1.0}, 60),
    "BM25 bigrams alone": ({"bigrams": 1.0}, 60),
    "sentence bigrams alone": ({"sentence": 1.0}, 60),
    "heading bigrams alone": ({"heading": 1.0}, 60),
    "sentence vectors alone": ({"sentence_dense": 1.0}, 60),
    "dense + words + bigrams, k=60 (before)": (_BEFORE, 60),
    "before + sentence": ({**_BEFORE, "sentence": 1.0}, 60),
    "before + heading": ({**_BEFORE, "heading": 1.0}, 60),
    "before + cue": ({**_BEFORE, "cue": 1.0}, 60),
    "before + sentence vectors": ({**_BEFORE, "sentence_dense": 1.0}, 60),
    "before, k=20": (_BEFORE, 20),
    "earlier defaults: equal weights + cue 0.25, k=20": ({**_BEFORE, "cue": 0.25}, 20),
    "defaults: dense 0.5, sentence vectors 1, words 0.5, bigrams 1, k=20": (dict(DEFAULT_WEIGHTS), 20),
    "defaults without sentence vectors": (_NO_SENTENCE_VECTORS, 20),
    "defaults + cue 0.25": ({**DEFAULT_WEIGHTS, "cue": 0.25}, 20),
    "defaults + sentence 0.5": ({**DEFAULT_WEIGHTS, "sentence": 0.5}, 20),
    "defaults + heading 0.1": ({**DEFAULT_WEIGHTS, "heading": 0.1}, 20),
    "defaults + every signal (sentence 0.5, heading 0.1, cue 0.25)": (
        {**DEFAULT_WEIGHTS, "sentence": 0.5, "heading": 0.1, "cue": 0.25},
        20,
    ),
    "earlier CV fit (82 tune questions): equal weights + cue 0.25, k=5": ({**_BEFORE, "cue": 0.25}, 5),
    "CV fit (82 tune questions, pairs without punctuation): dense 0.5, words 0.5, bigrams 1, k=10": (
        _NO_SENTENCE_VECTORS,
        10,
    ),
    "CV fit (BM25 parameters by CV): dense 0.5, words 1, bigrams 1, cue 0.5, k=5": (
        {**_BEFORE, "dense": 0.5, "cue": 0.5},
        5,
    ),
}
#: The grid cross-validation searches (bigrams fixed at 1.0: only the ratios matter).
GRID: dict[str, tuple[float, ...]] = {
    "dense": (0.25, 0.5, 1.0),
    "words": (0.5, 1.0),
    "bigrams": (1.0,),
    "sentence_dense": (0.0, 0.5, 1.0),
    "sentence": (0.0, 0.5, 1.0),
    "heading": (0.0, 0.1),
    "cue": (0.0, 0.25, 0.5),
}
#: Reciprocal-rank constants tried: a small one lets a ranking's first place count for more.
RRF_KS: tuple[int, ...] = (5, 10, 20, 30, 60)


@dataclass(frozen=True)
class Case:
    """One gold question in one script: every signal's ranking and which positions hold the evidence."""

    id: str
    split: str
    script: str
    rankings: dict[str, list[int]]
    cosine: dict[int, float]
    relevant: frozenset[int]


def build_cases(service: Tongwen, items: Iterable[GoldItem], candidate_k: int, rrf_k: int) -> list[Case]:
    snapshot, model = service.snapshot, service.model
    indexes = signal_indexes(snapshot)
    if snapshot.sentences is None:
        # An index built without sentence vectors (TONGWEN_SENTENCE_VECTORS off, or an older one): a
        # copy of it gets them here, in memory, so the table always shows what the ranking adds.
        snapshot = copy.copy(snapshot)
        snapshot.sentences = SentenceVectors.embed(snapshot.chunks, model.embed_passages, model.dimension)
    cases = []
    for item in items:
        if not item.answerable:
            continue
        for script in SCRIPTS:
            query = Query.from_question(item.question(script))
            vectors = model.embed_queries(list(query.embedded))
            rankings, cosine, _ = base_rankings(snapshot, query, vectors, candidate_k)
            rankings |= {
                "sentence": indexes.sentences.chunk_ranking(query.bigrams, candidate_k),
                "heading": [p for p, _ in indexes.headings.search(query.bigrams, candidate_k)],
            }
            base = rrf(rankings, {s: 1.0 for s in BASE_SIGNALS}, rrf_k)
            candidates = sorted(base, key=lambda p: (-base[p], -cosine.get(p, -1.0)))
            rankings["cue"] = cue_ranking(snapshot, question_cues(query.variants), candidates)
            pool = set(itertools.chain.from_iterable(rankings.values()))
            relevant = frozenset(p for p in pool if m.contains_evidence(snapshot.chunks[p].text, item.evidence))
            cases.append(Case(item.id, item.split, script, rankings, cosine, relevant))
    return cases


def ranked(case: Case, weights: Mapping[str, float], rrf_k: int, k: int = 10) -> list[bool]:
    fused = rrf(case.rankings, weights, rrf_k)
    order = sorted(fused, key=lambda p: (-fused[p], -case.cosine.get(p, -1.0)))[:k]
    return [p in case.relevant for p in order]


def scores(cases: Sequence[Case], weights: Mapping[str, float], rrf_k: int) -> dict[str, float]:
    rel = [ranked(c, weights, rrf_k) for c in cases]
    n = max(1, len(rel))
    return {
        "hit@1": sum(m.hit_at_k(r, 1) for r in rel) / n,
        "hit@5": sum(m.hit_at_k(r, 5) for r in rel) / n,
        "mrr@10": sum(m.reciprocal_rank(r, 10) for r in rel) / n,
        "n": len(rel),
    }


def _objective(cases: Sequence[Case], weights: Mapping[str, float], rrf_k: int) -> tuple[float, float, float]:
    s = scores(cases, weights, rrf_k)
    return (s["mrr@10"], s["hit@1"], s["hit@5"])


def grid(restrict: Mapping[str, tuple[float, ...]] | None = None) -> list[dict[str, float]]:
    axes = {**GRID, **(restrict or {})}
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


@dataclass(frozen=True)
class Fusion:
    weights: dict[str, float]
    rrf_k: int


def fit_fusion(cases: Sequence[Case], restrict: Mapping[str, tuple[float, ...]] | None = None) -> Fusion:
    """The grid point with the best (MRR@10, hit@1, hit@5) on ``cases``; ties go to the smaller
    extra weights and the larger rrf_k (the flatter, more conservative fusion)."""
    points = [Fusion(w, k) for k in RRF_KS for w in grid(restrict)]
    return max(points, key=lambda f: (*_objective(cases, f.weights, f.rrf_k), -sum(f.weights.values()), f.rrf_k))


#: Families of fusions compared by repeated CV before any weights are fit: a signal joins the
#: defaults only when the family that may use it scores better out of fold than the one that may not.
_NO_VECTORS = {"sentence_dense": (0.0,)}
FAMILIES: dict[str, dict[str, tuple[float, ...]]] = {
    "base three (k, dense, words)": {**_NO_VECTORS, "sentence": (0.0,), "heading": (0.0,), "cue": (0.0,)},
    "+ cue": {**_NO_VECTORS, "sentence": (0.0,), "heading": (0.0,)},
    "+ sentence": {**_NO_VECTORS, "heading": (0.0,), "cue": (0.0,)},
    "+ heading": {**_NO_VECTORS, "sentence": (0.0,), "cue": (0.0,)},
    "+ sentence vectors": {"sentence": (0.0,), "heading": (0.0,), "cue": (0.0,)},
    "+ sentence vectors + cue": {"sentence": (0.0,), "heading": (0.0,)},
    "all signals": {},
}


def folds_by_item(cases: Sequence[Case], k: int, seed: int = 12) -> list[set[str]]:
    """Item ids in ``k`` folds; both scripts of a question fall in the same fold."""
    ids = sorted({c.id for c in cases})
    random.Random(seed).shuffle(ids)
    return [set(ids[i::k]) for i in range(k)]


def cross_validate(
    cases: Sequence[Case], k: int = 5, restrict: Mapping[str, tuple[float, ...]] | None = None, seed: int = 12
) -> dict[str, Any]:
    """k-fold CV: each fold scored with the fusion fit on the other folds only."""
    out_of_fold: list[tuple[Case, Fusion]] = []
    fits = []
    for fold in folds_by_item(cases, k, seed):
        train = [c for c in cases if c.id not in fold]
        fusion = fit_fusion(train, restrict)
        fits.append(fusion)
        out_of_fold += [(c, fusion) for c in cases if c.id in fold]
    per_script = {}
    for script in SCRIPTS:
        rows = [(c, f) for c, f in out_of_fold if c.script == script]
        rel = [ranked(c, f.weights, f.rrf_k) for c, f in rows]
        n = max(1, len(rel))
        per_script[script] = {
            "hit@1": sum(m.hit_at_k(r, 1) for r in rel) / n,
            "hit@5": sum(m.hit_at_k(r, 5) for r in rel) / n,
            "mrr@10": sum(m.reciprocal_rank(r, 10) for r in rel) / n,
        }
    return {"folds": fits, "out_of_fold": per_script, "fit_on_all": fit_fusion(cases, restrict)}


def compare_families(
    cases: Sequence[Case], k: int = 5, seeds: Sequence[int] = (12, 1, 2)
) -> dict[str, dict[str, float]]:
    """Out-of-fold hit@1 and MRR@10 (mean over scripts and fold seeds) of each family in :data:`FAMILIES`."""
    out = {}
    for name, restrict in FAMILIES.items():
        runs = [cross_validate(cases, k, restrict, seed)["out_of_fold"] for seed in seeds]
        cells = [run[s] for run in runs for s in SCRIPTS]
        out[name] = {metric: sum(c[metric] for c in cells) / len(cells) for metric in ("hit@1", "mrr@10")}
    return out


def ablation_table(
    cases: Sequence[Case], configs: Mapping[str, tuple[Mapping[str, float], int]] = ABLATIONS
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{config: {split: {script: scores}}}."""
    table: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for name, (weights, rrf_k) in configs.items():
        table[name] = {}
        for split in ("tune", "test"):
            table[name][split] = {
                s: scores([c for c in cases if c.split == split and c.script == s], weights, rrf_k) for s in SCRIPTS
            }
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = Settings()
    service = Tongwen(settings)
    service.ensure_index()
    cases = build_cases(service, load_gold(args.gold), settings.candidate_k, settings.rrf_k)
    table = ablation_table(cases)
    for name, by_split in table.items():
        cells = "  ".join(
            f"{split}/{s}: {v['hit@1']:.3f} {v['hit@5']:.3f} {v['mrr@10']:.3f}"
            for split, by_script in by_split.items()
            for s, v in by_script.items()
        )
        print(f"{name:34s} {cells}")
    tune = [c for c in cases if c.split == "tune"]
    families = compare_families(tune, args.folds)
    for name, score in families.items():
        print(
            f"CV out-of-fold (tune, 3 fold seeds), {name:30s} hit@1 {score['hit@1']:.3f}  MRR@10 {score['mrr@10']:.3f}"
        )
    best = max(families, key=lambda n: (families[n]["mrr@10"], families[n]["hit@1"]))
    fusion = fit_fusion(tune, FAMILIES[best])
    print(f"best family: {best}; its fit on the whole tune split: {fusion}")
    if args.out:
        report = {"ablation": table, "families": families, "best": best, "fit": asdict(fusion)}
        args.out.write_text(json.dumps(report, indent=1), "utf-8")


if __name__ == "__main__":
    main()
