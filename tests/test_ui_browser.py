"""The chat UI in a real browser: the real server (FastAPI + Gradio) on a small index, driven by
headless Chromium through Playwright.

The server indexes a two-document slice of the corpus into a temporary home that shares the
embedding model with the other tests (``$TONGWEN_TEST_HOME/models`` or
``<project>/.tongwen/test-home/models``; built there on first use). Needs Debian's
``/usr/bin/chromium`` and a CJK font (``fonts-wqy-zenhei``); never ``playwright install``.
The chat test leaves a full-page screenshot in ``.tongwen/test-artifacts/screenshot.png``; with
``TONGWEN_UPDATE_DOCS=1`` it refreshes the README's ``docs/screenshot.png``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import artifact_path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

pytestmark = pytest.mark.browser


PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORPUS_SLICE = ("000_6e77f61679c9a0c3.txt", "003_84286bf869086792.txt")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = artifact_path(PROJECT_ROOT / "docs" / "screenshot.png")
SCREENSHOT_PHONE = artifact_path(PROJECT_ROOT / "docs" / "screenshot-phone.png")
ANSWER_TIMEOUT_MS = 120_000  # the first question also warms jieba and the keyword index
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}

# Mainland vocabulary (工业革命, 计划) for a document that says 產業革命, 計畫.
QUESTION = "卢森堡第三次工业革命计划以哪些技术为基础？"
FOLLOW_UP = "那三大运作原则呢？"  # elliptical: only answerable with the first turn as history

# Latin words a reader may see outside document content: none. (Document text, file names,
# questions and answers are content and are left out of the scan, see ``english_words``.)
ALLOWED_WORDS: set[str] = set()


def corpus_slice(tmp_path_factory: pytest.TempPathFactory, names: tuple[str, ...]) -> Path:
    """A folder holding copies of some bundled documents: what a test server indexes."""
    corpus = tmp_path_factory.mktemp("ui-corpus")
    for name in names:
        shutil.copy(PROJECT_ROOT / "data" / "corpus" / name, corpus / name)
    return corpus


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory, make_settings) -> Iterator[str]:
    """The real app (`ui.server.create_app`) served by uvicorn on 127.0.0.1 (`tests.servers.serve`)."""
    from tests.servers import serve
    from ui.server import create_app

    settings = make_settings(
        tmp_path_factory.mktemp("ui-browser"), corpus_dir=corpus_slice(tmp_path_factory, CORPUS_SLICE)
    )
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian chromium: apt-get install -y chromium fonts-wqy-zenhei")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str, locale: str = "zh-TW", viewport: dict | None = None):
    """A fresh browser context (its own localStorage) on the app; returns (context, page, requests)."""
    context = browser.new_context(viewport=viewport or DESKTOP, locale=locale)
    page = context.new_page()
    page.set_default_timeout(30_000)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url + "/")
    page.locator("#question textarea").wait_for()
    page.locator('#sources .tw-sources:not([data-state="loading"])').wait_for(state="attached")  # load has run
    return context, page, requested


@pytest.fixture
def page(browser, server_url: str) -> Iterator[object]:
    context, page, requested = open_page(browser, server_url)
    yield page
    # The page works offline: everything it loads comes from our own server.
    foreign = [url for url in requested if not url.startswith((server_url, "data:", "blob:"))]
    assert not foreign, foreign
    context.close()


def ask(page, question: str, turn: int) -> str:
    """Type a question, press send, wait for the final sources panel; the bot's answer text."""
    box = page.locator("#question textarea")
    box.fill(question)
    page.locator("#send").click()
    final = page.locator(f'#sources .tw-sources[data-state="final"][data-turn="{turn}"]')
    final.wait_for(state="attached", timeout=ANSWER_TIMEOUT_MS)
    bots = page.locator("#chatbot .message.bot")
    assert bots.count() == turn
    return bots.nth(turn - 1).inner_text()


def in_viewport(page, selector: str) -> int:
    """How many elements matching ``selector`` are (at least partly) on screen and visible."""
    return page.evaluate(
        """selector => [...document.querySelectorAll(selector)].filter(el => {
            const r = el.getBoundingClientRect();
            return el.checkVisibility() && r.height > 0 && r.bottom > 0 && r.top < window.innerHeight
                && r.right > 0 && r.left < window.innerWidth;
        }).length""",
        selector,
    )


