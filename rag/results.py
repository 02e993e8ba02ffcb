"""What the service hands back, typed: a hit, a citation, an answer, a stream event.

The HTTP API uses these as ``response_model``s (so ``/docs`` documents every response), and the
UI, the CLI and the evaluation read their attributes instead of string keys, so a renamed field
fails loudly in one place rather than quietly in four.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self

from pydantic import BaseModel, Field

from ingest.normalise import Script

if TYPE_CHECKING:
    from ingest.pipeline import Location as ChunkLocation
    from rag.chain import Turn
    from rag.retrieve import Hit


class Location(BaseModel):
    """Where a passage lies in its original file, so a reader can check the citation."""

    start: int = Field(description="Character offset in the original text.")
    end: int
    line_start: int = Field(description="1-based line in the original text.")
    line_end: int
    page: int | None = Field(default=None, description="1-based PDF page, when known.")

    @classmethod
    def of(cls, location: ChunkLocation) -> Location:
        return cls(**asdict(location))


class Source(BaseModel):
    """One retrieved passage, numbered as the answer cites it (``[n]``)."""

    n: int
    id: str
    doc: str = Field(description="File name of the document.")
    doc_id: str
    # A default only for sources stored before titles existed (conversations the browser kept).
    title: str = Field(default="", description="Title of the document (see GET /api/documents/{doc_id}).")
    heading: str = Field(description="Heading path of the passage, e.g. 「第三章 … > 二、…」.")
    text: str = Field(description="The passage as written in the document (its own script).")
    score: float = Field(description="Fused reciprocal-rank score.")
    dense_score: float | None = Field(default=None, description="Best cosine to the question.")
    keyword_score: float | None = Field(default=None, description="BM25 score of the word ranking.")
    location: Location

    @classmethod
    def from_hit(cls, hit: Hit, n: int, title: str) -> Source:
        """The ``n``-th hit of a ranking (1-based), scores rounded as every surface shows them.

        Every field is passed, none left to its default: the OpenAI route dumps with
        ``exclude_unset`` (to leave out OpenAI's unused optional fields), which would otherwise
        drop a defaulted ``None`` score from the JSON."""
        chunk = hit.chunk
        return cls(
            n=n,
            id=chunk.id,
            doc=chunk.doc,
            doc_id=chunk.doc_id,
            title=title,
            heading=chunk.heading,
            text=chunk.text,
            score=round(hit.score, 6),
            dense_score=None if hit.dense is None else round(hit.dense, 4),
            keyword_score=None if hit.keyword is None else round(hit.keyword, 4),
            location=Location.of(chunk.location),
        )


def numbered(hits: list[Hit], titles: Mapping[str, str]) -> list[Source]:
    """Hits as the sources an answer cites: ``[1]`` is the first. ``titles`` (doc_id -> title)
    come from the index version the hits were found in; a document missing from it is called by
    its file name."""
    return [
        Source.from_hit(h, n, titles.get(h.chunk.doc_id) or Path(h.chunk.doc).stem) for n, h in enumerate(hits, start=1)
    ]


class Citation(BaseModel):
    """A source the answer cites, with the sentences of it the answer leans on (for highlighting)."""

    n: int
    id: str
    doc: str
    doc_id: str = ""
    heading: str
    quote: str = Field(description="The passage sentence closest to the first sentence citing it.")
    quotes: list[str] = Field(default_factory=list, description="One passage sentence per citing sentence.")
    location: Location


class Answer(BaseModel):
    answer: str
    found: bool = Field(description="False when the documents do not answer the question (a refusal).")
    question: str = Field(description="The question as understood (a follow-up made standalone).")
    asked: str = Field(description="The question as asked.")
    script: Script
    backend: str
    notes: list[str] = Field(default_factory=list)
    support: float
    missing: list[str] = Field(default_factory=list, description="Specifics asked for that no source holds.")
    sources: list[Source]
    citations: list[Citation]
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds per chain step.")
    small_talk: str | None = Field(
        default=None,
        description="`thanks`, `greeting` or `acknowledgement` when the message asked the documents "
        "nothing (「謝謝！」): no search was made and the answer is a short reply.",
    )

    @classmethod
    def from_turn(cls, turn: Turn, titles: Mapping[str, str]) -> Self:
        """What a finished chain turn tells its caller: support rounded, timings in milliseconds
        (a :class:`FinalEvent` too: its ``type`` has a default)."""
        return cls(
            answer=turn.answer,
            found=turn.found,
            question=turn.question,
            asked=turn.asked,
            script=turn.script,
            backend=turn.backend,
            notes=list(turn.notes),
            support=round(turn.support, 4),
            missing=list(turn.missing),
            sources=numbered(turn.hits, titles),
            citations=list(turn.citations),
            timings={k: round(v * 1000, 1) for k, v in turn.timings.items()},
            small_talk=turn.small_talk,
        )


class RetrieveResult(BaseModel):
    hits: list[Source]


class QuestionEvent(BaseModel):
    """First event of a stream: the understood question and the sources, before any token."""

    type: Literal["question"] = "question"
    question: str
    found: bool
    sources: list[Source]
    small_talk: str | None = Field(default=None, description="As in the final answer: set when nothing was searched.")


class TokenEvent(BaseModel):
    type: Literal["token"] = "token"
    text: str


class FinalEvent(Answer):
    """Last event of a stream: the checked answer; the joined token texts equal ``answer``."""

    type: Literal["final"] = "final"


StreamEvent = QuestionEvent | TokenEvent | FinalEvent
