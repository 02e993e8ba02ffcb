"""The answer chain, readable top to bottom:

    prepare (validate, detect script, condense) | retrieve | rerank | decide | generate | post_check

Each step is a named function over one :class:`Turn` and is testable alone. The chain is an
LCEL ``Runnable``; streaming runs the same first three steps, streams the generator, then runs
the same post-check, so the two paths cannot drift apart.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from langchain_core.runnables import Runnable, RunnableLambda

from ingest.normalise import Script, canonical, detect_script, stream_to_script, to_script
from rag.bare_question import small_talk
from rag.cite import CITATION, citations_for, cite_as_streamed, cite_by_overlap, has_content
from rag.condense import conversation_script, history_text, resolved_pronoun, rewrite_by_rules
from rag.config import Settings
from rag.decide import decide, evidence_is_strong
from rag.embeddings import EmbeddingModel
from rag.errors import EmptyQuestion, InvalidText, QuestionTooLong
from rag.followup import (
    PREVIOUS_SOURCES,
    carried_positions,
    carried_weight,
    decision_text,
    previous_questions,
    retrieval_queries,
    valid_condensed,
)
from rag.generate.base import AnswerRequest, GenerationError, GenerationOptions, Generator
from rag.generate.extractive import ExtractiveGenerator
from rag.prompts import load_prompt
from rag.rerank import Reranker
from rag.results import Citation
from rag.retrieve import Hit, Query, chunk_positions, fused_search
from rag.store.base import IndexVersion
from rag.support import content_tokens, idf

_SURROGATES = re.compile(r"[\ud800-\udfff]")
INHERITED_WEIGHT = 0.3  # a word a follow-up inherits from the conversation, relative to its own words
SHORT_FOLLOW_UP = 12  # characters: shorter questions after a conversation may lean on it
_REFUSAL_MARK = (
    "没有提到", "沒有提到", "没有提及", "沒有提及", "无法回答", "無法回答", "未提及", "未提到",
    "没有相关", "沒有相關", "未提供", "没有说明", "沒有說明",
)  # fmt: skip


@dataclass
class Turn:
    """Everything one question accumulates on its way through the chain."""

    asked: str
    history: Sequence[Mapping[str, str]] = ()
    top_k: int = 5
    options: GenerationOptions = field(default_factory=GenerationOptions)
    question: str = ""  # the question as understood: a trusted rewrite of a follow-up, else as asked
    script: Script = "neutral"
    searches: list[tuple[str, float]] = field(default_factory=list)  # texts searched, with fusion weights
    query: Query | None = None  # what the found/refuse decision measures
    own: float | None = None  # support of a follow-up's own new words
    hits: list[Hit] = field(default_factory=list)
    support: float = 0.0
    missing: list[str] = field(default_factory=list)  # numbers/units/nouns asked for that no source has
    small_talk: str | None = None  # thanks, a greeting or an acknowledgement: nothing to search
    found: bool = False
    weights: tuple[dict[str, float], ...] = ()
    backend: str = ""
    answer: str = ""
    notes: list[str] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
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


@dataclass
class AnswerChain:
    """The steps, bound to one index snapshot, model, generator and settings."""

    snapshot: IndexVersion
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
            turn.script = conversation_script(turn.history)
        turn.small_talk = small_talk(turn.asked)
        turn.question = turn.asked if turn.small_talk else self.condense(turn)
        turn.timings["condense"] = time.perf_counter() - started
        return turn

    def condense(self, turn: Turn) -> str:
        """The question as understood, shown as 「已理解為…」 when it differs from what was asked.

        A trusted rule rewrite first (instant, deterministic); otherwise an LLM backend may
        rewrite a follow-up that leans on the conversation, and its rewrite is kept only when it
        passes :func:`rag.followup.valid_condensed`. Retrieval never depends on this alone."""
        if not turn.history:
            return turn.asked
        by_rules = rewrite_by_rules(turn.asked, turn.history)
        if by_rules is not None and by_rules[1]:
            return by_rules[0]
        if isinstance(self.generator, ExtractiveGenerator) or len(turn.asked) > SHORT_FOLLOW_UP:
            return turn.asked
        prompt = load_prompt("condense", turn.script).format(history=history_text(turn.history), question=turn.asked)
        try:
            rewritten = self.generator.complete(prompt, turn.script).strip().splitlines()
        except GenerationError:
            return turn.asked
        first = rewritten[0].strip() if rewritten else ""
        if not valid_condensed(first, turn.asked, turn.script, self.settings.max_question_chars):
            return turn.asked
        return first

    def retrieve(self, turn: Turn) -> Turn:
        """Search the question and, for a follow-up, the question joined with the conversation;
        fuse the rankings (see :mod:`rag.followup`)."""
        started = time.perf_counter()
        if turn.small_talk:  # 「謝謝！」 asks the documents nothing
            turn.query = Query.from_question(turn.asked)
            return turn
        understood = turn.question if turn.question != turn.asked else None
        turn.searches = retrieval_queries(turn.asked, turn.history, self.settings.history_chars, understood)
        turn.query = Query.from_question(decision_text(turn.asked, turn.history, understood))
        pool = max(turn.top_k, self.settings.candidate_k) if self.reranker else turn.top_k
        turn.hits = fused_search(
            self.snapshot,
            self.model,
            [(Query.from_question(text), weight) for text, weight in turn.searches],
            pool,
            self.settings.candidate_k,
            self.settings.rrf_k,
            self.settings.signal_weights,
            carried=self.carried(turn),
        )
        turn.timings["retrieve"] = time.perf_counter() - started
        return turn

    def carried(self, turn: Turn) -> tuple[list[int], float]:
        """The passages the previous question found and their neighbours, as one more ranking for
        a follow-up (see :func:`rag.followup.carried_positions`); nothing for a first question."""
        weight = carried_weight(turn.asked)
        previous = previous_questions(turn.history, 1) if self.settings.history_chars > 0 and weight else []
        if not previous:
            return [], 0.0
        found = fused_search(
            self.snapshot,
            self.model,
            [(Query.from_question(previous[0]), 1.0)],
            PREVIOUS_SOURCES,
            self.settings.candidate_k,
            self.settings.rrf_k,
            self.settings.signal_weights,
        )
        where = chunk_positions(self.snapshot)
        return carried_positions([where[h.chunk.id] for h in found], self.snapshot.chunks), weight

    def rerank(self, turn: Turn) -> Turn:
        """The optional rerank hook: without a reranker the fused ranking stands."""
        if self.reranker is not None:
            started = time.perf_counter()
            turn.hits = list(self.reranker(turn.question, turn.hits))[: turn.top_k]
            turn.timings["rerank"] = time.perf_counter() - started
        return turn

    def decide(self, turn: Turn) -> Turn:
        assert turn.query is not None
        if turn.small_talk:
            turn.found = False
            return turn
        asked = Query.from_question(turn.asked)
        follow_up = bool(turn.history) and turn.query.variants[0] != asked.variants[0]
        context = canonical("".join(str(m.get("content", "")) for m in turn.history)) if follow_up else ""
        decision = decide(
            turn.query,
            turn.hits,
            self.snapshot,
            self.settings.found_threshold,
            asked=asked if follow_up else None,
            context=context,
            earlier=previous_questions(turn.history, 3) if follow_up else (),
        )
        turn.found, turn.support, turn.missing, turn.own = (
            decision.found,
            decision.support,
            decision.missing,
            decision.own_support,
        )
        named = referent_tokens(turn.asked, turn.question, turn.history) if follow_up else frozenset()
        turn.weights = self.question_weights(turn.query, asked if follow_up else None, named)
        return turn

    def question_weights(
        self, query: Query, asked: Query | None, named: frozenset[str] = frozenset()
    ) -> tuple[dict[str, float], ...]:
        """IDF weight of each content word, for choosing the sentences that answer: one mapping per
        wording of the question (the plain one and its vocabulary variants), so a Mainland word
        meets its Taiwan twin in the sources as it does in retrieval. A follow-up's own words weigh
        in full, and so do the ``named`` words that stand for its pronoun (see
        :func:`referent_tokens`); words it only inherits from the conversation weigh less, or the
        answer would drift back to what the previous turn already answered."""
        own = {t for v in asked.variants for t in content_tokens(v)} | named if asked is not None else set()
        wordings = []
        for variant, direction in zip(query.variants, query.directions(), strict=True):
            weights = {t: idf(t, self.snapshot) for t in dict.fromkeys(content_tokens(variant))}
            if asked is not None:
                weights = {t: w if t in own else INHERITED_WEIGHT * w for t, w in weights.items()}
                asked_variant = asked.wording(direction)
                weights.update({t: idf(t, self.snapshot) for t in content_tokens(asked_variant) if t not in weights})
            wordings.append(weights)
        return tuple(wordings)

    def generate(self, turn: Turn) -> Turn:
        turn.answer = "".join(self.stream_answer(turn))
        return turn

    def post_check(self, turn: Turn) -> Turn:
        """Keep only citations that point at a returned source, make sure a found answer cites
        something, detect an LLM's own refusal, and render the answer in the asker's script."""
        answer = CITATION.sub(
            lambda m: m.group(0) if 1 <= int(m.group(1)) <= len(turn.hits) else "", turn.answer
        ).strip()
        if turn.found and not turn.backend.startswith("extractive") and _is_refusal(answer):
            if evidence_is_strong(turn.support, self.settings.found_threshold):
                # The model says the sources are silent, but they plainly hold the question's words.
                answer = self.extractive_instead(turn, "模型認為文件沒有答案，但文件中有高度相關的句子")
            else:
                turn.found = False  # the model says the sources don't answer it: no citations then
                answer = load_prompt("refusal", turn.script).format(question=turn.question)
        if turn.found and not turn.backend.startswith("extractive") and not has_content(answer):
            # Small models sometimes answer with citation markers only (「[1] [2] [3]」).
            answer = self.extractive_instead(turn, "模型的回答只有引用標記，沒有內容")
        if turn.found and not CITATION.search(answer) and turn.hits:
            answer = cite_by_overlap(answer, turn.hits)
        turn.answer = "".join(stream_to_script([answer], turn.script))
        turn.notes = [to_script(n, turn.script) for n in turn.notes] if turn.script != "neutral" else turn.notes
        turn.citations = citations_for(turn.answer, turn.hits) if turn.found else []
        return turn

    # -- generation with fallback ---------------------------------------------------------------
    def stream_answer(self, turn: Turn) -> Iterator[str]:
        """Answer text in pieces, in the asker's script: the same text as the final answer when the
        post-check leaves it alone (see :func:`ingest.normalise.stream_to_script`)."""
        return stream_to_script(self.raw_stream(turn), turn.script)

    def raw_stream(self, turn: Turn) -> Iterator[str]:
        """Answer text in pieces: a refusal, the generator's answer, or the extractive fallback."""
        started = time.perf_counter()
        turn.backend = self.generator.name
        if not turn.found:
            turn.timings["generate"] = time.perf_counter() - started
            if turn.small_talk:
                yield load_prompt(f"small_talk_{turn.small_talk}", turn.script)
            else:
                yield load_prompt("refusal", turn.script).format(question=turn.question)
            return
        request = AnswerRequest(turn.question, turn.script, turn.hits, turn.weights, turn.history, turn.options)
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


def referent_tokens(asked: str, understood: str, history: Sequence[Mapping[str, str]]) -> frozenset[str]:
    """The content words the rules put in place of the follow-up's pronoun (「這個品牌」 → Chloé):
    the follow-up asks about that name as much as about its own words, so it is not an inherited
    word. Empty unless ``understood`` is exactly that rewrite."""
    if understood == asked or resolved_pronoun(asked, history) != understood:
        return frozenset()
    return frozenset(content_tokens(canonical(understood))) - frozenset(content_tokens(canonical(asked)))


def _is_refusal(answer: str) -> bool:
    """An LLM's answer that says the sources do not answer the question."""
    return any(mark in answer for mark in _REFUSAL_MARK)
