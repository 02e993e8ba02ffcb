"""The offline local LLM: joining the bundled GGUF and serving it through xllamacpp.

Slow (loads a 0.5B model, ~3 s, then a few CPU-bound generations), hence ``slow``. One server
serves the whole session; prompts are tiny and ``max_tokens`` small so the file stays well
under a minute after load. Never run two LLM test sessions in parallel on this 2-core box.

``TONGWEN_TEST_HOME`` moves the models directory (default ``<repo>/.tongwen/test-home``);
``TONGWEN_TEST_LLM_THREADS`` overrides the thread count (default 1, robust on a busy box).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag.errors import ModelUnavailable
from rag.generate import local_model
from rag.generate.local_model import (
    DEFAULT_GGUF_NAME,
    DEFAULT_GGUF_SHA256,
    bundled_part_files,
    join_and_verify,
    local_backend_available,
    prepare_default_gguf,
)
from rag.generate.local_server import LocalLLMServer, get_local_server, loopback_http_client

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# One thread by default: this box is shared, and with another process busy on a core two
# llama.cpp threads collapse (measured: 2 threads < 3 tok/s, 1 thread ~13 tok/s), while on a
# quiet box 1 thread costs only ~25 % against 2. Context as the Settings default.
THREADS = int(os.environ.get("TONGWEN_TEST_LLM_THREADS", "1"))
CONTEXT = 4096

SYSTEM = "只根據資料回答，用繁體中文，一句話。"
CONTEXT_TEXT = "盧森堡的人口約為50萬人。盧森堡的首都是盧森堡市。"
QUESTION = "盧森堡人口多少？"
MESSAGES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": f"資料：{CONTEXT_TEXT}\n問題：{QUESTION}"},
]


@pytest.fixture(scope="session")
def models_dir() -> Path:
    home = Path(os.environ.get("TONGWEN_TEST_HOME", PROJECT_ROOT / ".tongwen" / "test-home"))
    return home / "models"


@pytest.fixture(scope="session")
def gguf_path(models_dir: Path) -> Path:
    if not local_backend_available():
        pytest.skip("local backend not installed: pip install 'tongwen[local]'")
    return prepare_default_gguf(models_dir)


@pytest.fixture(scope="session")
def server(gguf_path: Path) -> Iterator[LocalLLMServer]:
    srv = get_local_server(gguf_path, threads=THREADS, context=CONTEXT)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with loopback_http_client(timeout=120.0) as client:
        yield client


# -- the model file -------------------------------------------------------------------------------


def test_bundled_parts_are_ordered() -> None:
    if not local_backend_available():
        pytest.skip("local backend not installed")
    names = [p.name for p in bundled_part_files()]
    assert names == [f"part0{i}.bin" for i in range(1, 7)]


def test_prepare_is_idempotent(gguf_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert gguf_path == models_dir / DEFAULT_GGUF_NAME
    assert gguf_path.stat().st_size == sum(p.stat().st_size for p in bundled_part_files())

    def no_rehash(*_args: object, **_kwargs: object) -> str:
        raise AssertionError("second prepare re-hashed the model")

    monkeypatch.setattr(local_model, "sha256_file", no_rehash)
    monkeypatch.setattr(local_model, "join_and_verify", no_rehash)
    assert prepare_default_gguf(models_dir) == gguf_path
    marker = json.loads(gguf_path.with_name(gguf_path.name + ".verified.json").read_text())
    assert marker == {"sha256": DEFAULT_GGUF_SHA256, "size": gguf_path.stat().st_size}


def test_join_verifies_hash(tmp_path: Path) -> None:
    parts = []
    for i, data in enumerate([b"GGUF", b"\x00" * 1000, b"tail"], 1):
        part = tmp_path / f"part0{i}.bin"
        part.write_bytes(data)
        parts.append(part)
    joined = b"".join(p.read_bytes() for p in parts)
    out_dir = tmp_path / "models"

    with pytest.raises(ModelUnavailable, match="corrupt"):
        join_and_verify(parts, out_dir / "bad.gguf", expected_sha256="0" * 64)
    assert not (out_dir / "bad.gguf").exists()
    assert list(out_dir.iterdir()) == [], "temp file left behind"

    good = join_and_verify(parts, out_dir / "good.gguf", hashlib.sha256(joined).hexdigest())
    assert good.read_bytes() == joined
    assert (out_dir / "good.gguf.verified.json").is_file()


def test_default_hash_rejects_other_bytes(tmp_path: Path) -> None:
    """The default expected hash is the real model's: any other content is refused."""
    part = tmp_path / "part01.bin"
    part.write_bytes(b"not a model")
    with pytest.raises(ModelUnavailable):
        join_and_verify([part], tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


def test_missing_or_broken_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="not found"):
        LocalLLMServer(tmp_path / "nope.gguf", threads=1, context=512).start()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelUnavailable, match="could not load"):
        LocalLLMServer(broken, threads=1, context=512).start()


