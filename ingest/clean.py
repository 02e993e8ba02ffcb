"""Turn PDF-extracted Chinese text into clean, citeable blocks.

The corpus comes out of PDF converters: every visual line is its own line (often followed by a
blank line), sentences break mid-word at the page width, page numbers sit alone on a line and stray
spaces appear between CJK characters (" 摘 要 ", "第一章  緒論").  Retrieval wants whole sentences;
citations want the *original* position.  So every block keeps a ``char_map`` from each cleaned
character back to its offset in the original, and nothing but whitespace, list/heading markup and
page furniture is ever removed.

Rules (the tests show each on real corpus lines):

* **Joining** - a line continues into the next content line unless it ends a sentence
  (``。！？；：…``, or a closing quote/bracket that closes one), is short (a standalone title such as
  "摘 要" or a table cell: under half the page width), or the next line is a heading, list item or
  table-of-contents line.  Blank lines and dropped page furniture in between do not stop the join.
  CJK-CJK and CJK-Latin joins add no space, Latin-Latin joins one.
* **Furniture** - page numbers ("- 12 -", "第 3 頁", "Page 3" anywhere; a bare "45" or "iv" only
  next to a page break, i.e. a run of >= 3 blank lines or a form feed, so table cells such as "2013"
  survive) and running headers/footers: the same short line at the top or bottom of several pages
  with different text around it each time.
* **Headings** - markdown ``#`` (level = number of ``#``), 第X章/篇 (1), 第X節 and 壹、 (2), 一、 (3),
  （一） (4), short "1." / "1、" lines that are not part of a list (5).  A numbered candidate must be
  at most ~40 characters, contain no 。, not end like a clause, and must not be a wrapped line of
  running text ("一、探討…對全球供應鏈" continuing on the next line is a list item).  A long
  heading that wrapped onto a short second line ("第二章 …與相關" + "議題") is merged.  第X章/節
  headings keep one space after the marker ("第一章 緒論"); other CJK-CJK spaces go.
* **Spaces** - whitespace between two CJK characters vanishes; any other run becomes one space.
  No NFKC: display text stays as written.
* **Emphasis** - markdown bold/italic markers left by converters (``**輕資產**``, ``__重點__``) are
  dropped: runs of two or more ``*`` anywhere, ``__`` only around a word (never inside a URL or an
  identifier such as ``utm__x``). The characters around them keep their offsets.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Literal

from ingest.headings import CHAPTER_MARKER, LEVEL_MARKERS, MARKER_FIRST

BlockKind = Literal["heading", "paragraph", "list_item"]

# Characters after which a sentence is complete.
_FINAL = frozenset("。！？；：…!?;:．.")
# Closing quotes/brackets end a sentence only when they close one ("。」") or the line is not wrapped.
_CLOSERS = frozenset("」』）)”’》〉】]")
# A heading never ends like a sentence or a clause.
_NOT_HEADING_END = frozenset("。！？；，、!?;,")
# Wide (CJK, full-width) characters: display width, and "no space between these".
_WIDE = re.compile(
    r"[\u1100-\u115f\u2e80-\u303e\u3040-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f"
    r"\uff00-\uff60\uffe0-\uffe6\U00020000-\U0003fffd]"
)
_NONSPACE = re.compile(r"\S+")
_INNER_SPACE = re.compile(r"\s")

_NUM = r"[一二三四五六七八九十百零〇\d]+"
_MD_HEADING = re.compile(r"(#{1,6})[ \t]+(?=\S)")
_MD_CLOSING = re.compile(r"\s+#+$")
_MARKERS = LEVEL_MARKERS
_CHAPTER_MARKER = CHAPTER_MARKER
_TITLE_GAP = " \t\u3000、：:"  # what layout puts between a chapter/appendix marker and its title
_MARKER_FIRST = MARKER_FIRST
_DIGIT_ENUM = _MARKERS[-1][1]
_DIGIT_PAREN = re.compile(r"[（(]\s*\d{1,2}\s*[）)]|\d{1,2}\)")
_BULLET = re.compile(r"(?:[-*+][ \t]+|[•●○■□▪▫◆◇◦‣∙‧►▶➢➤✓✔☐☑][ \t]*)+")
_TOC = re.compile(r"(?:\.{3,}|…{2,}|·{3,}|．{3,}|‧{3,}|-{4,})\s*\d{1,4}$")
_TABLE_ROW = re.compile(r"\|.*\|$")

# Page numbers: "strong" forms are dropped anywhere, "weak" ones (a bare number) only at page breaks.
_STRONG_PAGE = re.compile(
    r"[-–—~]\s*\d{1,4}\s*[-–—~]"
    rf"|第\s*{_NUM}\s*頁(?:\s*[，,/]?\s*共\s*{_NUM}\s*頁)?"
    r"|(?i:page)\s*\d{1,4}(?:\s*(?:(?i:of)|/)\s*\d{1,4})?"
)
_WEAK_PAGE = re.compile(r"\d{1,3}|\d{1,3}\s*/\s*\d{1,3}|(?i:(?=[ivxlc])c{0,3}(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3}))")

_EDGE_LINES = 3  # lines at the top/bottom of a page where running headers/footers live
_MAX_FURNITURE_CHARS = 40
_MAX_HEADING_WIDTH = 80  # display columns: 40 CJK characters
# "Short line" threshold in columns when the text is not hard-wrapped: there a line is usually a
# whole paragraph, and only long ones break mid-sentence (at a page end, or by the converter).
_SHORT_UNWRAPPED = 60
_FOOTNOTE = re.compile(r"[¹²³⁴⁵⁶⁷⁸⁹⁰]+\s")
# A figure's label on a line of its own (「圖 7-2-1  新加坡：整體製造業 GDP 及占比之趨勢」) sits under
# the figure, so what follows it is new text; a table's label heads the table's rows and stays with
# them. A line with a comma or a full stop is a sentence about the figure instead (「圖 3 顯示，」).
_CAPTION_LINE = re.compile(r"[圖图]\s*\d+(?:\s*[-－–.]\s*\d+)*\s*[^\s\d]")
_SENTENCE_MARKS = re.compile(r"[，,。；;！？!?]")


@dataclass(frozen=True)
class Block:
    """One heading, paragraph or list item, with a map back to the original text."""

    kind: BlockKind
    level: int  # heading level (1 = top); 0 for paragraphs and list items
    text: str
    start: int  # offset in the original of the first character of ``text``
    end: int  # offset just after the last character of ``text``
    char_map: tuple[int, ...] = field(repr=False)  # original offset of every character of ``text``


@dataclass(frozen=True)
class CleanDocument:
    """The cleaned blocks of one document plus what is needed to cite the original."""

    original: str
    blocks: tuple[Block, ...]
    # (start, end) of every original line dropped as page furniture: nothing disappears silently.
    furniture: tuple[tuple[int, int], ...] = ()
    _line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0, *(m.end() for m in re.finditer("\n", self.original))]
        object.__setattr__(self, "_line_starts", tuple(starts))

    def line_of(self, offset: int) -> int:
        """1-based line number in the original for an original character offset."""
        offset = min(max(offset, 0), len(self.original))
        return bisect_right(self._line_starts, offset)

    def original_span(self, block_index: int, start: int, end: int) -> tuple[int, int]:
        """Map ``blocks[block_index].text[start:end]`` to ``(start, end)`` offsets in the original.

        The span covers everything between the first and last mapped character, so a cited
        sentence that was joined across lines spans those lines (and any page furniture between).
        """
        block = self.blocks[block_index]
        if not 0 <= start <= end <= len(block.text):
            raise IndexError(f"span {start}:{end} outside a block of {len(block.text)} characters")
        if start == end:
            pos = block.char_map[start] if start < len(block.text) else block.end
            return pos, pos
        return block.char_map[start], block.char_map[end - 1] + 1


@dataclass
class _Line:
    """A non-blank line of the original, classified once."""

    start: int  # offset of the first non-space character
    end: int  # offset just after the last non-space character
    text: str
    width: int
    break_before: bool  # a page break (or the document start) precedes this line
    md: re.Match[str] | None = None  # markdown heading prefix
    marker: tuple[int, re.Match[str]] | None = None  # numbered heading marker (level, match)
    bullet_end: int = 0  # length of a bullet prefix ("- ", "• ") to strip, 0 if none
    is_list: bool = False  # bullet, "1." or "(1)" item
    is_toc: bool = False  # table-of-contents line with a leader: "概論......3"

    def classify(self) -> _Line:
        text = self.text
        self.md = _MD_HEADING.match(text) if text[0] == "#" else None
        self.is_toc = text[-1].isdigit() and _TOC.search(text) is not None
        if text[0] in _MARKER_FIRST:
            for level, pattern in _MARKERS:
                m = pattern.match(text)
                if m:
                    self.marker = (level, m)
                    break
        bullet = _BULLET.match(text)
        self.bullet_end = bullet.end() if bullet else 0
        self.is_list = bool(
            bullet or (self.marker and self.marker[0] == 5) or (text[0] in "(（0123456789" and _DIGIT_PAREN.match(text))
        )
        return self

    @property
    def starts_block(self) -> bool:
        """Headings, list items and TOC lines never continue the previous paragraph."""
        return bool(self.md or self.marker or self.is_list or self.is_toc)


@dataclass
class _Builder:
    kind: BlockKind
    level: int
    parts: list[str] = field(default_factory=list)
    cmap: list[int] = field(default_factory=list)
    open: bool = False  # the last line's sentence goes on

    def add(self, text: str, cmap: list[int], gap_at: int) -> None:
        """Append a cleaned line; a joining space (Latin-Latin only) maps to original ``gap_at``."""
        if not text:
            return
        if self.parts:
            prev = self.parts[-1]
            if not (_is_cjk(prev[-1]) or _is_cjk(text[0])) and not _is_hyphenated(prev, text):
                self.parts.append(" ")
                self.cmap.append(gap_at)
        self.parts.append(text)
        self.cmap.extend(cmap)

    def build(self) -> Block | None:
        text = "".join(self.parts)
        if not text:
            return None
        return Block(self.kind, self.level, text, self.cmap[0], self.cmap[-1] + 1, tuple(self.cmap))


def _width(text: str) -> int:
    """Display width: CJK characters count two columns, as on the page the text came from."""
    return 2 * len(text) - len(_WIDE.sub("", text))


def _is_cjk(ch: str) -> bool:
    return _WIDE.match(ch) is not None


def _is_hyphenated(prev: str, nxt: str) -> bool:
    """'Co-' + 'operation' is one word broken at the line end: join without a space."""
    return len(prev) >= 2 and prev[-1] == "-" and prev[-2].isalpha() and nxt[0].islower()


_STARS = re.compile(r"\*{2,}")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<![A-Za-z0-9_])__(?=[^\s_])(.+?)(?<=[^\s_])__(?![A-Za-z0-9_])")


def _drop_emphasis(text: str, cmap: list[int]) -> tuple[str, list[int]]:
    """Remove markdown emphasis markers, keeping every other character's original offset."""
    if "**" not in text and "__" not in text:
        return text, cmap
    drop: set[int] = set()
    for m in _STARS.finditer(text):
        drop.update(range(m.start(), m.end()))
    for m in _UNDERSCORE_EMPHASIS.finditer(text):
        drop.update((m.start(), m.start() + 1, m.end() - 2, m.end() - 1))
    if not drop:
        return text, cmap
    keep = [i for i in range(len(text)) if i not in drop]
    return "".join(text[i] for i in keep), [cmap[i] for i in keep]