# What is content, not UI: questions and answers, document text, file names, document titles.
CONTENT = (
    "#chatbot .message, .tw-text, .tw-passage-text, .tw-title, .tw-doc, .tw-file, .tw-heading, .tw-reader-title,"
    " .tw-reader-heading, .tw-docs td:first-child, .tw-condensed, #conversations label, .tw-chunk"
)


def english_words(page) -> set[str]:
    """Latin words of 3+ letters in the visible UI text, content (and file suffixes) left out."""
    text = page.evaluate(
        """content => {
            const out = [];
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                const el = n.parentElement;
                if (!el || el.closest('script, style') || el.closest(content) || !el.checkVisibility()) continue;
                out.push(n.nodeValue);
            }
            return out.join(' ');
        }""",
        CONTENT,
    )
    return set(re.findall(r"(?<![.\w])[A-Za-z]{3,}", text)) - ALLOWED_WORDS  # ".docx": a file suffix


def test_streamed_answer_with_sources_and_follow_up(page) -> None:
    from ingest.normalise import detect_script

    page.locator("#settings").get_by_text("設定").click()  # the settings accordion: 生成方式, top-k
    assert page.locator("#backend input[value='extractive']").is_checked()

    answer = ask(page, QUESTION, turn=1)
    assert detect_script(answer) == "simplified", answer
    assert re.search(r"\[\d\]", answer), answer
    assert "再生能源" in answer, answer  # the basis the document names: 再生能源 + 數位科技

    sources = page.locator("#sources")
    assert CORPUS_SLICE[0] in sources.inner_text()
    assert sources.locator("mark").count() >= 1
    assert sources.locator(".tw-extractive").count() == 1  # the extractive note is visible
    assert page.locator("#chatbot .message.user").first.inner_text().strip() == QUESTION

    # The follow-up only makes sense with the first turn: the service condenses it with history.
    answer2 = ask(page, FOLLOW_UP, turn=2)
    assert detect_script(answer2) == "simplified", answer2
    assert re.search(r"\[\d\]", answer2), answer2
    condensed = sources.locator(".tw-condensed").inner_text()
    assert "卢森堡" in condensed, condensed
    assert "智慧经济" in answer2 or "循环经济" in answer2, answer2

    # Clicking the first answer brings its sources back.
    page.locator("#chatbot .message.bot").first.click()
    page.locator('#sources .tw-sources[data-state="final"][data-turn="1"]').wait_for(state="attached")
    # Its [1] brings the quoted sentence into view: the README screenshot shows that state.
    page.locator("#chatbot .message.bot").first.locator("a.tw-cite").first.click()
    page.wait_for_function("() => document.querySelector('#sources .tw-flash') !== null")
    assert in_viewport(page, "#sources mark") >= 1
    page.locator("#settings").get_by_text("設定").click()  # closed again for the screenshot
    page.mouse.move(0, 0)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))


