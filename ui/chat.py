"""The Gradio chat UI: assembles the page and wires its events to :class:`rag.service.Tongwen`.

Mounted at ``/`` beside the JSON API by ``ui.server.create_app`` (with ``mount_options()``). The
parts live in their own modules: ``ui.render`` (answers and sources as HTML), ``ui.documents``
(document list, reader, uploads), ``ui.conversations`` (the browser-kept conversations),
``ui.i18n`` (every text, in the reader's script) and ``ui.page`` (CSS and browser scripts).

Stable ``elem_id``s for tests and scripts: ``question``, ``send``, ``stop``, ``regenerate``,
``new-chat``, ``conversations``, ``chatbot``, ``sources``, ``backend``, ``topk``, ``script``,
``read-key``, ``admin-key``, ``upload``, ``upload-status``, ``documents``, ``delete-doc``,
``delete``, ``confirm-delete``, ``cancel-delete``, ``reader``. The sources panel carries
``data-state`` (``pending`` / ``final`` / ``error`` / ``empty``) and ``data-turn``.
"""

from __future__ import annotations

import hashlib
import html
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from ingest.sources import Source
from rag.errors import TongwenError
from rag.generate import registry
from rag.results import FinalEvent, QuestionEvent, TokenEvent
from rag.service import Tongwen
from ui import conversations as convs
from ui.answer_view import AnswerView
from ui.documents import (
    UPLOAD_SUFFIXES,
    documents_table,
    progress_text,
    read_refusal,
    reader_html,
    report_markdown,
    suffix_text,
    write_refusal,
)
from ui.i18n import LOCALE_SCRIPT, SWITCH_JS, as_script, error_text, gradio_i18n, in_script, t
from ui.page import CSS, LOAD_JS, SOURCES_JS, page_fixes_script
from ui.render import (
    empty_panel,
    error_panel,
    message_text,
    parse_open_ref,
    plain_answer,
    quotes_by_source,
    sources_panel,
    user_message,
)

log = logging.getLogger(__name__)

TITLE = "同文 Tongwen"
# Until the page's load event has run (conversation restored, script known): a hook for tests.
LOADING_PANEL = '<div class="tw-sources" data-state="loading" data-turn="0"></div>'
EXAMPLES = [
    "盧森堡第三次產業革命計畫提出哪些產業？",
    "卢森堡第三次工业革命计划以哪些技术为基础？",
    "美中科技战涉及哪些芯片和软件的关键环节？",
    "台灣新藍海戰略提出哪些國際合作的商業模式？",
]
# A session cookie (no expiry: gone when the browser closes) for ui.api.guards.UploadGate.
KEY_COOKIE_JS = (
    "(key) => { document.cookie = 'tongwen_key=' + encodeURIComponent(key || '')"
    " + '; path=/; SameSite=Strict'; return []; }"
)
_TAGS = re.compile(r"<[^>]+>")


def mount_options() -> dict[str, Any]:
    """What ``gr.mount_gradio_app`` needs besides the Blocks: CSS, head scripts, translations."""
    return {
        "css": CSS,
        "head": page_fixes_script(),
        "i18n": gradio_i18n(suffixes=suffix_text()),
    }


HEAD_FIRST = LOCALE_SCRIPT  # ui.server puts this first in <head>: it must run before Gradio starts


def backend_choices(script: str) -> list[tuple[str, str]]:
    """Every backend of the registry (``auto`` first), labelled in the reader's script."""
    return [(in_script(registry.label(name), script), name) for name in registry.names()]


def browser_secret(settings: Any) -> str:
    """Stable per installation, so conversations saved in the browser survive a server restart.
    (They are the reader's own data in the reader's own browser: this is not a protection.)"""
    return hashlib.sha256(f"tongwen-ui:{Path(settings.home).resolve()}".encode()).hexdigest()[:32]


