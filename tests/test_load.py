"""ingest.load: encodings (short and long, real corpus sentences), formats and the errors users see.

Every fixture is generated in ``tmp_path`` or in memory: text files by encoding corpus text, a DOCX
with python-docx, and PDFs by writing a minimal PDF by hand (no PDF writer is installed).
"""

from __future__ import annotations

import random
from pathlib import Path

import docx
import opencc
import pytest

from ingest.clean import clean_text
from ingest.load import PAGE_SEPARATOR, SUPPORTED_SUFFIXES, LoadedDocument, load_bytes, load_document
from rag.errors import CorruptDocument, DocumentNotFound, DocumentTooLarge, EmptyDocument, UnsupportedFileType

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
TO_SIMPLIFIED = opencc.OpenCC("t2s").convert

# One real sentence each (001 summary, 002, 003, 000), and the same in Simplified.
SHORT_TRADITIONAL = [
    "美中科技戰相當具有針對性，主要針對新興科技、特定企業。",
    "材料、重要設備向來為我國主要產業發展的弱點，即便半導體業也是如此。",
    "數位和綠色雙轉型的融合，為《巴黎協定》的目標帶來了機會和挑戰。",
    "台灣新藍海戰略",
    "盧森堡的產業結構轉型",
    "臺灣深度參與全球價值鏈",
]
SHORT_SIMPLIFIED = [TO_SIMPLIFIED(s) for s in SHORT_TRADITIONAL]


def corpus_text(name_prefix: str, chars: int | None = None) -> str:
    path = next(CORPUS.glob(f"{name_prefix}_*.txt"))
    text = path.read_text(encoding="utf-8")
    return text if chars is None else text[:chars]


def encodable(text: str, codec: str) -> str:
    """Drop the few characters (emoji, rare symbols) a legacy codec cannot represent."""
    return text.encode(codec, errors="ignore").decode(codec)


# -- encodings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sentence", SHORT_TRADITIONAL)
def test_short_big5(sentence: str) -> None:
    doc = load_bytes(sentence.encode("big5"), "short.txt")
    assert doc.text == sentence
    assert doc.encoding in {"cp950", "big5hkscs"}


@pytest.mark.parametrize("sentence", SHORT_SIMPLIFIED + SHORT_TRADITIONAL)
def test_short_gbk(sentence: str) -> None:
    # GBK also holds Traditional characters: a Traditional text in GBK must not be taken for Big5.
    doc = load_bytes(sentence.encode("gbk"), "short.txt")
    assert doc.text == sentence
    assert doc.encoding == "gb18030"


@pytest.mark.parametrize("prefix", ["000", "001", "002", "003", "004"])
def test_whole_corpus_files_in_big5_and_gb18030(prefix: str) -> None:
    text = corpus_text(prefix)
    for codec, variant, expected in (
        ("cp950", text, {"cp950", "big5hkscs"}),
        ("gb18030", text, {"gb18030"}),
        ("gbk", TO_SIMPLIFIED(text), {"gb18030"}),
    ):
        original = encodable(variant, codec)
        doc = load_bytes(original.encode(codec), f"{prefix}.txt")
        assert doc.text == original, codec
        assert doc.encoding in expected


def test_random_corpus_lines_in_each_encoding() -> None:
    lines = [line.strip() for line in corpus_text("001").split("\n") if len(line.strip()) >= 8]
    for line in random.Random(42).sample(lines, 150):
        for codec, variant in (("big5", line), ("gbk", line), ("gbk", TO_SIMPLIFIED(line))):
            try:
                data = variant.encode(codec)
            except UnicodeEncodeError:
                continue
            # Big5 and cp950 differ on a few symbols ("•" vs "‧"); either reading is right.
            readings = {data.decode(c) for c in (codec, "cp950" if codec == "big5" else codec)}
            assert load_bytes(data, "line.txt").text in readings, (codec, variant)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-8"])
def test_unicode_encodings(codec: str) -> None:
    for text in (SHORT_TRADITIONAL[0], corpus_text("003")):
        data = text.encode(codec)
        if codec in {"utf-16-le", "utf-16-be"}:  # with an explicit BOM, as Windows writes it
            data = "\ufeff".encode(codec) + data
        doc = load_bytes(data, "doc.md")
        assert doc.text == text
        assert doc.kind == "md"
        assert "\ufeff" not in doc.text


def test_utf16_without_bom() -> None:
    text = "Tongwen report 2020: 美中貿易戰 and supply chains.\n"
    assert load_bytes(text.encode("utf-16-le"), "r.txt").text == text
    assert load_bytes(text.encode("utf-16-be"), "r.txt").text == text


