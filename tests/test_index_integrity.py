"""A damaged index is reported (503 with advice, /health says what is wrong), never served, and
recoverable without losing uploads: every version's files carry checksums, and ``tongwen index
rollback`` makes the last intact version current again.

Each test works on its own copy of a small index with three versions: the corpus slice, then one
uploaded document, then another.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bench.api_load import serve_app
from ingest.sources import Source
from rag.errors import IndexCorrupt
from rag.service import Tongwen
from rag.store.snapshot import MANIFEST, list_versions
from tests.conftest import SLICE
from ui.cli import app as cli_app
from ui.server import create_app

FIRST = Source("高雄氫能.txt", "高雄的氫能示範站於二〇二三年啟用，專供燃料電池公車加氫。".encode())
SECOND = Source("台南太陽能.txt", "台南的太陽能公園占地四十公頃，由市政府委託民間經營，年發電量約五千萬度。".encode())
REBUILD_HINT = "tongwen ingest --rebuild"
ROLLBACK_HINT = "tongwen index rollback"


@pytest.fixture(scope="module")
def three_versions(service: Tongwen, tmp_path_factory, make_settings) -> Path:
    """A home whose index has three versions: the slice, + FIRST, + SECOND (current). Read-only."""
    home = tmp_path_factory.mktemp("integrity-base")
    shutil.copytree(service.settings.index_dir, home / "index")
    current = current_folder(home)
    for other in current.parent.iterdir():  # only the session index's current version
        if other != current:
            shutil.rmtree(other)
    tongwen = Tongwen(make_settings(home))
    assert len(tongwen.documents()) == len(SLICE)
    assert tongwen.ingest([FIRST]).added == [FIRST.name]
    assert tongwen.ingest([SECOND]).added == [SECOND.name]
    versions = list_versions(tongwen.settings.index_dir)
    assert len(versions) == 3 and versions[-1].current and all(v.verifies for v in versions)
    return home


@pytest.fixture()
def home(three_versions: Path, tmp_path: Path) -> Path:
    shutil.copytree(three_versions / "index", tmp_path / "index")
    return tmp_path


def current_folder(home: Path) -> Path:
    return home / "index" / "versions" / (home / "index" / "CURRENT").read_text("utf-8").strip()


def settings_for(home: Path, make_settings):
    # No corpus: a server that "repaired" a damaged index from the corpus would fail loudly.
    return make_settings(home, corpus_dir=home / "no-corpus")


def cli_env(home: Path, settings) -> dict[str, str]:
    return {
        "TONGWEN_HOME": str(home),
        "TONGWEN_MODEL_DIR": str(settings.models_dir),
        "TONGWEN_CORPUS_DIR": str(home / "no-corpus"),
        "TONGWEN_LLM": "extractive",
    }


def forge_chunk_text(folder: Path) -> None:
    """Edit a chunk's quoted text in place, as a tamperer (or a bad editor save) would."""
    path = folder / "chunks.jsonl"
    lines = path.read_text("utf-8").splitlines()
    chunk = json.loads(lines[-1])
    chunk["text"] = "高雄的氫能示範站由外星人經營。"
    lines[-1] = json.dumps(chunk, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", "utf-8")


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def empty_documents(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
    manifest["documents"] = []
    (folder / MANIFEST).write_text(json.dumps(manifest), "utf-8")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "manifest documents is a list": lambda home: empty_documents(current_folder(home)),
    "CURRENT holds invalid bytes": lambda home: (home / "index" / "CURRENT").write_bytes(b"\xff\xfe\x00\x81"),
    "CURRENT is empty": lambda home: (home / "index" / "CURRENT").write_bytes(b""),
    "CURRENT points outside versions": lambda home: (home / "index" / "CURRENT").write_text("../../etc\n"),
    "edited chunk text": lambda home: forge_chunk_text(current_folder(home)),
    "flipped byte in dense.faiss": lambda home: flip_a_byte(current_folder(home) / "dense.faiss"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_index_is_a_503_with_advice_on_every_route(damage, home, make_settings):
    """The server still starts; /health is 503 "degraded" and says what is wrong; questions and
    the document list are 503 with the rollback advice (an intact older version exists), never
    a 500, never an answer from the damaged files, never the "no index yet" 409."""
    DAMAGE[damage](home)
    settings = settings_for(home, make_settings)
    app = create_app(settings, with_ui=False)  # was an AttributeError for `"documents": []`
    with serve_app(app) as url:
        health = httpx.get(f"{url}/health", timeout=60)
        assert health.status_code == 503, health.text
        body = health.json()
        assert body["status"] == "degraded" and body["error"]["type"] == "IndexCorrupt", body
        assert ROLLBACK_HINT in body["error"]["message"] and REBUILD_HINT in body["error"]["message"]
        for method, path, payload in (
            ("POST", "/api/retrieve", {"query": "高雄的氫能示範站何時啟用？"}),
            ("POST", "/api/ask", {"question": "高雄的氫能示範站何時啟用？"}),
            ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "高雄的氫能示範站？"}]}),
            ("GET", "/api/documents", None),
        ):
            r = httpx.request(method, f"{url}{path}", json=payload, timeout=60)
            assert r.status_code == 503, (path, r.status_code, r.text)
            error = r.json()["error"]
            assert error["type"] == "IndexCorrupt" and ROLLBACK_HINT in error["message"], (path, error)
    assert not (home / "no-corpus").exists()


