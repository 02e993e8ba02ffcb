"""Any OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp server, OpenAI) via langchain."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from ingest.normalise import Script
from rag.config import Settings
from rag.errors import TongwenError
from rag.evidence import select_evidence
from rag.generate.base import AnswerRequest, GenerationError, Generator
from rag.prompts import load_prompt


def format_sources(request: AnswerRequest, max_chars: int) -> str:
    """Numbered sources, each reduced to its sentences that bear on the question.

    Sending whole chunks to a CPU model costs seconds per source; the selected sentences keep
    the numbers and names the answer needs.
    """
    evidence = select_evidence(request.hits, request.weights, max_sentences=6, max_chars=max_chars)
    by_source: dict[int, list[str]] = {}
    for ev in sorted(evidence, key=lambda e: e.source):
        by_source.setdefault(ev.source, []).append(ev.text)
    lines = []
    for n, sentences in by_source.items():
        hit = request.hits[n - 1]
        lines.append(f"[{n}]《{hit.chunk.doc}》{hit.chunk.heading}：{''.join(sentences)}")
    return "\n".join(lines)


class OpenAIChatGenerator(Generator):
    name = "openai"
    context_chars = 1200
    # Prompt files (prompts/<name>.<script>.md): the full rules suit instruction-following models.
    system_prompt = "system"
    answer_prompt = "answer"

    def __init__(self, base_url: str, model: str, api_key: str, timeout: float, max_tokens: int) -> None:
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_tokens = max_tokens

    @cached_property
    def chat(self) -> ChatOpenAI:
        return ChatOpenAI(
            base_url=self.base_url,
            model=self.model,
            api_key=self.api_key,
            timeout=self.timeout,
            max_retries=0,
            max_tokens=self.max_tokens,
            temperature=0,
        )

    def messages(self, request: AnswerRequest) -> list[BaseMessage]:
        sources = format_sources(request, self.context_chars)
        return [
            SystemMessage(load_prompt(self.system_prompt, request.script)),
            HumanMessage(
                load_prompt(self.answer_prompt, request.script).format(sources=sources, question=request.question)
            ),
        ]

    def stream(self, request: AnswerRequest) -> Iterator[str]:
        chat = self.chat
        tuned = {k: v for k, v in vars(request.options).items() if v is not None}
        if "max_tokens" in tuned:
            tuned["max_tokens"] = min(tuned["max_tokens"], self.max_tokens)
        try:
            for chunk in (chat.bind(**tuned) if tuned else chat).stream(self.messages(request)):
                if chunk.content:
                    yield str(chunk.content)
        except Exception as exc:  # network, timeout, HTTP errors: all mean "fall back"
            raise GenerationError(f"{type(exc).__name__}: {exc}") from exc

    def complete(self, prompt: str, script: Script) -> str:
        try:
            return str(self.chat.invoke([HumanMessage(prompt)]).content).strip()
        except Exception as exc:
            raise GenerationError(f"{type(exc).__name__}: {exc}") from exc


def build(settings: Settings) -> OpenAIChatGenerator:
    if not settings.openai_base_url:
        raise TongwenError("The openai backend needs TONGWEN_OPENAI_BASE_URL (an OpenAI-compatible endpoint).")
    return OpenAIChatGenerator(
        settings.openai_base_url,
        settings.openai_model,
        settings.openai_api_key,
        settings.llm_timeout,
        settings.llm_max_tokens,
    )
