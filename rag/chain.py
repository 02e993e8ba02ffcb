"""The answer chain, readable top to bottom:

    prepare (validate, detect script, condense) | retrieve | rerank | decide | generate | post_check

Each step is a named function over one :class:`Turn` and is testable alone. The chain is an
LCEL ``Runnable``; streaming runs the same first three steps, streams the generator, then runs
the same post-check, so the two paths cannot drift apart.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda

from rag.condense import condense_by_rules, history_text, last_user_message
from rag.config import Settings
from rag.embeddings import EmbeddingModel
from rag.errors import EmptyQuestion, InvalidText, QuestionTooLong
from rag.generate.base import AnswerRequest, GenerationError, Generator
from rag.generate.extractive import ExtractiveGenerator
from rag.normalise import Script, compact, detect_script, to_script
from rag.prompts import load_prompt
from rag.retrieve import Hit, Query, hybrid_search
from rag.sentences import split_sentences
from rag.store.snapshot import Snapshot
from rag.support import content_tokens, idf, missing_specifics, support_score

_CITATION = re.compile(r"\[(\d{1,2})\]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
SHORT_FOLLOW_UP = 12  # characters: shorter questions after a conversation may lean on it
_REFUSAL_MARK = ("没有提到", "沒有提到", "无法回答", "無法回答", "未提及", "没有相关", "沒有相關")


@dataclass
class Turn:
    """Everything one question accumulates on its way through the chain."""

    asked: str
    history: Sequence[Mapping[str, str]] = ()
    top_k: int = 5
    question: str = ""
    script: Script = "neutral"
    query: Query | None = None
    hits: list[Hit] = field(default_factory=list)
    support: float = 0.0
    missing: list[str] = field(default_factory=list)  # numbers/units/nouns asked for that no source has
    found: bool = False
    weights: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    answer: str = ""
    notes: list[str] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def clean_question(text: str, limit: int) -> str:
    """Reject empty, over-long or invalid (lone-surrogate) questions with a clear error."""
    if _SURROGATES.search(text or ""):
        raise InvalidText(
            "The question is not valid Unicode (it holds a lone surrogate such as \\ud800); send UTF-8 text."
        )
    text = (text or "").replace("\x00", "").strip()
    if not text:
        raise EmptyQuestion("The question is empty.")
    if len(text) > limit:
        raise QuestionTooLong(f"The question has {len(text)} characters; the limit is {limit}.")
    return text


# A reranker reorders retrieved hits for a question (e.g. a cross-encoder, where one is available);
# it gets the whole candidate pool and the chain keeps its top_k.
Reranker = Callable[[str, list[Hit]], list[Hit]]


@dataclass
class AnswerChain:
    """The steps, bound to one index snapshot, model, generator and settings."""

    snapshot: Snapshot
    model: EmbeddingModel
    generator: Generator
    settings: Settings
    reranker: Reranker | None = None

    # -- steps -------------------------------------------------------------------------------
    def prepare(self, turn: Turn) -> Turn:
        started = time.perf_counter()
        turn.asked = clean_question(turn.asked, self.settings.max_question_chars)
        turn.script = detect_script(turn.asked)
        if turn.script == "neutral" and turn.history:
            previous = last_user_message(turn.history)
            turn.script = detect_script(previous) if previous else "neutral"
        turn.question = self.condense(turn)
        turn.timings["condense"] = time.perf_counter() - started
        return turn

    def condense(self, turn: Turn) -> str:
        """Rules first (instant, deterministic); an LLM backend gets the condense prompt only for
        a short follow-up the rules could not place."""
        if not turn.history:
            return turn.asked
        by_rules = condense_by_rules(turn.asked, turn.history)
        if by_rules is not None:
            return by_rules
        if isinstance(self.generator, ExtractiveGenerator) or len(turn.asked) > SHORT_FOLLOW_UP:
            return turn.asked
        prompt = load_prompt("condense", turn.script).format(history=history_text(turn.history), question=turn.asked)
        try:
            rewritten = self.generator.complete(prompt, turn.script).strip().splitlines()
        except GenerationError:
            return turn.asked
        return (rewritten[0].strip() if rewritten else "")[: self.settings.max_question_chars] or turn.asked

    def retrieve(self, turn: Turn) -> Turn:
        started = time.perf_counter()
        turn.query = Query.from_question(turn.question)
        pool = max(turn.top_k, self.settings.candidate_k) if self.reranker else turn.top_k
        turn.hits = hybrid_search(
            self.snapshot,
            self.model,
            turn.query,
            pool,
            self.settings.candidate_k,
            self.settings.rrf_k,
        )
        turn.timings["retrieve"] = time.perf_counter() - started
        return turn

    def rerank(self, turn: Turn) -> Turn:
        """The optional rerank hook: without a reranker the fused ranking stands."""
        if self.reranker is not None:
            started = time.perf_counter()
            turn.hits = list(self.reranker(turn.question, turn.hits))[: turn.top_k]
            turn.timings["rerank"] = time.perf_counter() - started
        return turn

    def decide(self, turn: Turn) -> Turn:
        assert turn.query is not None
        turn.support = support_score(turn.query, turn.hits, self.snapshot)
        turn.missing = missing_specifics(turn.query, turn.hits)
        turn.found = bool(turn.hits) and not turn.missing and turn.support >= self.settings.found_threshold
        variant = turn.query.variants[0]
        turn.weights = {t: idf(t, self.snapshot) for t in dict.fromkeys(content_tokens(variant))}
        return turn

    def generate(self, turn: Turn) -> Turn:
        turn.answer = "".join(self.stream_answer(turn))
        return turn

    def post_check(self, turn: Turn) -> Turn:
        """Keep only citations that point at a returned source, make sure a found answer cites
        something, detect an LLM's own refusal, and render the answer in the asker's script."""
        answer = _CITATION.sub(
            lambda m: m.group(0) if 1 <= int(m.group(1)) <= len(turn.hits) else "", turn.answer
        ).strip()
        if turn.found and turn.backend != "extractive" and any(m in answer for m in _REFUSAL_MARK):
            turn.found = False  # the model says the sources don't answer it: no citations then
            answer = _CITATION.sub("", answer).strip()
        if turn.found and not turn.backend.startswith("extractive") and not _has_content(answer):
            # Small models sometimes answer with citation markers only (「[1] [2] [3]」).
            answer = self.extractive_instead(turn, "模型的回答只有引用標記，沒有內容")
        if turn.found and not _CITATION.search(answer) and turn.hits:
            answer = cite_by_overlap(answer, turn.hits)
        turn.answer = to_script(answer, turn.script) if turn.script != "neutral" else answer
        turn.notes = [to_script(n, turn.script) for n in turn.notes] if turn.script != "neutral" else turn.notes
        turn.citations = citations_for(turn.answer, turn.hits) if turn.found else []
        return turn

    # -- generation with fallback ---------------------------------------------------------------
    def stream_answer(self, turn: Turn) -> Iterator[str]:
        """Answer text in pieces: a refusal, the generator's answer, or the extractive fallback."""
        started = time.perf_counter()
        turn.backend = self.generator.name
        if not turn.found:
            turn.timings["generate"] = time.perf_counter() - started
            yield load_prompt("refusal", turn.script).format(question=turn.question)
            return
        request = AnswerRequest(turn.question, turn.script, turn.hits, turn.weights, turn.history)
        if turn.backend == "extractive":
            turn.notes.append(load_prompt("note_extractive", turn.script))
        pieces = self.generator.stream(request)
        if turn.backend != "extractive":
            pieces = cite_as_streamed(pieces, turn.hits)
        try:
            for i, piece in enumerate(pieces):
                if i == 0:
                    turn.timings["first_token"] = time.perf_counter() - started
                yield piece
        except GenerationError as exc:
            yield self.extractive_instead(turn, str(exc)[:160])
        turn.timings["generate"] = time.perf_counter() - started

    def extractive_instead(self, turn: Turn, reason: str) -> str:
        """The extractive answer in place of the generator's, with a note saying why."""
        turn.notes.append(load_prompt("note_fallback", turn.script).format(reason=reason))
        turn.backend = f"extractive (fallback from {turn.backend})"
        request = AnswerRequest(turn.question, turn.script, turn.hits, turn.weights, turn.history)
        return "".join(ExtractiveGenerator().stream(request))

    # -- composition -----------------------------------------------------------------------------
    def before_generation(self) -> Runnable[Turn, Turn]:
        return (
            RunnableLambda(self.prepare, name="prepare")
            | RunnableLambda(self.retrieve, name="retrieve")
            | RunnableLambda(self.rerank, name="rerank")
            | RunnableLambda(self.decide, name="decide")
        )

    def runnable(self) -> Runnable[Turn, Turn]:
        return (
            self.before_generation()
            | RunnableLambda(self.generate, name="generate")
            | RunnableLambda(self.post_check, name="post_check")
        )


