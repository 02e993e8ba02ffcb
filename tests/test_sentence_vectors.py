"""Sentence vectors (``rag.store.sentences``): each sentence embedded once, found through its chunk,
the chunk's own vector pooled from them, kept across incremental ingests, checksummed with the
version, added to an older version by the next ingest, and a version never mixing pooled and
embedded chunk vectors."""

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
from rag.store.snapshot import CHUNK_VECTORS_EMBEDDED, CHUNK_VECTORS_POOLED, MANIFEST, Snapshot
from tests.conftest import SLICE


@pytest.fixture(scope="module")
def with_vectors(tmp_path_factory: pytest.TempPathFactory, make_settings, slice_corpus: Path) -> Tongwen:
    """The corpus slice indexed with TONGWEN_SENTENCE_VECTORS on (the default, said here because
    these tests are about it)."""
    tongwen = Tongwen(make_settings(tmp_path_factory.mktemp("sv"), corpus_dir=slice_corpus, sentence_vectors=True))
    report = tongwen.ensure_index()
    assert report is not None and report.sentences_embedded > report.chunks_embedded > 0
    return tongwen


@pytest.fixture(scope="module")
def without_vectors(tmp_path_factory: pytest.TempPathFactory, make_settings, slice_corpus: Path) -> Tongwen:
    """The corpus slice indexed with TONGWEN_SENTENCE_VECTORS off: every chunk embedded whole."""
    tongwen = Tongwen(make_settings(tmp_path_factory.mktemp("nosv"), corpus_dir=slice_corpus, sentence_vectors=False))
    report = tongwen.ensure_index()
    assert report is not None and report.sentences_embedded == 0 and report.chunks_embedded > 0
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


def reference_ranking(rows: SentenceVectors, queries: np.ndarray, k: int) -> list[int]:
    """What SentenceSearch must give, the slow way: every distinct sentence scored by its best
    cosine to the queries, the best k × 8 in order, each handing on its chunks, later chunk first."""
    holders: dict[bytes, list[int]] = {}
    vector_of: dict[bytes, np.ndarray] = {}
    for owner, vector in zip(rows.owner.tolist(), rows.vectors, strict=True):
        holders.setdefault(vector.tobytes(), []).append(owner)
        vector_of[vector.tobytes()] = vector
    scored = sorted(vector_of, key=lambda key: -float((queries @ vector_of[key]).max()))[: k * 8]
    ranked: dict[int, None] = {}
    for key in scored:
        for owner in sorted(holders[key], reverse=True):
            ranked.setdefault(owner, None)
    return list(ranked)[:k]


