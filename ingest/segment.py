"""jieba, started once and quietly: the one word segmenter of every layer (the keyword index, the
question rules, the vocabulary bridge)."""

from __future__ import annotations

import logging
from functools import lru_cache
from types import ModuleType


@lru_cache(maxsize=1)
def quiet_jieba() -> ModuleType:
    """jieba, initialised once without its start-up chatter on stderr."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@lru_cache(maxsize=1)
def posseg() -> ModuleType:
    """jieba's part-of-speech tagger (same dictionary, same quiet start-up as :func:`quiet_jieba`)."""
    quiet_jieba()
    import jieba.posseg

    return jieba.posseg


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each dictionary word jieba cuts ``text`` into (precise mode, no overlapping
    sub-words; no HMM, whose guessed words 「谈碳」 of 「谈碳边境」 are no words to respect)."""
    return [(start, end) for _, start, end in quiet_jieba().tokenize(text, HMM=False)]