def _has_content(answer: str) -> bool:
    """Whether an answer says anything once its citation markers are taken out."""
    return len(re.sub(r"[\W_]+", "", _CITATION.sub("", answer))) >= 2


# Where a sentence ends (as in rag.sentences, less ASCII "..."): a citation goes before these.
_END_MARK_CHARS = frozenset("。！？；!?;…\n")
_CLOSERS = frozenset("」』”’）)】〕》")


def cite_as_streamed(pieces: Iterator[str], hits: Sequence[Hit]) -> Iterator[str]:
    """A model's streamed text, passed on as it comes, with a citation put before the end mark of
    each sentence the model did not cite (「…的作用[1]。」), so a streaming client sees the same
    [n] markers as the final answer. Only an end mark is held back, until the next character shows
    whether the model cites after it (「…。[1]」) or starts a new sentence."""
    sentence = ""  # the current sentence, already passed on (except a held end mark)
    held = ""  # end mark, closing quotes and a citation the model may be writing after them

    def close() -> str:
        nonlocal sentence, held
        cited = _CITATION.search(sentence + held) is not None
        source = None if cited or not _has_content(sentence) else best_source_for(sentence, hits)
        out = (f"[{source}]" if source is not None else "") + held
        sentence, held = "", ""
        return out

    for piece in pieces:
        out = []
        for ch in piece:
            if held and (ch in _END_MARK_CHARS or ch in _CLOSERS or ch == "[" or "[" in held):
                held += ch
                if ch == "]":  # the model's own citation after the end mark: the sentence is cited
                    out.append(held)
                    sentence, held = "", ""
                continue
            if held:
                out.append(close())
            if ch in _END_MARK_CHARS:
                held = ch
            else:
                sentence += ch
                out.append(ch)
        if out:
            yield "".join(out)
    tail = close() if held or (sentence and not _CITATION.search(sentence)) else ""
    if tail:
        yield tail