@pytest.mark.parametrize("locale", ["zh-TW", "zh-CN"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_citations_reader_language_and_conversation(browser, server_url: str, locale: str, size: str) -> None:
    """Each point of the issue at one screen size in one browser language."""
    phone = size == "phone"
    script = "simplified" if locale == "zh-CN" else "traditional"
    context, page, _ = open_page(browser, server_url, locale, PHONE if phone else DESKTOP)
    try:
        # The reader's script: the switch follows the browser, and so do our labels and Gradio's.
        assert page.locator(f"#script input[value='{script}']").is_checked()
        # Gradio's own labels follow the same choice: its trash icon, once there is a conversation.
        trash = page.locator(
            "#chatbot button[aria-label='%s']" % ("清空对话" if script == "simplified" else "清空對話")
        )
        assert (
            page.locator("#heading").inner_text().strip().endswith("文档问答" if script == "simplified" else "文件問答")
        )

        answer = ask(page, QUESTION, turn=1)
        assert trash.count() == 1
        if not phone:  # conversation, question box and sources side by side, all on the first screen
            boxes = page.evaluate(
                """() => ['#chatbot', '#question', '#sources'].map(s => {
                    const r = document.querySelector(s).getBoundingClientRect();
                    return [r.top, r.bottom, r.left, r.right]; })"""
            )
            (chat, box, panel) = boxes
            assert chat[1] <= DESKTOP["height"] and box[1] <= DESKTOP["height"], boxes
            assert panel[0] < 300 and panel[2] >= chat[3], boxes  # beside the chat, near the top
        bot = page.locator("#chatbot .message.bot").last
        cites = bot.locator("a.tw-cite")
        assert cites.count() >= 2, answer
        # Every [n] is a link to its source, and hovering shows the sentence it relies on.
        quoted = set()
        for i in range(cites.count()):
            href, title = cites.nth(i).get_attribute("href"), cites.nth(i).get_attribute("title")
            n = re.fullmatch(r"#tw-src-1-(\d+)-q\d+", href).group(1)
            assert title and title.strip(), href
            quoted.add((n, title))
        # Every quoted sentence is marked (all of them, not only the first per source).
        marks = bot.locator(".tw-inline-sources mark") if phone else page.locator("#sources mark")
        assert marks.count() == len(quoted), (marks.count(), quoted)
        mark_texts = {marks.nth(i).text_content() for i in range(marks.count())}
        assert {title for _, title in quoted} == mark_texts

        # Clicking [1] opens the source and brings its quoted sentence into view.
        where = "#chatbot .tw-inline-sources" if phone else "#sources"
        page.evaluate("() => { document.querySelectorAll('details').forEach(d => { d.open = false; }); }")
        page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
        bot.locator("a.tw-cite", has_text="[1]").first.click()
        page.wait_for_function("() => document.querySelector('.tw-flash') !== null")
        assert in_viewport(page, f"{where} mark") >= 1
        if phone:
            page.mouse.move(0, 0)
            if locale == "zh-TW":  # the README's phone picture: the answer, its sources folded under it
                bot.evaluate("el => el.scrollIntoView({block: 'start'})")
                SCREENSHOT_PHONE.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT_PHONE))

        assert not english_words(page), english_words(page)

        # 開啟文件 from the source: the reader opens at the cited passage, title first.
        page.locator(f"{where} details.tw-source[open] a.tw-open-doc").first.click()
        reader = page.locator('#reader .tw-reader[data-state="open"]')
        reader.wait_for()
        assert reader.locator(".tw-reader-title").inner_text() == "推動第三次產業革命之方向：以盧森堡為例"
        assert reader.locator(".tw-passage.tw-target").count() == 1
        assert "行" in reader.locator(".tw-passage.tw-target .tw-lineno").inner_text()
        page.wait_for_function(
            "() => { const m = document.querySelector('#reader mark');"
            " if (!m) return false; const r = m.getBoundingClientRect();"
            " return r.top >= 0 && r.bottom <= window.innerHeight; }"
        )
        assert reader.locator(".tw-chunks .tw-chunk").count() >= 2  # what the index holds
        assert not english_words(page), english_words(page)

        # The document list: titles, file names, chunk counts; a title opens the reader too.
        page.locator("#docs-tab-button").click()
        table = page.locator("#documents .tw-docs")
        assert "台灣新藍海戰略" in table.inner_text() and CORPUS_SLICE[1] in table.inner_text()
        assert ("点击上传" if script == "simplified" else "點擊上傳") in page.locator("#upload").inner_text()
        assert not english_words(page), english_words(page)
        table.get_by_text("台灣新藍海戰略").click()
        page.locator('#reader .tw-reader[data-state="open"] .tw-reader-title', has_text="台灣新藍海戰略").wait_for()

        # A reload keeps the conversation (kept in the browser), with its sources.
        page.reload()
        page.locator("#chatbot .message.bot").first.wait_for()
        assert page.locator("#chatbot .message.bot").count() == 1
        assert page.locator("#chatbot .message.bot a.tw-cite").count() == cites.count()
        assert page.locator('#sources .tw-sources[data-state="final"][data-turn="1"]').count() == 1
        assert QUESTION[:10] in page.locator("#conversations").inner_text()

        # The trash icon clears the conversation and its sources.
        trash.click()
        page.locator('#sources .tw-sources[data-state="empty"]').wait_for(state="attached")
        assert page.locator("#chatbot .message").count() == 0
        assert page.locator("#sources mark").count() == 0
    finally:
        context.close()


