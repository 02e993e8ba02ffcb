"""ingest.clean on real corpus text: joining, page furniture, headings, lists and offsets.

The corpus files are PDF extractions; every expectation below names the real lines it comes from
(line numbers are 1-based lines of the corpus file).
"""

from __future__ import annotations

import re
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest

from ingest.clean import Block, CleanDocument, clean_text

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
FILES = sorted(p.name for p in CORPUS.glob("*.txt"))
REPORT = "001_3ffe8296a3a1e621.txt"  # 924 KB trade-war report: wrapped lines, page numbers, chapters
FORUM = "002_89eccff8fcb5eb51.txt"
BLUE_OCEAN = "003_84286bf869086792.txt"  # markdown-ish: bullets, footnotes, a repeated footer
SUMMARIES = "004_dfbd3e62c09c681e.txt"  # markdown headings, "- ◇" bullets, a table of contents

CONTENT = re.compile(r"[\u3400-\u9fff\uf900-\ufaffA-Za-z0-9]")  # Han characters, Latin letters, digits
MARKUP = set("#*-+•◇◆●○■□▪✓ ")  # what cleaning may strip besides whitespace and furniture


@cache
def cleaned(name: str) -> CleanDocument:
    return clean_text((CORPUS / name).read_text(encoding="utf-8"))


def find_block(doc: CleanDocument, needle: str) -> Block:
    matches = [b for b in doc.blocks if needle in b.text]
    assert matches, f"no block contains {needle!r}"
    return matches[0]


def line_offset(text: str, line_no: int) -> int:
    """Offset of the first non-space character of 1-based line ``line_no``."""
    start = 0
    for _ in range(line_no - 1):
        start = text.index("\n", start) + 1
    return start + len(text[start:].split("\n", 1)[0]) - len(text[start:].split("\n", 1)[0].lstrip())


# -- joining ----------------------------------------------------------------------------------------


def test_broken_cjk_line_is_joined_without_space() -> None:
    # 001 lines 3 and 5: "…巨額貿易逆" / "差所引起，但是…" with a blank line between.
    block = find_block(cleaned(REPORT), "巨額貿易逆差所引起")
    assert block.kind == "paragraph"
    assert block.text.startswith("美中貿易戰、科技衝突看似由美國對中國大陸的巨額貿易逆差所引起，但是")
    assert block.text.endswith("等影響深遠的層面。")  # the paragraph ends at its 。 (line 11)


def test_small_excerpt_is_joined_too() -> None:
    # The first 12 lines of 001, copied: wrapping is detected on a short excerpt as well.
    excerpt = (
        " 摘 要 \n\n美中貿易戰、科技衝突看似由美國對中國大陸的巨額貿易逆\n\n"
        "差所引起，但是就中長期的觀點來看，美國更關切中國大陸的國\n\n"
        "有企業與準國有企業的營業行為和政府補貼、中國大陸在一些領\n\n"
        "域科技優勢的崛起、及中國大陸的經濟體制改革等影響深遠的層\n\n面。 \n\n"
        "不過，經過多回合的交戰與協商，在 2020 年 1 月，美中簽\n\n"
        "署第一階段協議，重點內容包括：貿易平衡、市場准入、匯率穩\n\n"
        "定、強迫技術轉讓、智慧財產權、保障檢核機制、與撤銷加徵關\n\n"
        "稅等。美中的貿易戰緊張局勢獲得抒解。\n"
    )
    doc = clean_text(excerpt)
    assert [b.text for b in doc.blocks] == [
        "摘要",  # a standalone short title stays its own paragraph, stray spaces removed
        "美中貿易戰、科技衝突看似由美國對中國大陸的巨額貿易逆差所引起，但是就中長期的觀點來看，美國更關切"
        "中國大陸的國有企業與準國有企業的營業行為和政府補貼、中國大陸在一些領域科技優勢的崛起、及中國大陸"
        "的經濟體制改革等影響深遠的層面。",
        "不過，經過多回合的交戰與協商，在 2020 年 1 月，美中簽署第一階段協議，重點內容包括：貿易平衡、"
        "市場准入、匯率穩定、強迫技術轉讓、智慧財產權、保障檢核機制、與撤銷加徵關稅等。美中的貿易戰緊張"
        "局勢獲得抒解。",
    ]
    assert {b.kind for b in doc.blocks} == {"paragraph"}


