"""ONNX copies of the embedding model (fp32 and dynamic int8), built once at prepare time.

Serving with onnxruntime instead of torch embeds passages ~2.5× faster on a 2-core AVX2 CPU and
lets the server run without importing torch at all (see ``rag.onnx_encoder``). The export needs
torch and ``onnx``, so it runs where the model folder is prepared (``tongwen models prepare``, or
the first start with an ONNX backend), never per request.

How: ``torch.onnx.export`` of the folder's ``AutoModel`` (inputs ``input_ids`` and
``attention_mask``, output ``last_hidden_state``; dynamic batch and sequence axes; opset 17; the
TorchScript exporter), then ``onnxruntime.quantization.quantize_dynamic`` to int8 weights. Why
not optimum or sentence-transformers' ``export_dynamic_quantized_onnx_model``: both need
``optimum-onnx``, which requires transformers < 4.58 (this project runs 5.x), and optimum's
exporter refused the rebuilt e5 folder ("Unrecognized model").

The files go to a sibling folder ``<model>-onnx`` (self-contained: the two graphs plus
``tokenizer.json``, its sentencepiece rebuild (``rag.onnx_tokenizer``; what serving loads) and a
marker). Like every build (``rag.build``), it is written to a temporary
folder, checked against the torch model, and renamed into place; the marker (written last)
records the source folder's fingerprint, so a rebuilt source model triggers a new export, and a
file lock keeps two processes from exporting the same folder at once.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.build import Progress, build_dir, complete_marker, lock_file_for, locked
from rag.errors import ModelUnavailable

#: Bump when the exported files change in any way, so old exports are rebuilt.
#: 2: sentencepiece tokenizer files beside tokenizer.json.
FORMAT_VERSION = 2
MARKER_NAME = "tongwen-onnx.json"
FP32_FILE = "model.onnx"
INT8_FILE = "model_qint8.onnx"
TOKENIZER_FILE = "tokenizer.json"
#: Source files whose size and mtime identify the model an export was made from.
_SOURCE_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json")
#: Minimum cosine to the torch vectors on the check sentences; a broken export lands far below.
MIN_COSINE = {FP32_FILE: 0.999, INT8_FILE: 0.98}
_CHECK_TEXTS = (
    "passage: 臺灣的半導體產業在全球晶片供應鏈中扮演關鍵角色，台積電的先進製程領先世界。",
    "passage: 台湾的半导体产业在全球芯片供应链中扮演关键角色，台积电的先进制程领先世界。",
    "query: 美中科技戰的焦點是什麼？",
    "query: The quick brown fox jumps over the lazy dog.",
)
#: Whitespace, width, marks and added tokens: where a tokenizer rebuild would go wrong first.
_TOKENIZER_CHECK_TEXTS = (
    *_CHECK_TEXTS,
    "",
    "  lead  and  trail  \n",
    "tab\there\r\nnew\n\nline\u3000全形　空格",
    "ＡＢＣ１２３ｶﾀｶﾅ ﬁ ½ ① e\u0301 Ａ\u0301 İstanbul ß",
    "emoji 😀👍🏽 👨‍👩‍👧 \u200b\ufeff ▁▁x",
    "iPhone15售價NT$29,900元，約合US$1,000。",
    "a<s>b</s> <mask> c <pad><unk>",
)


class OnnxExportError(ModelUnavailable):
    """The ONNX files could not be built; the message says what to do instead."""


@dataclass(frozen=True)
class OnnxExport:
    """A finished export: where its files are and what the encoder needs to know."""

    folder: Path
    dimension: int
    max_seq_length: int
    pad_id: int

    def path(self, file_name: str) -> Path:
        return self.folder / file_name


def onnx_dir_for(model_dir: Path) -> Path:
    """The export folder that belongs to a model folder: ``<model>-onnx`` beside it."""
    model_dir = Path(model_dir)
    return model_dir.with_name(model_dir.name + "-onnx")


def source_fingerprint(model_dir: Path) -> dict[str, list[int]]:
    """Size and mtime of the files that define the model, to notice a rebuilt source folder."""
    out: dict[str, list[int]] = {}
    for name in _SOURCE_FILES:
        with contextlib.suppress(OSError):
            st = (Path(model_dir) / name).stat()
            out[name] = [st.st_size, st.st_mtime_ns]
    return out


def load_export(model_dir: Path) -> OnnxExport | None:
    """The complete, current export of ``model_dir``, or None when it must be (re)built.

    A few ``stat`` calls: marker present, format current, every recorded file at its recorded
    size, and the source folder unchanged since the export.
    """
    folder = onnx_dir_for(model_dir)
    marker = complete_marker(folder, MARKER_NAME, FORMAT_VERSION)
    if marker is None or not {FP32_FILE, INT8_FILE, TOKENIZER_FILE} <= marker["files"].keys():
        return None
    if marker.get("source_fingerprint") != source_fingerprint(model_dir):
        return None
    return OnnxExport(folder, int(marker["dimension"]), int(marker["max_seq_length"]), int(marker["pad_id"]))


def _check_exportable(model_dir: Path) -> int:
    """The folder's max_seq_length, after checking it is a mean-pooled, normalised BERT-like model.

    The ONNX encoder reproduces exactly that pipeline (mean pooling over the mask, then L2); a
    CLS-pooled or unnormalised model would silently give other vectors, so it is refused.
    """
    if not (model_dir / TOKENIZER_FILE).is_file():
        raise OnnxExportError(f"{model_dir} has no {TOKENIZER_FILE}; use TONGWEN_EMBEDDING_BACKEND=torch.")
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        pooling_path = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((model_dir / pooling_path / "config.json").read_text(encoding="utf-8"))
        normalised = any(m["type"].endswith("Normalize") for m in modules)
        st_config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise OnnxExportError(
            f"{model_dir} is not a sentence-transformers folder the ONNX backends understand ({exc}); "
            "use TONGWEN_EMBEDDING_BACKEND=torch."
        ) from exc
    if not (pooling.get("pooling_mode_mean_tokens") and normalised and pooling.get("include_prompt", True)):
        raise OnnxExportError(
            f"The ONNX backends support mean-pooled, normalised models only; {model_dir} is not one. "
            "Use TONGWEN_EMBEDDING_BACKEND=torch."
        )
    return int(st_config.get("max_seq_length") or 512)


def build_onnx(model_dir: Path, progress: Progress | None = None) -> OnnxExport:
    """Export ``model_dir`` to ONNX fp32 and int8 (once); return the export.

    Idempotent and safe to call from several processes at once (file lock, then re-check).
    """
    say: Progress = progress or (lambda _msg: None)
    model_dir = Path(model_dir).expanduser().resolve()
    done = load_export(model_dir)
    if done is not None:
        return done
    out_dir = onnx_dir_for(model_dir)
    max_seq_length = _check_exportable(model_dir)
    with locked(lock_file_for(out_dir)):
        done = load_export(model_dir)  # another process finished while we waited
        if done is not None:
            return done
        say("Exporting the embedding model to ONNX (fp32 and int8; one time, ~1 min)…")
        started = time.monotonic()
        try:
            with build_dir(out_dir, MARKER_NAME) as build:
                build.marker.update(_export_into(build.folder, model_dir, max_seq_length, say))
        except ModelUnavailable:
            raise
        except ImportError as exc:
            raise OnnxExportError(
                f"Building the ONNX files needs torch, transformers and onnx ({exc}): "
                "pip install onnx onnxruntime, or use TONGWEN_EMBEDDING_BACKEND=torch."
            ) from exc
        except Exception as exc:  # disk full, an exporter bug: say so in the user's terms
            raise OnnxExportError(
                f"Could not export the embedding model to ONNX: {exc}. Use TONGWEN_EMBEDDING_BACKEND=torch."
            ) from exc
        say(f"ONNX files ready in {time.monotonic() - started:.0f} s at {out_dir}")
    done = load_export(model_dir)
    if done is None:  # pragma: no cover - the marker was just written
        raise OnnxExportError(f"ONNX export at {out_dir} did not verify; delete it, run `tongwen models prepare`.")
    return done


def _export_into(folder: Path, model_dir: Path, max_seq_length: int, say: Progress) -> dict[str, Any]:
    """Write both graphs and the tokenizer into the empty ``folder``, check them; return the marker fields."""
    import torch
    from transformers import AutoModel

    # Eager attention: the SDPA path decides at trace time whether the mask matters, and traced
    # with an all-ones mask it can drop padding handling from the graph.
    bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        """BertModel returns a ModelOutput; the graph needs a plain tensor output."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    # Reference vectors first: the TorchScript exporter leaves the traced module changed
    # (measured: cosine 0.988 to a fresh model afterwards), so it cannot serve as the reference.
    reference = _torch_vectors(bert, model_dir)
    ids = torch.randint(5, 1000, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # a padded row, so the traced graph keeps the masking path
    with torch.no_grad():
        torch.onnx.export(
            LastHidden(bert),
            (ids, mask),
            str(folder / FP32_FILE),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
            opset_version=17,
            dynamo=False,
            external_data=False,
        )
    say("Quantising the ONNX model to int8…")
    _quantise(folder / FP32_FILE, folder / INT8_FILE)
    shutil.copyfile(model_dir / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    from tokenizers import Tokenizer

    hf_tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    tokenizer = _write_light_tokenizer(folder, hf_tokenizer, say)
    pad_id = hf_tokenizer.token_to_id("<pad>")
    if pad_id is None:
        pad_id = int(getattr(bert.config, "pad_token_id", 0) or 0)
    dimension = int(reference.shape[1])
    export = OnnxExport(folder, dimension, max_seq_length, int(pad_id))
    _check_against_torch(export, reference)
    del bert
    return {
        "format_version": FORMAT_VERSION,
        "source": str(model_dir),
        "source_fingerprint": source_fingerprint(model_dir),
        "dimension": dimension,
        "max_seq_length": max_seq_length,
        "pad_id": int(pad_id),
        "tokenizer": tokenizer,
        "opset": 17,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _write_light_tokenizer(folder: Path, reference: Any, say: Progress) -> str:
    """Rebuild tokenizer.json with sentencepiece when it is XLM-R's Unigram; which one serving uses.

    The rebuild must give the same ids as ``reference`` (the ``tokenizers`` Tokenizer of that
    tokenizer.json) on the check texts, else it is deleted and serving keeps ``tokenizers``
    (correct, only ~280 MB heavier).
    """
    from rag.onnx_tokenizer import SPM_EXTRA_FILE, SPM_MODEL_FILE, SentencePieceTokenizer, write_sentencepiece

    if not write_sentencepiece(folder / TOKENIZER_FILE, folder):
        return "tokenizers"
    expected = [e.ids for e in reference.encode_batch(list(_TOKENIZER_CHECK_TEXTS))]
    if SentencePieceTokenizer(folder).encode_batch(_TOKENIZER_CHECK_TEXTS) == expected:
        return "sentencepiece"
    say("The sentencepiece rebuild of tokenizer.json gives other ids; serving keeps the tokenizers library.")
    for name in (SPM_MODEL_FILE, SPM_EXTRA_FILE):
        (folder / name).unlink()
    return "tokenizers"


def _quantise(source: Path, target: Path) -> None:
    """Dynamic int8: int8 weights per output channel, activations quantised at run time.

    ``reduce_range`` (7-bit weights) because CPUs without VNNI saturate u8×s8 products in
    ``vpmaddubsw``: measured on this machine, per-tensor full-range weights gave a mean cosine of
    0.985 to the fp32 vectors, per-channel reduced-range 0.997.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _torch_vectors(bert: Any, model_dir: Path) -> np.ndarray:
    """The check sentences through the torch model, pooled like sentence-transformers does."""
    import torch
    from tokenizers import Tokenizer

    from rag.onnx_encoder import mean_pool_normalise

    tok = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
    encodings = [tok.encode(t) for t in _CHECK_TEXTS]
    out = []
    for enc in encodings:  # one at a time: no padding to reason about
        ids = torch.tensor([enc.ids])
        with torch.no_grad():
            hidden = bert(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.numpy()
        out.append(mean_pool_normalise(hidden, np.ones((1, len(enc.ids)), dtype=np.int64))[0])
    return np.stack(out)


def _check_against_torch(export: OnnxExport, reference: np.ndarray) -> None:
    """Both graphs must reproduce the torch vectors (batched and padded, as in serving)."""
    from rag.onnx_encoder import OnnxEncoder

    for file_name, floor in MIN_COSINE.items():
        encoder = OnnxEncoder(export, file_name, threads=None)
        vectors = encoder.encode(list(_CHECK_TEXTS), batch_size=len(_CHECK_TEXTS))
        cosine = float(np.min(np.sum(vectors * reference, axis=1)))
        if not cosine >= floor:
            raise OnnxExportError(
                f"The ONNX export {file_name} disagrees with the torch model (cosine {cosine:.4f} < {floor}); "
                "use TONGWEN_EMBEDDING_BACKEND=torch and report this."
            )
