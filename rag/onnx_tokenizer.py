"""The ONNX encoder's tokenizer: XLM-R's Unigram run by ``sentencepiece``, rebuilt from tokenizer.json.

Why: ``tokenizers.Tokenizer.from_file`` on XLM-R's 250,002-piece tokenizer.json costs ~280 MB of
resident memory in a serving process (its vocabulary lives as Rust strings, hash maps and a trie
of boxed nodes); sentencepiece holds the same pieces in a compact double-array trie. The model is
built once at prepare time from the bundled tokenizer.json (no download): the reverse of
transformers' ``XLMRobertaConverter``, with the pieces in tokenizer.json's id order, so ids agree.

How the ``tokenizers`` pipeline is reproduced step by step (checked on every chunk and question
of the bundled corpus, see tests/test_onnx_encoder.py):

1. added tokens (``<s>``, ``</s>``, ``<mask>``… written in the text) are cut out first, ``<mask>``
   taking the whitespace before it (``lstrip``); each remaining segment is tokenised on its own;
2. the Precompiled charsmap runs (sentencepiece's normaliser reads the same format), then runs of
   spaces become one space. ``tokenizers`` applies the charsmap per grapheme: a grapheme shorter
   than 6 bytes whose first character is remapped becomes that character's replacement, its
   combining marks dropped (sentencepiece maps character by character), so such graphemes are
   first cut down to their first character (only texts holding a grapheme extender are scanned);
   the space runs are collapsed after the charsmap done as two steps because sentencepiece's own "remove extra
   whitespaces" also strips the ends, where ``tokenizers`` keeps a trailing "▁" token;
3. Metaspace: a "▁" is prepended unless the segment starts with a space, spaces become "▁";
4. Viterbi over the pieces (sentencepiece with an identity normaliser).

One known, harmless difference: where two segmentations score exactly the same (runs of one
repeated character, e.g. "xxxxxxxx"), the two libraries can pick different orders of the same
pieces, because sentencepiece sums path scores in float32 and ``tokenizers`` in float64. The
token count is the same.

A tokenizer.json of another shape (e.g. a WordPiece model) is not converted; the encoder then
keeps using ``tokenizers`` (:class:`HfTokenizer`).
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import regex

#: The sentencepiece model (pieces, scores; identity normaliser) and its companion (charsmap, specials).
SPM_MODEL_FILE = "tokenizer.model"
SPM_EXTRA_FILE = "tokenizer-spm.json"
_SPACE_RUNS = re.compile(" {2,}")
_METASPACE = "▁"
#: A character that joins the one before it into a grapheme (or CR LF): the rare texts to scan.
_GRAPHEME_EXTENDER = regex.compile(r"\r\n|[\p{GCB=Extend}\p{GCB=SpacingMark}\p{GCB=ZWJ}\p{GCB=V}\p{GCB=T}]")
_GRAPHEME = regex.compile(r"\X")


class Tokenizer(Protocol):
    """What the ONNX encoder needs: ids per text, with or without ``<s> … </s>``."""

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]: ...


class HfTokenizer:
    """``tokenizers`` over tokenizer.json: the fallback for tokenizers that are not XLM-R Unigram."""

    def __init__(self, tokenizer_json: Path) -> None:
        from tokenizers import Tokenizer as RustTokenizer

        self._tokenizer = RustTokenizer.from_file(str(tokenizer_json))

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)]


class SentencePieceTokenizer:
    """The XLM-R Unigram pipeline of tokenizer.json, run by sentencepiece (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        import sentencepiece as spm

        extra = json.loads((folder / SPM_EXTRA_FILE).read_text(encoding="utf-8"))
        self._processor = spm.SentencePieceProcessor(model_file=str(folder / SPM_MODEL_FILE))
        self._normaliser = spm.SentencePieceNormalizer(normalizer_spec=base64.b64decode(extra["normalizer_spec"]))
        self._bos, self._eos = int(extra["bos_id"]), int(extra["eos_id"])
        added = extra["added_tokens"]
        self._added_ids = {t["content"]: int(t["id"]) for t in added}
        alternatives = [(r"\s*" if t["lstrip"] else "") + re.escape(t["content"]) for t in added]
        self._added = re.compile("(" + "|".join(alternatives) + ")") if alternatives else None

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        if add_special_tokens:
            return [[self._bos, *self.encode(t), self._eos] for t in texts]
        return [self.encode(t) for t in texts]

    def encode(self, text: str) -> list[int]:
        """Content ids of ``text`` (no ``<s>``/``</s>``)."""
        if self._added is None or "<" not in text:  # added tokens all start with "<" in XLM-R
            return self._encode_segment(text)
        ids: list[int] = []
        for i, part in enumerate(self._added.split(text)):
            if i % 2:  # a matched added token, with any whitespace it strips
                ids.append(self._added_ids[part.lstrip()])
            elif part:
                ids += self._encode_segment(part)
        return ids

    def _encode_segment(self, text: str) -> list[int]:
        if _GRAPHEME_EXTENDER.search(text):
            text = _GRAPHEME.sub(self._grapheme_as_tokenizers_maps_it, text)
        normalised = _SPACE_RUNS.sub(" ", self._normaliser.normalize(text))
        if not normalised:
            return []
        if normalised[0] != " ":
            normalised = " " + normalised
        return self._processor.encode(normalised)

    def _grapheme_as_tokenizers_maps_it(self, match: regex.Match) -> str:
        grapheme = match.group()
        if len(grapheme) > 1 and len(grapheme.encode("utf-8")) < 6 and self._remapped(grapheme[0]):
            return grapheme[0]
        return grapheme

    @lru_cache(maxsize=4096)  # noqa: B019 - one tokenizer per process; characters are few
    def _remapped(self, char: str) -> bool:
        return self._normaliser.normalize(char) != char


def load_tokenizer(folder: Path, tokenizer_json: Path) -> Tokenizer:
    """The sentencepiece tokenizer when ``folder`` holds one, else ``tokenizers`` over the JSON."""
    if (folder / SPM_MODEL_FILE).is_file() and (folder / SPM_EXTRA_FILE).is_file():
        return SentencePieceTokenizer(folder)
    return HfTokenizer(tokenizer_json)


def write_sentencepiece(tokenizer_json: Path, folder: Path) -> bool:
    """Write the sentencepiece files for ``tokenizer_json`` into ``folder``; False when its shape is
    not XLM-R's (Unigram, Precompiled + collapse of spaces, Metaspace), nothing written then."""
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    shape = _xlmr_shape(spec)
    if shape is None:
        return False
    charsmap, bos_id, eos_id = shape
    model, normaliser = _protos(spec, charsmap)
    (folder / SPM_MODEL_FILE).write_bytes(model)
    added = [{"content": t["content"], "id": t["id"], "lstrip": bool(t.get("lstrip"))} for t in spec["added_tokens"]]
    extra = {
        "normalizer_spec": base64.b64encode(normaliser).decode("ascii"),
        "bos_id": bos_id,
        "eos_id": eos_id,
        "added_tokens": added,
    }
    (folder / SPM_EXTRA_FILE).write_text(json.dumps(extra, ensure_ascii=False, indent=1), encoding="utf-8")
    return True


def _xlmr_shape(spec: dict[str, Any]) -> tuple[bytes, int, int] | None:
    """(charsmap, bos id, eos id) when ``spec`` is exactly the pipeline reproduced here, else None."""
    try:
        model, normaliser, pre, post = spec["model"], spec["normalizer"], spec["pre_tokenizer"], spec["post_processor"]
        steps = normaliser["normalizers"] if normaliser["type"] == "Sequence" else [normaliser]
        if model["type"] != "Unigram" or model.get("byte_fallback") or len(steps) != 2:
            return None
        precompiled, collapse = steps
        if precompiled["type"] != "Precompiled" or not (
            collapse["type"] == "Replace" and collapse["pattern"] == {"Regex": " {2,}"} and collapse["content"] == " "
        ):
            return None
        if not (
            pre["type"] == "Metaspace"
            and pre["replacement"] == _METASPACE
            and pre.get("prepend_scheme") == "always"
            and pre.get("split", True)
        ):
            return None
        single = post["single"]
        if post["type"] != "TemplateProcessing" or len(single) != 3 or "Sequence" not in single[1]:
            return None
        bos_id = post["special_tokens"][single[0]["SpecialToken"]["id"]]["ids"][0]
        eos_id = post["special_tokens"][single[2]["SpecialToken"]["id"]]["ids"][0]
        if any(t.get("normalized") or t.get("rstrip") or t.get("single_word") for t in spec["added_tokens"]):
            return None
        if not all(t["content"].startswith("<") for t in spec["added_tokens"]):
            return None
        return _spm_charsmap(base64.b64decode(precompiled["precompiled_charsmap"])), int(bos_id), int(eos_id)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _spm_charsmap(blob: bytes) -> bytes:
    """The charsmap with its trie zero-padded to a multiple of 1024 bytes, which sentencepiece's
    loader requires (rag.e5 builds a minimal trie; zero units match no byte, so lookups are unchanged)."""
    (trie_size,) = struct.unpack("<I", blob[:4])
    pad = -trie_size % 1024
    return struct.pack("<I", trie_size + pad) + blob[4 : 4 + trie_size] + bytes(pad) + blob[4 + trie_size :]


def _protos(spec: dict[str, Any], charsmap: bytes) -> tuple[bytes, bytes]:
    """The serialised ModelProto (pieces in id order, so ids agree) and the charsmap's NormalizerSpec."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    piece_type = pb.ModelProto.SentencePiece
    unk_id = int(spec["model"]["unk_id"])
    special = {int(t["id"]) for t in spec["added_tokens"]}
    model = pb.ModelProto()
    for i, (piece, score) in enumerate(spec["model"]["vocab"]):
        kind = piece_type.UNKNOWN if i == unk_id else piece_type.CONTROL if i in special else piece_type.NORMAL
        model.pieces.add(piece=piece, score=score, type=kind)
    ids = {t["content"]: int(t["id"]) for t in spec["added_tokens"]}
    trainer = model.trainer_spec
    trainer.model_type = pb.TrainerSpec.UNIGRAM
    trainer.vocab_size = len(spec["model"]["vocab"])
    trainer.unk_id = unk_id
    trainer.bos_id = ids.get("<s>", -1)
    trainer.eos_id = ids.get("</s>", -1)
    trainer.pad_id = ids.get("<pad>", -1)
    # Identity: the text arrives normalised (step 2); only spaces → "▁" is left to sentencepiece.
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = False
    model.normalizer_spec.remove_extra_whitespaces = False
    model.normalizer_spec.escape_whitespaces = True
    normaliser = pb.NormalizerSpec(
        name="tokenizer.json",
        precompiled_charsmap=charsmap,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        escape_whitespaces=False,
    )
    return model.SerializeToString(), normaliser.SerializeToString()
