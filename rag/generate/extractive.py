"""No language model: quote the document, answer first. Instant.

The answer leads with the shortest clause that answers (the one holding the asked-for figure or
list, see :func:`rag.evidence.answer_span`), then the sentences it comes from, each with its
citation; every quote is verbatim from the document. A table row is quoted with its header line.
"""

from __future__ import annotations

from collections.abc import Iterator

from ingest.normalise import to_script
from rag.config import Settings
from rag.evidence import answer_span, answer_unit, asked_kind, select_evidence
from rag.generate.base import AnswerRequest, Generator
from rag.prompts import load_prompt


def _quoted(text: str) -> str:
    """「…」, or 『…』 when the sentence has 「」 of its own (no doubled brackets)."""
    return f"『{text}』" if "「" in text or "」" in text else f"「{text}」"


class ExtractiveGenerator(Generator):
    name = "extractive"

    def stream(self, request: AnswerRequest) -> Iterator[str]:
        kind = asked_kind(request.question)
        unit = answer_unit(request.question) if kind == "figure" else None
        evidence = select_evidence(request.hits, request.weights, kind=kind, unit=unit)
        parts = []
        if evidence:
            best = evidence[0]
            span = answer_span(best.text, request.weights, kind, unit)
            if span != best.text:
                parts.append(f"{_quoted(span)}[{best.source}]；")
        for ev in evidence:
            quote = f"{ev.context}\n{ev.text}" if ev.context else ev.text
            parts.append(f"{_quoted(quote)}[{ev.source}]")
        yield load_prompt("extractive", request.script).format(quotes=to_script("".join(parts), request.script))


def build(_settings: Settings) -> ExtractiveGenerator:
    return ExtractiveGenerator()
