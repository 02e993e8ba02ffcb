"""The larger bundled local model, Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, 1.1 GB; extra
``local-1.5b``): the same in-process llama.cpp path as ``local``, another GGUF. About three times
slower per answer on CPU; the README's backend table says what that buys."""

from __future__ import annotations

from rag.config import Settings
from rag.generate.local import LocalGenerator
from rag.generate.local_model import QWEN_15B


def build(settings: Settings) -> LocalGenerator:
    return LocalGenerator(settings, QWEN_15B, name="local-1.5b")
