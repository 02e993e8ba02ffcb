"""What the page shows of an answer, typed: the one shape ``ui.render`` draws.

It comes from three places: the service's :class:`~rag.results.Answer` (or the ``final`` stream
event), the ``question`` stream event (sources before any answer text), and a turn restored from
the browser's storage (``ui.conversations``). A stored turn may be older than a field (it gets the
default) or carry keys of the page's own (``typed``, ``error``, ``stopped``); a field an older
version stored differently is dropped rather than losing the whole turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag.results import Answer, Citation, QuestionEvent, Source

# Enough rounds to drop every bad field of a stored turn (there are fewer fields than this).
_MAX_REPAIRS = 16


class AnswerView(BaseModel):
    """An answer as the page renders it; every field has a default (a question event has no
    answer text yet, an error turn no sources)."""

    model_config = ConfigDict(extra="ignore")

    answer: str = ""
    found: bool = False
    question: str = Field(default="", description="The question as understood (shown when it differs).")
    backend: str = ""
    notes: list[str] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    small_talk: str | None = Field(default=None, description="Set when the message asked nothing of the documents.")
    typed: str = Field(default="", description="The question as the reader typed it (stored turns).")
    error: str | None = None

    @classmethod
    def of(cls, result: Shown) -> AnswerView:
        """The view of a service result (its models are reused, not copied) or of stored JSON."""
        if isinstance(result, AnswerView):
            return result
        if isinstance(result, Answer | QuestionEvent):
            return cls.model_validate(result, from_attributes=True)
        return cls.read(result)

    @classmethod
    def read(cls, stored: Any) -> AnswerView:
        """A turn's stored result (JSON from the browser), tolerating old or damaged fields."""
        data = dict(stored) if isinstance(stored, Mapping) else {}
        for _ in range(_MAX_REPAIRS):
            try:
                return cls.model_validate(data)
            except ValidationError as exc:
                bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
                if not bad & data.keys():
                    break
                data = {k: v for k, v in data.items() if k not in bad}
        return cls()

    def stored(self, keys: tuple[str, ...]) -> dict[str, Any]:
        """The JSON kept in the browser for this answer: ``keys`` that were given, not defaults."""
        return self.model_dump(mode="json", include=set(keys), exclude_unset=True)


Shown = AnswerView | Answer | QuestionEvent | Mapping[str, Any]
"""Anything ``ui.render`` accepts as an answer: the service's models or a stored turn."""