def _squeeze(original: str, start: int, end: int, keep_space_at: int = -1) -> tuple[str, list[int]]:
    return _drop_emphasis(*_squeeze_spaces(original, start, end, keep_space_at))


def _squeeze_spaces(original: str, start: int, end: int, keep_space_at: int = -1) -> tuple[str, list[int]]:
    """Collapse whitespace in ``original[start:end]``; return the text and per-character offsets.

    Whitespace between two CJK characters (stray PDF spacing) is removed; any other run becomes one
    space mapped to the run's first character.  A run starting at ``keep_space_at`` always stays.
    """
    segment = original[start:end]
    if _INNER_SPACE.search(segment) is None:  # most lines: nothing to do
        return segment, list(range(start, end))
    parts: list[str] = []
    cmap: list[int] = []
    prev_end = -1
    for m in _NONSPACE.finditer(original, start, end):
        tok_start, tok_end = m.span()
        if prev_end >= 0 and (
            prev_end == keep_space_at or not (_is_cjk(original[prev_end - 1]) and _is_cjk(original[tok_start]))
        ):
            parts.append(" ")
            cmap.append(prev_end)
        parts.append(m.group())
        cmap.extend(range(tok_start, tok_end))
        prev_end = tok_end
    return "".join(parts), cmap


def _ends_sentence(text: str, wrapped: bool) -> bool:
    last = text[-1]
    if last in _FINAL:
        return True
    if last in _CLOSERS:
        return not wrapped or (len(text) > 1 and text[-2] in _FINAL)
    return False


