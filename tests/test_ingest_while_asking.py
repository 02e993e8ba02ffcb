"""Readers never wait for a writer: a question asked while a large document is being embedded is
answered before that ingest finishes (ordering, not milliseconds: the timing target lives in
``bench/ingest_while_asking.py``).

Before issue 8 the embedding model's lock was held for a document's whole passage list, so the
retrieve below finished only after the last batch.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.ingest_while_asking import STRATEGIES
from ingest.sources import Source
from rag.embeddings import Sharing
from rag.service import Tongwen
from tests.conftest import CORPUS

BIG = CORPUS / "004_dfbd3e62c09c681e.txt"
BIG_CHARS = 60_000  # a few hundred chunks: many batches, seconds of embedding


class CountingBatches(Sharing):
    """The default sharing, plus a count of passage batches done and an event at the first one."""

    def __init__(self) -> None:
        super().__init__()
        self.done = 0
        self.started = threading.Event()

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.started.set()
        with super().batch():
            yield
        self.done += 1


@pytest.fixture()
def own_service(service: Tongwen, tmp_path: Path, make_settings) -> Tongwen:
    shutil.copytree(service.settings.index_dir, tmp_path / "index")
    return Tongwen(make_settings(tmp_path))


def test_a_question_is_answered_while_a_large_document_is_embedded(own_service: Tongwen):
    model = own_service.model
    big = Source("big.txt", BIG.read_text("utf-8")[:BIG_CHARS].encode("utf-8"))
    own_service.retrieve("盧森堡的人口有多少？")  # snapshot and jieba loaded before the race
    counting = CountingBatches()
    reports = []
    original, model.sharing = model.sharing, counting
    try:
        ingest = threading.Thread(target=lambda: reports.append(own_service.ingest([big])))
        ingest.start()
        assert counting.started.wait(timeout=600), "the ingest never started embedding"
        hits = own_service.retrieve("盧森堡的人口有多少？", top_k=3)
        batches_when_answered = counting.done
        ingest_still_running = ingest.is_alive()
        ingest.join(timeout=1800)
    finally:
        model.sharing = original
    assert not ingest.is_alive()
    (report,) = reports
    total_batches = -(-report.chunks_embedded // model.batch_size)
    assert report.chunks_embedded >= 100 and total_batches >= 7, report
    assert hits and hits[0].doc == "000_6e77f61679c9a0c3.txt"  # served from the snapshot in place
    assert ingest_still_running and batches_when_answered < total_batches, (batches_when_answered, total_batches)
    assert "big.txt" in {d["name"] for d in own_service.documents()}


def test_a_question_is_told_whether_it_is_alone() -> None:
    """The encoder spreads a lone question over every core and runs one in a crowd on one thread
    (``rag.onnx_encoder``), so the sharing must say which: alone means no other question waiting
    for its turn when this one takes it, and no ingest embedding passages."""
    sharing = Sharing()
    with sharing.query() as alone:
        assert alone is True
    with sharing.document(), sharing.query() as alone:
        assert alone is False
    with sharing.query() as alone:  # the ingest is over
        assert alone is True

    told: list[bool] = []
    release = threading.Event()

    def ask(hold: bool) -> None:
        with sharing.query() as alone_then:
            told.append(alone_then)
            if hold:
                release.wait(timeout=30)

    first = threading.Thread(target=ask, args=(True,))
    first.start()
    while not told:  # the first question holds the turn
        time.sleep(0.001)
    waiting = [threading.Thread(target=ask, args=(False,)) for _ in range(2)]
    for thread in waiting:
        thread.start()
    while sharing._asking < 3:
        time.sleep(0.001)
    release.set()
    for thread in (first, *waiting):
        thread.join(timeout=30)
    # the first took its turn alone; of the two that waited, the first served had company
    assert told == [True, False, True]
    assert sharing._asking == 0


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_benchmarked_sharing_runs_an_ingest_and_a_question(name: str) -> None:
    """The benchmark's alternatives subclass the sharing; each must still take every hook (one
    lacked the counters the default's document hook keeps, and the benchmark crashed)."""
    sharing = STRATEGIES[name]()
    with sharing.document(), sharing.batch():
        pass
    with sharing.query() as alone:
        assert alone is True
