"""What a Chinese heading's numbering looks like: the one place both the cleaner and the chunker read.

Two questions are asked of a numbering, so two tables: the cleaner asks "is this line a heading,
and how deep?" (:data:`LEVEL_MARKERS`, tolerant of the spaces PDF extraction leaves inside
「第 三 章」), and the chunker asks "is this heading a sibling of an open one?" (:func:`heading_style`:
documents are inconsistent about levels, but a heading numbered like an open one, 「四、」 after
「三、」, is always its sibling).
"""

from __future__ import annotations

import re

NUMERALS = "一二三四五六七八九十百零〇"
_NUM = rf"[{NUMERALS}\d]+"

LEVEL_MARKERS: tuple[tuple[int, re.Pattern[str]], ...] = (
    (1, re.compile(rf"第\s*{_NUM}\s*[章篇]")),
    (1, re.compile(rf"附\s*[錄录件]\s*[{NUMERALS}\d]+(?![{NUMERALS}\d]*\s*[、，,])")),
    (2, re.compile(rf"第\s*{_NUM}\s*節")),
    (2, re.compile(r"[壹貳參叁肆伍陸柒捌玖拾]+\s*、")),
    (3, re.compile(r"[一二三四五六七八九十]+\s*、")),
    (4, re.compile(r"[（(]\s*[一二三四五六七八九十]+\s*[）)]")),
    (5, re.compile(r"\d{1,2}\s*[.、．](?![\d.])")),
)
"""(depth, pattern at the start of a line) of numbered headings, outermost first."""
CHAPTER_MARKER = re.compile(rf"第\s*{_NUM}\s*[章篇節]|附\s*[錄录件]\s*{_NUM}")
"""Markers that keep one space before their title ("第一章 緒論", "附錄四 第一場座談會記錄")."""
MARKER_FIRST = frozenset("附第壹貳參叁肆伍陸柒捌玖拾一二三四五六七八九十（(0123456789")
"""Characters a numbered heading can start with (a cheap test before the patterns)."""

_STYLES = (
    ("chapter", re.compile(rf"^第[{NUMERALS}\d]+章")),
    ("appendix", re.compile(rf"^附[錄录件][{NUMERALS}\d]+")),
    ("section", re.compile(rf"^第[{NUMERALS}\d]+節")),
    ("cn-enum", re.compile(rf"^[{NUMERALS}]+、")),
    ("cn-paren", re.compile(rf"^[（(][{NUMERALS}]+[)）]")),
    ("num-paren", re.compile(r"^[（(]\d+[)）]")),
    ("num", re.compile(r"^\d+[.、．](?!\d)")),
    ("dated", re.compile(r"^\d{4}-\d{2}\b")),
)


def heading_style(text: str) -> str | None:
    """The numbering style of a heading (``chapter``, ``cn-enum`` …), or None when unnumbered."""
    for style, pattern in _STYLES:
        if pattern.match(text):
            return style
    return None
