"""Reliability: sustained concurrent load with uploads, and faults.

* 50 clients mix ``/api/retrieve``, extractive ``/api/ask`` and ``/v1/chat/completions`` for 30 s
  against a real server over its own small index while documents are uploaded one after another;
  no 5xx, every request answered, every document still (or newly) findable afterwards. The
  figures go to ``.tongwen/test-artifacts/reliability.json``, or with ``TONGWEN_UPDATE_DOCS=1`` to
  the committed ``bench/out/reliability.json`` (the same load as ``python -m bench.soak``).
* ``kill -9`` of a real ``tongwen ingest`` process while it embeds: the previous index stays
  current and loadable, and the next ingest sweeps the half-built folder.
* A truncated or deleted index file: ``IndexCorrupt`` telling the user to re-index, a 503 JSON
  error over HTTP, a message and a non-zero exit from the CLI; re-indexing repairs it. ``tongwen
  serve`` still starts, says what to run, and serves the rebuilt index without a restart.
* The LLM backend down (closed port) or hanging (a socket that never answers): the answer falls
  back to extractive within the timeout, with a note, and HTTP still answers 200.

All network traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bench.api_load import machine, serve_app
from bench.soak import ORIGINALS, UPLOADS, index_originals, problems, run_mixed_load, verify_documents
from ingest.sources import Source
from rag.errors import IndexCorrupt
from rag.results import Answer
from rag.service import Tongwen
from tests.conftest import artifact_path
from tests.servers import free_port, serve
from ui.api import create_api
from ui.cli import app as cli_app
from ui.server import create_app

PROJECT = Path(__file__).resolve().parent.parent
BIG_FILE = PROJECT / "data" / "corpus" / "004_dfbd3e62c09c681e.txt"  # ~300 KB: minutes of embedding
REPORT = artifact_path(PROJECT / "bench" / "out" / "reliability.json")
REBUILD_HINT = "tongwen ingest --rebuild"

LOAD_SECONDS = 30
CLIENTS = 50
MAX_REQUESTS = 20_000  # hard cap; a fast machine serves a few thousand in 30 s
UPLOAD_COUNT = 4

BRIDGE = ORIGINALS[0]  # the document the fault tests ask about


@pytest.fixture(scope="module")
def small_home(tmp_path_factory, make_settings) -> Path:
    """A home whose index holds the three small original documents; read-only, copy to write."""
    home = tmp_path_factory.mktemp("reliability-base")
    index_originals(Tongwen(make_settings(home)))
    return home


def copy_home(small_home: Path, target: Path) -> Path:
    shutil.copytree(small_home / "index", target / "index")
    return target


def current_version(home: Path) -> Path:
    return home / "index" / "versions" / (home / "index" / "CURRENT").read_text("utf-8").strip()


# -- load ----------------------------------------------------------------------------------------


def test_fifty_clients_for_thirty_seconds_while_uploading(small_home, tmp_path, make_settings):
    home = copy_home(small_home, tmp_path / "home")
    service = Tongwen(make_settings(home))
    uploads = list(UPLOADS[:UPLOAD_COUNT])
    started = time.monotonic()
    with serve(create_app(service=service, with_ui=False)) as url:
        report = run_mixed_load(
            url,
            clients=CLIENTS,
            duration=LOAD_SECONDS,
            uploads=uploads,
            max_requests=MAX_REQUESTS,
            upload_start=1.0,
            upload_gap=2.0,
            finish_uploads=True,
        )
        report["verify"] = verify_documents(url, ORIGINALS, uploads)
    report["problems"] = problems(report)
    report = {
        "what": f"{CLIENTS} clients for {LOAD_SECONDS} s mixing /api/retrieve, extractive /api/ask and "
        f"/v1/chat/completions while {UPLOAD_COUNT} documents are uploaded (tests/test_reliability.py)",
        **machine(),
        "wall_seconds": round(time.monotonic() - started, 1),
        **report,
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")

    load, total = report["load"], report["load"]["total"]
    assert load["seconds"] >= LOAD_SECONDS or load["capped"]
    assert set(load["endpoints"]) == {"retrieve", "ask", "chat"}
    assert total["errors_5xx"] == 0, total["failure_examples"]
    assert total["sent"] == total["answered"] and not total["exceptions"], total
    assert total["ok"] == total["answered"] and total["bad_bodies"] == 0, total
    assert [u["status"] for u in report["uploads"]] == [200] * UPLOAD_COUNT, report["uploads"]
    assert [u["added"] for u in report["uploads"]] == [[d.name] for d in uploads]
    check = report["verify"]
    assert not check["missing_originals"] and not check["missing_uploads"], check
    assert check["wrong_top_hit"] == {}, check
    assert report["problems"] == []


def test_the_load_benchmark_drives_a_server_of_its_own(small_home, make_settings):
    """``bench.api_load --url``: the driver alone, against a server it did not start (in a
    benchmark, ``tongwen serve`` in another process, so client and server share no lock)."""
    from bench.api_load import run

    service = Tongwen(make_settings(small_home))
    with serve_app(create_api(service)) as url:
        report = run(duration=1.0, clients=2, max_requests=40, timeout=30.0, url=url)
    assert report["server"] == url
    assert report["index"] == {
        "documents": len(service.snapshot.manifest.documents),
        "chunks": len(service.snapshot.chunks),
    }
    for name in ("retrieve", "ask"):
        endpoint = report["endpoints"][name]
        assert endpoint["ok"] > 0 and endpoint["ok"] == endpoint["sent"], endpoint
        assert endpoint["p50_ms"] > 0


# -- kill -9 in the middle of an ingest ----------------------------------------------------------


def test_kill_9_while_embedding_keeps_the_previous_index(small_home, tmp_path, make_settings):
    home = copy_home(small_home, tmp_path / "home")
    settings = make_settings(home)
    versions = home / "index" / "versions"
    before = current_version(home)
    env = {
        **os.environ,
        "TONGWEN_HOME": str(home),
        "TONGWEN_MODEL_DIR": str(settings.models_dir),
        "TONGWEN_LLM": "extractive",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "OMP_NUM_THREADS": "1",  # gentle on the shared cores; it gets killed anyway
    }
    log = tmp_path / "ingest.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "--verbose", "ingest", str(BIG_FILE)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Model loading can take a while on a busy machine; the embedding itself takes minutes.
        deadline = time.monotonic() + 240
        while "Embedding" not in log.read_text("utf-8", errors="replace"):
            assert proc.poll() is None, f"ingest ended early:\n{log.read_text('utf-8', errors='replace')[-2000:]}"
            assert time.monotonic() < deadline, "ingest never started embedding"
            time.sleep(0.2)
        time.sleep(1.0)
        assert proc.poll() is None, "the ingest finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)

    assert current_version(home) == before and before.is_dir()
    leftovers = list(versions.glob(".build-*"))
    if not leftovers:
        # Killed while embedding, before the build folder exists; leave one as a kill during the
        # write phase would (a half-written version without its manifest).
        half = versions / ".build-killed"
        half.mkdir()
        (half / "chunks.jsonl").write_text('{"id": "trunc', "utf-8")
        leftovers = [half]

    fresh = Tongwen(make_settings(home))
    answer = fresh.ask(BRIDGE.question)
    assert answer.found is True and answer.sources[0].doc == BRIDGE.name
    assert "2018" in answer.answer
    assert len(fresh.documents()) == len(ORIGINALS)

    after = UPLOADS[0]
    report = fresh.ingest([Source(after.name, after.text.encode("utf-8"))])
    assert report.added == [after.name] and not report.failed
    assert not any(p.exists() for p in leftovers)
    assert not list(versions.glob(".build-*"))
    assert current_version(home) != before
    reloaded = Tongwen(make_settings(home))
    assert {d["name"] for d in reloaded.documents()} == {d.name for d in ORIGINALS} | {after.name}
    assert reloaded.retrieve(after.question, top_k=1)[0].doc == after.name


# -- a damaged index -----------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated dense.faiss": lambda v: _truncate(v / "dense.faiss"),
    "truncated chunks.jsonl": lambda v: _truncate(v / "chunks.jsonl"),
    "deleted dense.faiss": lambda v: (v / "dense.faiss").unlink(),
    "deleted chunks.jsonl": lambda v: (v / "chunks.jsonl").unlink(),
    "deleted keyword index": lambda v: shutil.rmtree(v / "keyword"),
    "deleted version folder": shutil.rmtree,
}


@pytest.fixture()
def damaged_home(request, small_home, tmp_path) -> Path:
    home = copy_home(small_home, tmp_path / "home")
    DAMAGE[request.param](current_version(home))
    return home


def cli_env(home: Path, settings) -> dict[str, str]:
    return {
        "TONGWEN_HOME": str(home),
        "TONGWEN_MODEL_DIR": str(settings.models_dir),
        "TONGWEN_CORPUS_DIR": str(home / "no-corpus"),
        "TONGWEN_LLM": "extractive",
    }


@pytest.mark.parametrize("damaged_home", list(DAMAGE), indirect=True)
def test_damaged_index_says_how_to_rebuild(damaged_home, make_settings):
    settings = make_settings(damaged_home)
    with pytest.raises(IndexCorrupt, match=REBUILD_HINT):
        Tongwen(settings).retrieve(BRIDGE.question)
    with pytest.raises(IndexCorrupt, match=REBUILD_HINT):
        Tongwen(settings).ask(BRIDGE.question)

    # Over HTTP: a 503 JSON error with the same advice, never a traceback; /health included.
    with serve_app(create_api(Tongwen(settings))) as url:
        for method, path, body in (
            ("POST", "/api/retrieve", {"query": BRIDGE.question}),
            ("POST", "/api/ask", {"question": BRIDGE.question}),
            ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": BRIDGE.question}]}),
            ("GET", "/api/documents", None),
            ("GET", "/health", None),
        ):
            r = httpx.request(method, f"{url}{path}", json=body, timeout=60)
            assert r.status_code == 503 and r.headers["content-type"].startswith("application/json"), r.text
            error = r.json()["error"]
            assert error["type"] == "IndexCorrupt" and REBUILD_HINT in error["message"], (path, r.text)
            assert "Traceback" not in r.text

    result = CliRunner().invoke(cli_app, ["ask", BRIDGE.question], env=cli_env(damaged_home, settings))
    assert result.exit_code != 0
    assert REBUILD_HINT in result.output and "Traceback" not in result.output

    # The advice works: a rebuild from the documents gives a working index again.
    repaired = Tongwen(settings)
    report = repaired.ingest([Source(d.name, d.text.encode("utf-8")) for d in ORIGINALS], rebuild=True)
    assert sorted(report.added) == sorted(d.name for d in ORIGINALS)
    assert Tongwen(settings).retrieve(BRIDGE.question, top_k=1)[0].doc == BRIDGE.name


@pytest.mark.parametrize("damaged_home", ["truncated dense.faiss"], indirect=True)
def test_serve_over_a_damaged_index_says_how_to_rebuild(damaged_home, make_settings, monkeypatch):
    """The server starts anyway (a supervisor would only restart-loop a refusal), says what to run,
    answers 503 with the advice until the index is rebuilt, then serves it without a restart."""
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: started.append(app))  # served below instead
    settings = make_settings(damaged_home)
    result = CliRunner().invoke(cli_app, ["serve", "--port", str(free_port())], env=cli_env(damaged_home, settings))
    assert result.exit_code == 0 and result.exception is None, result.output  # handled, not a crash
    assert REBUILD_HINT in result.output and "Traceback" not in result.output
    assert not (damaged_home / "no-corpus").exists()  # the damaged index was not "repaired" from the corpus

    (app,) = started
    with serve_app(app) as url:
        health = httpx.get(f"{url}/health", timeout=60)
        assert health.status_code == 503, health.text
        assert health.json()["status"] == "degraded" and REBUILD_HINT in health.json()["error"]["message"]
        asked = httpx.post(f"{url}/api/ask", json={"question": BRIDGE.question}, timeout=60)
        assert asked.status_code == 503 and REBUILD_HINT in asked.json()["error"]["message"], asked.text
        assert httpx.get(f"{url}/", timeout=60).status_code == 200  # the chat UI is up too

        # The advice, followed from another shell while the server runs.
        Tongwen(settings).ingest([Source(d.name, d.text.encode("utf-8")) for d in ORIGINALS], rebuild=True)
        health = httpx.get(f"{url}/health", timeout=60)
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        asked = httpx.post(f"{url}/api/ask", json={"question": BRIDGE.question}, timeout=60)
        assert asked.status_code == 200 and asked.json()["sources"][0]["doc"] == BRIDGE.name, asked.text


# -- the LLM backend down or hanging -------------------------------------------------------------


@contextmanager
def silent_llm() -> Iterator[tuple[str, list[bytes]]]:
    """An "OpenAI-compatible" endpoint that accepts connections, reads the request, never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    requests: list[bytes] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            conn.settimeout(1.0)
            try:
                requests.append(conn.recv(65536))
            except OSError:
                requests.append(b"")

    thread = threading.Thread(target=loop, name="silent-llm", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", requests
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def assert_fell_back(result: Answer, timeout: float) -> None:
    assert result.found is True, result
    assert result.backend.startswith("extractive (fallback"), result.backend
    assert any("摘錄式" in n or "摘录式" in n for n in result.notes), result.notes
    assert result.sources[0].doc == BRIDGE.name
    assert "2018" in result.answer and result.citations
    assert result.timings["generate"] <= (timeout + 3) * 1000, result.timings


def check_fallback_over_http(service: Tongwen, timeout: float) -> None:
    with serve(create_app(service=service, with_ui=False)) as url:
        r = httpx.post(f"{url}/api/ask", json={"question": BRIDGE.question}, timeout=60)
        assert r.status_code == 200, r.text
        assert_fell_back(Answer.model_validate(r.json()), timeout)  # the wire is the model's JSON
        chat = {"model": "tongwen", "messages": [{"role": "user", "content": BRIDGE.question}]}
        r = httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["backend"].startswith("extractive (fallback") and r.json()["found"] is True


def test_unreachable_llm_falls_back_to_extractive(small_home, make_settings):
    closed = free_port()  # nothing listens there
    settings = make_settings(small_home, llm="openai", openai_base_url=f"http://127.0.0.1:{closed}/v1", llm_timeout=3)
    service = Tongwen(settings)
    result = service.ask(BRIDGE.question)
    assert_fell_back(result, timeout=3)
    assert any("Connection" in n for n in result.notes), result.notes
    check_fallback_over_http(service, timeout=3)


def test_hanging_llm_times_out_and_falls_back(small_home, make_settings):
    with silent_llm() as (base_url, requests):
        service = Tongwen(make_settings(small_home, llm="openai", openai_base_url=base_url, llm_timeout=2))
        started = time.monotonic()
        result = service.ask(BRIDGE.question)
        assert time.monotonic() - started < 30
        assert_fell_back(result, timeout=2)
        assert any("Timeout" in n or "timed out" in n for n in result.notes), result.notes
        assert requests and requests[0].startswith(b"POST /v1/chat/completions")
        check_fallback_over_http(service, timeout=2)