def _split_lines(original: str) -> list[_Line]:
    """Non-blank lines with offsets; a blank run of >= 3 lines or a form feed is a page break."""
    lines: list[_Line] = []
    blank_run = 0
    saw_formfeed = False
    pos = 0
    for raw in original.split("\n"):
        stripped = raw.strip()
        if not stripped:
            blank_run += 1
            saw_formfeed = saw_formfeed or "\f" in raw
        else:
            lead = len(raw) - len(raw.lstrip())
            start = pos + lead
            page_break = not lines or blank_run >= 3 or saw_formfeed or "\f" in raw[:lead]
            lines.append(_Line(start, start + len(stripped), stripped, _width(stripped), page_break))
            blank_run = 0
            saw_formfeed = False
        pos += len(raw) + 1
    return lines


def _wrap_width(lines: list[_Line]) -> int | None:
    """The page width in columns when the text is hard-wrapped (many lines about equally long).

    None for text where each line is a whole paragraph (markdown, HTML and DOCX output).
    """
    widths = Counter(ln.width for ln in lines if ln.width >= 20)
    if len(lines) < 8 or not widths:
        return None
    best, best_count = 0, 0
    for w in widths:
        count = sum(widths.get(w + d, 0) for d in range(-4, 5))
        if count > best_count or (count == best_count and w > best):
            best, best_count = w, count
    return best if best_count >= 0.3 * len(lines) else None