def test_conversations_are_listed_with_new_chat_and_regenerate(browser, server_url: str) -> None:
    context, page, _ = open_page(browser, server_url)
    try:
        first = ask(page, QUESTION, turn=1)
        page.locator("#new-chat").click()
        page.wait_for_function("() => document.querySelectorAll('#chatbot .message').length === 0")
        ask(page, "台灣新藍海戰略提出哪些國際合作的商業模式？", turn=1)
        listed = page.locator("#conversations label")
        assert listed.count() == 2
        assert "台灣新藍海" in listed.first.inner_text()  # newest first

        listed.nth(1).click()  # back to the first conversation
        page.wait_for_function(
            "q => document.querySelector('#chatbot .message.user')?.innerText.includes(q)", arg=QUESTION[:8]
        )
        assert page.locator("#chatbot .message.bot").first.inner_text() == first
        # 重新生成 asks the last question again: still one turn, answered anew.
        page.locator('#sources .tw-sources[data-state="final"][data-turn="1"]').wait_for(state="attached")
        page.evaluate("() => { document.querySelector('#sources .tw-sources').dataset.seen = '1'; }")
        page.locator("#regenerate").click()  # a new panel replaces the one marked as seen
        page.locator('#sources .tw-sources[data-state="final"][data-turn="1"]:not([data-seen])').wait_for(
            state="attached"
        )
        assert page.locator("#chatbot .message.bot").count() == 1
        page.reload()
        page.locator("#chatbot .message.bot").first.wait_for()
        assert page.locator("#conversations label").count() == 2
        assert page.locator("#chatbot .message.user").first.inner_text().strip() == QUESTION

        # The script switch: the page comes back in Simplified (ours and Gradio's labels), same conversation.
        page.locator("#script label", has_text="简体").click()
        page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
        page.locator('#sources .tw-sources[data-state="final"]').wait_for(state="attached")
        assert page.locator("#heading").inner_text().strip().endswith("文档问答")
        assert page.locator("#sources-tab-button").inner_text().strip() == "来源"
        assert page.locator("#chatbot button[aria-label='清空对话']").count() == 1
        assert page.locator("#chatbot .message.user").first.inner_text().strip() == QUESTION
    finally:
        context.close()


def test_not_found_is_said_plainly(page) -> None:
    # The slice holds no document on the US-China tech war (that is 001_…, left out).
    answer = ask(page, "美中科技战涉及哪些芯片和软件的关键环节？", turn=1)
    assert "没有" in answer, answer
    assert "文件中沒有找到答案" in page.locator("#sources .tw-notfound").inner_text()


