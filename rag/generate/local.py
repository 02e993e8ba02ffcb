"""The in-process local model: a GGUF served by xllamacpp on loopback, spoken to like any
OpenAI-compatible endpoint, so streaming, timeouts and fallback are the same code path."""

from __future__ import annotations

from functools import cached_property

from langchain_openai import ChatOpenAI

from rag.config import Settings
from rag.generate.local_model import QWEN_05B, GgufSpec, prepare_gguf
from rag.generate.local_server import get_local_server
from rag.generate.openai_chat import OpenAIChatGenerator


class LocalGenerator(OpenAIChatGenerator):
    name = "local"
    # Prompt processing runs at ~46 tokens/s on 2 cores: send only the sentences that matter.
    context_chars = 360
    # The 0.5B model, told to cite, answers with citation markers only (「[1]、[2]」); told just to
    # answer, it writes a sound sentence. The post-check then cites each sentence by overlap.
    system_prompt = "system_compact"
    answer_prompt = "answer_compact"

    def __init__(self, settings: Settings, spec: GgufSpec = QWEN_05B, name: str = "local") -> None:
        super().__init__("", "", "", settings.llm_timeout, min(settings.llm_max_tokens, 256))
        self.settings = settings
        self.spec = spec
        self.name = name

    @cached_property
    def chat(self) -> ChatOpenAI:
        # TONGWEN_LOCAL_MODEL_PATH replaces the default model only; a named bundled model is that model.
        custom = self.settings.local_model_path if self.spec is QWEN_05B else None
        path = custom or prepare_gguf(self.settings.models_dir, self.spec)
        server = get_local_server(path, self.settings.local_threads, self.settings.local_context)
        self.base_url, self.model, self.api_key = server.base_url, server.model_name, server.api_key
        return super().chat


def build(settings: Settings) -> LocalGenerator:
    return LocalGenerator(settings)