def _page_numbers(lines: list[_Line]) -> set[int]:
    dropped: set[int] = set()
    for i, ln in enumerate(lines):
        if len(ln.text) > 20:
            continue
        at_break = ln.break_before or i + 1 == len(lines) or lines[i + 1].break_before
        if _STRONG_PAGE.fullmatch(ln.text) or (at_break and _WEAK_PAGE.fullmatch(ln.text)):
            dropped.add(i)
    return dropped


def _running_headers(lines: list[_Line], dropped: set[int], wrap: int | None) -> set[int]:
    """Short lines repeated at page tops/bottoms with different text around them.

    The corpus repeats lots of short lines that are content (table cells such as "新增投資", a
    whole summary quoted twice), so frequency alone is not enough: the copies must sit in the first
    or last lines of pages, and their neighbours must differ between copies.
    """
    pages: list[list[int]] = [[]]
    for i, ln in enumerate(lines):
        if ln.break_before and pages[-1]:
            pages.append([])
        if i not in dropped:
            pages[-1].append(i)
    if len(pages) < 2:
        return set()
    zone: dict[int, tuple[int, str]] = {}  # line -> (page number, "top" / "bottom")
    for p, page in enumerate(pages):
        edge = max(1, min(_EDGE_LINES, len(page) // 5))  # short pages: only their first/last line
        for i in page[-edge:]:
            zone[i] = (p, "bottom")
        for i in page[:edge]:
            zone[i] = (p, "top")

    keys = ["".join(ln.text.split()) for ln in lines]
    occurrences: dict[str, list[int]] = defaultdict(list)
    for i in zone:
        if 2 <= len(keys[i]) <= _MAX_FURNITURE_CHARS:
            occurrences[keys[i]].append(i)
    total: Counter[str] = Counter(k for i, k in enumerate(keys) if k in occurrences and i not in dropped)

    repeated: set[str] = set()
    for key, idxs in occurrences.items():
        sample = lines[idxs[0]]
        if len(idxs) < 2 or sample.starts_block or (wrap and sample.width >= 0.8 * wrap):
            continue
        if len(idxs) >= 3 and len(idxs) >= 0.8 * total[key]:
            repeated.add(key)
        elif len(idxs) == 2 == total[key]:
            # Two copies: both headers or both footers, and not the cover/back cover.
            (p1, side1), (p2, side2) = zone[idxs[0]], zone[idxs[1]]
            cover = (p1 == 0 and side1 == "top") or (p2 == len(pages) - 1 and side2 == "bottom")
            if side1 == side2 and p1 != p2 and not cover:
                repeated.add(key)

    headers: set[int] = set()
    for key in repeated:
        idxs = occurrences[key]
        contexts = {(_neighbour(keys, i, -1, repeated), _neighbour(keys, i, 1, repeated)) for i in idxs}
        if len(contexts) >= 2:
            headers.update(idxs)
    return headers


def _neighbour(keys: list[str], i: int, step: int, skip: set[str]) -> str:
    j = i + step
    while 0 <= j < len(keys) and keys[j] in skip:
        j += step
    return keys[j] if 0 <= j < len(keys) else ""


_CN_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0}
_FORMAL_DIGITS = {c: i for i, c in enumerate("零壹貳參肆伍陸柒捌玖")} | {"叁": 3}


def _marker_number(marker: str) -> int | None:
    """The number in a heading marker: "第十二章" -> 12, "（三）" -> 3, "4." -> 4."""
    digits = "".join(ch for ch in marker if ch.isdigit() and ch.isascii())
    if digits:
        return int(digits)
    value, current = 0, 0
    for ch in marker:
        if ch in "十拾":
            value += (current or 1) * 10
            current = 0
        elif ch == "百":
            value += (current or 1) * 100
            current = 0
        elif ch in _CN_DIGITS or ch in _FORMAL_DIGITS:
            current = _CN_DIGITS.get(ch, _FORMAL_DIGITS.get(ch, 0))
    total = value + current
    return total or None


def _strip_bold(original: str, start: int, end: int) -> tuple[int, int]:
    """Drop markdown ``**`` wrapped around a whole heading ("## **(二) 臺灣氫能**")."""
    if end - start > 4 and original.startswith("**", start) and original.startswith("**", end - 2):
        inner = original[start + 2 : end - 2].strip()
        if inner:
            s = original.index(inner, start + 2)
            return s, s + len(inner)
    return start, end


class _Cleaner:
    def __init__(self, original: str) -> None:
        self.original = original
        self.all_lines = _split_lines(original)
        for ln in self.all_lines:
            ln.classify()
        self.wrap = _wrap_width(self.all_lines)
        furniture = _page_numbers(self.all_lines)
        furniture |= _running_headers(self.all_lines, furniture, self.wrap)
        self.furniture = furniture
        self.lines = [ln for i, ln in enumerate(self.all_lines) if i not in furniture]
        self.short_limit = self.wrap * 0.5 if self.wrap else _SHORT_UNWRAPPED
        self.blocks: list[Block] = []
        self.current: _Builder | None = None
        # level -> (number, became a heading) of the last numbered line at that level
        self.sequence: dict[int, tuple[int, bool]] = {}
        # Footnotes ("¹ 美參議院通過…") met inside an open paragraph wait until it ends.
        self.footnotes: list[Block] = []

    def wrapped(self, ln: _Line) -> bool:
        """The line is as wide as the page: PDF wrapping, not the author, ended it."""
        return self.wrap is not None and ln.width >= 0.8 * self.wrap

    def continues(self, ln: _Line, as_list: bool = False) -> bool:
        """Does the sentence on this line go on in the next line?"""
        if _ends_sentence(ln.text, self.wrapped(ln)) or _TABLE_ROW.match(ln.text):
            return False
        if as_list and self.wrap is None:  # markdown list items are one line each
            return False
        return ln.width >= self.short_limit

    def try_heading(self, i: int) -> tuple[int, int, int] | None:
        """(level, marker end offset, lines used) when line ``i`` is a numbered heading.

        Wrapped PDF text often starts with a marker too ("一、探討…對全球供應鏈" + "的可能影響…"), so a
        page-wide line is a heading only when it continues a numbered run of headings ("(三)" right
        after the heading "(二)") or wraps onto a short tail line ("…背景下" + "的綠色成長與國際合作").
        An item that follows a non-heading sibling ("二、" after a list item "一、") is a list item.
        """
        ln = self.lines[i]
        if ln.marker is None:
            return None
        level, m = ln.marker
        title = ln.text[m.end() :].strip()
        if "。" in ln.text or ln.width > _MAX_HEADING_WIDTH or (title and ln.text[-1] in _NOT_HEADING_END):
            return None
        appendix = m.group().startswith("附")  # "附錄四  座談會記錄"; never "附錄一說明…" (no space)
        if (appendix or m.group()[-1] in "章篇節") and not self.chapter_title(ln.text, m.end(), title, appendix):
            return None
        number = _marker_number(m.group())
        prev = self.sequence.get(level)
        follows = level >= 3 and prev is not None and number is not None and prev[0] == number - 1
        if follows and not prev[1]:
            return None
        if level == 5 and (not title or (not follows and self.in_list(i))):
            return None
        nxt = self.lines[i + 1] if i + 1 < len(self.lines) else None
        if nxt is not None and self.heading_tail(ln, nxt, level, bool(title)):
            return level, ln.start + m.end(), 2
        if not title or (not follows and self.wrap is not None and ln.width >= 0.85 * self.wrap):
            return None
        if level >= 3 and not follows and nxt is not None and self.is_table_cell(ln, nxt):
            return None
        return level, ln.start + m.end(), 1

    @staticmethod
    def chapter_title(text: str, marker_end: int, title: str, needs_gap: bool = False) -> bool:
        """Tell "第一章  緒論" from a sentence about chapters ("第五章說明先進國家…", "第一章第三節…").

        Layout puts space (or 、：) between a chapter/section marker and its title; running text does
        not.  A very short title without the space ("第一章緒論") is still accepted, except after an
        appendix marker (``needs_gap``): "附錄一說明調查方法" is a sentence.
        """
        if "，" in title or _CHAPTER_MARKER.match(title):
            return False
        return not title or text[marker_end] in _TITLE_GAP or (not needs_gap and len(title) <= 10)

    def is_table_cell(self, ln: _Line, nxt: _Line) -> bool:
        """Two short lines on one page that run on: "1.減少交通事" + "故", "(一 )基礎設施" + "能力提升行動"."""
        return (
            self.wrap is not None
            and ln.width < self.short_limit
            and nxt.width < self.short_limit
            and not nxt.break_before
            and not nxt.starts_block
            and not _ends_sentence(nxt.text, False)
        )

    def heading_tail(self, ln: _Line, nxt: _Line, level: int, has_title: bool) -> bool:
        """Is ``nxt`` the wrapped end of heading line ``ln`` ("第二章  …與相關" + "議題")?"""
        if nxt.starts_block or nxt.text[-1] in _NOT_HEADING_END or _ends_sentence(nxt.text, True):
            return False
        if ln.width + nxt.width > 2 * _MAX_HEADING_WIDTH:
            return False
        if not has_title:  # "第一章" + "緒論"
            return nxt.width < self.short_limit
        closes_bracket = ln.text.count("（") + ln.text.count("(") > ln.text.count("）") + ln.text.count(")")
        if self.wrapped(ln) and (nxt.width < self.short_limit or (closes_bracket and nxt.text[-1] in "）)")):
            return True
        if self.wrap is None or ln.width < 0.6 * self.wrap:
            return False
        # Chapter/section titles wrap ("第五章  …的中長" + "期議題：國際組織觀點標竿"); for lower
        # levels a longer second line is more often an unnumbered sub-title, so only tiny tails join.
        return nxt.width < self.short_limit if level <= 2 else nxt.width <= 12

    def note_sequence(self, ln: _Line, is_heading: bool) -> None:
        """Remember numbered lines; a heading ends the runs of all deeper levels."""
        if ln.marker is None:
            return
        level, m = ln.marker
        if is_heading:
            for deeper in [lv for lv in self.sequence if lv > level]:
                del self.sequence[deeper]
        number = _marker_number(m.group())
        if number is not None and (is_heading or level >= 3):
            self.sequence[level] = (number, is_heading)

    def in_list(self, i: int) -> bool:
        """A short "1." line next to another list line is a list item, not a heading."""
        return any(0 <= j < len(self.lines) and self.lines[j].is_list for j in (i - 1, i + 1))

    def flush(self) -> None:
        if self.current is not None:
            block = self.current.build()
            if block is not None:
                self.blocks.append(block)
        self.current = None
        self.blocks.extend(self.footnotes)
        self.footnotes.clear()

    def emit(self, kind: BlockKind, level: int, spans: list[tuple[int, int, int]]) -> None:
        """Emit a finished block from (start, end, keep_space_at) spans of the original."""
        self.flush()
        self.current = _Builder(kind, level)
        for start, end, keep in spans:
            text, cmap = _squeeze(self.original, start, end, keep)
            self.current.add(text, cmap, start - 1)
        self.flush()

    def run(self) -> tuple[Block, ...]:
        i = 0
        lines = self.lines
        while i < len(lines):
            ln = lines[i]
            if ln.md:
                self.sequence.clear()
                end = ln.end
                closing = _MD_CLOSING.search(self.original, ln.start + ln.md.end(), end)
                if closing:
                    end = closing.start()
                start, end = _strip_bold(self.original, ln.start + ln.md.end(), end)
                chapter = _CHAPTER_MARKER.match(self.original, start, end)
                keep = chapter.end() if chapter else -1  # "# 第一章 緒論" keeps its space too
                self.emit("heading", len(ln.md.group(1)), [(start, end, keep)])
                i += 1
            elif ln.is_toc or _TABLE_ROW.match(ln.text):
                self.emit("paragraph", 0, [(ln.start, ln.end, -1)])
                i += 1
            elif (heading := self.try_heading(i)) is not None:
                level, marker_end, used = heading
                self.note_sequence(ln, True)
                keep = marker_end if level <= 2 else -1
                spans = [(ln.start, ln.end, keep)]
                if used == 2:
                    spans.append((lines[i + 1].start, lines[i + 1].end, -1))
                self.emit("heading", level, spans)
                i += used
            else:
                self.note_sequence(ln, False)
                self.add_text_line(ln)
                i += 1
        self.flush()
        return tuple(self.blocks)

    def add_text_line(self, ln: _Line) -> None:
        """Start a list item or a paragraph, or continue the open one."""
        if _is_caption_line(ln):
            # A label ends at its line. Run on, it glued itself to the next sentence (「…占比之趨勢
            # 不過，從 2014 年…」), which then began like a label and was never quoted. Blocks keep
            # the original's order, so a paragraph the label interrupts ends there.
            self.emit("paragraph", 0, [(ln.start, ln.end, -1)])
            return
        enumerated = ln.marker is not None and ln.marker[0] >= 3  # "一、探討…" that is not a heading
        if ln.is_list or enumerated:
            self.flush()
            start = ln.start + ln.bullet_end
            self.current = _Builder("list_item", 0)
            text, cmap = _squeeze(self.original, start, ln.end)
            self.current.add(text, cmap, start - 1)
            marker_only = start >= ln.end or bool(_DIGIT_ENUM.fullmatch(ln.text) or _DIGIT_PAREN.fullmatch(ln.text))
            self.current.open = marker_only or self.continues(ln, as_list=True)
            return
        if _FOOTNOTE.match(ln.text) and self.current is not None and self.current.open:
            note = _Builder("paragraph", 0)
            note.add(*_squeeze(self.original, ln.start, ln.end), ln.start)
            block = note.build()
            if block is not None:
                self.footnotes.append(block)
            return
        if self.current is None or not self.current.open:
            self.flush()
            self.current = _Builder("paragraph", 0)
        gap_at = self.current.cmap[-1] + 1 if self.current.cmap else ln.start
        text, cmap = _squeeze(self.original, ln.start, ln.end)
        self.current.add(text, cmap, gap_at)
        self.current.open = self.continues(ln, as_list=self.current.kind == "list_item")


def _is_caption_line(ln: _Line) -> bool:
    return (
        ln.width <= _MAX_HEADING_WIDTH
        and _CAPTION_LINE.match(ln.text) is not None
        and _SENTENCE_MARKS.search(ln.text) is None
    )


def clean_text(original: str) -> CleanDocument:
    """Split ``original`` into heading/paragraph/list blocks, dropping only page furniture."""
    cleaner = _Cleaner(original)
    blocks = cleaner.run()
    furniture = tuple((ln.start, ln.end) for i, ln in enumerate(cleaner.all_lines) if i in cleaner.furniture)
    return CleanDocument(original, blocks, furniture)
