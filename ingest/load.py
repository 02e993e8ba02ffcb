"""Read an uploaded or on-disk document into plain text.

Every loader returns text that :func:`ingest.clean.clean_text` can work on and that citations can
point into: PDF pages are separated by a form feed line (a page break for the cleaner) and their
start offsets are kept, DOCX/HTML headings become markdown ``#`` lines, and every paragraph is one
line followed by a blank line.

Text files in Chinese come in many encodings.  UTF-8 is not assumed: after a BOM and strict UTF-8
fail, Big5 (cp950) and GB18030 are both tried and the one whose characters are *common Chinese
characters* wins.  charset-normalizer alone guesses wrong on short CJK files, while a wrong
Big5/GBK decode almost always yields rare characters, kana or symbols, so character frequency is a
reliable judge even for a single sentence.
"""

from __future__ import annotations

import codecs
import io
import logging
import math
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ingest.errors import (
    CorruptDocument,
    DocumentNotFound,
    DocumentTooLarge,
    EmptyDocument,
    UnsupportedFileType,
)

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

DocumentKind = Literal["txt", "md", "pdf", "docx", "html"]

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm"})
_KINDS: dict[str, DocumentKind] = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
}
PAGE_SEPARATOR = "\n\f\n"  # between PDF pages; the cleaner treats a form feed as a page break

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_LEGACY_CJK = ("cp950", "big5hkscs", "gb18030")  # cp950 = Big5 + Microsoft extensions; gb18030 ⊃ GBK
_CHARSET_ALIASES = {"big5": "cp950", "x-big5": "cp950", "gb2312": "gb18030", "gbk": "gb18030"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffd]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Characters that count towards the plausibility score: Han characters and CJK punctuation, plus
# what a wrong Big5/GBK decode typically produces instead (Greek, Cyrillic, box drawing, CJK
# radicals, kana, bopomofo, private use), which scores zero.  Other symbols (arrows, ①) are neutral.
_SCORED = re.compile(
    r"[\u0370-\u04ff\u2500-\u257f\u2e80-\u9fff\ue000-\uf8ff\uf900-\ufaff\ufe10-\ufe6f\uff00-\uffef"
    r"\u2010-\u201f\u2026\u2027]"
)
_COMMON_PUNCT = frozenset("，。、；：？！「」『』（）《》〈〉…—‧·．～“”‘’・【】％")
_MIN_PLAUSIBLE = 2.0  # mean log10 frequency; real Chinese scores 3.5-4.5, wrong decodes ~1-3
_CONFIDENT = 3.0  # overrides an accidental UTF-8 decode of GBK/Big5 bytes
_NOTHING_SCORED = -1.0
_SCORE_SAMPLE = 4000  # characters scored per candidate: enough, and fast on big files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedDocument:
    """The text of one document, as read from disk or an upload."""

    name: str  # file name only, no directories
    kind: DocumentKind
    text: str
    encoding: str | None  # codec used for text formats; None for PDF/DOCX
    pages: list[int] | None  # PDF: offset in ``text`` where each page starts; None otherwise


def load_document(path: Path, max_bytes: int | None = None) -> LoadedDocument:
    """Read ``path`` and load it like an upload (see :func:`load_bytes`)."""
    path = Path(path)
    _check_suffix(path.name)
    if not path.is_file():
        raise DocumentNotFound(f"{path} does not exist or is not a file.")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise DocumentTooLarge(_too_large(path.name, size, max_bytes))
    return load_bytes(path.read_bytes(), path.name, max_bytes=max_bytes)


def load_bytes(data: bytes, name: str, max_bytes: int | None = None) -> LoadedDocument:
    """Load a document from its bytes; ``name`` (its file name) decides the format."""
    name = re.split(r"[\\/]", name)[-1]
    kind = _check_suffix(name)
    if max_bytes is not None and len(data) > max_bytes:
        raise DocumentTooLarge(_too_large(name, len(data), max_bytes))
    if not data.strip():
        raise EmptyDocument(f"{name} is empty.")
    loader: Callable[[bytes, str], tuple[str, str | None, list[int] | None]] = _LOADERS[kind]
    text, encoding, pages = loader(data, name)
    if not text.replace("\ufeff", "").replace("\u200b", "").strip():
        raise EmptyDocument(f"{name} contains no text.")
    return LoadedDocument(name=name, kind=kind, text=text, encoding=encoding, pages=pages)


