"""Writing the index: incremental updates, deletes, encodings, bad files, crashes mid-ingest."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ingest.sources import Source
from rag.errors import DocumentNotFound, IndexCorrupt, IndexMissing
from rag.service import Tongwen
from rag.store import snapshot as snapshot_module
from rag.store.versions import VersionedDir

LUX = "盧森堡的總人口雖然僅有50餘萬人，但其位居全球首位的高人均所得，一直是小國經濟體中最令人稱羨的亮眼成就。"
CHIP = "臺灣的晶片產業在全球供應鏈中扮演關鍵角色，台積電的先進製程領先全球。"
HYDROGEN = "氫能是淨零轉型的重要選項，工業用氫與燃料電池都需要穩定的綠氫供應。"
PROJECT = Path(__file__).resolve().parent.parent
HOLD_THE_WRITE_LOCK = """
import sys
from pathlib import Path
from rag.store.versions import VersionedDir
with VersionedDir(Path(sys.argv[1])).write_lock():
    print("held", flush=True)
    sys.stdin.readline()  # until killed
"""


# Every test here runs on FAISS and on Milvus Lite, but those marked faiss_only (see their reasons).
pytestmark = pytest.mark.both_stores


@pytest.fixture()
def small(tmp_path, make_store_settings) -> Tongwen:
    tongwen = Tongwen(make_store_settings(tmp_path / "home"))
    report = tongwen.ingest([Source("lux.txt", LUX.encode()), Source("chip.txt", CHIP.encode())])
    assert sorted(report.added) == ["chip.txt", "lux.txt"]
    return tongwen


def test_unchanged_files_are_skipped_and_changed_files_replace_their_chunks(small: Tongwen):
    again = small.ingest([Source("lux.txt", LUX.encode())])
    assert again.unchanged == ["lux.txt"] and again.chunks_embedded == 0
    changed = small.ingest([Source("lux.txt", (LUX + "盧森堡也是歐元區重要的私人銀行中心。").encode())])
    assert changed.updated == ["lux.txt"]
    texts = [c.text for c in small.snapshot.chunks if c.doc == "lux.txt"]
    assert any("私人銀行中心" in t for t in texts)
    assert len(small.documents()) == 2


def test_delete_removes_a_document_and_its_chunks(small: Tongwen):
    small.delete("chip.txt")
    assert [d["name"] for d in small.documents()] == ["lux.txt"]
    assert all(c.doc != "chip.txt" for c in small.snapshot.chunks)
    assert all(h.doc == "lux.txt" for h in small.retrieve("晶片產業", 5))
    with pytest.raises(DocumentNotFound):
        small.delete("chip.txt")


def test_versions_and_rollback(small: Tongwen):
    """A new version beside the old one; rolling back makes the old one current (FAISS: the CURRENT
    pointer, Milvus: the alias) and the service serves it on its next request."""
    small.ingest([Source("h2.txt", HYDROGEN.encode())])
    versions = small.versions()
    assert len(versions) == 2 and versions[-1]["current"] and all(v["verifies"] for v in versions)
    assert versions[-1]["documents"] == 3
    target = small.rollback()
    assert target["name"] == versions[0]["name"] and target["current"]
    assert sorted(d["name"] for d in small.documents()) == ["chip.txt", "lux.txt"]
    assert all(h.doc != "h2.txt" for h in small.retrieve("氫能", 3))


@pytest.mark.parametrize("encoding", ["big5", "gbk", "utf-16", "utf-8-sig"])
def test_legacy_encodings_ingest_correctly(tmp_path, make_settings, encoding: str):
    text = HYDROGEN if encoding != "gbk" else "氢能是净零转型的重要选项，工业用氢与燃料电池都需要稳定的绿氢供应。"
    tongwen = Tongwen(make_settings(tmp_path / "home"))
    report = tongwen.ingest([Source(f"h2-{encoding}.txt", text.encode(encoding))])
    assert not report.failed, report.failed
    hit = tongwen.retrieve("燃料電池需要什麼供應？", 1)[0]
    assert hit.text == text


def test_corrupt_pdf_is_rejected_with_a_clear_message_and_nothing_indexed(small: Tongwen):
    before = [c.id for c in small.snapshot.chunks]
    report = small.ingest([Source("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage")])
    assert "broken.pdf" in report.failed
    assert "PDF" in report.failed["broken.pdf"]
    assert [c.id for c in small.snapshot.chunks] == before
    assert "broken.pdf" not in [d["name"] for d in small.documents()]


def test_binary_and_unsupported_files_are_reported_not_indexed(small: Tongwen):
    report = small.ingest([Source("noise.txt", bytes(range(256)) * 20), Source("x.exe", b"MZ\x90\x00")])
    assert set(report.failed) == {"noise.txt", "x.exe"}
    assert len(small.documents()) == 2


@pytest.mark.faiss_only("crashes the FAISS folder writer; a Milvus build is an unpublished collection")
def test_crash_while_writing_leaves_the_previous_index_in_service(small: Tongwen, make_settings, monkeypatch):
    before = small.retrieve("盧森堡人口", 3)

    def crash(self, folder):  # dies after part of the new version hit the disk
        (folder / "chunks.jsonl").write_text("half", "utf-8")
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(snapshot_module.Snapshot, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        small.ingest([Source("h2.txt", HYDROGEN.encode())])
    monkeypatch.undo()

    reopened = Tongwen(make_settings(small.settings.home))
    assert [h.id for h in reopened.retrieve("盧森堡人口", 3)] == [h.id for h in before]
    assert "h2.txt" not in [d["name"] for d in reopened.documents()]
    versions = VersionedDir(small.settings.index_dir).versions
    assert not list(versions.glob(".build-*"))
    # And the next ingest works normally.
    assert reopened.ingest([Source("h2.txt", HYDROGEN.encode())]).added == ["h2.txt"]


def test_missing_index_gives_an_actionable_error(tmp_path, make_store_settings):
    with pytest.raises(IndexMissing, match="tongwen ingest"):
        Tongwen(make_store_settings(tmp_path / "empty")).retrieve("問題", 3)


def test_the_same_name_twice_in_one_batch_keeps_the_last_copy(small: Tongwen, make_store_settings):
    report = small.ingest([Source("h2.txt", LUX.encode()), Source("h2.txt", HYDROGEN.encode())])
    assert report.added == ["h2.txt"] and report.duplicates == ["h2.txt"]
    reopened = Tongwen(make_store_settings(small.settings.home))  # was IndexCorrupt "inconsistent"
    assert [c.text for c in reopened.snapshot.chunks if c.doc == "h2.txt"] == [HYDROGEN]
    ids = [c.id for c in reopened.snapshot.chunks]
    assert len(ids) == len(set(ids))
    assert reopened.ingest([Source("more.txt", HYDROGEN.encode())]).added == ["more.txt"]


@pytest.mark.faiss_only("a 2nd process: Milvus Lite opens a file from one process only (same lock for both)")
def test_an_ingest_waits_for_a_writer_in_another_process(small: Tongwen, make_settings):
    """Two processes must not interleave read-build-commit, or the later commit drops the other's
    documents. The lock dies with its holder, so even a kill -9 never leaves the index stuck."""
    root = small.settings.index_dir
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_WRITE_LOCK, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
        env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = VersionedDir(root).current()
        reports = []
        writer = threading.Thread(target=lambda: reports.append(small.ingest([Source("h2.txt", HYDROGEN.encode())])))
        writer.start()
        writer.join(timeout=3)
        assert writer.is_alive() and not reports, "the ingest did not wait for the other process's lock"
        assert VersionedDir(root).current() == before
        holder.kill()
        holder.wait(timeout=30)
        writer.join(timeout=120)
        assert not writer.is_alive()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
    assert reports[0].added == ["h2.txt"]
    reopened = Tongwen(make_settings(small.settings.home))
    assert sorted(d["name"] for d in reopened.documents()) == ["chip.txt", "h2.txt", "lux.txt"]


@pytest.mark.faiss_only("empties the files of a FAISS version folder; Milvus keeps no files of ours")
def test_any_emptied_index_file_is_reported_as_damaged(small: Tongwen, make_settings):
    """Whatever file of the current version is emptied (a full disk, a bad copy), the load fails
    with IndexCorrupt and the rebuild advice: the API turns that into a 503, never a 500."""
    version = VersionedDir(small.settings.index_dir).current()
    files = sorted(p.relative_to(version) for p in version.rglob("*") if p.is_file())
    assert len(files) >= 4
    for name in files:
        original = (version / name).read_bytes()
        (version / name).write_bytes(b"")
        try:
            with pytest.raises(IndexCorrupt, match="tongwen ingest --rebuild"):
                Tongwen(make_settings(small.settings.home)).retrieve("盧森堡人口", 3)
        finally:
            (version / name).write_bytes(original)


def test_a_running_service_sees_what_another_process_committed(tmp_path, make_store_settings):
    """Two services on one index (a server, and `tongwen ingest` in another shell): a reader picks
    up the writer's new version on its next access, without a restart."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "first.txt").write_text("盧森堡發布了第三次產業革命策略，涵蓋能源與交通。", "utf-8")
    (docs / "second.txt").write_text("台灣的氫能示範站設在高雄，供燃料電池車加氫。", "utf-8")
    settings = make_store_settings(tmp_path / "home")
    server, other_shell = Tongwen(settings), Tongwen(settings)
    server.ingest_paths([docs / "first.txt"])
    assert [d["name"] for d in server.documents()] == ["first.txt"]
    other_shell.ingest_paths([docs / "second.txt"])
    assert sorted(d["name"] for d in server.documents()) == ["first.txt", "second.txt"]
    assert server.retrieve("氫能示範站設在哪裡？", 1)[0].doc == "second.txt"
