"""Load prompt templates from the ``prompts/`` package, in the asker's script."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from ingest.normalise import Script

_SUFFIX = {"traditional": "zh-Hant", "simplified": "zh-Hans", "neutral": "zh-Hant"}


@lru_cache(maxsize=64)
def load_prompt(name: str, script: Script) -> str:
    """Template ``name`` for a script; neutral (e.g. English-only) questions get Traditional,
    the documents' own script."""
    return resources.files("prompts").joinpath(f"{name}.{_SUFFIX[script]}.md").read_text("utf-8").strip()