def build_ui(service: Tongwen) -> gr.Blocks:
    settings = service.settings
    i18n = gradio_i18n(suffixes=suffix_text())

    # -- reading ---------------------------------------------------------------------------
    def conversation_view(store: convs.Store, script: str) -> tuple[Any, ...]:
        """chatbot, sources panel, conversation list for the current conversation."""
        conversation = convs.current(store)
        turns = conversation["turns"]
        panel = empty_panel(script)
        if turns:
            last = convs.turn_result(store, len(turns)) or AnswerView()
            panel = sources_panel(last, state="final", turn=len(turns), script=script, typed=last.typed)
        listing = gr.update(choices=convs.choices(store, t("untitled", script)), value=store["current"])
        return convs.chat_messages(conversation, script), panel, listing

    def respond(
        message: str,
        store: Any,
        backend: str,
        top_k: float,
        read_key: str | None = None,
        script: str = "traditional",
    ) -> Iterator[tuple[Any, ...]]:
        """Outputs: chatbot, sources, question box, store, conversation list."""
        script = as_script(script)
        store = convs.valid(store)
        question = (message or "").strip()
        if not question:
            yield gr.skip(), gr.skip(), message, gr.skip(), gr.skip()
            return
        conversation = convs.current(store)
        turn = len(conversation["turns"]) + 1
        chat = convs.chat_messages(conversation, script)
        refusal = read_refusal(settings, read_key, script)
        if refusal:
            yield chat, error_panel(refusal, turn, script), message, gr.skip(), gr.skip()
            return
        history = convs.history(conversation, settings.max_history_chars)
        chat = [*chat, {"role": "user", "content": user_message(question)}, {"role": "assistant", "content": "…"}]
        panel = sources_panel(AnswerView(), state="pending", turn=turn, script=script)
        yield chat, panel, "", gr.skip(), gr.skip()
        answer = ""
        try:
            for event in service.ask_stream(question, history, int(top_k), backend or None):
                if isinstance(event, QuestionEvent):
                    panel = sources_panel(event, state="pending", turn=turn, script=script, typed=question)
                    yield chat, panel, "", gr.skip(), gr.skip()
                elif isinstance(event, TokenEvent):
                    answer += event.text
                    chat[-1] = {"role": "assistant", "content": plain_answer(answer)}
                    yield chat, gr.skip(), "", gr.skip(), gr.skip()
                elif isinstance(event, FinalEvent):
                    store = convs.add_turn(store, question, event.answer, event)
                    chat, _, listing = conversation_view(store, script)
                    panel = sources_panel(event, state="final", turn=turn, script=script, typed=question)
                    yield chat, panel, "", store, listing
        except TongwenError as exc:
            log.info("question refused: %s", exc)
            yield from failed(store, question, turn, script, error_text(type(exc), script))
        except Exception as exc:  # a bug: keep the page usable and say so
            log.exception("answering %r failed", question)
            yield from failed(store, question, turn, script, t("internal_error", script, kind=type(exc).__name__))

    def failed(store: convs.Store, question: str, turn: int, script: str, message: str) -> Iterator[tuple[Any, ...]]:
        store = convs.add_turn(store, question, "", AnswerView(answer=f"⚠️ {message}", error=message))
        chat, _, listing = conversation_view(store, script)
        yield chat, error_panel(message, turn, script), "", store, listing

    def regenerate(
        store: Any, backend: str, top_k: float, read_key: str | None = None, script: str = "traditional"
    ) -> Iterator[Any]:
        store, question = convs.drop_last_turn(store)
        if not question:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        yield from respond(question, store, backend, top_k, read_key, script)

    def stopped(chat: list[dict[str, Any]] | None, store: Any, script: str) -> tuple[Any, ...]:
        """Keep what was streamed before 停止, marked as stopped, so a reload still shows it."""
        store = convs.valid(store)
        chat = list(chat or [])
        asked = len(convs.current(store)["turns"])
        users = [m for m in chat if m.get("role") == "user"]
        if len(users) <= asked:  # nothing was running
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        question = html.unescape(_TAGS.sub("", message_text(users[-1].get("content"))))
        last = chat[-1] if chat and chat[-1].get("role") == "assistant" else {}
        partial = html.unescape(_TAGS.sub("", message_text(last.get("content")).replace("<br>", "\n"))).strip("…")
        answer = partial + t("stopped", script)
        store = convs.add_turn(store, question, answer, AnswerView(answer=answer))
        chat, panel, listing = conversation_view(store, script)
        return chat, panel, store, listing

    def show_turn(store: Any, script: str, evt: gr.SelectData) -> Any:
        """Clicking an earlier answer brings its sources back into the panel."""
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        turn = int(index) // 2 + 1
        result = convs.turn_result(convs.valid(store), turn)
        if result is None:
            return gr.skip()
        if result.error:
            return error_panel(result.error, turn, script)
        return sources_panel(result, state="final", turn=turn, script=script, typed=result.typed)

    def clear_chat(store: Any, script: str) -> tuple[Any, ...]:
        store = convs.clear_current(store)
        chat, panel, listing = conversation_view(store, script)
        return chat, panel, store, listing

    def new_chat(store: Any, script: str) -> tuple[Any, ...]:
        store = convs.start_new(store)
        chat, panel, listing = conversation_view(store, script)
        return chat, panel, store, listing, ""

    def pick_conversation(conversation_id: str, store: Any, script: str) -> tuple[Any, ...]:
        store = convs.select(store, conversation_id)
        chat, panel, _ = conversation_view(store, script)
        return chat, panel, store

    def on_load(store: Any, script: str) -> tuple[Any, ...]:
        script = as_script(script)
        store = convs.valid(store)
        chat, panel, listing = conversation_view(store, script)
        return (
            store,
            script,
            chat,
            panel,
            listing,
            gr.update(choices=backend_choices(script)),
            *refresh(script),
            reader_html(None, script),
        )

    # -- documents -------------------------------------------------------------------------
    def refresh(script: str) -> tuple[Any, ...]:
        docs = service.documents()
        titles = service.document_titles() if docs else {}
        choices = [(d["name"], d["doc_id"]) for d in docs]
        return documents_table(docs, titles, script), gr.update(choices=choices, value=None)

    def open_document(store: Any, script: str, evt: gr.EventData) -> tuple[Any, ...]:
        data = getattr(evt, "_data", None)  # what the page's trigger('open_doc', {ref}) sent
        ref = str(data.get("ref", "")) if isinstance(data, dict) else ""
        doc_id, seq, turn, n = parse_open_ref(ref)
        quotes: list[str] = []
        if turn and n:
            result = convs.turn_result(convs.valid(store), turn) or AnswerView()
            quotes = quotes_by_source(result).get(n, [])
        try:
            view = service.document_view(doc_id)
        except TongwenError as exc:
            message = error_text(type(exc), script)
            return f'<div class="tw-reader" data-state="error"><p class="tw-empty">{message}</p></div>', gr.Tabs(
                selected="reader-tab"
            )
        return reader_html(view, script, seq, quotes, ref), gr.Tabs(selected="reader-tab")

    def upload(
        files: list[str] | None, key: str | None = None, script: str = "traditional"
    ) -> Iterator[tuple[Any, ...]]:
        """Checks the key itself (not only the page): the Gradio API and raw queue calls end here too.

        Outputs: status, file box, document list, delete choices. The status line is the one
        progress indicator (Chinese, with chunk counts); the document list stays as it is until done.
        """
        script = as_script(script)
        if not files:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        refusal = write_refusal(settings, key, script)
        if refusal:
            yield t("upload_failed", script, reason=refusal), None, *refresh(script)
            return
        if len(files) > settings.max_upload_files:
            reason = t("too_many_files", script, limit=settings.max_upload_files)
            yield t("upload_failed", script, reason=reason), None, *refresh(script)
            return
        total = sum(Path(path).stat().st_size for path in files)
        if total > settings.max_upload_total_bytes:
            reason = t("batch_too_large", script, size=total / 1e6, limit=settings.max_upload_total_bytes / 1e6)
            yield t("upload_failed", script, reason=reason), None, *refresh(script)
            return
        sources, rejected = [], {}
        for path in files:
            name = upload_name(path)  # for messages; a nameless file is named after its content below
            size = Path(path).stat().st_size
            if size > settings.max_upload_bytes:
                rejected[name] = t("file_too_large", script, size=size / 1e6, limit=settings.max_upload_bytes / 1e6)
                continue
            data = Path(path).read_bytes()
            sources.append(Source(upload_name(path, data), data))
        steps: queue.Queue[str] = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["report"] = service.ingest(sources, on_progress=steps.put)
            except Exception as exc:  # reported below, in Chinese
                outcome["error"] = exc

        worker = threading.Thread(target=work, name="tongwen-ui-ingest", daemon=True)
        started = time.monotonic()
        worker.start()
        line, done = t("progress.reading", script, name="…", done=0, total=len(sources)), 0
        while worker.is_alive() or not steps.empty():
            try:
                step = steps.get(timeout=0.5)
                done += step.startswith("Reading ")
                line = progress_text(step, script, done, len(sources))
            except queue.Empty:
                pass
            elapsed = t("progress.elapsed", script, seconds=time.monotonic() - started)
            yield f"⏳ {line}（{elapsed}）", gr.skip(), gr.skip(), gr.skip()
        worker.join()
        if "error" in outcome:
            exc = outcome["error"]
            if not isinstance(exc, TongwenError):
                log.error("upload failed", exc_info=exc)
            yield t("upload_failed", script, reason=error_text(type(exc), script)), None, *refresh(script)
            return
        yield report_markdown(outcome["report"], script, rejected), None, *refresh(script)

    def ask_to_confirm(doc_id: str | None, script: str) -> tuple[Any, ...]:
        """First click on 刪除: name the document and show 確認刪除 / 取消 instead of deleting."""
        if not doc_id:
            return t("pick_document", script), gr.update(visible=False), gr.update(visible=False)
        names = {d["doc_id"]: d["name"] for d in service.documents()}
        message = t("confirm_question", script, name=names.get(doc_id, doc_id))
        return message, gr.update(visible=True), gr.update(visible=True)

    def cancel_delete(script: str) -> tuple[Any, ...]:
        return t("delete_cancelled", script), gr.update(visible=False), gr.update(visible=False)

    def delete(doc_id: str | None, key: str | None = None, script: str = "traditional") -> tuple[Any, ...]:
        """Checks the key itself (not only the page): the Gradio API and raw queue calls end here too."""
        script = as_script(script)
        hide = gr.update(visible=False), gr.update(visible=False)
        refusal = write_refusal(settings, key, script)
        if refusal:
            return t("delete_failed", script, reason=refusal), *refresh(script), *hide
        if not doc_id:
            return t("pick_document", script), *refresh(script), *hide
        try:
            report = service.delete(doc_id)
        except TongwenError as exc:
            return t("delete_failed", script, reason=error_text(type(exc), script)), *refresh(script), *hide
        return report_markdown(report, script), *refresh(script), *hide

    # -- layout ----------------------------------------------------------------------------
    with gr.Blocks(title=TITLE) as demo:
        store = gr.BrowserState(None, storage_key="tongwen-conversations", secret=browser_secret(settings))
        with gr.Row(elem_id="topbar", equal_height=True):
            gr.Markdown(i18n("heading"), elem_id="heading")
            script = gr.Radio(
                [("繁體", "traditional"), ("简体", "simplified")],
                value="traditional",
                label=i18n("script_switch"),
                elem_id="script",
                container=False,
                scale=0,
                min_width=190,
            )
            read_key = gr.Textbox(
                label=i18n("read_key"),
                type="password",
                placeholder=i18n("read_key_placeholder"),
                elem_id="read-key",
                visible=bool(settings.read_key),
                scale=0,
                min_width=200,
            )
        with gr.Row(elem_id="main", equal_height=False):
            with gr.Column(scale=1, min_width=170, elem_id="sidebar"):
                new_chat_btn = gr.Button(i18n("new_chat"), elem_id="new-chat", size="sm")
                conversation_list = gr.Radio(
                    choices=[], label=i18n("conversations"), elem_id="conversations", interactive=True
                )
                with gr.Accordion(i18n("settings"), open=False, elem_id="settings"):
                    backend = gr.Radio(
                        backend_choices("traditional"),
                        # TONGWEN_LLM (already validated), auto resolved: a server set up for an LLM answers with it.
                        value=registry.resolve(None, settings),
                        label=i18n("backend"),
                        info=i18n("backend_info"),
                        elem_id="backend",
                    )
                    top_k = gr.Slider(1, 20, value=settings.top_k, step=1, label=i18n("top_k"), elem_id="topk")
            with gr.Column(scale=4, min_width=360, elem_id="chat-col"):
                chatbot = gr.Chatbot(
                    label=i18n("chat"),
                    elem_id="chatbot",
                    height="calc(100vh - 215px)",
                    min_height=320,
                    buttons=["copy"],
                    feedback_options=None,
                    placeholder=i18n("chat_placeholder"),
                    examples=[{"text": q} for q in EXAMPLES],
                    sanitize_html=True,
                    render_markdown=False,
                )
                with gr.Row(equal_height=True):
                    question = gr.Textbox(
                        label=i18n("question"),
                        show_label=False,
                        placeholder=i18n("question_placeholder"),
                        elem_id="question",
                        scale=6,
                        lines=1,
                        max_lines=4,
                        autofocus=True,
                    )
                    send = gr.Button(i18n("send"), variant="primary", elem_id="send", scale=1, min_width=64)
                    with gr.Column(scale=1, min_width=90, elem_id="turn-actions"):
                        stop = gr.Button(i18n("stop"), elem_id="stop", size="sm")
                        again = gr.Button(i18n("regenerate"), elem_id="regenerate", size="sm")
            with (
                gr.Column(scale=3, min_width=320, elem_id="side-col"),
                gr.Tabs(elem_id="side-tabs", selected="sources-tab") as tabs,
            ):
                with gr.Tab(i18n("tab.sources"), id="sources-tab", elem_id="sources-tab"):
                    sources = gr.HTML(
                        LOADING_PANEL,
                        elem_id="sources",
                        js_on_load=SOURCES_JS,
                        container=False,
                        padding=False,
                    )
                with gr.Tab(i18n("tab.documents"), id="docs-tab", elem_id="docs-tab"):
                    admin_key = gr.Textbox(
                        label=i18n("admin_key"),
                        type="password",
                        placeholder=i18n("admin_key_placeholder"),
                        info=i18n("admin_key_info"),
                        elem_id="admin-key",
                        visible=bool(settings.api_key),
                    )
                    files = gr.File(
                        label=i18n("upload"),
                        file_count="multiple",
                        file_types=UPLOAD_SUFFIXES,
                        elem_id="upload",
                        height=110,
                    )
                    status = gr.Markdown(elem_id="upload-status")
                    documents = gr.HTML("", elem_id="documents", container=False, padding=False, js_on_load=None)
                    with gr.Row(equal_height=True):
                        to_delete = gr.Dropdown(
                            # The choices at build time matter: Gradio checks a fresh session's value against them.
                            choices=[(d["name"], d["doc_id"]) for d in service.documents()],
                            value=None,
                            label=i18n("delete_select"),
                            elem_id="delete-doc",
                            scale=3,
                        )
                        delete_btn = gr.Button(i18n("delete"), variant="stop", elem_id="delete", scale=1, min_width=70)
                    with gr.Row(equal_height=True):
                        confirm_btn = gr.Button(
                            i18n("confirm_delete"), variant="stop", elem_id="confirm-delete", visible=False
                        )
                        cancel_btn = gr.Button(i18n("cancel"), elem_id="cancel-delete", visible=False)
                with gr.Tab(i18n("tab.reader"), id="reader-tab", elem_id="reader-tab"):
                    reader = gr.HTML(
                        reader_html(None, "traditional"),
                        elem_id="reader",
                        js_on_load=None,
                        container=False,
                        padding=False,
                    )

        # -- events --------------------------------------------------------------------------
        ask_inputs = [question, store, backend, top_k, read_key, script]
        ask_outputs = [chatbot, sources, question, store, conversation_list]
        # One queue for every way of asking (a local LLM answers one question at a time anyway).
        asking = {"concurrency_id": "ask", "show_progress": "hidden"}
        submitted = question.submit(respond, ask_inputs, ask_outputs, api_name="ask", **asking)
        sent = send.click(respond, ask_inputs, ask_outputs, api_visibility="private", **asking)
        redone = again.click(regenerate, ask_inputs[1:], ask_outputs, api_visibility="private", **asking)
        example = chatbot.example_select(
            example_text,
            None,
            question,
            api_visibility="private",
            show_progress="hidden",
        )
        asked_example = example.then(respond, ask_inputs, ask_outputs, api_visibility="private", **asking)
        stop.click(
            stopped,
            [chatbot, store, script],
            [chatbot, sources, store, conversation_list],
            cancels=[submitted, sent, redone, asked_example],
            api_visibility="private",
            show_progress="hidden",
        )
        chatbot.select(show_turn, [store, script], [sources], api_visibility="private", show_progress="hidden")
        chatbot.clear(
            clear_chat, [store, script], [chatbot, sources, store, conversation_list], api_visibility="private"
        )
        new_chat_btn.click(
            new_chat, [store, script], [chatbot, sources, store, conversation_list, question], api_visibility="private"
        )
        conversation_list.input(
            pick_conversation, [conversation_list, store, script], [chatbot, sources, store], api_visibility="private"
        )
        script.input(None, [script], [script], js=SWITCH_JS, api_visibility="private")
        sources.open_doc(open_document, [store, script], [reader, tabs], api_visibility="private")
        # The write events take the key as an input and check it themselves: the page, the Gradio API
        # (`/upload`, `/delete`) and raw queue calls all end in these handlers.
        files.upload(
            upload,
            [files, admin_key, script],
            [status, files, documents, to_delete],
            api_name="upload",
            concurrency_id="write",
            show_progress="hidden",
        )
        # Gradio's upload route (before the event) checks the key too: keep it in a session cookie.
        admin_key.change(None, [admin_key], None, js=KEY_COOKIE_JS, api_visibility="private")
        confirming = [confirm_btn, cancel_btn]
        delete_btn.click(ask_to_confirm, [to_delete, script], [status, *confirming], api_visibility="private")
        cancel_btn.click(cancel_delete, [script], [status, *confirming], api_visibility="private")
        confirm_btn.click(
            delete,
            [to_delete, admin_key, script],
            [status, documents, to_delete, *confirming],
            api_name="delete",
            concurrency_id="write",
        )
        demo.load(
            on_load,
            [store, script],
            [store, script, chatbot, sources, conversation_list, backend, documents, to_delete, reader],
            js=LOAD_JS,
            api_visibility="private",
            show_progress="hidden",
        )
    return demo


def example_text(evt: gr.SelectData) -> str:
    """The question of a clicked example (Gradio 6 gives the example message as a dict)."""
    return str(evt.value.get("text", "")) if isinstance(evt.value, dict) else str(evt.value)


def upload_name(path: str, data: bytes = b"") -> str:
    """The uploaded file's own name (Gradio keeps it as the temp file's base name), made safe."""
    from ui.api.uploads import safe_filename

    return safe_filename(Path(path).name, data)