def test_gbk_bytes_that_happen_to_be_valid_utf8() -> None:
    # "系统状态" in GBK is also valid UTF-8 ("ϵͳ״̬"); the Chinese reading must win.
    assert load_bytes("系统状态".encode("gbk"), "s.txt").text == "系统状态"
    assert load_bytes("café crème".encode(), "f.txt").text == "café crème"  # real UTF-8 stays


def test_latin1_falls_back_to_charset_normalizer() -> None:
    text = "Le café du marché était fermé à cause de la grève générale.\n" * 3
    assert load_bytes(text.encode("latin-1"), "fr.txt").text == text


def test_crlf_is_normalised() -> None:
    assert load_bytes("第一行\r\n第二行\r第三行".encode("big5"), "w.txt").text == "第一行\n第二行\n第三行"


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00",
        bytes(range(256)) * 4,
        random.Random(1).randbytes(4096),
        bytes(0x80 + b % 0x80 for b in random.Random(2).randbytes(3000)),  # no NUL bytes at all
    ],
)
def test_binary_data_is_rejected(data: bytes) -> None:
    with pytest.raises(CorruptDocument, match=r"notes\.txt"):
        load_bytes(data, "notes.txt")


@pytest.mark.parametrize("data", [b"", b"   \n\t\n", "\ufeff".encode("utf-16"), "\u3000\n".encode("big5")])
def test_empty_documents(data: bytes) -> None:
    with pytest.raises(EmptyDocument, match=r"empty\.txt"):
        load_bytes(data, "empty.txt")


@pytest.mark.parametrize("name", ["slides.pptx", "table.xlsx", "README", "photo.PNG", "old.doc"])
def test_unsupported_suffix(name: str) -> None:
    with pytest.raises(UnsupportedFileType) as info:
        load_bytes(b"whatever", name)
    message = str(info.value)
    assert name in message
    assert all(suffix in message for suffix in SUPPORTED_SUFFIXES)


def test_suffix_is_case_insensitive_and_name_loses_directories() -> None:
    doc = load_bytes("測試文件內容。".encode(), "uploads/sub\\報告.TXT")
    assert (doc.name, doc.kind, doc.pages) == ("報告.TXT", "txt", None)


def test_size_limit(tmp_path: Path) -> None:
    with pytest.raises(DocumentTooLarge):
        load_bytes(b"x" * 101, "big.txt", max_bytes=100)
    path = tmp_path / "big.md"
    path.write_bytes(b"y" * 101)
    with pytest.raises(DocumentTooLarge):
        load_document(path, max_bytes=100)


def test_load_document_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "報告.txt"
    path.write_bytes(SHORT_TRADITIONAL[1].encode("big5"))
    doc = load_document(path)
    assert doc == LoadedDocument("報告.txt", "txt", SHORT_TRADITIONAL[1], "cp950", None)
    with pytest.raises(DocumentNotFound):
        load_document(tmp_path / "missing.txt")


# -- PDF -------------------------------------------------------------------------------------------


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per string, one list per page."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(len(pages))), len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
        ops += [
            "({}) Tj T*".format(line.replace("\\", r"\\").replace("(", r"\(").replace(")", r"\)")) for line in lines
        ]
        stream = "\n".join([*ops, "ET"]).encode("latin-1")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PDF_PAGES = [
    [
        "Supply chains moved after the trade war began in 2018, and",
        "many Taiwanese firms moved production lines back home from",
        "the mainland. Industry 4.0 technologies such as robots, big",
        "data and the internet of things are expected to reshape the",
        "chains again.",
        "1",
    ],
    [
        "Global value chains are therefore changing in two ways at",
        "once, through tariffs and through new production methods.",
        "Both matter for small open economies that depend on trade",
        "with the two largest economies in the world.",
        "2",
    ],
]


def test_pdf_text_and_page_offsets() -> None:
    doc = load_bytes(make_pdf(PDF_PAGES), "report.pdf")
    assert (doc.kind, doc.encoding) == ("pdf", None)
    assert doc.pages is not None and len(doc.pages) == 2 and doc.pages[0] == 0
    second = doc.text[doc.pages[1] :]
    assert second.startswith("Global value chains are therefore changing")
    assert doc.text[: doc.pages[1]].endswith(PAGE_SEPARATOR)
    assert "production lines back home" in doc.text[: doc.pages[1]]


def test_pdf_page_numbers_vanish_when_cleaned() -> None:
    doc = load_bytes(make_pdf(PDF_PAGES), "report.pdf")
    cleaned = clean_text(doc.text)
    assert (
        [b.text for b in cleaned.blocks]
        == [
            " ".join(PDF_PAGES[0][:5]),  # wrapped lines joined with one space
            " ".join(PDF_PAGES[1][:2]),  # a line ending in "." ends the paragraph
            " ".join(PDF_PAGES[1][2:4]),
        ]
    )
    assert [doc.text[s:e] for s, e in cleaned.furniture] == ["1", "2"]


