"""Word lists shipped beside the code (``rag/*.txt``): one word per whitespace, ``#`` comments."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=8)
def word_list(name: str) -> frozenset[str]:
    """The words of ``rag/<name>``, read once per process."""
    text = resources.files("rag").joinpath(name).read_text("utf-8")
    lines = (line for line in text.splitlines() if not line.startswith("#"))
    return frozenset(word for line in lines for word in line.split())