def test_latin_words_joined_with_one_space() -> None:
    # 001 lines 836/838: "…to discuss Taiwan’s " / "strategies and policy measures…"
    block = find_block(cleaned(REPORT), "Taiwan’s strategies and policy measures")
    assert "Taiwan’sstrategies" not in block.text
    # CJK next to Latin inside a line keeps the author's single space ("在 2020 年 1 月").
    assert "在 2020 年 1 月，美中簽署第一階段協議" in find_block(cleaned(REPORT), "美中簽署第一階段協議").text


def test_sentence_continues_across_page_number() -> None:
    # 001 lines 4642-4650: "…「停止匯款」、「停止發" / 3 blank lines / "66" / "放簽證」等各種可能措施。"
    block = find_block(cleaned(REPORT), "「停止發放簽證」等各種可能措施")
    assert "66" not in block.text


def test_footnote_does_not_split_a_sentence() -> None:
    # 003: "…這個韌性產業鏈轉型計畫可" / "¹ 美參議院通過 1 兆美元基建議案…" / "以通過建設《園區 4.0…"
    doc = cleaned(BLUE_OCEAN)
    sentence = find_block(doc, "這個韌性產業鏈轉型計畫可以通過建設")
    note = find_block(doc, "美參議院通過 1 兆美元基建議案")
    assert note.text.startswith("¹")
    assert doc.blocks.index(note) == doc.blocks.index(sentence) + 1  # right after its paragraph


# -- page furniture --------------------------------------------------------------------------------


def test_page_number_lines_are_dropped() -> None:
    doc = cleaned(REPORT)
    dropped = {doc.original[s:e] for s, e in doc.furniture}
    # Real page numbers of 001, each alone after a page break (3 blank lines), e.g. line 3415 "45".
    assert {"45", "66", "73", "137", "202", "467"} <= dropped
    assert dropped <= {str(n) for n in range(1, 1000)}
    offset = line_offset(doc.original, 3415)
    assert doc.original[offset : offset + 2] == "45"
    assert all(not b.start <= offset < b.end for b in doc.blocks)
    assert find_block(doc, "第四，主要優惠措施有三").text.startswith("第四，")


def test_bare_numbers_inside_tables_are_kept() -> None:
    # 001 lines 10807 / 10854: table cells "2006" and "2010" between single blank lines.
    texts = [b.text for b in cleaned(REPORT).blocks]
    assert "2006" in texts
    assert any(t.startswith("2010") for t in texts)


def test_explicit_page_number_forms_are_dropped_anywhere() -> None:
    text = "第一段內容在這裡結束。\n- 12 -\n第二段。\n第 3 頁\n第三段。\nPage 4 of 9\n結束。\n"
    doc = clean_text(text)
    assert [b.text for b in doc.blocks] == ["第一段內容在這裡結束。", "第二段。", "第三段。", "結束。"]
    assert [text[s:e] for s, e in doc.furniture] == ["- 12 -", "第 3 頁", "Page 4 of 9"]


def test_running_header_and_footer_are_dropped() -> None:
    # Three pages (form-feed breaks, as the PDF loader writes them) with a running header and a
    # footer; a short line repeated *inside* the pages ("新增投資", a table cell in 001) stays.
    pages = []
    for n in range(1, 4):
        pages.append(
            f"美中貿易戰對臺商布局之影響\n\n第{n}頁的正文從這裡開始，內容各不相同。\n\n新增投資\n\n"
            f"這一頁的結論是第{n}點。\n\n中華經濟研究院\n\n{n}\n"
        )
    doc = clean_text("\n\f\n".join(pages))
    texts = [b.text for b in doc.blocks]
    assert "美中貿易戰對臺商布局之影響" not in texts
    assert "中華經濟研究院" not in texts
    assert texts.count("新增投資") == 3
    assert len(doc.furniture) == 9  # 3 headers, 3 footers, 3 page numbers


