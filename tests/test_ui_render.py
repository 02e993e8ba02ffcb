"""The UI's pure parts without a browser: answer/source HTML, the reader's script, conversations,
document views and upload reports. The browser tests (test_ui_browser.py) check the page itself."""

from __future__ import annotations

import re

import pytest

from rag.errors import CorruptDocument, UnsupportedFileType
from rag.indexing import IngestReport
from rag.results import Answer
from rag.service import Tongwen
from ui import conversations as convs
from ui.answer_view import AnswerView
from ui.documents import UPLOAD_SUFFIXES, progress_text, reader_html, report_markdown
from ui.i18n import LOCALE_SCRIPT, STRINGS, error_text, script_for_locale, simplified, t
from ui.render import answer_html, bot_message, highlight, parse_open_ref, quotes_by_source, sources_panel
from ui.server import with_head_script

QUESTION = "卢森堡第三次工业革命计划以哪些技术为基础？"


@pytest.fixture(scope="module")
def result(service: Tongwen) -> Answer:
    return service.ask(QUESTION, llm="extractive")


def test_every_marker_links_to_the_sentence_it_relies_on(result: Answer) -> None:
    markers = re.findall(r"\[(\d)\]", result.answer)
    assert len(markers) >= 2
    body = answer_html(result, turn=1, script="simplified")
    links = re.findall(r'<a class="tw-cite" href="#tw-src-1-(\d+)-q(\d+)" title="([^"]+)">\[(\d+)\]</a>', body)
    assert [n for n, *_ in links] == markers  # every [n], in order, and nothing else
    quotes = quotes_by_source(result)
    for n, k, title, shown in links:
        assert n == shown and quotes[int(n)][int(k)] == title.replace("&quot;", '"')
        assert title in result.sources[int(n) - 1].text


def test_every_quoted_sentence_is_marked_in_the_panel_and_under_the_answer(result: Answer) -> None:
    quotes = quotes_by_source(result)
    count = sum(len(q) for q in quotes.values())
    assert count >= 2
    panel = sources_panel(result, state="final", turn=1, script="traditional")
    assert panel.count("<mark") == count
    for n, sentences in quotes.items():
        for k in range(len(sentences)):
            assert f'id="tw-src-1-{n}-q{k}"' in panel
    assert bot_message(result, 1, "traditional").count("<mark") == count  # the phone's folded copy


def test_each_source_is_shown_with_its_documents_title(service: Tongwen, result: Answer) -> None:
    """A file name such as 000_6e77f61679c9a0c3.txt tells a reader nothing: the source names its
    document by the title the document list shows."""
    titles = service.document_titles()
    assert all(src.title == titles[src.doc_id] for src in result.sources)
    panel = sources_panel(result, state="final", turn=1, script="traditional")
    luxembourg = next(src for src in result.sources if src.doc.startswith("000_"))
    assert luxembourg.title == "推動第三次產業革命之方向：以盧森堡為例"
    assert f'<span class="tw-title">{luxembourg.title}</span>' in panel
    # A title that is only the file name again is not shown twice.
    plain = result.model_copy(
        update={"sources": [s.model_copy(update={"title": s.doc.removesuffix(".txt")}) for s in result.sources]}
    )
    assert "tw-title" not in sources_panel(plain, state="final", turn=1, script="traditional")


def test_all_quotes_of_one_source_are_highlighted_without_overlap() -> None:
    text = "甲句在此。乙句在此。丙句在此。"
    marked = highlight(text, ["丙句在此。", "甲句在此。", "甲句"], "p")
    assert (
        marked
        == '<mark class="tw-q1" id="p-q1">甲句在此。</mark>乙句在此。<mark class="tw-q0" id="p-q0">丙句在此。</mark>'
    )
    assert highlight("<b>", ["<b>"]) == '<mark class="tw-q0">&lt;b&gt;</mark>'  # escaped, always


def test_the_script_follows_the_browser_and_simplified_uses_mainland_terms() -> None:
    assert [script_for_locale(x) for x in ("zh-TW", "zh-HK", "zh-CN", "zh-SG", "zh-Hans-CN", "en-US", None)] == [
        "traditional",
        "traditional",
        "simplified",
        "simplified",
        "simplified",
        "traditional",
        "traditional",
    ]
    assert simplified("上傳文件（檔名）需要管理金鑰") == "上传文档（文件名）需要管理密钥"
    assert t("tab.sources", "simplified") == "来源" and t("tab.sources", "traditional") == "來源"
    assert all(re.search(r"[\u4e00-\u9fff]", v) for v in STRINGS.values())  # every UI string is Chinese
    assert "zh-CN" in LOCALE_SCRIPT and "localStorage" in LOCALE_SCRIPT
    page = with_head_script(b"<html><head><title>x</title></head></html>", b"<script>1</script>")
    assert page.startswith(b"<html><head><script>1</script><title>")


