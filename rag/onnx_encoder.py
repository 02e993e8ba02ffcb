"""The embedding model run by onnxruntime, with no torch in the process.

sentence-transformers' own ``backend="onnx"`` would need ``optimum`` (which pins transformers
< 4.58 while this project runs 5.x) and imports torch anyway, which is what this module exists
to avoid: a server that only embeds queries then needs neither torch's start-up time nor its
resident memory. The pipeline is exactly the sentence-transformers one for the models
``rag.onnx_export`` accepts: tokenizer (``rag.onnx_tokenizer``: sentencepiece rebuilt from
``tokenizer.json``, ~280 MB lighter than ``tokenizers``) → graph → mean pooling over the attention mask →
L2 normalisation.

:class:`OnnxEncoder` speaks the small part of ``SentenceTransformer``'s API that
``rag.embeddings.EmbeddingModel`` uses (``encode``, ``tokenizer(...)``, ``max_seq_length``,
``get_embedding_dimension``), so the two backends are interchangeable behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.onnx_export import TOKENIZER_FILE, OnnxExport
from rag.onnx_tokenizer import Tokenizer, load_tokenizer


def mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors under the mask, then unit length (sentence-transformers' Pooling +
    Normalize modules for e5)."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class _TokenCounter:
    """Callable like a transformers tokenizer for the one use ``EmbeddingModel.count_tokens`` has."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer

    def __call__(self, texts: Sequence[str], add_special_tokens: bool = True, **_ignored: Any) -> dict[str, list]:
        return {"input_ids": self._tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)}


class OnnxEncoder:
    """One onnxruntime session over one exported graph (fp32 or int8); thread-safe.

    ``threads=None`` lets onnxruntime use one thread per physical core. Spin-waiting is off: on a
    small shared CPU the busy-waiting threads would steal time from the rest of the request
    (keyword search, generation) for a gain of a millisecond or two per query.
    """

    def __init__(self, export: OnnxExport, file_name: str, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.export = export
        self.file_name = file_name
        self.max_seq_length = export.max_seq_length
        # No truncation or padding configured on the tokenizer: the same object counts tokens
        # (untruncated) and encodes (truncated and padded below), and stays free of mutable state.
        self._tokenizer = load_tokenizer(export.folder, export.path(TOKENIZER_FILE))
        self.tokenizer = _TokenCounter(self._tokenizer)
        options = ort.SessionOptions()
        # EXTENDED has the transformer fusions (attention, LayerNorm, GELU); ALL adds layout
        # transforms that gained nothing here (2.30 vs 2.34 CPU-s for 48 passages) and cost ~50 MB.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        if threads:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(export.path(file_name)), options, providers=["CPUExecutionProvider"])

    def get_embedding_dimension(self) -> int:
        return self.export.dimension

    def tokenize_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and mask, truncated like transformers (content cut, closing special token
        kept) and right-padded with the pad id."""
        rows = []
        for ids in self._tokenizer.encode_batch(list(texts)):
            if len(ids) > self.max_seq_length:
                ids = ids[: self.max_seq_length - 1] + ids[-1:]
            rows.append(ids)
        width = max(len(r) for r in rows)
        ids_array = np.full((len(rows), width), self.export.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids_array[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids_array, mask

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 16,
        show_progress_bar: bool = False,
        **_st_options: Any,
    ) -> np.ndarray:
        """Unit vectors, one row per text, in input order (``_st_options``: always normalised, numpy).

        Texts are batched longest first, as sentence-transformers does, so a batch pads little.
        """
        texts = list(texts)
        out = np.empty((len(texts), self.export.dimension), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([-len(t) for t in texts], kind="stable")
        starts = range(0, len(texts), batch_size)
        if show_progress_bar:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Batches", unit="batch")
        for start in starts:
            index = order[start : start + batch_size]
            ids, mask = self.tokenize_batch([texts[i] for i in index])
            (hidden,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[index] = mean_pool_normalise(hidden, mask)
        return out
