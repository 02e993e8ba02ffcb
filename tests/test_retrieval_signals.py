"""The extra retrieval signals, the fusion weights, the reranker seam and the cross-validation
that chooses the weights: each on the real index of the corpus slice."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from eval import ablation
from eval.ablation import Case, cross_validate, fit_fusion, folds_by_item
from ingest.sentences import merged_sentences
from rag.rerank import scorer_reranker
from rag.retrieve import Query, base_rankings, hybrid_search
from rag.service import Tongwen
from rag.signals import DEFAULT_WEIGHTS, cue_ranking, question_cues, signal_indexes
from rag.store.keyword import char_bigrams

pytestmark = pytest.mark.both_stores  # over FAISS and over Milvus Lite (tests/conftest.py)


def _long_sentence(service: Tongwen) -> tuple[int, str]:
    """A sentence of 30+ characters that occurs in exactly one chunk."""
    chunks = service.snapshot.chunks
    for pos, chunk in enumerate(chunks):
        for sentence in merged_sentences(chunk.text):
            if len(sentence) >= 30 and sum(sentence in c.text for c in chunks) == 1:
                return pos, sentence
    raise AssertionError("no unique long sentence in the slice")


def test_sentence_signal_returns_the_chunk_of_the_matching_sentence(service: Tongwen):
    """Small-to-big: a sentence matched on its own ranks its chunk first."""
    pos, sentence = _long_sentence(service)
    query = Query.from_question(sentence)
    ranking = signal_indexes(service.snapshot).sentences.chunk_ranking(query.bigrams, 5)
    assert ranking[0] == pos
    assert len(ranking) == len(set(ranking)), "a chunk appears once, at its best sentence"


def test_heading_signal_matches_headings_alone(service: Tongwen):
    """A heading's words bring up the chunks under that heading, whatever their text says."""
    chunks = service.snapshot.chunks
    heading = next(c.heading for c in chunks if len(c.heading) >= 8)
    query = Query.from_question(heading)
    top = [pos for pos, _ in signal_indexes(service.snapshot).headings.search(query.bigrams, 3)]
    assert top and chunks[top[0]].heading == heading
    unrelated = next(c.heading for c in chunks if not set(char_bigrams(c.heading)) & set(char_bigrams(heading)))
    assert not signal_indexes(service.snapshot).headings.search(Query.from_question(unrelated).bigrams, 50) or all(
        chunks[p].heading != heading
        for p, _ in signal_indexes(service.snapshot).headings.search(Query.from_question(unrelated).bigrams, 3)
    )


def test_question_cues_keep_candidates_with_dates_or_figures_in_order(service: Tongwen):
    snap = service.snapshot
    when = Query.from_question("盧森堡是在什麼時候發布「第三次產業革命策略」的？")
    cues = question_cues(when.variants)
    assert cues, "什麼時候 is a date cue"
    candidates = list(range(len(snap.chunks)))[::-1]
    kept = cue_ranking(snap, cues, candidates)
    assert kept and len(kept) < len(candidates)
    assert kept == [p for p in candidates if p in set(kept)], "the candidates' order is kept"
    assert all(any(ch.isdigit() for ch in snap.chunks[p].text) for p in kept)
    assert question_cues(Query.from_question("盧森堡為什麼要轉型？").variants) == ()
    how_much = Query.from_question("运输中私家车的占比要降到多少？")
    assert question_cues(how_much.variants), "多少 is a figure cue in either script"


def test_every_keyword_candidate_gets_its_dense_rank(service: Tongwen):
    """A chunk only the keyword sides found is still ranked by its true cosine, not left out of
    the dense ranking because that list was cut at candidate_k."""
    snap, model = service.snapshot, service.model
    query = Query.from_question("盧森堡交通運輸轉型的長期目標是什麼？")
    vectors = model.embed_queries(list(query.variants))
    rankings, cosine, _ = base_rankings(snap, query, vectors, 3)
    keyword = set(rankings["words"]) | set(rankings["bigrams"])
    assert keyword - set(snap.dense_best(vectors, 3)), "the question needs a keyword-only candidate"
    assert keyword <= set(rankings["dense"])
    assert rankings["dense"] == sorted(cosine, key=cosine.__getitem__, reverse=True)
    stored = snap.vectors()
    for pos in keyword:
        assert cosine[pos] == pytest.approx(float((vectors @ stored[pos]).max()), abs=1e-4)


def test_weights_choose_which_rankings_count(service: Tongwen):
    """Weight 1 on one ranking alone reproduces that ranking; the defaults fuse several."""
    snap, model = service.snapshot, service.model
    query = Query.from_question("盧森堡交通運輸轉型的長期目標是什麼？")
    words_only = hybrid_search(snap, model, query, 5, weights={"words": 1.0})
    assert [h.chunk.id for h in words_only] == [snap.chunks[p].id for p, _ in snap.keyword_search(query.tokens, 5)]
    dense_only = hybrid_search(snap, model, query, 5, weights={"dense": 1.0})
    assert [h.dense for h in dense_only] == sorted((h.dense for h in dense_only), reverse=True)
    fused = hybrid_search(snap, model, query, 5)
    assert len(fused) == 5 and fused != dense_only