def test_repeated_summary_lines_are_not_furniture() -> None:
    # 001 repeats its Chinese summary four times; its short wrapped lines must all survive.
    doc = cleaned(REPORT)
    assert sum("巨額貿易逆差所引起" in b.text for b in doc.blocks) == 4


def test_repeated_footer_in_blue_ocean() -> None:
    # 003 ends two pages with the same three contact lines (a real running footer).
    doc = cleaned(BLUE_OCEAN)
    dropped = [doc.original[s:e] for s, e in doc.furniture]
    assert dropped.count("info@tss-association.org") == 2
    assert "info@smartcitiesgroup.net" in [b.text for b in doc.blocks]  # said once: content


# -- headings and lists ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("第一章 緒論", 1),  # line 839 " 第一章  緒論 ": one space kept after the 章 marker
        ("第一節 計畫背景與研究目的", 2),
        ("一、研究架構", 3),
        ("（一）貿易平衡", 4),
        ("1.政府方面", 5),
        ("參、會議討論（依發言順序）", 2),
        # Wrapped over two lines (1564 "第二章  美中貿易暨科技戰進展與相關" + 1566 "議題").
        ("第二章 美中貿易暨科技戰進展與相關議題", 1),
        # 27288 " 附錄四  第一場座談會記錄 ", right under a paragraph line: an appendix is a top-level part.
        ("附錄四 第一場座談會記錄", 1),
    ],
)
def test_report_headings(text: str, level: int) -> None:
    block = next((b for b in cleaned(REPORT).blocks if b.text == text), None)
    assert block is not None, f"missing heading {text!r}"
    assert (block.kind, block.level) == ("heading", level)


def test_forum_headings_continue_numbered_runs() -> None:
    # 002: "(三)…" is as wide as a wrapped line, but follows the heading "(二)…".
    headings = {b.text: b.level for b in cleaned(FORUM).blocks if b.kind == "heading"}
    assert headings["(三)第一日(11/21)會議議程:會議 1_促進綠色生產和消費的數位技術"] == 4
    assert headings["3. Dominic Waughray _世界永續發展工商理事會(WBCSD)執行副總裁"] == 5
    assert headings["(七)第二日(11/22)會議議程:會議 5_OECD-GGKP 聯合會議-全球新挑戰背景下的綠色成長與國際合作"] == 4


@pytest.mark.parametrize(
    ("text", "heading"),
    [
        ("附錄一  期初報告意見回復表\n\n內容", "附錄一 期初報告意見回復表"),
        ("附录2  访谈记录\n\n内容", "附录2 访谈记录"),
        ("附件三 名單\n\n內容", "附件三 名單"),
        ("附件一、二所列的廠商，多數已回臺投資\n\n內容", None),  # a sentence about appendices
        ("附錄一說明調查方法與樣本\n\n內容", None),
    ],
)
def test_appendix_headings(text: str, heading: str | None) -> None:
    headings = [(b.text, b.level) for b in clean_text(text).blocks if b.kind == "heading"]
    assert headings == ([(heading, 1)] if heading else [])


def test_running_text_that_starts_like_a_heading_is_not_one() -> None:
    doc = cleaned(REPORT)
    # 1402: a chapter outline sentence, not the chapter heading.
    outline = find_block(doc, "第二章追蹤分析美中貿易暨科技戰進展與相關議題，以作為後續分析的基礎")
    assert outline.kind == "paragraph"
    # 896-900: a numbered goal wrapped over three lines is one list item, not a heading.
    goal = find_block(doc, "一、探討美中貿易、科技衝突（或稱科技戰）對全球供應鏈的可能影響")
    assert goal.kind == "list_item"
    assert goal.text.endswith("的因應做法及政府的對策。")
    # 12765 "1.減少交通事" + "故": a table cell in a narrow column.
    assert all(b.kind != "heading" for b in doc.blocks if b.text.startswith("1.減少交通事"))