def test_the_sentence_search_scans_each_distinct_sentence_once_and_ranks_as_every_row_would() -> None:
    rng = np.random.default_rng(7)
    distinct = rng.standard_normal((300, 16)).astype(np.float32)
    distinct /= np.linalg.norm(distinct, axis=1, keepdims=True)
    # 40 chunks of about ten sentences; consecutive chunks share their boundary sentence (the
    # overlap), and a few sentences recur in far-apart chunks (a phrase two documents share).
    owner, which = [], []
    for chunk in range(40):
        for sentence in range(chunk * 7, chunk * 7 + 8):
            owner.append(chunk)
            which.append(sentence % 280)
    for chunk, sentence in ((3, 150), (31, 20), (12, 299)):
        owner.append(chunk)
        which.append(sentence)
    rows = SentenceVectors(np.array(owner, dtype=np.int64), distinct[which])
    search = rows._search()
    assert search.index.ntotal == len(set(which)) < len(which), "a repeated sentence is scanned once"
    for seed in range(20):
        queries = np.random.default_rng(seed).standard_normal((1 + seed % 2, 16)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        for k in (1, 3, 10):
            got = rows.chunk_ranking(queries, k)
            if len(queries) == 1:
                assert got == reference_ranking(rows, queries, k)
            else:  # several query vectors: each one's best sentences, merged by their best score
                assert got[0] in reference_ranking(rows, queries, 2) and len(got) == k
    shared = distinct[which[7]][None, :]  # the sentence chunks 0 and 1 share is closest to itself
    assert rows.chunk_ranking(shared, 2) == [1, 0], "tied chunks: the later one first"


def test_sentence_vectors_are_built_unless_turned_off(service: Tongwen, without_vectors: Tongwen) -> None:
    assert service.settings.sentence_vectors, "on by default"
    assert service.snapshot.sentences is not None, f"kept by the {service.settings.vector_store} store too"
    assert service.snapshot.manifest.chunk_vectors == CHUNK_VECTORS_POOLED
    off = without_vectors.snapshot
    assert off.sentences is None and SENTENCES_FILE not in off.manifest.files
    assert off.manifest.chunk_vectors == CHUNK_VECTORS_EMBEDDED


def test_a_chunk_vector_is_the_mean_of_its_sentence_vectors(with_vectors: Tongwen, without_vectors: Tongwen) -> None:
    snapshot = with_vectors.snapshot
    sentences = snapshot.sentences
    assert sentences is not None
    stored = snapshot.vectors()
    for position in (0, len(snapshot.chunks) // 2, len(snapshot.chunks) - 1):
        mean = sentences.vectors[sentences.owner == position].mean(axis=0)
        assert np.allclose(stored[position], mean / np.linalg.norm(mean), atol=1e-5)
    # Not the chunk embedded whole: that is what the index without sentence vectors holds.
    embedded = without_vectors.snapshot.vectors()
    assert stored.shape == embedded.shape and not np.allclose(stored, embedded, atol=1e-3)
    cosine = (stored * embedded).sum(axis=1)
    assert cosine.min() > 0.8, "the pooled vector still points where the chunk's does"


def test_a_chunk_without_sentences_is_embedded_whole() -> None:
    rows = SentenceVectors(np.array([0, 0, 2]), np.eye(3, dtype=np.float32))
    pooled, without = rows.pooled(3)
    assert without == [1]
    assert np.allclose(pooled[0], np.array([1, 1, 0]) / np.sqrt(2)) and np.allclose(pooled[2], [0, 0, 1])
    shifted, without = rows.pooled(2, first=1)  # the chunks at positions 1 and 2 only
    assert without == [0] and np.allclose(shifted[1], [0, 0, 1])


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
    assert not report.changed and len(report.unchanged) == len(SLICE)
    assert report.sentences_embedded == len(service.snapshot.sentences.owner)
    assert report.chunks_embedded == len(service.snapshot.chunks), "every chunk vector pooled anew"
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


@pytest.mark.parametrize("turned_on", [True, False])
def test_switching_the_setting_remakes_every_chunk_vector(
    turned_on: bool, with_vectors: Tongwen, without_vectors: Tongwen, slice_corpus: Path, tmp_path: Path, make_settings
) -> None:
    """A version is never half pooled, half embedded: the next ingest after the setting changed
    makes every chunk vector again, the new way, with no document changed."""
    source, target = (without_vectors, with_vectors) if turned_on else (with_vectors, without_vectors)
    shutil.copytree(source.settings.index_dir, tmp_path / "index")
    tongwen = Tongwen(make_settings(tmp_path, sentence_vectors=turned_on))
    report = tongwen.ingest_paths([slice_corpus])
    assert not report.changed and report.chunks_embedded == len(target.snapshot.chunks)
    snapshot = tongwen.snapshot
    assert snapshot.manifest.chunk_vectors == target.snapshot.manifest.chunk_vectors
    assert (snapshot.sentences is not None) == turned_on
    assert np.allclose(snapshot.vectors(), target.snapshot.vectors(), atol=1e-4)
    again = tongwen.ingest_paths([slice_corpus])
    assert again.chunks_embedded == 0 and again.sentences_embedded == 0, "nothing to remake the second time"


def test_the_milvus_store_keeps_sentence_vectors_beside_each_version(
    with_vectors: Tongwen, slice_corpus: Path, tmp_path: Path, make_settings
) -> None:
    """Milvus Lite: the first ingest stores the sentence vectors beside the version, another process
    reads them back and ranks by them alike, and an incremental ingest embeds only the new
    document's sentences, keeping the others from Milvus."""
    pytest.importorskip("milvus_lite")
    settings = make_settings(
        tmp_path, corpus_dir=slice_corpus, vector_store="milvus", milvus_uri=str(tmp_path / "milvus.db")
    )
    tongwen = Tongwen(settings)
    tongwen.ensure_index()
    built = tongwen.snapshot
    assert built.manifest.chunk_vectors == CHUNK_VECTORS_POOLED and built.sentences is not None
    assert np.array_equal(built.sentences.owner, with_vectors.snapshot.sentences.owner), "the FAISS store's rows"

    reader = Tongwen(settings).snapshot  # as a second replica loads it: from Milvus alone
    assert reader.key == built.key and reader.sentences is not None
    assert np.array_equal(reader.sentences.owner, built.sentences.owner)
    np.testing.assert_allclose(reader.sentences.vectors, built.sentences.vectors, atol=1e-6)
    question = tongwen.model.embed_queries(["第一場座談會是哪一天？"])
    assert reader.sentence_ranking(question, 5) == with_vectors.snapshot.sentence_ranking(question, 5)

    extra = tmp_path / "extra.txt"
    extra.write_text("盧森堡每天約有17.5萬名通勤者。運輸是能源消耗中佔比最大的部門，且又以個人用車居多。", "utf-8")
    report = tongwen.ingest_paths([extra])
    assert report.chunks_embedded == 1 and report.sentences_embedded == 2
    after = Tongwen(settings).snapshot.sentences
    assert after is not None and len(after.owner) == len(built.sentences.owner) + 2
    np.testing.assert_allclose(after.vectors[: len(built.sentences.owner)], built.sentences.vectors, atol=1e-6)