@pytest.mark.parametrize("damage", ["edited chunk text", "flipped byte in dense.faiss"])
def test_checksum_mismatch_names_the_file(damage, home, make_settings):
    DAMAGE[damage](home)
    name = "chunks.jsonl" if "chunk" in damage else "dense.faiss"
    with pytest.raises(IndexCorrupt, match=f"{name} was changed after it was written"):
        Tongwen(settings_for(home, make_settings)).retrieve("高雄的氫能示範站何時啟用？")


def test_every_file_of_a_version_is_checksummed(home):
    folder = current_folder(home)
    recorded = json.loads((folder / MANIFEST).read_text("utf-8"))["files"]
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(recorded) == on_disk and len(on_disk) >= 4
    assert all(len(digest) == 64 for digest in recorded.values())


def test_only_damage_without_an_intact_version_advises_a_rebuild(home, make_settings):
    for folder in (home / "index" / "versions").iterdir():
        flip_a_byte(folder / "dense.faiss")
    with pytest.raises(IndexCorrupt) as caught:
        Tongwen(settings_for(home, make_settings)).retrieve("高雄")
    assert REBUILD_HINT in str(caught.value) and ROLLBACK_HINT not in str(caught.value)


def test_rollback_through_the_cli_keeps_earlier_uploads_and_a_running_server_picks_it_up(home, make_settings):
    forge_chunk_text(current_folder(home))  # the newest version (with SECOND) is damaged
    settings = settings_for(home, make_settings)
    env = cli_env(home, settings)
    runner = CliRunner()

    listed = runner.invoke(cli_app, ["index", "versions"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.stdout.splitlines() if line[2:8].isdigit()]
    assert len(rows) == 3 and rows[-1].startswith("* ") and "DAMAGED" in rows[-1]
    assert all(" ok" in row for row in rows[:2])
    as_json = json.loads(runner.invoke(cli_app, ["index", "versions", "--json"], env=env).stdout)
    assert [v["verifies"] for v in as_json] == [True, True, False]
    assert [v["documents"] for v in as_json] == [len(SLICE), len(SLICE) + 1, len(SLICE) + 2]

    with serve_app(create_app(settings, with_ui=False)) as url:
        assert httpx.get(f"{url}/health", timeout=60).status_code == 503

        rolled = runner.invoke(cli_app, ["index", "rollback"], env=env)
        assert rolled.exit_code == 0, rolled.output
        assert as_json[1]["name"] in rolled.stdout

        health = httpx.get(f"{url}/health", timeout=60)
        assert health.status_code == 200 and health.json()["index"]["documents"] == len(SLICE) + 1, health.text
        names = {d["name"] for d in httpx.get(f"{url}/api/documents", timeout=60).json()["documents"]}
        assert FIRST.name in names and SECOND.name not in names
        hits = httpx.post(f"{url}/api/retrieve", json={"query": "高雄的氫能示範站何時啟用？"}, timeout=60).json()
        assert hits["hits"][0]["doc"] == FIRST.name

    # Uploading again after the rollback continues from the intact version.
    report = Tongwen(settings).ingest([SECOND])
    assert report.added == [SECOND.name]
    assert {d["name"] for d in Tongwen(settings).documents()} >= {FIRST.name, SECOND.name}


def test_rollback_to_a_named_version_and_refusals(home, make_settings):
    settings = settings_for(home, make_settings)
    env = cli_env(home, settings)
    runner = CliRunner()
    oldest = list_versions(settings.index_dir)[0].name

    rolled = runner.invoke(cli_app, ["index", "rollback", str(int(oldest))], env=env)  # "1" means 000001
    assert rolled.exit_code == 0, rolled.output
    assert len(Tongwen(settings).documents()) == len(SLICE)

    missing = runner.invoke(cli_app, ["index", "rollback", "999999"], env=env)
    assert missing.exit_code == 1 and "tongwen index versions" in missing.output

    nothing_older = runner.invoke(cli_app, ["index", "rollback"], env=env)  # already at the oldest
    assert nothing_older.exit_code == 1 and REBUILD_HINT in nothing_older.output

    newest = list_versions(settings.index_dir)[-1]
    flip_a_byte(settings.index_dir / "versions" / newest.name / "dense.faiss")
    damaged = runner.invoke(cli_app, ["index", "rollback", newest.name], env=env)
    assert damaged.exit_code == 1 and "damaged" in damaged.output and "Traceback" not in damaged.output


def test_a_damaged_pointer_rolls_back_to_the_newest_intact_version(home, make_settings):
    """With CURRENT unreadable there is no "older": the newest intact version is the way back,
    and nothing uploaded is lost."""
    DAMAGE["CURRENT holds invalid bytes"](home)
    settings = settings_for(home, make_settings)
    target = Tongwen(settings).rollback()
    assert target["name"] == list_versions(settings.index_dir)[-1].name
    assert {FIRST.name, SECOND.name} <= {d["name"] for d in Tongwen(settings).documents()}


def test_keep_versions_prunes_the_oldest(home, make_settings, monkeypatch):
    monkeypatch.setenv("TONGWEN_KEEP_VERSIONS", "2")
    settings = settings_for(home, make_settings)
    assert settings.keep_versions == 2
    service = Tongwen(settings)
    before = [v.name for v in list_versions(settings.index_dir)]
    service.ingest([Source("新竹.txt", "新竹科學園區成立於一九八〇年。".encode())])
    after = [v.name for v in list_versions(settings.index_dir)]
    assert len(after) == 2 and after[0] == before[-1] and after[-1] > before[-1]

    monkeypatch.setenv("TONGWEN_KEEP_VERSIONS", "4")
    more = Tongwen(settings_for(home, make_settings))
    more.ingest([Source("嘉義.txt", "嘉義的阿里山森林鐵路全長七十一公里。".encode())])
    more.ingest([Source("花蓮.txt", "花蓮的太魯閣峽谷以大理石岩壁聞名。".encode())])
    assert len(list_versions(settings.index_dir)) == 4


def test_an_index_written_before_checksums_still_loads(home, make_settings):
    folder = current_folder(home)
    manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
    del manifest["files"]
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")
    service = Tongwen(settings_for(home, make_settings))
    assert service.retrieve("台南的太陽能公園多大？", top_k=1)[0].doc == SECOND.name
    assert not service.versions()[-1]["checksummed"] and service.versions()[-1]["verifies"]
