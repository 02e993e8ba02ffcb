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
import socket
import threading
import time
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
ANSWER_TIMEOUT_MS = 120_000  # the first question also warms jieba and the keyword index

# Mainland vocabulary (工业革命, 计划) for a document that says 產業革命, 計畫.
QUESTION = "卢森堡第三次工业革命计划以哪些技术为基础？"
FOLLOW_UP = "那三大运作原则呢？"  # elliptical: only answerable with the first turn as history


def shared_models_dir() -> Path:
    home = os.environ.get("TONGWEN_TEST_HOME")
    base = Path(home) if home else PROJECT_ROOT / ".tongwen" / "test-home"
    models = base / "models"
    models.mkdir(parents=True, exist_ok=True)
    return models


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app (`ui.server.create_app`) served by uvicorn in a background thread."""
    import uvicorn

    from rag.config import Settings
    from ui.server import create_app

    root = tmp_path_factory.mktemp("ui-browser")
    corpus = root / "corpus"
    corpus.mkdir()
    for name in CORPUS_SLICE:
        shutil.copy(PROJECT_ROOT / "data" / "corpus" / name, corpus / name)
    home = root / "home"
    home.mkdir()
    (home / "models").symlink_to(shared_models_dir(), target_is_directory=True)

    app = create_app(Settings(home=home, corpus_dir=corpus))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="tongwen-ui-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian chromium: apt-get install -y chromium fonts-wqy-zenhei")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server_url: str) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-TW")
    page = context.new_page()
    page.set_default_timeout(30_000)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server_url + "/")
    page.locator("#question textarea").wait_for()
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
    page.locator(f'#sources .tw-sources[data-state="final"][data-turn="{turn}"]').wait_for(timeout=ANSWER_TIMEOUT_MS)
    bots = page.locator("#chatbot .message.bot")
    assert bots.count() == turn
    return bots.nth(turn - 1).inner_text()


def test_streamed_answer_with_sources_and_follow_up(page) -> None:
    from ingest.normalise import detect_script

    page.locator("#backend label", has_text="extractive").click()
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

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Clicking the first answer brings its sources back.
    page.locator("#chatbot .message.bot").first.click()
    page.locator('#sources .tw-sources[data-state="final"][data-turn="1"]').wait_for()


def test_not_found_is_said_plainly(page) -> None:
    # The slice holds no document on the US-China tech war (that is 001_…, left out).
    answer = ask(page, "美中科技战涉及哪些芯片和软件的关键环节？", turn=1)
    assert "没有" in answer, answer
    assert "文件中沒有找到答案" in page.locator("#sources .tw-notfound").inner_text()


def test_upload_adds_document_and_delete_removes_it(page, tmp_path: Path) -> None:
    name = "測試上傳文件.txt"
    doc = tmp_path / name
    doc.write_text(
        "同文測試文件\n\n玉山銀行在二〇二四年於花蓮開設了第一家無人分行，"
        "分行以人臉辨識核對客戶身分，並由遠端客服人員協助辦理開戶。\n",
        encoding="utf-8",
    )
    table = page.locator("#documents")
    assert CORPUS_SLICE[0] in table.inner_text()
    assert name not in table.inner_text()

    page.locator("#upload input[type=file]").set_input_files(str(doc))
    page.wait_for_function(
        "name => document.querySelector('#documents')?.innerText.includes(name)", arg=name, timeout=90_000
    )
    assert "新增" in page.locator("#upload-status").inner_text()

    # The new document answers questions right away, in the asker's script.
    answer = ask(page, "玉山银行的无人分行开在哪里？", turn=1)
    assert "花莲" in answer, answer
    assert name in page.locator("#sources").inner_text()

    # Delete it again through the dropdown, so the session's index stays as it was.
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

    corpus = tmp_path_factory.mktemp("ui-keyed-corpus")
    shutil.copy(PROJECT_ROOT / "data" / "corpus" / CORPUS_SLICE[0], corpus / CORPUS_SLICE[0])
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
        key_box = page.locator("#admin-key input")
        key_box.wait_for()
        assert key_box.get_attribute("type") == "password"

        key_box.fill("wrong")  # a wrong key: the upload is refused, nothing is indexed
        key_box.press("Tab")
        page.locator("#upload input[type=file]").set_input_files(str(doc))
        page.wait_for_timeout(3000)
        assert doc.name not in page.locator("#documents").inner_text()

        page.reload()
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