def test_markdown_headings_and_toc() -> None:
    doc = cleaned(SUMMARIES)
    headings = [(b.level, b.text) for b in doc.blocks if b.kind == "heading"]
    assert (1, "中技社 113 年度研究報告摘要彙編") in headings  # "# 中技社 113 年度研究報告摘要彙編"
    assert (2, "目錄") in headings  # "## 目 錄"
    assert (3, "一、問題及目標") in headings
    assert (2, "(二) 臺灣氫能發展現況與推動瓶頸") in headings  # "## **(二) …**": bold markers dropped
    toc = find_block(doc, "2024-01 全球核能發電現況與發展趨勢.....")
    assert toc.kind == "paragraph"  # a table-of-contents line is never a heading nor joined


def test_list_items_survive() -> None:
    items = [b.text for b in cleaned(BLUE_OCEAN).blocks if b.kind == "list_item"]
    assert items[:4] == [
        "全球本地化: 輕資產、高科技、重服務",
        "協同創新模式: 台灣智慧體驗中心",
        "面向服務的多贏新型國際商業合作模型",
        "台灣全球韌性科技產業鏈戰略投資倡議",
    ]
    assert "2 制定透明和公平的機制，在 PPP 模式中平衡政府和私營公司的利益。" in items
    summary_items = [b.text for b in cleaned(SUMMARIES).blocks if b.kind == "list_item"]
    assert "執行時間：2023.06~2023.12" in summary_items  # "- ◇ 執行時間：2023.06~2023.12"
    assert "召集人：林德福秘書長(台灣電力企業聯合會)" in summary_items
    # 001 929-947: "1.分析…" … "4.研析…" wrapped items, each joined into one list item.
    report_items = [b.text for b in cleaned(REPORT).blocks if b.kind == "list_item"]
    assert any(t.startswith("4.研析我國企業") and t.endswith("建議策略與做法。") for t in report_items)


def test_marker_only_list_line_continues() -> None:
    # 001 25876: "1." alone, then "本研究議題範圍廣泛，應詳述規劃之研" on the next line.
    block = find_block(cleaned(REPORT), "本研究議題範圍廣泛，應詳述規劃之研究方法")
    assert block.kind == "list_item"
    assert block.text.startswith("1.本研究議題範圍廣泛")


def test_stray_spaces_between_cjk_are_removed() -> None:
    doc = clean_text("延 續 性 策 略 與  IC 設計 工具\n")
    assert doc.blocks[0].text == "延續性策略與 IC 設計工具"


# -- offsets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_char_map_points_at_the_same_characters(name: str) -> None:
    doc = cleaned(name)
    for block in doc.blocks:
        assert len(block.char_map) == len(block.text)
        assert list(block.char_map) == sorted(set(block.char_map))  # strictly increasing
        assert (block.start, block.end) == (block.char_map[0], block.char_map[-1] + 1)
        for ch, offset in zip(block.text, block.char_map, strict=True):
            original = doc.original[offset]
            # A space is either the original's or stands for the line break it replaced.
            assert original == ch or (ch == " " and original.isspace()), (ch, offset)


@pytest.mark.parametrize("name", FILES)
def test_no_content_is_lost(name: str) -> None:
    """Every Han character, letter and digit outside page furniture ends up in exactly one block."""
    doc = cleaned(name)
    furniture = {i for s, e in doc.furniture for i in range(s, e)}
    kept = [i for b in doc.blocks for i in b.char_map]
    assert len(kept) == len(set(kept))
    expected = {i for i, ch in enumerate(doc.original) if not ch.isspace() and i not in furniture}
    missing = expected - set(kept)
    assert {doc.original[i] for i in missing} <= MARKUP
    # And in reading order: blocks appear by position (footnotes right after their paragraph).
    starts = [b.start for b in doc.blocks]
    assert starts == sorted(starts)
    original_content = [ch for i, ch in enumerate(doc.original) if i not in furniture and CONTENT.match(ch)]
    cleaned_content = [ch for b in doc.blocks for ch in b.text if CONTENT.match(ch)]
    assert sorted(original_content) == sorted(cleaned_content)
    if name != BLUE_OCEAN:  # 003 moves footnotes after their paragraph; the others are in order
        assert original_content == cleaned_content


def test_furniture_is_small_and_short() -> None:
    for name in FILES:
        doc = cleaned(name)
        assert len(doc.furniture) <= 12
        assert all(e - s <= 40 for s, e in doc.furniture)


