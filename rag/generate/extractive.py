"""No language model: quote the best-supported sentences, each with its citation. Instant."""

from __future__ import annotations

from collections.abc import Iterator

from ingest.normalise import to_script
from rag.config import Settings
from rag.evidence import select_evidence
from rag.generate.base import AnswerRequest, Generator
from rag.prompts import load_prompt


def _quoted(text: str) -> str:
    """「…」, or 『…』 when the sentence has 「」 of its own (no doubled brackets)."""
    return f"『{text}』" if "「" in text or "」" in text else f"「{text}」"


class ExtractiveGenerator(Generator):
    name = "extractive"

    def stream(self, request: AnswerRequest) -> Iterator[str]:
        evidence = select_evidence(request.hits, request.weights)
        quotes = "".join(f"{_quoted(to_script(ev.text, request.script))}[{ev.source}]" for ev in evidence)
        yield load_prompt("extractive", request.script).format(quotes=quotes)


def build(_settings: Settings) -> ExtractiveGenerator:
    return ExtractiveGenerator()
