"""The one seam every answer generator plugs into.

A backend is one small file (``extractive.py``, ``openai_chat.py``, ``local.py``) and
``factory.py`` picks one from configuration: adding a backend adds a file, not an ``if`` in the
chain.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ingest.normalise import Script
from rag.evidence import Weights
from rag.retrieve import Hit


@dataclass(frozen=True)
class GenerationOptions:
    """What a client may ask of a language model for one answer (OpenAI's request fields); a
    backend without a model (extractive) has nothing to tune and ignores them."""

    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class AnswerRequest:
    question: str  # standalone (condensed) question, in the asker's script
    script: Script
    hits: Sequence[Hit]  # the sources, numbered from 1 in this order
    weights: Weights  # IDF weight of each content word, per wording of the question (rag.evidence)
    history: Sequence[Mapping[str, str]] = field(default_factory=tuple)
    options: GenerationOptions = field(default_factory=GenerationOptions)


class GenerationError(RuntimeError):
    """The backend could not answer (unreachable, timed out, broken output): fall back."""


class Generator(ABC):
    name: str

    @abstractmethod
    def stream(self, request: AnswerRequest) -> Iterator[str]:
        """Yield the answer text in pieces; may cite sources as [n]."""

    def complete(self, prompt: str, script: Script) -> str:
        """A one-off completion (used to condense follow-up questions); LLM backends only."""
        raise GenerationError(f"{self.name} cannot complete free prompts")
