"""What the service hands back, typed: a hit, a citation, an answer, a stream event.

The HTTP API uses these as ``response_model``s (so ``/docs`` documents every response), and the
UI, the CLI and the evaluation read their attributes instead of string keys, so a renamed field
fails loudly in one place rather than quietly in four.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ingest.normalise import Script


class Location(BaseModel):
    """Where a passage lies in its original file, so a reader can check the citation."""

    start: int = Field(description="Character offset in the original text.")
    end: int
    line_start: int = Field(description="1-based line in the original text.")
    line_end: int
    page: int | None = Field(default=None, description="1-based PDF page, when known.")


class Source(BaseModel):
    """One retrieved passage, numbered as the answer cites it (``[n]``)."""

    n: int
    id: str
    doc: str = Field(description="File name of the document.")
    doc_id: str
    heading: str = Field(description="Heading path of the passage, e.g. 「第三章 … > 二、…」.")
    text: str = Field(description="The passage as written in the document (its own script).")
    score: float = Field(description="Fused reciprocal-rank score.")
    dense_score: float | None = Field(default=None, description="Best cosine over the query variants.")
    keyword_score: float | None = Field(default=None, description="BM25 score of the word ranking.")
    location: Location


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


class RetrieveResult(BaseModel):
    hits: list[Source]


class QuestionEvent(BaseModel):
    """First event of a stream: the understood question and the sources, before any token."""

    type: Literal["question"] = "question"
    question: str
    found: bool
    sources: list[Source]


class TokenEvent(BaseModel):
    type: Literal["token"] = "token"
    text: str


class FinalEvent(Answer):
    """Last event of a stream: the checked answer; the joined token texts equal ``answer``."""

    type: Literal["final"] = "final"


StreamEvent = QuestionEvent | TokenEvent | FinalEvent
