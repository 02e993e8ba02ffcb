"""Sentence vectors (``rag.store.sentences``): each sentence embedded once, found through its chunk,
kept across incremental ingests, checksummed with the version, added to an older version by the
next ingest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.errors import IndexCorrupt
from rag.retrieve import Query, base_rankings
from rag.service import Tongwen
from rag.store.records import ChunkRecord
from rag.store.sentences import SENTENCES_FILE, SentenceVectors, sentence_texts
from rag.store.snapshot import MANIFEST, Snapshot
from tests.conftest import SLICE


@pytest.fixture(scope="module")
def with_vectors(tmp_path_factory: pytest.TempPathFactory, make_settings, slice_corpus: Path) -> Tongwen:
    """The corpus slice indexed with TONGWEN_SENTENCE_VECTORS on (the session index has them off)."""
    tongwen = Tongwen(make_settings(tmp_path_factory.mktemp("sv"), corpus_dir=slice_corpus, sentence_vectors=True))
    report = tongwen.ensure_index()
    assert report is not None and report.sentences_embedded > report.chunks_embedded > 0
    return tongwen


SHARED = "第一場座談會在 109 年 4 月 22 日舉行，第二場在 5 月 8 日舉行。"


def chunk(seq: int, text: str) -> ChunkRecord:
    return ChunkRecord(f"d:{seq}", "d", "doc.txt", seq, "", text, text, (), None)


CHUNKS = [
    chunk(0, "本計畫也舉辦了兩場座談會，以收斂研究成果和政策建議。" + SHARED),
    chunk(1, SHARED + "討論的議題也包括新冠疫情所引發的影響。"),  # the overlap repeats SHARED
    chunk(2, "盧森堡每天約有17.5萬名通勤者，且又以個人用車居多。運輸是能源消耗中佔比最大的部門。"),
]


def test_each_distinct_sentence_is_embedded_once_and_stored_for_every_chunk_holding_it(embedding_model) -> None:
    seen: list[str] = []

    def embed(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return embedding_model.embed_passages(texts)

    vectors = SentenceVectors.embed(CHUNKS, embed, embedding_model.dimension)
    rows = [s for c in CHUNKS for s in sentence_texts(c)]
    assert len(seen) == len(set(rows)) == len(rows) - 1, "the shared sentence is embedded once"
    assert list(vectors.owner) == [p for p, c in enumerate(CHUNKS) for _ in sentence_texts(c)]
    shared = [i for i, s in enumerate(rows) if s == sentence_texts(CHUNKS[1])[0]]
    assert len(shared) == 2 and np.array_equal(vectors.vectors[shared[0]], vectors.vectors[shared[1]])

    question = embedding_model.embed_queries(["盧森堡每天有多少通勤者？"])
    assert vectors.chunk_ranking(question, 3)[0] == 2
    meeting = vectors.chunk_ranking(embedding_model.embed_queries(["第一場座談會是哪一天？"]), 3)
    assert set(meeting[:2]) == {0, 1}, "both chunks holding the sentence rank above the third"


def test_kept_rows_follow_their_chunks_to_new_positions(embedding_model) -> None:
    vectors = SentenceVectors.embed(CHUNKS, embedding_model.embed_passages, embedding_model.dimension)
    kept = vectors.kept([2, 0])  # chunk 1 deleted, chunk 2 now first
    assert sorted(set(kept.owner)) == [0, 1]
    assert np.array_equal(kept.vectors[kept.owner == 0], vectors.vectors[vectors.owner == 2])
    assert np.array_equal(kept.vectors[kept.owner == 1], vectors.vectors[vectors.owner == 0])
    grown = kept.plus(SentenceVectors.embed(CHUNKS[1:2], embedding_model.embed_passages, 384, first=2))
    assert grown.covers(3) and not grown.covers(2)
    assert grown.fits(3, 384) and not grown.fits(3, 768)


def test_sentence_vectors_are_built_only_when_asked_for(service: Tongwen) -> None:
    assert service.snapshot.sentences is None and SENTENCES_FILE not in service.snapshot.manifest.files


def test_an_index_with_sentence_vectors_ranks_chunks_by_their_sentences(with_vectors: Tongwen) -> None:
    service = with_vectors
    snapshot = service.snapshot
    assert snapshot.sentences is not None and snapshot.sentences.covers(len(snapshot.chunks))
    assert set(snapshot.sentences.owner.tolist()) == set(range(len(snapshot.chunks)))
    query = Query.from_question("盧森堡是在什麼時候發布「第三次產業革命策略」的？")
    rankings, cosine, _ = base_rankings(snapshot, query, service.model.embed_queries(query.embedded), 10)
    assert rankings["sentence_dense"], "the ranking is fused"
    assert set(rankings["sentence_dense"]) <= set(cosine), "every candidate gets its chunk cosine too"
    assert SENTENCES_FILE in snapshot.manifest.files, "checksummed with the rest of the version"


def test_a_damaged_sentence_file_is_not_served(with_vectors: Tongwen, tmp_path: Path) -> None:
    service = with_vectors
    folder = tmp_path / "v"
    shutil.copytree(service.snapshot.path, folder)
    data = bytearray((folder / SENTENCES_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / SENTENCES_FILE).write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match=SENTENCES_FILE):
        Snapshot.read(folder)


def test_a_version_without_sentence_vectors_is_served_and_the_next_ingest_adds_them(
    with_vectors: Tongwen, slice_corpus: Path, tmp_path: Path, make_settings
) -> None:
    service = with_vectors
    shutil.copytree(service.settings.index_dir, tmp_path / "index")
    pointer = tmp_path / "index" / "CURRENT"
    folder = tmp_path / "index" / "versions" / pointer.read_text("utf-8").strip()
    (folder / SENTENCES_FILE).unlink()
    manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
    del manifest["files"][SENTENCES_FILE]
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")

    old = Snapshot.read(folder)
    assert old.sentences is None and old.sentence_ranking(np.ones((1, 384), np.float32), 5) == []

    tongwen = Tongwen(make_settings(tmp_path, sentence_vectors=True))
    report = tongwen.ingest_paths([slice_corpus])
    assert not report.changed and report.chunks_embedded == 0 and len(report.unchanged) == len(SLICE)
    assert report.sentences_embedded == len(service.snapshot.sentences.owner)
    newest = tmp_path / "index" / "versions" / pointer.read_text("utf-8").strip()
    assert newest != folder and (newest / SENTENCES_FILE).exists()
    fresh = tongwen.snapshot.sentences
    assert fresh is not None and np.array_equal(fresh.owner, service.snapshot.sentences.owner)
    assert np.allclose(fresh.vectors, service.snapshot.sentences.vectors, atol=1e-5)


def test_an_incremental_ingest_embeds_only_the_new_documents_sentences(
    with_vectors: Tongwen, slice_corpus: Path, tmp_path: Path, make_settings
) -> None:
    shutil.copytree(with_vectors.settings.index_dir, tmp_path / "index")
    tongwen = Tongwen(make_settings(tmp_path, sentence_vectors=True))
    before = tongwen.snapshot.sentences
    extra = tmp_path / "extra.txt"
    extra.write_text("盧森堡每天約有17.5萬名通勤者。運輸是能源消耗中佔比最大的部門，且又以個人用車居多。", "utf-8")
    report = tongwen.ingest_paths([extra])
    after = tongwen.snapshot.sentences
    assert report.chunks_embedded == 1 and report.sentences_embedded == 2
    assert after is not None and after.covers(len(tongwen.snapshot.chunks))
    assert len(after.owner) == len(before.owner) + 2
    assert np.array_equal(after.vectors[: len(before.owner)], before.vectors)
