"""The one list of answer backends. Config validation, the HTTP API (request enum, ``/v1/models``),
the CLI and the UI all read it, so a backend's name is written once.

Adding a backend is one file (``rag/generate/<name>.py`` with a ``build(settings) -> Generator``
function) plus one ``register(...)`` line below. Modules are imported only when their backend is
first built, so listing the backends never loads an LLM runtime.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.generate.base import Generator

AUTO = "auto"


@dataclass(frozen=True)
class Backend:
    name: str
    label: str  # for people (the UI's choice list), in Traditional Chinese
    module: str  # holds ``build(settings) -> Generator``
    is_llm: bool  # a language model writes the answer (else: quotes only)
    # Whether ``auto`` may pick it on this machine with these settings.
    available: Callable[[Settings], bool] = lambda _settings: True


BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    BACKENDS[backend.name] = backend


def _local_available(settings: Settings) -> bool:
    from rag.generate.local_model import local_backend_available

    return bool(settings.local_model_path) or local_backend_available()


def _local_15b_available(_settings: Settings) -> bool:
    from rag.generate.local_model import QWEN_15B, local_backend_available

    return local_backend_available(QWEN_15B)


register(Backend("extractive", "摘錄式（即時，直接引用原文）", "rag.generate.extractive", is_llm=False))
register(
    Backend("local", "本機模型（Qwen2.5 0.5B，較慢）", "rag.generate.local", is_llm=True, available=_local_available)
)
register(
    Backend(
        "local-1.5b",
        "本機模型（Qwen2.5 1.5B，最慢）",
        "rag.generate.local_15b",
        is_llm=True,
        available=_local_15b_available,
    )
)
register(
    Backend(
        "openai",
        "OpenAI 相容端點",
        "rag.generate.openai_chat",
        is_llm=True,
        available=lambda settings: bool(settings.openai_base_url),
    )
)

# What ``auto`` means, best first, by the measurements in the README ("Answer backends compared",
# `python -m eval.backends`): a configured endpoint (an operator's choice of a large model) first;
# then quoting. On the gold questions every backend ran, measured on this machine, the bundled
# 0.5B and 1.5B models refused as few answerable questions and one more unanswerable one, but
# kept fewer asked-for figures (held-out number recall 0.00 and 0.50 against 1.00) and took
# 25-65 s per answer against milliseconds; so neither local model is picked automatically.
AUTO_ORDER = ("openai", "extractive")


AUTO_LABEL = "自動（有模型服務就用它，否則摘錄式）"


def label(name: str) -> str:
    """What a person sees for a backend name (Traditional Chinese; the UI converts it)."""
    return AUTO_LABEL if name == AUTO else BACKENDS[name].label


def names(with_auto: bool = True) -> tuple[str, ...]:
    """Every backend name a user may ask for."""
    return ((AUTO,) if with_auto else ()) + tuple(BACKENDS)


def resolve(requested: str | None, settings: Settings) -> str:
    """The concrete backend for a request: the one asked for, else the configured one, with
    ``auto`` resolved by :data:`AUTO_ORDER` and what is available."""
    name = requested or settings.llm
    if name != AUTO:
        if name not in BACKENDS:
            raise ValueError(f"unknown answer backend {name!r}; known: {', '.join(names())}")
        return name
    return next(n for n in AUTO_ORDER if BACKENDS[n].available(settings))


def build(name: str, settings: Settings) -> Generator:
    """A new generator for a backend; the service keeps one per backend for its lifetime."""
    return importlib.import_module(BACKENDS[name].module).build(settings)