@pytest.mark.parametrize(
    "data",
    [
        make_pdf(PDF_PAGES)[:150],  # truncated
        b"%PDF-1.4\n" + random.Random(3).randbytes(2000),  # garbage after a PDF header
        b"this is not a pdf at all",
    ],
)
def test_corrupt_pdf(data: bytes) -> None:
    with pytest.raises(CorruptDocument, match=r"broken\.pdf could not be read as a PDF"):
        load_bytes(data, "broken.pdf")


def test_pdf_without_text_may_be_scanned() -> None:
    with pytest.raises(EmptyDocument, match="scanned"):
        load_bytes(make_pdf([[], []]), "scan.pdf")


# -- DOCX ------------------------------------------------------------------------------------------


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("第一章 緒論", level=1)
    document.add_paragraph("美中貿易戰、科技衝突看似由美國對中國大陸的巨額貿易逆差所引起。")
    document.add_heading("第一節 計畫背景與研究目的", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "國家", "投資金額"
    table.cell(1, 0).text, table.cell(1, 1).text = "臺灣", "56.8%"
    document.add_paragraph("全球供應鏈的重組也將使得全球價值鏈產生變化。")
    path = tmp_path / "報告.docx"
    document.save(str(path))

    doc = load_document(path)
    assert (doc.kind, doc.encoding, doc.pages) == ("docx", None, None)
    assert doc.text.split("\n\n") == [
        "# 第一章 緒論",
        "美中貿易戰、科技衝突看似由美國對中國大陸的巨額貿易逆差所引起。",
        "## 第一節 計畫背景與研究目的",
        "國家 | 投資金額",
        "臺灣 | 56.8%",
        "全球供應鏈的重組也將使得全球價值鏈產生變化。",
    ]
    headings = [(b.level, b.text) for b in clean_text(doc.text).blocks if b.kind == "heading"]
    assert headings == [(1, "第一章 緒論"), (2, "第一節 計畫背景與研究目的")]


@pytest.mark.parametrize("data", [b"PK\x03\x04 not really a zip", b"plain text, not a docx"])
def test_corrupt_docx(data: bytes) -> None:
    with pytest.raises(CorruptDocument, match=r"bad\.docx could not be read as a Word"):
        load_bytes(data, "bad.docx")


# -- HTML ------------------------------------------------------------------------------------------

HTML = """<!DOCTYPE html>
<html><head><meta charset="big5"><title>標題不算正文</title>
<style>p { color: red }</style><script>var x = "不要這段";</script></head>
<body>
<nav><a href="/">首頁</a> | <a href="/about">關於我們</a></nav>
<h1>美中貿易戰</h1>
<p>美中科技戰相當具有針對性，
主要針對新興科技、特定企業。</p>
<h3>日韓貿易管制</h3>
<div>日本於 2019 年 7 月起對於出口至韓國之<b>氟化氫</b>實施出口管制措施。</div>
<ul><li>光阻劑</li><li>氟化聚醯亞胺</li></ul>
<table><tr><th>國家</th><th>金額</th></tr><tr><td>韓國</td><td>12</td></tr></table>
</body></html>
"""


def test_html_structure_and_declared_charset() -> None:
    doc = load_bytes(HTML.encode("big5"), "page.html")
    assert (doc.kind, doc.encoding) == ("html", "cp950")
    assert doc.text.split("\n\n") == [
        "# 美中貿易戰",
        "美中科技戰相當具有針對性， 主要針對新興科技、特定企業。",
        "### 日韓貿易管制",
        "日本於 2019 年 7 月起對於出口至韓國之氟化氫實施出口管制措施。",
        "- 光阻劑",
        "- 氟化聚醯亞胺",
        "國家 | 金額",
        "韓國 | 12",
    ]
    blocks = clean_text(doc.text).blocks
    assert [(b.kind, b.level) for b in blocks[:3]] == [("heading", 1), ("paragraph", 0), ("heading", 3)]
    # The cleaner removes the spaces HTML whitespace left between CJK characters.
    assert blocks[1].text == "美中科技戰相當具有針對性，主要針對新興科技、特定企業。"
    assert blocks[3].text == "日本於 2019 年 7 月起對於出口至韓國之氟化氫實施出口管制措施。"


def test_html_utf8_without_declaration() -> None:
    doc = load_bytes("<p>臺灣深度參與全球價值鏈</p><h2>小結</h2>".encode(), "x.htm")
    assert doc.text == "臺灣深度參與全球價值鏈\n\n## 小結"


def test_html_with_only_script_is_empty() -> None:
    with pytest.raises(EmptyDocument):
        load_bytes(b"<html><script>alert(1)</script><nav>menu</nav></html>", "blank.html")