def _check_suffix(name: str) -> DocumentKind:
    suffix = Path(name).suffix.lower()
    if suffix not in _KINDS:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        shown = suffix or "no extension"
        raise UnsupportedFileType(f"{name}: {shown} files are not supported (supported: {supported}).")
    return _KINDS[suffix]


def _too_large(name: str, size: int, limit: int) -> str:
    return f"{name} is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB."


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# -- text encodings ---------------------------------------------------------------------------------


def decode_text(data: bytes, name: str, declared: str | None = None) -> tuple[str, str]:
    """Decode text bytes of unknown encoding; return ``(text, codec name)``.

    Order: BOM, binary check, strict UTF-8, a charset the file declares itself (HTML), Big5 vs
    GB18030 by plausibility, charset-normalizer.  Raises CorruptDocument for binary data.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return _checked(data.decode(codec), name), codec
            except UnicodeDecodeError as exc:
                raise CorruptDocument(f"{name} starts with a {codec} byte-order mark but is not {codec}.") from exc
    if b"\x00" in data:
        return _decode_bomless_utf16(data, name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if not _maybe_legacy_as_utf8(text):
            return _checked(text, name), "utf-8"
        best = _best_legacy_cjk(data)
        if best is None or best[2] < _CONFIDENT:
            return _checked(text, name), "utf-8"
        return _checked(best[0], name), best[1]
    if declared:
        codec = _CHARSET_ALIASES.get(declared.lower(), declared.lower())
        try:
            return _checked(data.decode(codec), name), codec
        except (LookupError, UnicodeDecodeError):
            pass
    best = _best_legacy_cjk(data)
    if best is not None:
        return _checked(best[0], name), best[1]
    return _charset_normalizer(data, name)


def _maybe_legacy_as_utf8(text: str) -> bool:
    """Short GBK/Big5 text can be valid UTF-8 by accident ("系统" in GBK decodes as "ϵͳ").

    Such a decode yields only combining marks, Greek, Cyrillic, Hebrew or Arabic (U+0300-U+07FF);
    real UTF-8 Chinese always has characters beyond, and Western text has Latin letters below.
    """
    return not text.isascii() and all("\u0300" <= ch < "\u0800" for ch in text if not ch.isascii())


def _decode_bomless_utf16(data: bytes, name: str) -> tuple[str, str]:
    """NUL bytes mean binary, unless the file is UTF-16 without a BOM (mostly-ASCII text)."""
    even_nuls = data[0::2].count(0)
    odd_nuls = data[1::2].count(0)
    codec = "utf-16-le" if odd_nuls > even_nuls else "utf-16-be"
    if len(data) % 2 == 0 and max(even_nuls, odd_nuls) >= len(data) // 8:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            pass
        else:
            if _control_share(text) < 0.01:
                return _normalise_newlines(text), codec
    raise CorruptDocument(f"{name} contains binary data (NUL bytes); it does not look like a text file.")


def _best_legacy_cjk(data: bytes) -> tuple[str, str, float] | None:
    """Try Big5 and GB18030 strictly and keep the decode made of common Chinese characters.

    Returns ``(text, codec, score)``, or None when no candidate is plausible Chinese.
    """
    candidates: list[tuple[float, str, str]] = []
    for codec in _LEGACY_CJK:
        if codec == "big5hkscs" and any(c == "cp950" for _, c, _ in candidates):
            continue  # HKSCS only for Big5 files cp950 cannot read
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        candidates.append((_plausibility(text), codec, text))
    if not candidates:
        return None
    # Ties (e.g. text that is all ASCII but one symbol) go to Big5: Tongwen's corpus is Taiwanese.
    score, codec, text = max(candidates, key=lambda c: (c[0], c[1] != "gb18030"))
    log.debug("legacy CJK candidates: %s", [(c, round(s, 2)) for s, c, _ in candidates])
    if score >= _MIN_PLAUSIBLE or all(s == _NOTHING_SCORED for s, _, _ in candidates):
        # The latter: only neutral symbols differ (an arrow, a roman numeral); take the preferred codec.
        return text, codec, score
    return None


@lru_cache(maxsize=1)
def _char_frequencies() -> dict[str, int]:
    """Single-character frequencies from jieba's dictionary (Simplified; ~12k characters).

    Read directly from dict.txt (0.2 s) rather than through ``jieba.initialize()`` (2+ s).
    """
    import jieba

    with jieba.dt.get_dict_file() as fh:
        data = fh.read().decode("utf-8")
    return {m[0]: int(m[1]) for m in re.findall(r"^(\S) (\d+)", data, re.MULTILINE)}


@lru_cache(maxsize=1)
def _to_simplified() -> Callable[[str], str]:
    import opencc

    return opencc.OpenCC("t2s").convert


def _plausibility(text: str) -> float:
    """Mean log10 frequency of the CJK-looking characters (Traditional folded to Simplified)."""
    chars = _SCORED.findall(text[: _SCORE_SAMPLE * 4])[:_SCORE_SAMPLE]
    if not chars:
        return _NOTHING_SCORED
    freq = _char_frequencies()
    simplified = _to_simplified()("".join(chars))
    total = 0.0
    for ch in simplified:
        if ch in _COMMON_PUNCT:
            total += 5.0
        elif _HAN.match(ch):
            total += math.log10(freq.get(ch, 0) + 1)
    return total / len(simplified)


def _charset_normalizer(data: bytes, name: str) -> tuple[str, str]:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    # On Western text charset-normalizer may rank an exotic code page (mac_latin2) first.
    match = next((m for m in matches if m.encoding == "cp1252"), matches[0] if matches else None)
    if match is None:
        raise CorruptDocument(f"{name} is not readable text in any known encoding; is it a binary file?")
    return _checked(str(match), name), match.encoding


def _control_share(text: str) -> float:
    return len(_CONTROL.findall(text)) / max(len(text), 1)


def _checked(text: str, name: str) -> str:
    """Reject decodes full of control characters: that is binary data, not text."""
    if _control_share(text) > 0.01:
        raise CorruptDocument(f"{name} contains binary data; it does not look like a text file.")
    return _normalise_newlines(text)


def _load_text(data: bytes, name: str) -> tuple[str, str | None, list[int] | None]:
    text, encoding = decode_text(data, name)
    return text, encoding, None


# -- PDF ----------------------------------------------------------------------------------------------


def _load_pdf(data: bytes, name: str) -> tuple[str, str | None, list[int] | None]:
    """Extract text page by page; pages are joined by :data:`PAGE_SEPARATOR`."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorruptDocument(f"{name} is password-protected; remove the password and upload it again.")
        texts = [_normalise_newlines(page.extract_text() or "").replace("\x00", "") for page in reader.pages]
    except CorruptDocument:
        raise
    except Exception as exc:  # pypdf raises many types (PdfReadError, ValueError, KeyError, ...)
        raise CorruptDocument(f"{name} could not be read as a PDF ({type(exc).__name__}: {exc}).") from exc
    if not any(t.strip() for t in texts):
        raise EmptyDocument(
            f"{name} has no extractable text; it may be scanned images (OCR it first, then upload again)."
        )
    pages: list[int] = []
    parts: list[str] = []
    offset = 0
    for i, page_text in enumerate(texts):
        if i:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        pages.append(offset)
        parts.append(page_text)
        offset += len(page_text)
    return "".join(parts), None, pages