def test_original_span_maps_a_joined_sentence_back() -> None:
    doc = cleaned(REPORT)
    index = doc.blocks.index(find_block(doc, "巨額貿易逆差所引起"))
    text = doc.blocks[index].text
    i = text.index("貿易逆差")
    start, end = doc.original_span(index, i, i + 4)
    # The span crosses the line break: "貿易逆 \n\n差".
    assert doc.original[start:end].replace(" ", "").replace("\n", "") == "貿易逆差"
    assert doc.line_of(start) == 3 and doc.line_of(end - 1) == 5
    assert doc.original_span(index, i, i) == (start, start)
    with pytest.raises(IndexError):
        doc.original_span(index, 0, len(text) + 1)


def test_line_of() -> None:
    doc = clean_text("第一行\n第二行\n\n第四行")
    assert [doc.line_of(o) for o in (0, 2, 3, 4, 8, 9, 10, 100, -5)] == [1, 1, 1, 2, 3, 4, 4, 4, 1]
    heading = cleaned(REPORT).blocks[[b.text for b in cleaned(REPORT).blocks].index("第一章 緒論")]
    assert cleaned(REPORT).line_of(heading.start) == 839


def test_empty_and_blank_text() -> None:
    assert clean_text("").blocks == ()
    assert clean_text(" \n\n\t\n").blocks == ()


def test_whole_report_cleans_to_non_overlapping_blocks_in_order() -> None:
    # Cleaning speed is measured by bench/core.py (ingest), never timed here.
    doc = clean_text((CORPUS / REPORT).read_text(encoding="utf-8"))
    assert len(doc.blocks) > 100
    ends = [(b.start, b.end) for b in doc.blocks]
    assert all(s < e for s, e in ends)
    assert all(prev_end <= start for (_, prev_end), (start, _) in pairwise(ends))


# -- emphasis markers ---------------------------------------------------------------------------------


def test_markdown_bold_is_dropped_and_offsets_still_point_at_the_original() -> None:
    # 003 line 27: "我們因此提出**全球本地化(Glocalization) 輕資產、高科技、重服務 (LHS)** 的新戰略思維。"
    doc = cleaned(BLUE_OCEAN)
    block = find_block(doc, "我們因此提出全球本地化")
    assert "**" not in block.text
    assert "為配合輕資產、高技術、重服務的全球本地化國際合作" in block.text
    for needle in ("全球本地化(Glocalization)", "的新戰略思維"):
        at = block.text.index(needle)
        start, end = doc.original_span(doc.blocks.index(block), at, at + len(needle))
        assert doc.original[start:end] == needle
    assert not any("**" in b.text for b in doc.blocks)


def test_underscore_emphasis_goes_but_underscores_inside_words_stay() -> None:
    doc = clean_text("這是__重點__內容。\n\n網址 https://x.tw/a__b?utm__c=1 不變。\n")
    texts = [b.text for b in doc.blocks]
    assert texts[0] == "這是重點內容。"
    assert "a__b?utm__c=1" in texts[1]
    block = doc.blocks[0]
    assert [doc.original[i] for i in block.char_map] == list(block.text)


# -- figure and table labels ------------------------------------------------------------------------


def test_a_figure_label_is_a_block_of_its_own_and_the_next_sentence_starts_its_own() -> None:
    # 001 lines 23869-23875: 「圖 7-2-1  新加坡：整體製造業 GDP 及占比之趨勢」, then 「不過，從 2014 年…」.
    # Run on, the label began the sentence, and a sentence that begins like a label is never quoted.
    doc = cleaned(REPORT)
    label = find_block(doc, "圖 7-2-1 新加坡：整體製造業 GDP 及占比之趨勢")
    assert label.text == "圖 7-2-1 新加坡：整體製造業 GDP 及占比之趨勢"
    sentence = find_block(doc, "整體製造業 GDP 占全國 GDP 之比例達 20.74%")
    assert sentence.text.startswith("不過，從 2014 年到 2015 年之間")
    # A sentence about a table (it has a comma) still runs on over its broken lines.
    about = find_block(doc, "表 1 歸納我們所分析的美中貿易戰對全球價值鏈的影響")
    assert "政府對策芻議" in about.text