def test_upload_adds_document_and_delete_removes_it(page, tmp_path: Path) -> None:
    name = "測試上傳文件.htm"  # .htm: the API takes it, so the picker must too (one shared list)
    doc = tmp_path / name
    doc.write_text(
        "<html><body><h1>同文測試文件</h1><p>玉山銀行在二〇二四年於花蓮開設了第一家無人分行，"
        "分行以人臉辨識核對客戶身分，並由遠端客服人員協助辦理開戶。</p></body></html>\n",
        encoding="utf-8",
    )
    broken = tmp_path / "壞掉的.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a pdf")
    page.locator("#docs-tab-button").click()
    table = page.locator("#documents")
    assert CORPUS_SLICE[0] in table.inner_text()
    assert name not in table.inner_text()
    assert ".htm " in page.locator("#upload").inner_text() + " "  # the accepted suffixes are listed

    # A type the API refuses is refused by the picker too, in Chinese (Gradio's toast, translated).
    slides = tmp_path / "投影片.pptx"
    slides.write_bytes(b"PK not a deck")
    page.locator("#upload input[type=file]").set_input_files(str(slides))
    toast = page.get_by_text("不支援這種檔案類型")
    toast.wait_for()
    assert "投影片.pptx" in toast.inner_text() and ".htm" in toast.inner_text()
    assert not english_words(page), english_words(page)

    # Every line the status shows on the way (the one progress indicator) is recorded.
    page.evaluate(
        """() => { window.statusLines = [];
            const status = document.querySelector('#upload-status');
            new MutationObserver(() => window.statusLines.push(status.innerText))
                .observe(status, {childList: true, subtree: true, characterData: true});
        }"""
    )
    page.locator("#upload input[type=file]").set_input_files([str(doc), str(broken)])
    page.wait_for_function(
        "name => document.querySelector('#documents')?.innerText.includes(name)", arg=name, timeout=90_000
    )
    status = page.locator("#upload-status").inner_text()
    assert "新增" in status and name in status, status
    progress = [line for line in page.evaluate("() => window.statusLines") if "⏳" in line]
    assert any("個段落" in line for line in progress), progress  # with the chunk count
    assert all("正在" in line and not re.search(r"(?<![.\w])[A-Za-z]{3,}", line) for line in progress), progress
    assert "失敗" in status and "壞掉的.pdf" in status and "損毀" in status, status  # why, in Chinese
    assert not english_words(page), english_words(page)

    # The new document answers questions right away, in the asker's script.
    answer = ask(page, "玉山银行的无人分行开在哪里？", turn=1)
    assert "花莲" in answer, answer
    assert name in page.locator("#sources").inner_text()

    # Delete it again through the dropdown, so the session's index stays as it was.
    page.locator("#docs-tab-button").click()
    page.locator("#delete-doc input").click()
    page.get_by_role("option", name=name).click()
    page.locator("#delete").click()
    # The first click only asks: nothing is deleted until 確認刪除.
    confirm = page.locator("#confirm-delete")
    confirm.wait_for(state="visible")
    assert "確定要刪除" in page.locator("#upload-status").inner_text()
    assert name in table.inner_text()
    confirm.click()
    page.wait_for_function(
        "name => !document.querySelector('#documents')?.innerText.includes(name)", arg=name, timeout=60_000
    )
    assert "已刪除" in page.locator("#upload-status").inner_text()


@pytest.fixture(scope="module")
def keyed_url(tmp_path_factory: pytest.TempPathFactory, make_settings) -> Iterator[str]:
    """A server with TONGWEN_API_KEY set: the document panel asks for the key."""
    from rag.service import Tongwen
    from tests.servers import serve
    from ui.server import create_app

    corpus = corpus_slice(tmp_path_factory, CORPUS_SLICE[:1])
    service = Tongwen(make_settings(tmp_path_factory.mktemp("ui-keyed"), corpus_dir=corpus, api_key=KEY))
    with serve(create_app(service=service)) as url:
        yield url


KEY = "ui-s3cret"


def test_with_a_key_the_ui_asks_for_it_before_uploading(browser, keyed_url: str, tmp_path: Path) -> None:
    doc = tmp_path / "金鑰測試.txt"
    doc.write_text("同文金鑰測試：臺東的池上米以稻米品質聞名。\n", encoding="utf-8")
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-TW")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(keyed_url + "/")
        page.locator("#docs-tab-button").click()
        key_box = page.locator("#admin-key input")
        key_box.wait_for()
        assert key_box.get_attribute("type") == "password"

        key_box.fill("wrong")  # a wrong key: the upload is refused, nothing is indexed
        key_box.press("Tab")
        page.locator("#upload input[type=file]").set_input_files(str(doc))
        page.wait_for_timeout(3000)
        assert doc.name not in page.locator("#documents").inner_text()

        page.reload()
        page.locator("#docs-tab-button").click()
        key_box = page.locator("#admin-key input")
        key_box.fill(KEY)
        key_box.press("Tab")
        page.locator("#upload input[type=file]").set_input_files(str(doc))
        page.wait_for_function(
            "name => document.querySelector('#documents')?.innerText.includes(name)", arg=doc.name, timeout=90_000
        )
        assert "新增" in page.locator("#upload-status").inner_text()
    finally:
        context.close()


# -- stop while streaming ---------------------------------------------------------------------
# The extractive answer arrives in well under a second, too fast to stop. A slow OpenAI-compatible
# endpoint (a stand-in for an LLM: the test is about the stop button, and the real local LLM's
# streaming is tested in test_local_llm.py) sends one character every SLOW_PIECE_S seconds.
SLOW_ANSWER = "盧森堡的第三次產業革命策略以物聯網、能源網路與交通物流網路為基礎[1]。" * 6
SLOW_PIECE_S = 0.1