# -- DOCX ---------------------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"(?:heading|標題|标题)\s*(\d)", re.IGNORECASE)


# A .docx is a zip: a few KB can unpack to gigabytes ("zip bomb"), and python-docx parses every XML
# part into an lxml tree (about 30 bytes of RAM per byte of XML). These caps are checked from the zip
# directory before anything is unpacked; a real Word document stays far below them (a 300-page
# report has ~3 MB of XML; pictures are stored, not parsed).
DOCX_MAX_MEMBERS = 2000
DOCX_MAX_XML_BYTES = 8 * 1024 * 1024
DOCX_MAX_UNPACKED_BYTES = 200 * 1024 * 1024


def check_docx_archive(data: bytes, name: str) -> None:
    """Refuse a .docx whose zip directory promises too many members or too many unpacked bytes."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise CorruptDocument(f"{name} could not be read as a Word (.docx) file ({reason}).") from exc
    if len(members) > DOCX_MAX_MEMBERS:
        raise DocumentTooLarge(
            f"{name} holds {len(members)} parts; a Word file may hold at most {DOCX_MAX_MEMBERS}. "
            "Save it again from Word, or as PDF or text."
        )
    xml = sum(m.file_size for m in members if m.filename.lower().endswith((".xml", ".rels")))
    unpacked = sum(m.file_size for m in members)
    if xml > DOCX_MAX_XML_BYTES or unpacked > DOCX_MAX_UNPACKED_BYTES:
        raise DocumentTooLarge(
            f"{name} unpacks to {unpacked / 1e6:.1f} MB ({xml / 1e6:.1f} MB of XML); the limits are "
            f"{DOCX_MAX_UNPACKED_BYTES / 1e6:.0f} MB and {DOCX_MAX_XML_BYTES / 1e6:.0f} MB of XML. "
            "Split the document or upload it as PDF or text."
        )


def _load_docx(data: bytes, name: str) -> tuple[str, str | None, list[int] | None]:
    """Paragraphs and tables in document order; 'Heading N' styles become markdown headings."""
    import docx
    from docx.table import Table

    check_docx_archive(data, name)
    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                lines.extend(_table_lines(item))
            else:
                lines.append(_docx_paragraph(item))
    except Exception as exc:  # BadZipFile, KeyError, lxml XMLSyntaxError, PackageNotFoundError, ...
        raise CorruptDocument(
            f"{name} could not be read as a Word (.docx) file ({type(exc).__name__}: {exc})."
        ) from exc
    return "\n\n".join(line for line in lines if line.strip()), None, None


def _docx_paragraph(paragraph: Paragraph) -> str:
    text = paragraph.text.strip()
    if not text:
        return ""
    style_name = (paragraph.style.name if paragraph.style is not None else "") or ""
    heading = _HEADING_STYLE.fullmatch(style_name.strip())
    if heading:
        return "#" * max(1, min(int(heading.group(1)), 6)) + " " + " ".join(text.split())
    if style_name.strip().lower() == "title":
        return "# " + " ".join(text.split())
    if style_name.strip().lower().startswith("list"):
        return "- " + text
    return text


def _table_lines(table: Table) -> list[str]:
    """One line per row, cells separated by " | " (merged cells appear once)."""
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return lines


# -- HTML ---------------------------------------------------------------------------------------------

_DROP_TAGS = ("script", "style", "nav", "noscript", "template", "head", "svg", "iframe", "object", "form")
_BLOCK_TAGS = (
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "pre",
    "table", "thead", "tbody", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "address",
    "hr", "br", "caption", "details", "summary",
)  # fmt: skip


def _load_html(data: bytes, name: str) -> tuple[str, str | None, list[int] | None]:
    """Visible text with headings as markdown ``#`` lines and blocks separated by blank lines."""
    from bs4 import BeautifulSoup

    declared = _META_CHARSET.search(data[:4096])
    text, encoding = decode_text(data, name, declared.group(1).decode("ascii") if declared else None)
    soup = BeautifulSoup(text, "lxml")
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for level in range(1, 7):
        for tag in soup.find_all(f"h{level}"):
            tag.replace_with(f"\n\n{'#' * level} {_inline(tag.get_text(' '))}\n\n")
    for tag in soup.find_all("tr"):
        cells = [_inline(cell.get_text(" ")) for cell in tag.find_all(["td", "th"])]
        tag.replace_with("\n\n" + " | ".join(c for c in cells if c) + "\n\n")
    for tag in soup.find_all("li"):
        tag.replace_with(f"\n\n- {_inline(tag.get_text(' '))}\n\n")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    raw = soup.get_text()
    paragraphs = (_inline(chunk) for chunk in re.split(r"\n[ \t\r\f\v\u00a0]*\n", raw))
    return "\n\n".join(p for p in paragraphs if p), encoding, None


def _inline(text: str) -> str:
    """Collapse HTML whitespace (newlines inside a paragraph are just spaces)."""
    return " ".join(text.split())


_LOADERS: dict[DocumentKind, Callable[[bytes, str], tuple[str, str | None, list[int] | None]]] = {
    "txt": _load_text,
    "md": _load_text,
    "pdf": _load_pdf,
    "docx": _load_docx,
    "html": _load_html,
}
