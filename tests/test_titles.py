"""Document titles: what the document list and the reader show for a converted report."""

from __future__ import annotations

import pytest

from ingest.normalise import canonical
from rag.store.records import ChunkRecord, Location
from rag.titles import document_title


def chunk(text: str, heading: str = "", seq: int = 0) -> ChunkRecord:
    return ChunkRecord(f"d:{seq}", "d", "d.txt", seq, heading, text, canonical(text), (), Location(0, len(text), 1, 1))


OPENING = "美中貿易戰、科技衝突看似由美國對中國大陸的巨額貿易逆差所引起"
LONG = OPENING + "，但是就中長期的觀點來看，美國更關切中國大陸的國有企業與準國有企業的營業行為和政府補貼。"
TITLE = "推動第三次產業革命之方向：以盧森堡為例"


@pytest.mark.parametrize(
    "chunks, title",
    [
        # A report that opens with its title.
        ([chunk(TITLE + "\n◎黃仁志／中華經濟研究院\n" + LONG)], TITLE),
        # A cover page broken into fragments, the title in the first heading.
        (
            [chunk("財團\n法人\n中技社"), chunk("創立於 1959 年。", "中技社 113 年度研究報告摘要彙編", 1)],
            "中技社 113 年度研究報告摘要彙編",
        ),
        # An abstract first (in either script, with a PDF's stray space), numbered section headings
        # after it: the opening words stand in.
        (
            [chunk("摘 要\n" + LONG), chunk("…", "一、全球價值鏈相關部分", 1), chunk("…", "第八章 結論與建議", 2)],
            OPENING,
        ),
        # A table of contents first: its entries are parts too.
        ([chunk("目录\n第一章 绪论\n一、研究背景\n" + LONG)], OPENING),
        ([chunk("Abstract\nThe quick brown fox.")], "The quick brown fox."),
        # A year opens many titles; it is not a section number.
        ([chunk("2023 年度報告\n1. 前言\n" + LONG)], "2023 年度報告"),
        ([chunk("1.2 研究方法\n（一）背景\n" + LONG)], OPENING),
        # Nothing but a label and a long line: its first 30 characters.
        ([chunk("摘要\n" + "字" * 80)], "字" * 30 + "…"),
    ],
)
def test_the_title_is_the_first_line_that_names_the_document(chunks: list[ChunkRecord], title: str) -> None:
    assert document_title("d.txt", chunks) == title


def test_a_document_without_text_is_called_by_its_file_name() -> None:
    assert document_title("report-2024.pdf", []) == "report-2024"
