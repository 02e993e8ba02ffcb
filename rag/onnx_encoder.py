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

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
    """One exported graph (fp32 or int8) behind two onnxruntime sessions; thread-safe.

    The two sessions serve workloads that want opposite threading (measured on this 2-core EPYC,
    each figure the median ratio of interleaved runs):

    * **A lone question** (one short text, latency): one run spread over every core, the worker
      threads spinning between the graph's ~300 small operators while the run lasts, where waking
      a sleeping thread for each costs more than the operator (a ~30-token question in 4.5–5.3 ms
      against 6.3–7.2 ms with sleeping workers, fresh processes alternating).
    * **Passages** (many texts, throughput): each text its own run on the one-thread session,
      ``workers`` runs at once (:meth:`encode_passages`): 0.56–0.70 of the time of 16-passage
      batches on two threads. No padding, activations that fit in the core's cache, and no
      hand-over between threads at each operator. The same runs on the query session took
      0.66–0.77.
    * **A question in a crowd** (others waiting for their turn, or an ingest running; see
      :meth:`encode_queries`): the one-thread session too. Spinning workers take a core from the
      other requests' own work: with 10 HTTP clients on ``/api/retrieve``, 71–77 requests/s when
      every question spun, against 79–90 when none did; with this split, 77–90 against 78–94
      (six alternated runs each), while a lone client's p50 fell from 14.4–16.2 to 11.4–12.9 ms.

    The one-thread session is created when first needed (an ingest, a crowd), so a process that
    answers one question at a time holds one copy of the weights (~110 MB each). The two
    sessions give a question the same vector, bit for bit (checked on the 440 gold questions).

    With one text per run, dynamic int8 quantises each text's activations on their own, so a
    passage gets the same vector whatever it was ingested beside.
    """

    def __init__(self, export: OnnxExport, file_name: str, threads: int | None = None) -> None:
        self.export = export
        self.file_name = file_name
        self.max_seq_length = export.max_seq_length
        # No truncation or padding configured on the tokenizer: the same object counts tokens
        # (untruncated) and encodes (truncated and padded below), and stays free of mutable state.
        self._tokenizer = load_tokenizer(export.folder, export.path(TOKENIZER_FILE))
        self.tokenizer = _TokenCounter(self._tokenizer)
        self.workers = threads or _usable_cpus()
        # As many threads as CPUs this process may use, not onnxruntime's default (the machine's
        # cores): threads that spin beyond a container's CPU set would only steal from each other.
        self._session = self._new_session(self.workers, spinning=True)
        self._single_session: Any = None
        self._single_lock = threading.Lock()
        self._single_started = False
        self._start_lock = threading.Lock()  # not _single_lock: that one is held while the session is made

    def _new_session(self, threads: int | None, spinning: bool = False) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # EXTENDED has the transformer fusions (attention, LayerNorm, GELU); ALL adds layout
        # transforms that gained nothing here (2.30 vs 2.34 CPU-s for 48 passages) and cost ~50 MB.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        if threads:
            options.intra_op_num_threads = threads
        # Spinning only while a run lasts (force_spinning_stop): left spinning after it, the
        # workers took a core from the rest of the server until their spin ran out.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        return ort.InferenceSession(str(self.export.path(self.file_name)), options, providers=["CPUExecutionProvider"])

    def _single(self) -> Any:
        """The one-thread session (passages, crowded questions), created on first use."""
        with self._single_lock:
            if self._single_session is None:
                self._single_session = self._new_session(1)
            return self._single_session

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
            out[index] = self._embed(self._session, [texts[i] for i in index])
        return out

    def _embed(self, session: Any, texts: list[str]) -> np.ndarray:
        """One run of ``session`` over ``texts`` (padded together): their unit vectors."""
        ids, mask = self.tokenize_batch(texts)
        (hidden,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
        return mean_pool_normalise(hidden, mask)

    def _crowd_session(self) -> Any:
        """The one-thread session, or until it exists the query session while it is made on a
        thread of its own: making it takes ~0.25 s, which the first crowded question would wait."""
        if self._single_session is not None:
            return self._single_session
        with self._start_lock:
            start, self._single_started = not self._single_started, True
        if start:
            threading.Thread(target=self._single, name="onnx-one-thread-session", daemon=True).start()
        return self._session

    def encode_queries(self, texts: Sequence[str], alone: bool) -> np.ndarray:
        """Unit vectors of questions, one run per text: on every core when the question is
        ``alone``, else on the one-thread session (see the class notes)."""
        return self._embed_each(self._session if alone else self._crowd_session(), texts, workers=1)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts``, one run per text on the one-thread session, ``workers`` at a
        time."""
        return self._embed_each(self._single(), texts, self.workers)

    def _embed_each(self, session: Any, texts: Sequence[str], workers: int) -> np.ndarray:
        """Unit vectors of ``texts``, one run per text on ``session``, ``workers`` runs at a time,
        longest first so the last runs to finish are short ones."""
        texts = list(texts)
        out = np.empty((len(texts), self.export.dimension), dtype=np.float32)

        def embed(i: int) -> None:
            out[i] = self._embed(session, [texts[i]])[0]

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        if workers <= 1 or len(texts) <= 1:
            for i in order:
                embed(i)
            return out
        with ThreadPoolExecutor(max_workers=min(workers, len(texts))) as pool:
            for _ in pool.map(embed, order):  # re-raises the first failure
                pass
        return out


def _usable_cpus() -> int:
    """How many passages run at once: one per CPU this process may use."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
