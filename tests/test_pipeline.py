"""End-to-end behaviour of the core pipeline on a real index of a corpus slice.

Real embedding model, a real index (FAISS + BM25 files on disk, and Milvus Lite), extractive generator
(the local LLM has its own test). Questions come from the gold set, so they are paraphrases, not copied sentences.
"""

from __future__ import annotations

import json

import pytest

from eval.gold import load_gold
from eval.metrics import contains_evidence
from ingest.normalise import canonical, detect_script, to_script
from rag.service import Tongwen

pytestmark = pytest.mark.both_stores  # once on FAISS, once on Milvus Lite (tests/conftest.py)

GOLD = {item.id: item for item in load_gold()}
# Slice questions whose Simplified wording uses Mainland vocabulary (芯片, 数字, 数据, 人工智能).
VOCAB_PAIRS = ("g063", "g051", "g056", "g053")


@pytest.mark.parametrize("gold_id", VOCAB_PAIRS)
def test_simplified_mainland_question_finds_the_chunk_of_its_traditional_twin(service: Tongwen, gold_id: str):
    item = GOLD[gold_id]
    trad = service.retrieve(item.question_trad, 5)
    simp = service.retrieve(item.question_simp, 5)
    assert contains_evidence(trad[0].text, item.evidence), trad[0].text
    assert simp[0].id == trad[0].id


@pytest.mark.parametrize("script_field, expected", [("question_trad", "traditional"), ("question_simp", "simplified")])
def test_answer_is_cited_and_in_the_askers_script(service: Tongwen, script_field: str, expected: str):
    item = GOLD["g063"]
    result = service.ask(getattr(item, script_field))
    assert result.found is True
    assert result.backend == "extractive"
    assert detect_script(result.answer) == expected
    assert "[1]" in result.answer or result.citations, result.answer
    cited = [result.sources[c.n - 1] for c in result.citations]
    assert any(contains_evidence(s.text, item.evidence) for s in cited)
    for citation in result.citations:
        assert citation.quote in result.sources[citation.n - 1].text
        # Every sentence the answer leans on, first one first (the UI highlights them all).
        assert citation.quotes[0] == citation.quote
        assert all(q in result.sources[citation.n - 1].text for q in citation.quotes)


@pytest.mark.parametrize("gold_id", ["g088", "g092", "g093"])
def test_unanswerable_question_is_refused(service: Tongwen, gold_id: str):
    item = GOLD[gold_id]
    for question in (item.question_trad, item.question_simp):
        result = service.ask(question)
        assert result.found is False, (question, result.support, result.answer)
        assert "沒有提到" in result.answer or "没有提到" in result.answer
        assert result.citations == []


def test_follow_up_is_condensed_with_the_history(service: Tongwen):
    history = [
        {"role": "user", "content": "盧森堡在2016年發布了什麼策略？"},
        {"role": "assistant", "content": "盧森堡發布了第三次產業革命策略。[1]"},
    ]
    result = service.ask("那臺灣呢？", history=history)
    assert result.question == "臺灣在2016年發布了什麼策略？"
    simp = service.ask("那台湾呢？", history=history)
    assert simp.question == "台湾在2016年发布了什么策略？"


def test_sources_point_back_to_the_original_file(service: Tongwen, slice_corpus):
    hit = service.retrieve(GOLD["g001"].question_trad, 1)[0]
    original = (slice_corpus / hit.doc).read_text("utf-8")
    loc = hit.location
    span = original[loc.start : loc.end]
    # The chunk text is the cleaned original: same characters once whitespace is ignored.
    assert "".join(span.split()).startswith("".join(hit.text.split())[:20])
    assert original.count("\n", 0, loc.start) + 1 == loc.line_start


def test_index_persists_and_reloads(service: Tongwen, make_store_settings, store: str):
    if store == "faiss":
        folder = service.snapshot.path
        assert (folder / "dense.faiss").stat().st_size > 0
        assert (folder / "manifest.json").is_file() and (folder / "keyword").is_dir()
    else:
        assert service.snapshot.key == service.store.current_key()
    reopened = Tongwen(make_store_settings(service.settings.home, corpus_dir=service.settings.corpus_dir))
    question = GOLD["g047"].question_simp
    assert [h.id for h in reopened.retrieve(question, 5)] == [h.id for h in service.retrieve(question, 5)]


def test_json_answer_shape(service: Tongwen):
    result = json.loads(service.ask(GOLD["g047"].question_trad).model_dump_json())
    for key in ("answer", "found", "sources", "question", "citations", "backend", "timings"):
        assert key in result
    for source in result["sources"]:
        assert {"doc", "text", "score", "heading", "location", "id"} <= source.keys()


def test_the_rerank_hook_reorders_the_candidate_pool(service: Tongwen):
    """A reranker sees the whole candidate pool (not just top_k) and its order is what's kept."""
    seen: list[int] = []

    def last_first(question: str, hits):
        seen.append(len(hits))
        return list(reversed(hits))

    plain = service.retrieve(GOLD["g001"].question_trad, 30)
    reranked = Tongwen(service.settings, reranker=last_first)
    result = reranked.ask(GOLD["g001"].question_trad, top_k=3)
    assert seen == [len(plain)] and len(plain) > 3
    assert [s.id for s in result.sources] == [h.id for h in reversed(plain)][:3]
    assert "rerank" in result.timings
    assert "rerank" not in service.ask(GOLD["g001"].question_trad).timings


def test_variant_characters_fold_into_one_canonical_form() -> None:
    """A report that writes 衞星 (a variant of 衛星) meets a question about 衛星 or 卫星; a
    Simplified reader sees 卫星 in the quote."""
    assert canonical("墨子號衞星") == canonical("墨子號衛星") == canonical("墨子号卫星")
    assert to_script("中國發射了「墨子號」衞星", "simplified") == "中国发射了「墨子号」卫星"
    assert to_script("中國發射了「墨子號」衞星", "traditional") == "中國發射了「墨子號」衞星"  # quotes stay as written