def test_errors_are_chinese_with_what_to_do() -> None:
    corrupt = error_text(CorruptDocument, "traditional")
    assert "損毀" in corrupt and "再上傳" in corrupt and not re.search(r"[A-Za-z]{3,}", corrupt)
    assert ".htm" in error_text(UnsupportedFileType, "simplified", suffixes=" ".join(UPLOAD_SUFFIXES))
    assert error_text(RuntimeError, "traditional").startswith("無法完成")


def test_upload_report_says_per_file_what_happened() -> None:
    report = IngestReport(added=["新.txt"], unchanged=["舊.md"], chunks_embedded=3, seconds=1.5)
    report.failed["壞.pdf"] = "壞.pdf: could not be read as a PDF (PdfStreamError)"
    report.failed_kinds["壞.pdf"] = CorruptDocument
    text = report_markdown(report, "traditional", {"大.txt": "檔案太大"})
    assert "**新增**：新.txt" in text and "未變更" in text and "舊.md" in text
    assert "**失敗**：壞.pdf：檔案已損毀" in text and "PdfStreamError" not in text
    assert "大.txt：檔案太大" in text and "嵌入 3 個段落" in text
    assert progress_text("Embedding 42 chunks", "simplified", 1, 1) == "正在嵌入 42 个段落…"
    assert progress_text("Embedding 42 chunks, sentence by sentence", "traditional", 1, 1) == "正在嵌入 42 個段落…"
    assert progress_text("Reading a.txt", "traditional", 1, 2) == "正在讀取 a.txt…（1/2 個檔案）"
    assert {".htm", ".markdown", ".pdf", ".docx"} <= set(UPLOAD_SUFFIXES)


def test_conversations_keep_turns_history_and_titles(result: Answer) -> None:
    store = convs.valid(None)
    store = convs.add_turn(store, QUESTION, result.answer, result)
    assert convs.history(convs.current(store)) == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": result.answer},
    ]
    messages = convs.chat_messages(convs.current(store), "simplified")
    assert messages[1]["content"] == bot_message(result, 1, "simplified")
    first = store["current"]
    store = convs.start_new(store)
    assert store["current"] != first and convs.start_new(store)["current"] == store["current"]  # one empty at most
    assert [title for title, _ in convs.choices(store, "新對話")] == ["新對話", QUESTION[:24]]
    store = convs.select(store, first)
    again, question = convs.drop_last_turn(store)
    assert question == QUESTION and not convs.current(again)["turns"]
    assert convs.current(convs.clear_current(store))["turns"] == []
    assert convs.valid({"conversations": "broken"})["conversations"][0]["turns"] == []


def test_reader_marks_the_cited_passage(service: Tongwen, result: Answer) -> None:
    cited = result.citations[0]
    view = service.document_view(cited.doc_id)
    doc_id, seq, turn, n = parse_open_ref(f"#open:{cited.id}:1:{cited.n}")
    assert (doc_id, turn, n) == (cited.doc_id, 1, cited.n)
    page = reader_html(view, "traditional", seq, cited.quotes, "r")
    assert page.count('class="tw-passage tw-target"') == 1
    assert page.count("<mark") >= 1 and view["title"] in page
    assert page.count('class="tw-chunk"') == len(view["chunks"])
    assert parse_open_ref("open:abc") == ("abc", None, 0, 0)


def test_a_stored_turn_reads_back_typed_even_when_old_or_damaged(result: Answer) -> None:
    """The browser keeps an answer's JSON; reading it back gives the same page, and a turn stored
    by an older version (fields missing, keys of its own, a field in another shape) still shows."""
    store = convs.add_turn(convs.valid(None), QUESTION, result.answer, result)
    kept = convs.current(store)["turns"][0]["result"]
    assert set(kept) == set(convs.KEPT_RESULT_KEYS) and kept["sources"][0] == result.sources[0].model_dump(mode="json")
    again = convs.turn_result(store, 1)
    assert again is not None and again.sources == result.sources and again.citations == result.citations
    assert again.typed == QUESTION
    old = AnswerView.read({"answer": "舊答案", "stopped": True, "error": "逾時", "timings": "broken", "sources": [1]})
    assert (old.answer, old.error, old.sources, old.timings) == ("舊答案", "逾時", [], {})
    assert AnswerView.read("not a dict") == AnswerView()


def test_small_talk_is_not_shown_as_a_refusal(service: Tongwen) -> None:
    """「謝謝！」 gets the reply and a note that the documents were not consulted: not the
    「沒有找到答案，以下是最接近的段落」 warning of a refusal, and not 「沒有檢索到任何段落」."""
    thanks = service.ask("謝謝！")
    panel = sources_panel(thanks, state="final", turn=1, script="traditional")
    assert t("small_talk", "traditional") in panel
    assert "tw-notfound" not in panel and t("no_passages", "traditional") not in panel
    refused = sources_panel(service.ask("盧森堡的失業率是多少？"), state="final", turn=2, script="traditional")
    assert "tw-notfound" in refused and t("small_talk", "traditional") not in refused
    stored = convs.kept_result(thanks)
    assert AnswerView.read(stored).small_talk == "thanks", "a restored turn is still small talk"