class _PrefersDigits:
    """A stand-in CrossEncoder: scores a passage by how many digits it holds."""

    def __init__(self) -> None:
        self.pairs_seen: list[int] = []

    def predict(self, sentences: Sequence[tuple[str, str]], **kwargs) -> list[float]:
        self.pairs_seen.append(len(sentences))
        return [float(sum(ch.isdigit() for ch in passage)) for _, passage in sentences]


def test_reranker_seam_rescores_the_candidate_pool(service: Tongwen):
    scorer = _PrefersDigits()
    reranked = Tongwen(service.settings, reranker=scorer_reranker(scorer))
    question = "盧森堡的第三次產業革命計畫涵蓋哪些主題？"
    hits = reranked.retrieve(question, 3)
    assert scorer.pairs_seen == [len(service.retrieve(question, service.settings.candidate_k))]
    assert len(hits) == 3
    digits = [sum(ch.isdigit() for ch in h.text) for h in hits]
    assert digits == sorted(digits, reverse=True)
    assert [h.score for h in hits] == [float(d) for d in digits], "the score shown is the reranker's"


@pytest.mark.slow
def test_reranker_setting_loads_a_local_cross_encoder(service: Tongwen, test_home):
    """TONGWEN_RERANKER = a local folder: a real sentence-transformers CrossEncoder (here the e5
    encoder with a fresh one-logit head: the test is about the seam, not the quality)."""
    settings = service.settings.model_copy(update={"reranker": str(test_home / "models" / "multilingual-e5-small")})
    hits = Tongwen(settings).retrieve("盧森堡的第三次產業革命計畫涵蓋哪些主題？", 3)
    assert len(hits) == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def _case(item: str, split: str, dense_right: bool) -> Case:
    """A synthetic question: the evidence (position 1) is first in the dense ranking or in the words ranking."""
    right, wrong = [1, 2, 3], [2, 3, 1]
    rankings = {"dense": right if dense_right else wrong, "words": wrong if dense_right else right, "bigrams": []}
    return Case(item, split, "trad", rankings, {}, frozenset({1}))


def test_fit_prefers_the_ranking_that_is_right():
    assert fit_fusion([_case(f"d{i}", "tune", True) for i in range(6)]).weights["dense"] == 1.0
    assert fit_fusion([_case(f"w{i}", "tune", False) for i in range(6)]).weights["dense"] < 1.0


def test_cross_validation_never_fits_on_the_scored_fold(monkeypatch: pytest.MonkeyPatch):
    cases = [_case(f"q{i}", "tune", i % 2 == 0) for i in range(10)]
    trained_on: list[set[str]] = []
    real_fit = ablation.fit_fusion

    def recording_fit(train: Sequence[Case], restrict=None):
        trained_on.append({c.id for c in train})
        return real_fit(train, restrict)

    monkeypatch.setattr(ablation, "fit_fusion", recording_fit)
    result = cross_validate(cases, k=5)
    folds = folds_by_item(cases, 5)
    assert len(result["folds"]) == 5
    for fold, train in zip(folds, trained_on, strict=False):
        assert fold and not fold & train
        assert fold | train == {c.id for c in cases}


def test_each_defaults_plus_row_adds_only_what_its_name_says():
    """A "defaults + X" row of the ablation table once also carried the sentence vectors (they
    weigh 1 in DEFAULT_WEIGHTS, used only where an index keeps them) while its base row did not, so
    its gain was theirs. Each row now differs from the defaults by exactly the signal it names."""
    base, _ = ablation.ABLATIONS["defaults: dense 0.5, sentence vectors 1, words 0.5, bigrams 1, k=20"]
    assert base == DEFAULT_WEIGHTS
    named = {"cue": "cue", "sentence 0.5": "sentence", "heading": "heading"}
    named["without sentence vectors"] = "sentence_dense"
    rows = {name: w for name, (w, _) in ablation.ABLATIONS.items() if name.startswith("defaults ")}
    assert len(rows) >= 5
    for name, weights in rows.items():
        changed = {s for s in set(base) | set(weights) if weights.get(s, 0.0) != base.get(s, 0.0)}
        said = {signal for word, signal in named.items() if word in name}
        if "every signal" in name:
            said |= {"sentence", "heading", "cue"}
        assert changed == said, name


def test_fusion_weights_setting_names_known_rankings_only(make_settings, tmp_path):
    assert make_settings(tmp_path, fusion_weights={"cue": 0.5}).signal_weights["cue"] == 0.5  # default 0
    with pytest.raises(ValueError, match="unknown ranking"):
        make_settings(tmp_path, fusion_weights={"Dense": 1.0})
