"""Conversation history as the service takes it, within the size the operator allows."""

from __future__ import annotations

from collections.abc import Iterable

from rag.config import Settings
from ui.api.errors import RequestTooLarge
from ui.api.schemas import Message


def checked_history(messages: Iterable[Message], settings: Settings) -> list[dict[str, str]]:
    """The history as role/content pairs, refused (413) when longer than ``max_history_chars``.

    Refused rather than cut: a client that sends a long conversation should learn that most of it
    was not read, and trimming it silently would change what a follow-up question means.
    Instructions (``system``/``developer``) are not part of the conversation and are dropped.
    """
    history = [{"role": m.role, "content": m.text()} for m in messages if m.role in ("user", "assistant")]
    size = sum(len(turn["content"]) for turn in history)
    if size > settings.max_history_chars:
        raise RequestTooLarge(
            f"The conversation history has {size} characters; the limit is {settings.max_history_chars} "
            "(TONGWEN_MAX_HISTORY_CHARS). Send only the last turns."
        )
    return history
