"""Pick the generator backend from configuration; one instance per process and backend."""

from __future__ import annotations

import threading

from rag.config import Settings
from rag.generate.base import Generator
from rag.generate.extractive import ExtractiveGenerator

_cache: dict[tuple[str, int], Generator] = {}
_lock = threading.Lock()


def resolve_backend(requested: str | None, settings: Settings) -> str:
    """``auto``: an OpenAI-compatible endpoint if configured, else the local model if its extra
    is installed, else extractive."""
    name = requested or settings.llm
    if name != "auto":
        return name
    if settings.openai_base_url:
        return "openai"
    from rag.generate.local_model import local_backend_available

    return "local" if settings.local_model_path or local_backend_available() else "extractive"


def make_generator(name: str, settings: Settings) -> Generator:
    key = (name, id(settings))
    with _lock:
        if key not in _cache:
            _cache[key] = _build(name, settings)
        return _cache[key]


def _build(name: str, settings: Settings) -> Generator:
    if name == "extractive":
        return ExtractiveGenerator()
    if name == "openai":
        from rag.generate.openai_chat import OpenAIChatGenerator

        if not settings.openai_base_url:
            from rag.errors import TongwenError

            raise TongwenError("The openai backend needs TONGWEN_OPENAI_BASE_URL.")
        return OpenAIChatGenerator(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_api_key,
            settings.llm_timeout,
            settings.llm_max_tokens,
        )
    if name == "local":
        from rag.generate.local import LocalGenerator

        return LocalGenerator(settings)
    raise ValueError(f"unknown generator backend {name!r}")