def slow_llm_app(streams: list[dict[str, object]]):
    """FastAPI app speaking the OpenAI streaming protocol slowly; records how each stream ended."""
    import json as jsonlib

    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat() -> StreamingResponse:
        import asyncio

        record: dict[str, object] = {"sent": 0, "finished": False}
        streams.append(record)

        async def pieces():
            head = {"id": "slow", "object": "chat.completion.chunk", "created": 0, "model": "slow"}
            try:
                for char in SLOW_ANSWER:
                    delta = {"choices": [{"index": 0, "delta": {"content": char}, "finish_reason": None}]}
                    yield f"data: {jsonlib.dumps({**head, **delta}, ensure_ascii=False)}\n\n"
                    record["sent"] = int(record["sent"]) + 1  # type: ignore[call-overload]
                    await asyncio.sleep(SLOW_PIECE_S)
            except BaseException:
                record["closed"] = True
                raise
            done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {jsonlib.dumps({**head, **done})}\n\ndata: [DONE]\n\n"
            record["finished"] = True

        return StreamingResponse(pieces(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def slow_llm_server(
    tmp_path_factory: pytest.TempPathFactory, make_settings
) -> Iterator[tuple[str, list[dict[str, object]]]]:
    """The real app answering through the ``openai`` backend, pointed at the slow endpoint."""
    from tests.servers import serve
    from ui.server import create_app

    streams: list[dict[str, object]] = []
    with serve(slow_llm_app(streams)) as llm_url:
        settings = make_settings(
            tmp_path_factory.mktemp("ui-slow-llm"),
            corpus_dir=corpus_slice(tmp_path_factory, CORPUS_SLICE[:1]),
            llm="openai",
            openai_base_url=f"{llm_url}/v1",
        )
        with serve(create_app(settings)) as url:
            yield url, streams


def bot_text(page, n: int = 0) -> str:
    return page.locator("#chatbot .message.bot").nth(n).inner_text()


def test_stop_while_streaming_keeps_the_partial_answer(browser, slow_llm_server) -> None:
    url, streams = slow_llm_server
    context, page, _ = open_page(browser, url)
    try:
        page.locator("#question textarea").fill(QUESTION)
        page.locator("#send").click()
        # Wait until a few characters of the slow answer are on screen: it is streaming.
        page.wait_for_function(
            "() => (document.querySelector('#chatbot .message.bot')?.innerText || '').includes('卢森堡的第三')",
            timeout=ANSWER_TIMEOUT_MS,
        )
        page.locator("#stop").click()
        page.wait_for_function(
            "() => (document.querySelector('#chatbot .message.bot')?.innerText || '').includes('已停止')"
        )
        stopped_text = bot_text(page)
        assert stopped_text.startswith("卢森堡的第三") and len(stopped_text) < len(SLOW_ANSWER)  # asked in Simplified

        # Nothing more arrives after the stop: the text stays as it was, and the model's stream is
        # closed (an LLM stops spending CPU on an answer nobody reads). Gradio closes the answer's
        # generator once the piece in flight has arrived: within one clause of the slow answer.
        for _ in range(60):
            if streams[0].get("closed"):
                break
            page.wait_for_timeout(500)
        assert bot_text(page) == stopped_text
        assert streams[0].get("closed") and not streams[0]["finished"], streams
        assert page.locator("#chatbot .message.bot").count() == 1

        # The stopped turn is kept with the conversation: a reload shows it, marked as stopped.
        page.reload()
        page.locator("#chatbot .message.bot").first.wait_for()
        assert "已停止" in bot_text(page)
        assert page.locator("#chatbot .message.user").first.inner_text().strip() == QUESTION

        # And the chat is usable again: the next question is asked and streams.
        page.locator("#question textarea").fill(FOLLOW_UP)
        page.locator("#send").click()
        page.wait_for_function(
            "() => document.querySelectorAll('#chatbot .message.bot').length === 2"
            " && document.querySelectorAll('#chatbot .message.bot')[1].innerText.includes('卢森堡的第三')",
            timeout=ANSWER_TIMEOUT_MS,
        )
        page.locator("#stop").click()
        page.wait_for_function(
            "() => (document.querySelectorAll('#chatbot .message.bot')[1]?.innerText || '').includes('已停止')"
        )
        assert len(streams) >= 2 and not streams[0]["finished"]
    finally:
        context.close()
