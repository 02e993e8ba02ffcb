"""An index whose keyword side was cut by other analyzers is cut again on load, never served stale.

The keyword indexes are built at ingest; a release that changes how text is cut (the character
pairs stopped spanning punctuation in one) would otherwise rank questions cut the new way against
chunks cut the old way, with no error anywhere. Each version records a fingerprint of the
analyzers that cut it; these tests build a version the old way and load it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest

from rag.retrieve import Query
from rag.service import Tongwen
from rag.store import keyword
from rag.store.keyword import PAIR_BM25, BM25Params, KeywordIndex, analyzer_fingerprint, char_bigrams, tokenize
from rag.store.snapshot import MANIFEST, Manifest, Snapshot
from tests.conftest import SLICE

pytestmark = pytest.mark.both_stores

QUESTION = "盧森堡的「第三次產業革命」策略是什麼時候發布的？"


def old_bigrams(canonical_text: str) -> tuple[str, ...]:
    """The character pairs of an earlier release: across punctuation too."""
    text = "".join(canonical_text.split())
    return tuple(a + b for a, b in pairwise(text))


def old_tokens(canonical_text: str) -> tuple[str, ...]:
    """A different word cut: single characters."""
    return tuple(ch for ch in canonical_text if not ch.isspace())


def stale(manifest: Manifest, fingerprint: str) -> Manifest:
    return replace(manifest, keyword_analyzer=fingerprint)


def test_a_new_index_records_todays_fingerprint(service: Tongwen) -> None:
    assert service.snapshot.manifest.keyword_analyzer == analyzer_fingerprint()
    assert all(c.tokens == tokenize(c.canonical) for c in service.snapshot.chunks[:50])


def test_the_fingerprint_changes_with_the_analyzers(monkeypatch: pytest.MonkeyPatch) -> None:
    today = analyzer_fingerprint()
    try:
        monkeypatch.setattr(keyword, "char_bigrams", old_bigrams)
        analyzer_fingerprint.cache_clear()
        assert analyzer_fingerprint() != today
        monkeypatch.undo()
        monkeypatch.setattr(keyword, "tokenize", old_tokens)
        analyzer_fingerprint.cache_clear()
        assert analyzer_fingerprint() != today
        monkeypatch.undo()
        # bm25s folds k1 and b into the scores it saves: other parameters are other indexes.
        monkeypatch.setattr(keyword, "PAIR_BM25", BM25Params())
        analyzer_fingerprint.cache_clear()
        assert analyzer_fingerprint() != today
    finally:
        monkeypatch.undo()
        analyzer_fingerprint.cache_clear()
    assert analyzer_fingerprint() == today


@pytest.mark.faiss_only("writes version folders by hand; the Milvus case is the next test")
@pytest.mark.parametrize("recorded", ["", "0123456789abcdef"], ids=["unrecorded", "other"])
def test_a_faiss_version_cut_by_other_analyzers_is_cut_again_on_load(
    service: Tongwen, tmp_path: Path, recorded: str
) -> None:
    fresh = service.snapshot
    old_chunks = [replace(c, tokens=old_tokens(c.canonical)) for c in fresh.chunks]

    def write(fingerprint: str, folder: Path) -> Snapshot:
        built = Snapshot(
            stale(fresh.manifest, fingerprint),
            old_chunks,
            fresh.faiss_index,
            KeywordIndex.build([c.tokens for c in old_chunks]),
            KeywordIndex.build([old_bigrams(c.canonical) for c in old_chunks]),
        )
        folder.mkdir()
        built.write(folder)
        return Snapshot.read(folder)

    query = Query.from_question(QUESTION)
    expected_words = fresh.keyword_search(query.tokens, 10)
    expected_pairs = fresh.bigram_search(query.bigrams, 10)
    assert expected_words and expected_pairs

    loaded = write(recorded, tmp_path / "old")
    assert [c.tokens for c in loaded.chunks] == [tokenize(c.canonical) for c in fresh.chunks]
    assert loaded.keyword_search(query.tokens, 10) == expected_words
    assert loaded.bigram_search(query.bigrams, 10) == expected_pairs
    assert loaded.doc_freq == fresh.doc_freq

    # The same stale files under today's fingerprint are served as they are: the fingerprint is
    # what decides (and the old cut does rank differently, so the check above could fail).
    trusted = write(analyzer_fingerprint(), tmp_path / "trusted")
    assert [c.tokens for c in trusted.chunks] == [c.tokens for c in old_chunks]
    assert trusted.bigram_search(query.bigrams, 10) != expected_pairs


@pytest.mark.milvus_only("builds a MilvusSnapshot over the session's collection; FAISS is the test above")
def test_a_milvus_version_cut_by_other_analyzers_is_cut_again_on_load(service: Tongwen) -> None:
    from rag.store.milvus_snapshot import MilvusSnapshot

    fresh = service.snapshot
    assert isinstance(fresh, MilvusSnapshot)
    old_chunks = [replace(c, tokens=old_tokens(c.canonical)) for c in fresh.chunks]
    loaded = MilvusSnapshot(fresh.store, fresh.collection, stale(fresh.manifest, ""), old_chunks)
    assert [c.tokens for c in loaded.chunks] == [c.tokens for c in fresh.chunks]
    assert loaded.doc_freq == fresh.doc_freq
    query = Query.from_question(QUESTION)
    assert loaded.bigram_search(query.bigrams, 10) == fresh.bigram_search(query.bigrams, 10)
    assert loaded.keyword_search(query.tokens, 10) == fresh.keyword_search(query.tokens, 10)
    trusted = MilvusSnapshot(fresh.store, fresh.collection, fresh.manifest, old_chunks)
    assert [c.tokens for c in trusted.chunks] == [c.tokens for c in old_chunks]


def test_char_bigrams_is_what_the_fingerprint_hashes() -> None:
    """Guards the probe: it must hold punctuation between word characters, or a change to how
    pairs meet punctuation (the one that went unnoticed) would not move the fingerprint."""
    assert char_bigrams(keyword._PROBE) != old_bigrams(keyword._PROBE)


@pytest.mark.faiss_only("edits a version's manifest.json on disk")
def test_the_next_ingest_writes_the_recut_keyword_side(
    service: Tongwen, slice_corpus: Path, tmp_path: Path, make_settings
) -> None:
    """Even when no document changed: the version is written again, nothing is embedded."""
    shutil.copytree(service.settings.index_dir, tmp_path / "index")
    pointer = tmp_path / "index" / "CURRENT"
    folder = tmp_path / "index" / "versions" / pointer.read_text("utf-8").strip()
    manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
    manifest["keyword_analyzer"] = "0123456789abcdef"
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")

    tongwen = Tongwen(make_settings(tmp_path))
    report = tongwen.ingest_paths([slice_corpus])
    assert not report.changed and report.chunks_embedded == 0 and len(report.unchanged) == len(SLICE)
    newest = tmp_path / "index" / "versions" / pointer.read_text("utf-8").strip()
    assert newest != folder
    assert Manifest.read(newest).keyword_analyzer == analyzer_fingerprint()
    assert tongwen.snapshot.chunks == service.snapshot.chunks

    again = tongwen.ingest_paths([slice_corpus])  # now current: nothing to write
    assert not again.changed and pointer.read_text("utf-8").strip() == newest.name


def test_bm25_parameters_are_saved_with_the_index(tmp_path: Path) -> None:
    """A loaded index scores with the parameters it was built with, not bm25s's defaults."""
    texts = ["产业革命策略", "产业革命策略的背景、目标与路线图以及各部门的分工和时间表", "能源转型"]
    pairs = [char_bigrams(t) for t in texts]
    built = KeywordIndex.build(pairs, PAIR_BM25)
    built.save(tmp_path / "pairs")
    loaded = KeywordIndex.load(tmp_path / "pairs", len(pairs))
    query = char_bigrams("产业革命")
    assert loaded.search(query, 3) == built.search(query, 3)
    assert loaded.search(query, 3) != KeywordIndex.build(pairs).search(query, 3)
