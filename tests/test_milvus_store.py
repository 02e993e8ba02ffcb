"""The Milvus store against Milvus Lite (a file per test) and against a real Milvus 2.3 server.

Real chunks and vectors come from the session index of the corpus slice; queries are embedded
with the real model. The server test starts the ``milvus==2.3.5`` embedded standalone server once
for the module; it runs whenever that package is installed (the ``milvus-server-test`` extra).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

import itertools

from rag.errors import IndexCorrupt, IndexMissing, StoreUnavailable
from rag.retrieve import Query
from rag.store.milvus import MilvusFeatureMissing, MilvusStore
from rag.store.milvus_conn import MilvusConnection
from rag.store.sentences import SentenceVectors
from ui.api.errors import status_for

QUESTION = "盧森堡的金融業有多重要？"


@pytest.fixture(scope="module")
def corpus(service):
    snap = service.snapshot
    return snap.manifest, snap.chunks, snap.vectors()


@pytest.fixture(scope="module")
def sentences(service):
    assert service.snapshot.sentences is not None, "built by default, whichever store the session's index uses"
    return service.snapshot.sentences


@pytest.fixture
def lite(tmp_path: Path):
    store = MilvusStore(MilvusConnection(str(tmp_path / "milvus.db")), prefix="t", keep_versions=2)
    yield store
    store.close()


def positions(hits: list[tuple[int, float]]) -> list[int]:
    return [pos for pos, _ in hits]


def test_lite_capabilities_and_read_back(lite: MilvusStore, corpus) -> None:
    manifest, chunks, vectors = corpus
    caps = lite.capabilities
    assert caps["engine"] == "milvus-lite" and caps["bm25"] and caps["hybrid_search"], caps
    with pytest.raises(IndexMissing):
        lite.load_current()
    name = lite.write_version(manifest, chunks, vectors)
    assert lite.current() == name
    version = lite.load_current(manifest.embedding_model)
    assert version.collection == name
    assert version.manifest == manifest
    assert version.chunks == chunks
    np.testing.assert_allclose(lite.read_vectors(name, len(chunks)), vectors, atol=1e-6)
    with pytest.raises(IndexCorrupt) as err:
        lite.load_current("some-other-model")
    assert status_for(type(err.value)) == 503 and "ingest --rebuild" in str(err.value)
    assert lite.read_sentences(name, manifest.dimension) is None, "a version written without them has none"


def test_lite_keeps_a_versions_sentence_vectors_beside_it_and_drops_them_with_it(
    lite: MilvusStore, corpus, sentences
) -> None:
    manifest, chunks, vectors = corpus
    first = lite.write_version(manifest, chunks, vectors, sentences)
    assert lite.versions() == [first], "the sentence collection is not listed as a version"
    back = lite.read_sentences(first, manifest.dimension)
    assert back is not None and np.array_equal(back.owner, sentences.owner)
    np.testing.assert_allclose(back.vectors, sentences.vectors, atol=1e-6)
    assert back.chunk_ranking(vectors[:1], 5) == sentences.chunk_ranking(vectors[:1], 5)
    second = lite.write_version(manifest, chunks, vectors)  # without sentence vectors
    third = lite.write_version(manifest, chunks, vectors, sentences)  # keep 2: the first goes
    assert lite.versions() == [second, third]
    companions = [n for n in lite.conn.call("list", "list_collections") if n.startswith("t_s")]
    assert companions == [lite.sentence_collection(third)], "the first version's sentence vectors went with it"
    assert lite.read_sentences(second, manifest.dimension) is None
    # Sentence vectors whose version is gone: a crash's leftovers go once stale; those of a build
    # that may still be running (a recent stamp, its version not listed yet) stay.
    stale = "t_v20200101000000000000_dead00"
    running = "t_v" + datetime.now(UTC).strftime("%Y%m%d%H%M%S%f") + "_beef00"
    few = SentenceVectors(sentences.owner[:10], sentences.vectors[:10])
    for version in (stale, running):
        lite._write_sentences(version, few)
    lite.prune()
    left = {n for n in lite.conn.call("list", "list_collections") if n.startswith("t_s")}
    assert left == {lite.sentence_collection(third), lite.sentence_collection(running)}


def test_lite_dense_bm25_and_hybrid_search(lite: MilvusStore, corpus, service) -> None:
    manifest, chunks, vectors = corpus
    name = lite.write_version(manifest, chunks, vectors)
    query = Query.from_question(QUESTION)
    qvec = service.model.embed_queries(list(query.variants))

    dense = lite.dense_search(name, qvec[:1], 10)[0]
    exact = vectors @ qvec[0]
    assert positions(dense) == list(np.argsort(-exact)[:10])  # FLAT in Milvus = the FAISS flat ranking
    assert dense[0][1] == pytest.approx(float(exact.max()), abs=1e-4)

    best = lite.dense_best(name, qvec, 10)
    assert max(best, key=best.__getitem__) == int(np.argmax((vectors @ qvec.T).max(axis=1)))

    text = " ".join(query.tokens)
    keyword = lite.keyword_search(name, text, 10)
    assert keyword and all(s > 0 for _, s in keyword)
    assert "卢森堡" in chunks[keyword[0][0]].canonical
    local = positions(service.snapshot.keyword.search(query.tokens, 10))
    assert len(set(positions(keyword)[:5]) & set(local[:5])) >= 3  # Milvus's jieba BM25 agrees with bm25s

    fused = lite.hybrid_search(name, qvec, text, k=5)
    assert len(fused) == 5 and fused[0][0] in set(positions(dense)[:3]) | set(positions(keyword)[:3])
    assert all(a[1] >= b[1] for a, b in itertools.pairwise(fused))
    assert "盧森堡" in chunks[fused[0][0]].text or "卢森堡" in chunks[fused[0][0]].canonical


_READ_IN_ANOTHER_PROCESS = """
import json, sys
from rag.store.milvus import MilvusStore
from rag.store.milvus_conn import MilvusConnection
store = MilvusStore(MilvusConnection(sys.argv[1]), prefix="t")
version = store.load_current()
sentences = store.read_sentences(version.collection, version.manifest.dimension)
hits = store.dense_search(version.collection, store.read_vectors(version.collection, 1), 1)[0]
print(json.dumps([len(version.chunks), len(sentences.owner), hits[0][0], len(store.versions())]))
"""


def test_a_lite_file_written_by_one_process_is_read_by_the_next(tmp_path: Path, corpus, sentences) -> None:
    """`tongwen ingest`, then `tongwen serve`: Milvus Lite starts each process with every collection
    released, so the reader must load what it reads (it failed with "call load() before query")."""
    manifest, chunks, vectors = corpus
    path = str(tmp_path / "milvus.db")
    writer = MilvusStore(MilvusConnection(path), prefix="t")
    writer.write_version(manifest, chunks, vectors, sentences)
    writer.close()
    out = subprocess.run(
        [sys.executable, "-c", _READ_IN_ANOTHER_PROCESS, path], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [len(chunks), len(sentences.owner), 0, 1]


def test_a_collection_released_under_a_reader_is_loaded_again(lite: MilvusStore, corpus) -> None:
    """A restarted Milvus, or an operator's release, leaves a replica's version unloaded: its next
    read loads it again instead of failing with a 503 until the replica restarts."""
    manifest, chunks, vectors = corpus
    name = lite.write_version(manifest, chunks, vectors)
    before = lite.dense_search(name, vectors[:1], 3)
    for collection in (name, lite.manifests.collection):
        lite.conn.client.release_collection(collection)
    assert lite.dense_search(name, vectors[:1], 3) == before
    assert lite.read_manifest(name) == manifest


def test_lite_alias_swap_keeps_old_readers_and_prunes(lite: MilvusStore, corpus) -> None:
    manifest, chunks, vectors = corpus
    first = lite.write_version(manifest, chunks, vectors)
    reader = lite.load_current()  # a replica pinned to the first version

    half = len(chunks) // 2
    docs = {c.doc_id for c in chunks[:half]}  # the manifest's chunk counts must match the rows
    smaller = dataclasses.replace(
        manifest,
        documents={
            k: dataclasses.replace(d, chunks=sum(c.doc_id == k for c in chunks[:half]))
            for k, d in manifest.documents.items()
            if k in docs
        },
    )
    second = lite.build_version(smaller, chunks[:half], vectors[:half])
    assert lite.current() == first  # built but not published: nobody sees it
    assert len(lite.load_current().chunks) == len(chunks)
    lite.publish(second)
    assert lite.current() == second and len(lite.load_current().chunks) == half
    # The old reader still searches its own version.
    assert lite.dense_search(reader.collection, vectors[-1:], 1)[0][0][0] == len(chunks) - 1

    third = lite.write_version(manifest, chunks, vectors)  # publishes and prunes: keep 2
    assert lite.versions() == [second, third]
    assert lite.current() == third
    with pytest.raises(IndexCorrupt):
        lite.read_manifest(first)  # its manifest went with it


def test_feature_missing_is_explicit(corpus) -> None:
    store = MilvusStore(MilvusConnection("unused.db"))
    store.conn.__dict__["capabilities"] = {"bm25": False, "server_version": "v2.3.5"}
    with pytest.raises(MilvusFeatureMissing):
        store.keyword_search("x", "卢森堡", 5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_quick_503() -> None:
    store = MilvusStore(MilvusConnection(f"http://127.0.0.1:{free_port()}", timeout=2, retries=3, backoff=0.05))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        store.current()
    assert time.monotonic() - started < 10
    assert status_for(type(err.value)) == 503
    assert "TONGWEN_MILVUS_URI" in str(err.value)


# --- a real Milvus 2.3 standalone server --------------------------------------------------------


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory: pytest.TempPathFactory):
    milvus = pytest.importorskip("milvus")
    server = milvus.default_server
    server.set_base_dir(str(tmp_path_factory.mktemp("milvus-server")))
    server.start()
    try:
        yield f"http://127.0.0.1:{server.listen_port}"
    finally:
        server.stop()


@pytest.mark.milvus_server
def test_server_without_bm25_keeps_dense_and_alias_swap(milvus_server: str, corpus, sentences, service) -> None:
    manifest, chunks, vectors = corpus
    store = MilvusStore(MilvusConnection(milvus_server), prefix="srv", keep_versions=2)
    try:
        caps = store.capabilities
        assert caps["engine"] == "milvus" and caps["server_version"].startswith("v2.3"), caps
        assert caps["bm25"] is False and caps["hybrid_search"] is False
        with pytest.raises(MilvusFeatureMissing):
            store.keyword_search("any", "卢森堡", 5)
        assert store.current() is None

        first = store.write_version(manifest, chunks, vectors, sentences)
        version = store.load_current(manifest.embedding_model)
        assert version.collection == first and version.chunks == chunks and version.manifest == manifest
        back = store.read_sentences(first, manifest.dimension)
        assert back is not None and np.array_equal(back.owner, sentences.owner)
        np.testing.assert_allclose(back.vectors, sentences.vectors, atol=1e-6)

        qvec = service.model.embed_queries([QUESTION])
        dense = store.dense_search(first, qvec, 10)[0]
        assert positions(dense) == list(np.argsort(-(vectors @ qvec[0]))[:10])

        second = store.build_version(manifest, chunks[::-1], vectors[::-1])
        assert store.current() == first
        store.publish(second)
        assert store.current() == second
        assert store.dense_search(second, qvec, 1)[0][0][0] == len(chunks) - 1 - dense[0][0]
        assert store.dense_search(first, qvec, 1)[0][0][0] == dense[0][0]  # the old reader is unaffected
    finally:
        store.close()