# -- the server ------------------------------------------------------------------------------------


def test_server_is_cached_and_start_idempotent(server: LocalLLMServer, gguf_path: Path) -> None:
    assert server.running
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v1")
    url = server.base_url
    assert server.start() is server
    assert server.base_url == url
    assert get_local_server(gguf_path, threads=THREADS, context=CONTEXT) is server


def test_models_endpoint_reports_name(server: LocalLLMServer, http: httpx.Client) -> None:
    r = http.get(server.base_url + "/models")
    r.raise_for_status()
    assert server.model_name in [m["id"] for m in r.json()["data"]]


def test_answers_from_context(server: LocalLLMServer, http: httpx.Client) -> None:
    r = http.post(
        server.base_url + "/chat/completions",
        json={"model": server.model_name, "messages": MESSAGES, "max_tokens": 48, "temperature": 0},
    )
    r.raise_for_status()
    answer = r.json()["choices"][0]["message"]["content"]
    assert "50" in answer, answer


def test_streaming_answer(server: LocalLLMServer, http: httpx.Client) -> None:
    body = {
        "model": server.model_name,
        "messages": MESSAGES,
        "max_tokens": 48,
        "temperature": 0,
        "stream": True,
    }
    pieces: list[str] = []
    done = False
    with http.stream("POST", server.base_url + "/chat/completions", json=body) as r:
        r.raise_for_status()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                break
            for choice in json.loads(line[len("data: ") :])["choices"]:
                if content := choice["delta"].get("content"):
                    pieces.append(content)
    assert done
    assert len(pieces) >= 3, pieces
    answer = "".join(pieces)
    assert answer.strip()
    assert "50" in answer, answer


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_signals_still_reach_python(gguf_path: Path, http: httpx.Client) -> None:
    """xllamacpp 0.2.x installs its own SIGINT/SIGTERM handlers; start() must undo that.

    The test sets up the condition it checks: Python's own SIGINT handler is installed before a
    server of its own starts (a shell starts background jobs with SIGINT ignored, and then Python
    installs no KeyboardInterrupt handler at all, so the session's server proves nothing).
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with LocalLLMServer(gguf_path, threads=THREADS, context=512) as own:
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(50):
                    time.sleep(0.01)
            assert http.get(own.address + "/health").status_code == 200
    finally:
        signal.signal(signal.SIGINT, previous)


# -- the real generation path: the answer chain with the local backend ---------------------------


def test_local_backend_answers_through_the_chain_with_citations(service, gguf_path: Path) -> None:
    """Question → retrieval → the local Qwen model → post-check: a cited answer, in the asker's
    script, from the model itself (not the extractive fallback)."""
    from eval.gold import load_gold
    from eval.metrics import contains_evidence
    from ingest.normalise import detect_script

    item = next(i for i in load_gold() if i.id == "g001")  # 盧森堡…「第三次產業革命策略」: 2016年11月
    result = service.ask(item.question_simp, llm="local")
    assert result.backend == "local", (result.backend, result.notes, result.answer)
    assert result.found is True
    assert "2016" in result.answer, result.answer
    assert result.citations, result.answer
    cited = [result.sources[c.n - 1].text for c in result.citations]
    assert any(contains_evidence(text, item.evidence) for text in cited)
    assert detect_script(result.answer) in ("simplified", "neutral"), result.answer
    assert result.timings["first_token"] > 0
