"""The `tongwen` CLI, invoked in-process (the model stays loaded) against a real index."""

from __future__ import annotations

import json

import pytest
import uvicorn
from typer.testing import CliRunner

from rag.service import Tongwen
from ui.cli import app

runner = CliRunner()
pytestmark = pytest.mark.both_stores  # the CLI over FAISS and over Milvus Lite (tests/conftest.py)


@pytest.fixture()
def env(service: Tongwen) -> dict[str, str]:
    s = service.settings
    env = {
        "TONGWEN_HOME": str(s.home),
        "TONGWEN_MODEL_DIR": str(s.models_dir),
        "TONGWEN_CORPUS_DIR": str(s.corpus_dir),
        "TONGWEN_LLM": "extractive",
        "TONGWEN_VECTOR_STORE": s.vector_store,
    }
    return {**env, "TONGWEN_MILVUS_URI": s.milvus_uri} if s.milvus_uri else env


def test_ask_json(env):
    result = runner.invoke(app, ["ask", "数字发展部是什么时候成立的？", "--json", "--top-k", "3"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["found"] is True and len(data["sources"]) == 3
    assert "2022" in data["answer"]
    assert {"doc", "text", "score"} <= data["sources"][0].keys()


def test_ask_plain_lists_sources(env):
    result = runner.invoke(app, ["ask", "數位發展部是什麼時候成立的？"], env=env)
    assert result.exit_code == 0
    assert "[1] 002_89eccff8fcb5eb51.txt" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["ask", "   "], "empty"),
        (["ask", "問題", "--llm", "gpt9"], "unknown backend"),
        (["ingest", "/no/such/file.txt"], "No such file"),
        (["delete", "nope.txt"], "No document"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message(env, args, message):
    result = runner.invoke(app, args, env=env)
    assert result.exit_code != 0
    assert message in result.output


def test_unsupported_file_type(env, tmp_path):
    bad = tmp_path / "slides.pptx"
    bad.write_bytes(b"PK\x03\x04")
    result = runner.invoke(app, ["ingest", str(bad)], env=env)
    assert result.exit_code == 1
    assert "unsupported" in result.output


def fresh_home(env: dict[str, str], home) -> dict[str, str]:
    """``env`` over an empty home: nothing indexed there yet, on either store."""
    fresh = {**env, "TONGWEN_HOME": str(home)}
    return {**fresh, "TONGWEN_MILVUS_URI": str(home / "milvus.db")} if "TONGWEN_MILVUS_URI" in env else fresh


def test_index_missing(tmp_path, env):
    result = runner.invoke(app, ["ask", "問題"], env=fresh_home(env, tmp_path))
    assert result.exit_code == 1
    assert "tongwen ingest" in result.output


def test_index_info(env):
    result = runner.invoke(app, ["index", "info"], env=env)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["index"]["documents"] == 3 and info["index"]["chunks"] > 10


@pytest.mark.faiss_only  # damages the FAISS store's CURRENT file; Milvus damage: tests/test_milvus_store.py
def test_index_info_over_a_damaged_index_says_how_to_rebuild(tmp_path, env):
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "CURRENT").write_text("000007\n", "utf-8")  # a version folder that is gone
    result = runner.invoke(app, ["index", "info"], env={**env, "TONGWEN_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "tongwen ingest --rebuild" in result.output and "Traceback" not in result.output


def test_serve_with_nothing_to_index_exits_with_a_message(tmp_path, env, monkeypatch):
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: started.append(app))
    missing = tmp_path / "no-corpus"
    result = runner.invoke(app, ["serve"], env={**fresh_home(env, tmp_path), "TONGWEN_CORPUS_DIR": str(missing)})
    assert not started
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert f"No such file or folder: {missing}" in result.output