def cite_by_overlap(answer: str, hits: Sequence[Hit]) -> str:
    """Cite each uncited sentence of a whole answer, by the same rule as a streamed one."""
    return "".join(cite_as_streamed(iter([answer]), hits))


def best_source_for(text: str, hits: Sequence[Hit]) -> int | None:
    """The source (1-based) sharing the most characters with a text, or None when none shares any."""
    chars = set(compact(text))
    scores = [len(chars & set(compact(h.chunk.text))) for h in hits]
    best = max(range(len(hits)), key=scores.__getitem__, default=None)
    return None if best is None or scores[best] == 0 else best + 1


def best_quote(claim: str, passage: str) -> str:
    """The sentence of ``passage`` that a citing sentence leans on: most characters in common.

    Shared by :func:`citations_for` and the UI (the hover text of each ``[n]``), so what a marker
    shows and what the sources panel highlights are the same sentence.
    """
    claim_chars = set(compact(_CITATION.sub("", claim)))
    spans = split_sentences(passage) or [(0, len(passage))]
    best = max(spans, key=lambda s: len(claim_chars & set(compact(passage[s[0] : s[1]]))))
    return passage[best[0] : best[1]].strip()


def citations_for(answer: str, hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """One entry per cited source: which document, where, and the sentences of it that the answer
    leans on (for highlighting): ``quote`` for the first citing sentence, ``quotes`` for all of them
    (each answer sentence citing the source adds the passage sentence closest to it)."""
    out: dict[int, dict[str, Any]] = {}
    for start, end in split_sentences(answer):
        sentence = answer[start:end]
        for match in _CITATION.finditer(sentence):
            n = int(match.group(1))
            if not 1 <= n <= len(hits):
                continue
            chunk = hits[n - 1].chunk
            quote = best_quote(sentence, chunk.text)
            if n in out:
                if quote not in out[n]["quotes"]:
                    out[n]["quotes"].append(quote)
                continue
            out[n] = {
                "n": n,
                "id": chunk.id,
                "doc": chunk.doc,
                "doc_id": chunk.doc_id,
                "heading": chunk.heading,
                "quote": quote,
                "quotes": [quote],
                "location": chunk.location.__dict__,
            }
    return [out[n] for n in sorted(out)]
