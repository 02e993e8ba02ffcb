"""The gold questions as a chatting reader types them: with a greeting before and thanks after.

The gold questions are bare, so they never show what 「你好，想請問一下：…謝謝！」 does to retrieval
(see ``rag.bare_question``). ``tongwen eval`` therefore asks Tongwen every answerable question again in
each of these wrappers, converted to the question's script: the row ``tongwen, greeting + thanks``
beside ``tongwen`` scores all of them together, and ``wrapped_moved`` is the share of wrapped
questions whose evidence moved to another rank than the bare question's. A robust search scores
the row as the bare questions and moves nothing.

These wrappers are not only the phrases ``rag.bare_question`` was written from: they combine its words
differently (您好 / 哈囉 at the start, 「？？感謝您！」 at the end), and the last one ends with a
phrase it does not take off at all (「先謝過了」), so the row also shows what is left over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from eval import metrics as m
from ingest.normalise import detect_script, to_script

Search = Callable[[str, int], list[tuple[str, str]]]  # question, k -> [(doc, text)]
Wrapper = tuple[str, str]

#: (before, after), in Traditional; converted to the question's script.
WRAPPERS: tuple[Wrapper, ...] = (
    ("你好，想請問一下：", "謝謝！"),
    ("您好！麻煩幫我查一下，", "多謝"),
    ("哈囉，請教：", ""),
    ("", "？？感謝您！"),
    ("請問", "先謝過了"),
)


def wrap(question: str, wrapper: Wrapper) -> str:
    """``question`` inside ``wrapper``, in the question's script."""
    before, after = wrapper
    script = detect_script(question)
    return to_script(before, script) + question + to_script(after, script)


def wrapped_search(search: Search, wrapper: Wrapper) -> Search:
    """``search`` asked every question inside ``wrapper``."""
    return lambda question, k: search(wrap(question, wrapper), k)


def moved(bare: Sequence[dict], wrapped: Iterable[dict]) -> float:
    """The share of ``wrapped`` retrieval records whose evidence is at another rank (or gone from
    the top 10) than in the bare question's record."""
    rank = {(r["id"], r["script"]): m.reciprocal_rank(r["relevant"]) for r in bare}
    changes = [m.reciprocal_rank(r["relevant"]) != rank[(r["id"], r["script"])] for r in wrapped]
    return sum(changes) / len(changes) if changes else 0.0
