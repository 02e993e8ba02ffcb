"""Conversations kept in the reader's browser (``gr.BrowserState``): a plain JSON-able dict.

``{"current": id, "conversations": [{"id", "title", "updated", "turns": [turn…]}…]}``, newest
first. A turn is ``{"question", "answer", "result"}``: ``answer`` is the text the service gave
(what the next question's history needs), ``result`` the parts of the service's answer the page
renders again after a reload (sources, citations, found, notes, backend, condensed question).
This is the storage boundary: answers come in as models (``rag.results.Answer`` or the page's
``AnswerView``), are kept as their JSON, and are read back as ``AnswerView``s, tolerantly (turns
stored by an older version may lack fields). Nothing here knows about Gradio: the chat module loads
and saves the dict.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from rag.results import Answer
from ui.answer_view import AnswerView
from ui.render import bot_message, user_message

MAX_CONVERSATIONS = 30  # the browser's storage is small (about 5 MB per site)
TITLE_CHARS = 24
KEPT_RESULT_KEYS = (
    "answer",
    "found",
    "question",
    "backend",
    "notes",
    "sources",
    "citations",
    "timings",
    "small_talk",
)

Store = dict[str, Any]
Conversation = dict[str, Any]


def new_store() -> Store:
    conversation = new_conversation()
    return {"current": conversation["id"], "conversations": [conversation]}


def new_conversation() -> Conversation:
    return {"id": uuid.uuid4().hex[:12], "title": "", "updated": time.time(), "turns": []}


def valid(store: Any) -> Store:
    """The store as saved, or a fresh one when the browser held nothing usable."""
    if not isinstance(store, Mapping) or not isinstance(store.get("conversations"), list) or not store["conversations"]:
        return new_store()
    conversations = [c for c in store["conversations"] if isinstance(c, Mapping) and isinstance(c.get("turns"), list)]
    if not conversations:
        return new_store()
    ids = [c["id"] for c in conversations]
    current = store.get("current") if store.get("current") in ids else ids[0]
    return {"current": current, "conversations": [dict(c) for c in conversations]}


def current(store: Store) -> Conversation:
    return next(c for c in store["conversations"] if c["id"] == store["current"])


def start_new(store: Store) -> Store:
    """A new empty conversation on top (reusing the current one when it is still empty)."""
    store = valid(store)
    if not current(store)["turns"]:
        return store
    conversation = new_conversation()
    return {"current": conversation["id"], "conversations": [conversation, *store["conversations"]][:MAX_CONVERSATIONS]}


def select(store: Store, conversation_id: str | None) -> Store:
    store = valid(store)
    if any(c["id"] == conversation_id for c in store["conversations"]):
        store["current"] = conversation_id
    return store


def kept_result(result: Answer | AnswerView | None) -> dict[str, Any]:
    """The JSON of an answer the browser keeps (``KEPT_RESULT_KEYS`` that it has)."""
    return AnswerView.of(result).stored(KEPT_RESULT_KEYS) if result is not None else {}


def add_turn(store: Store, question: str, answer: str, result: Answer | AnswerView | None) -> Store:
    """The current conversation with one more turn, moved to the top of the list."""
    store = valid(store)
    conversation = dict(current(store))
    conversation["turns"] = [
        *conversation["turns"],
        {"question": question, "answer": answer, "result": kept_result(result)},
    ]
    conversation["title"] = conversation["title"] or question[:TITLE_CHARS]
    conversation["updated"] = time.time()
    others = [c for c in store["conversations"] if c["id"] != conversation["id"]]
    return {"current": conversation["id"], "conversations": [conversation, *others][:MAX_CONVERSATIONS]}


def drop_last_turn(store: Store) -> tuple[Store, str | None]:
    """The current conversation without its last turn, and that turn's question (to ask again)."""
    store = valid(store)
    conversation = dict(current(store))
    if not conversation["turns"]:
        return store, None
    question = conversation["turns"][-1]["question"]
    conversation["turns"] = conversation["turns"][:-1]
    store["conversations"] = [conversation if c["id"] == conversation["id"] else c for c in store["conversations"]]
    return store, question


def clear_current(store: Store) -> Store:
    store = valid(store)
    store["conversations"] = [
        {**c, "turns": [], "title": ""} if c["id"] == store["current"] else c for c in store["conversations"]
    ]
    return store


def history(conversation: Conversation, max_chars: int | None = None) -> list[dict[str, str]]:
    """The conversation as the service wants it; with ``max_chars``, only the latest turns that fit."""
    out = []
    for turn in conversation["turns"]:
        if turn.get("question"):
            out.append({"role": "user", "content": turn["question"]})
        if turn.get("answer"):
            out.append({"role": "assistant", "content": turn["answer"]})
    if max_chars is not None:
        kept, size = [], 0
        for message in reversed(out):
            size += len(message["content"])
            if size > max_chars:
                break
            kept.append(message)
        out = kept[::-1]
    return out


def chat_messages(conversation: Conversation, script: str) -> list[dict[str, str]]:
    """The chatbot's messages: question, then the answer with its links and folded sources."""
    messages = []
    for number, turn in enumerate(conversation["turns"], start=1):
        messages.append({"role": "user", "content": user_message(turn["question"])})
        result = AnswerView.read({**(turn.get("result") or {}), "answer": turn.get("answer", "")})
        messages.append({"role": "assistant", "content": bot_message(result, number, script)})
    return messages


def choices(store: Store, untitled: str) -> list[tuple[str, str]]:
    """(title, id) for the conversation list, newest first."""
    return [(c["title"] or untitled, c["id"]) for c in valid(store)["conversations"]]


def turn_result(store: Store, turn: int) -> AnswerView | None:
    """The stored answer of turn ``turn`` (1-based) of the current conversation."""
    turns = current(valid(store))["turns"]
    if not 1 <= turn <= len(turns):
        return None
    stored = turns[turn - 1]
    return AnswerView.read(
        {**(stored.get("result") or {}), "answer": stored.get("answer", ""), "typed": stored["question"]}
    )
