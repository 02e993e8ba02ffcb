"""Chunking: the budget, the overlap and headings.

A character counts as a token here, so the sizes can be read off the text; the real budget is
measured with the embedding model's tokenizer (``ingest.pipeline``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ingest.chunk import chunk_document
from ingest.clean import clean_text


def characters(texts: Sequence[str]) -> list[int]:
    return [len(t) for t in texts]


def sentence(n: int, length: int = 20) -> str:
    """A sentence of ``length`` characters ending in 。, numbered so each is told apart."""
    return f"第{n:02d}句" + "文" * (length - 5) + "。"


def test_chunks_keep_to_the_budget_and_never_straddle_a_heading() -> None:
    text = "# 第一章 甲\n\n" + "".join(sentence(i) for i in range(12)) + "\n\n# 第二章 乙\n\n" + sentence(99) + "\n"
    chunks = chunk_document(clean_text(text), characters, 80, 20)
    heading_cost = len("第一章 甲")
    assert all(len(c.text) + heading_cost <= 80 for c in chunks if c.heading == "第一章 甲")
    assert chunks[-1].heading == "第二章 乙" and chunks[-1].text == sentence(99)
    assert all("第99句" not in c.text for c in chunks[:-1])


def test_the_next_chunk_repeats_the_sentences_that_fit_the_overlap() -> None:
    text = "".join(sentence(i) for i in range(8)) + "\n"
    first, second, *_ = chunk_document(clean_text(text), characters, 60, 20)
    assert first.text == "".join(sentence(i) for i in range(3))
    assert second.text.startswith(sentence(2))  # one 20-character sentence fits the overlap


def test_an_over_long_sentence_is_never_cut_inside_a_figure_or_a_url() -> None:
    """A table row extracted as one sentence: its commas sit inside figures, so the cut must fall
    at a clause mark or between figures, never in 「11,585」 or 「https://」."""
    figures = [f"{n:,}" for n in range(11_585, 11_585 + 40 * 997, 997)]
    url = "https://www.example.org/data/2019"
    row = "出口金額" + " ".join(figures) + f"，資料來源 {url} 另見附表"
    chunks = chunk_document(clean_text(row + "\n"), characters, 60, 0)
    assert len(chunks) > 2
    pieces = [p for c in chunks for p in re.findall(r"[0-9A-Za-z.,:/]+", c.text)]
    assert sorted(pieces) == sorted([*figures, url])
