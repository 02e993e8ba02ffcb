"""The Gradio chat UI: streaming answers with a sources panel, plus document management.

A thin layer over :class:`rag.service.Tongwen`, mounted at ``/`` beside the JSON API by
``ui.server.create_app``. Every component a test or a user script might reach has a stable
``elem_id`` (``question``, ``send``, ``chatbot``, ``sources``, ``backend``, ``topk``, ``upload``,
``documents``, ``delete-doc``, ``delete``). The sources panel carries ``data-state`` (``pending`` /
``final`` / ``error``) and ``data-turn`` attributes, so "this answer is done" is observable.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from ingest.sources import Source
from rag.errors import TongwenError
from rag.service import Tongwen
from ui.auth import may_read, may_write

log = logging.getLogger(__name__)

TITLE = "同文 Tongwen"
UPLOAD_TYPES = [".txt", ".md", ".pdf", ".docx", ".html"]
BACKENDS = [
    ("摘錄式 extractive（即時，直接引用原文）", "extractive"),
    ("自動 auto（有模型就用模型）", "auto"),
    ("本機模型 local（Qwen 0.5B，較慢）", "local"),
    ("OpenAI 相容端點 openai", "openai"),
]
EXAMPLES = [
    "盧森堡第三次產業革命計畫提出哪些產業？",
    "卢森堡第三次工业革命计划以哪些技术为基础？",
    "美中科技战涉及哪些芯片和软件的关键环节？",
    "台灣新藍海戰略提出哪些國際合作的商業模式？",
]

SOURCES_CSS = """
.tw-sources { font-size: 0.92rem; line-height: 1.6; }
.tw-sources h4 { margin: 0.6em 0 0.3em; font-size: 1rem; }
.tw-note { padding: 0.45em 0.7em; margin: 0.35em 0; border-radius: 6px;
  background: var(--background-fill-secondary); border-left: 4px solid var(--color-accent); }
.tw-note.tw-warn { border-left-color: #d97706; background: rgba(217, 119, 6, 0.08); }
.tw-note.tw-error { border-left-color: #dc2626; background: rgba(220, 38, 38, 0.08); }
.tw-meta { color: var(--body-text-color-subdued); font-size: 0.82rem; margin: 0.3em 0; }
.tw-source { border: 1px solid var(--border-color-primary); border-radius: 6px;
  margin: 0.45em 0; padding: 0.3em 0.7em; }
.tw-source.tw-cited { border-color: var(--color-accent); }
.tw-source summary { cursor: pointer; }
.tw-n { font-weight: 700; color: var(--color-accent); }
.tw-doc { font-weight: 600; }
.tw-badge { font-size: 0.75rem; padding: 0 0.45em; border-radius: 999px;
  background: var(--color-accent-soft); color: var(--color-accent); }
.tw-heading, .tw-loc { color: var(--body-text-color-subdued); font-size: 0.85rem; }
.tw-text { white-space: pre-wrap; margin: 0.4em 0; padding-left: 0.8em;
  border-left: 3px solid var(--border-color-primary); }
.tw-text mark { background: #fde68a; color: inherit; padding: 0 1px; border-radius: 2px; }
.tw-empty { color: var(--body-text-color-subdued); }
"""

# Gradio injects a fresh tracker per call; this default only tells it to follow tqdm bars too.
INGEST_PROGRESS = gr.Progress(track_tqdm=True)

EMPTY_PANEL = (
    '<div class="tw-sources" data-state="empty" data-turn="0">'
    '<p class="tw-empty">提問後，這裡會列出答案引用的原文段落；被引用的句子以黃色標示。</p></div>'
)


# -- pure helpers (testable without a browser) -------------------------------------------------
def message_text(content: Any) -> str:
    """Plain text of a chat message: Gradio 6 may give a string or a list of typed parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        return str(content.get("text", "")) if content.get("type", "text") == "text" else ""
    if isinstance(content, Sequence):
        return "".join(message_text(part) for part in content)
    return str(content)


def history_for_service(chat: Sequence[Mapping[str, Any]] | None, max_chars: int | None = None) -> list[dict[str, str]]:
    """The conversation as the service wants it: [{"role", "content": str}], text turns only.

    With ``max_chars``, only the latest turns that fit in it: the UI's own conversation grows turn by
    turn (the API refuses an over-long history instead, see ``ui.api.history.checked_history``).
    """
    out = []
    for message in chat or []:
        role = message.get("role")
        text = message_text(message.get("content")).strip()
        if role in ("user", "assistant") and text:
            out.append({"role": role, "content": text})
    if max_chars is not None:
        kept, size = [], 0
        for turn in reversed(out):
            size += len(turn["content"])
            if size > max_chars:
                break
            kept.append(turn)
        out = kept[::-1]
    return out


# A session cookie (no expiry: gone when the browser closes) for ui.api.guards.UploadGate.
KEY_COOKIE_JS = (
    "(key) => { document.cookie = 'tongwen_key=' + encodeURIComponent(key || '')"
    " + '; path=/; SameSite=Strict'; return []; }"
)
WRITE_KEY_MISSING = "需要管理金鑰才能上傳或刪除文件：請在「管理金鑰」欄輸入伺服器設定的 TONGWEN_API_KEY。"
WRITE_KEY_WRONG = "管理金鑰不正確，無法上傳或刪除文件。請確認後重新輸入。"
READ_KEY_MISSING = "這個伺服器需要存取金鑰才能提問：請在「存取金鑰」欄輸入 TONGWEN_READ_KEY（或管理金鑰）。"
READ_KEY_WRONG = "存取金鑰不正確，無法提問。請確認後重新輸入。"


def write_refusal(settings: Any, key: str | None) -> str | None:
    """The Chinese message explaining why a write is refused, or None when it may proceed."""
    if may_write(settings, key):
        return None
    return WRITE_KEY_WRONG if key else WRITE_KEY_MISSING


def read_refusal(settings: Any, key: str | None) -> str | None:
    if may_read(settings, key):
        return None
    return READ_KEY_WRONG if key else READ_KEY_MISSING


def highlight(text: str, quote: str | None) -> str:
    """HTML-escaped text with the cited sentence wrapped in <mark> (when it occurs in it)."""
    quote = (quote or "").strip()
    at = text.find(quote) if quote else -1
    if at < 0:
        return html.escape(text)
    end = at + len(quote)
    return f"{html.escape(text[:at])}<mark>{html.escape(text[at:end])}</mark>{html.escape(text[end:])}"


def location_text(location: Mapping[str, Any] | None) -> str:
    if not location:
        return ""
    parts = []
    if location.get("page"):
        parts.append(f"第 {location['page']} 頁")
    start, end = location.get("line_start"), location.get("line_end")
    if start:
        parts.append(f"第 {start} 行" if not end or end == start else f"第 {start}–{end} 行")
    return "，".join(parts)


def render_sources(
    event: Mapping[str, Any], *, state: str, turn: int, typed: str = "", error: str | None = None
) -> str:
    """The sources panel for one answer (a ``question`` or ``final`` event of ask_stream)."""
    sources = event.get("sources") or []
    quotes = {c["n"]: c.get("quote", "") for c in event.get("citations") or []}
    found = bool(event.get("found"))
    out = [f'<div class="tw-sources" data-state="{state}" data-turn="{turn}">']
    if error:
        out.append(f'<div class="tw-note tw-error">出錯了：{html.escape(error)}</div>')
    condensed = (event.get("question") or "").strip()
    if condensed and typed and condensed != typed.strip():
        out.append(f'<div class="tw-note tw-condensed">已理解為：{html.escape(condensed)}</div>')
    if state == "final" and not found and not error:
        out.append(
            '<div class="tw-note tw-warn tw-notfound">文件中沒有找到答案。以下是最接近的段落，供您自行查閱。</div>'
        )
    for note in event.get("notes") or []:
        out.append(f'<div class="tw-note tw-extractive">{html.escape(note)}</div>')
    if state == "pending":
        out.append('<p class="tw-meta">正在生成回答…</p>')
    if event.get("backend"):
        timings = event.get("timings") or {}
        meta = [f"生成方式：{html.escape(str(event['backend']))}"]
        if "total" in timings:
            meta.append(f"耗時 {timings['total'] / 1000:.2f} 秒")
        out.append(f'<p class="tw-meta">{"　·　".join(meta)}</p>')
    if sources:
        out.append(f"<h4>來源（{len(sources)}）</h4>")
    elif state != "error":
        out.append('<p class="tw-empty">沒有檢索到任何段落。</p>')
    for src in sources:
        n = src.get("n")
        cited = n in quotes
        heading = src.get("heading") or ""
        where = location_text(src.get("location"))
        summary = [
            f'<span class="tw-n">[{n}]</span>',
            f'<span class="tw-doc">{html.escape(str(src.get("doc", "")))}</span>',
        ]
        if heading:
            summary.append(f'<span class="tw-heading">{html.escape(heading)}</span>')
        if where:
            summary.append(f'<span class="tw-loc">{where}</span>')
        if cited:
            summary.append('<span class="tw-badge">已引用</span>')
        opened = " open" if cited or (not quotes and n == 1) else ""
        out.append(
            f'<details class="tw-source{" tw-cited" if cited else ""}" data-n="{n}"{opened}'
            f' title="{html.escape(score_text(src))}">'
            f"<summary>{'　'.join(summary)}</summary>"
            f'<div class="tw-text">{highlight(str(src.get("text", "")), quotes.get(n))}</div>'
            "</details>"
        )
    out.append("</div>")
    return "".join(out)


def score_text(src: Mapping[str, Any]) -> str:
    """Retrieval scores for a tooltip (fused RRF scores are tiny numbers, not for the headline)."""
    parts = [f"融合分數 {src['score']}"] if src.get("score") is not None else []
    if src.get("dense_score") is not None:
        parts.append(f"語意相似度 {src['dense_score']}")
    if src.get("keyword_score") is not None:
        parts.append(f"關鍵詞分數 {src['keyword_score']}")
    return "，".join(parts)


def error_panel(message: str, turn: int) -> str:
    return render_sources({}, state="error", turn=turn, error=message)


def document_rows(service: Tongwen) -> list[list[Any]]:
    return [[d["name"], d["chunks"], d["doc_id"]] for d in service.documents()]


def document_choices(service: Tongwen) -> list[tuple[str, str]]:
    return [(d["name"], d["doc_id"]) for d in service.documents()]


def report_text(report: Any, rejected: Mapping[str, str] | None = None) -> str:
    parts = []
    for label, names in (
        ("新增", report.added),
        ("更新", report.updated),
        ("未變更", report.unchanged),
        ("已刪除", getattr(report, "deleted", [])),
    ):
        if names:
            parts.append(f"**{label}**：{'、'.join(names)}")
    failed = {**(rejected or {}), **report.failed}
    for name, reason in failed.items():
        parts.append(f"**失敗** {name}：{reason}")
    if report.chunks_embedded:
        parts.append(f"嵌入 {report.chunks_embedded} 個段落，用時 {report.seconds:.1f} 秒")
    return "　\n".join(parts) or "沒有變更。"


def upload_name(path: str, data: bytes = b"") -> str:
    """The uploaded file's own name (Gradio keeps it as the temp file's base name), made safe."""
    from ui.api.uploads import safe_filename

    return safe_filename(Path(path).name, data)


# -- the UI ---------------------------------------------------------------------------------
def build_ui(service: Tongwen) -> gr.Blocks:
    settings = service.settings

    def respond(
        message: str,
        chat: list[dict[str, Any]] | None,
        panels: dict[int, str] | None,
        backend: str,
        top_k: float,
        read_key: str | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        chat = list(chat or [])
        panels = dict(panels or {})
        question = (message or "").strip()
        if not question:
            yield chat, gr.skip(), message, panels
            return
        turn = sum(1 for m in chat if m.get("role") == "user") + 1
        refusal = read_refusal(settings, read_key)
        if refusal:
            yield chat, error_panel(refusal, turn), message, panels
            return
        history = history_for_service(chat, settings.max_history_chars)
        chat = [*chat, {"role": "user", "content": question}, {"role": "assistant", "content": "…"}]
        at = len(chat) - 1
        pending = render_sources({}, state="pending", turn=turn)
        yield chat, pending, "", panels
        answer, panel = "", pending
        try:
            for event in service.ask_stream(question, history, int(top_k), backend or None):
                if event["type"] == "question":
                    panel = render_sources(event, state="pending", turn=turn, typed=question)
                elif event["type"] == "token":
                    answer += event["text"]
                    chat[at] = {"role": "assistant", "content": answer}
                elif event["type"] == "final":
                    chat[at] = {"role": "assistant", "content": event["answer"]}
                    panel = render_sources(event, state="final", turn=turn, typed=question)
                    panels[at] = panel
                yield chat, panel, "", panels
        except TongwenError as exc:
            chat[at] = {"role": "assistant", "content": f"⚠️ {exc}"}
            panels[at] = error_panel(str(exc), turn)
            yield chat, panels[at], "", panels
        except Exception as exc:  # a bug: keep the page usable and say so
            log.exception("answering %r failed", question)
            chat[at] = {"role": "assistant", "content": f"⚠️ 內部錯誤：{type(exc).__name__}"}
            panels[at] = error_panel(f"{type(exc).__name__}: {exc}", turn)
            yield chat, panels[at], "", panels

    def show_panel(panels: dict[int, str] | None, evt: gr.SelectData) -> Any:
        """Clicking an earlier answer brings its sources back into the panel."""
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        panel = (panels or {}).get(index)
        return panel if panel is not None else gr.skip()

    def clear() -> tuple[Any, ...]:
        return [], EMPTY_PANEL, "", {}

    def refresh() -> tuple[Any, ...]:
        return document_rows(service), gr.update(choices=document_choices(service), value=None)

    def upload(
        files: list[str] | None, key: str | None = None, progress: gr.Progress = INGEST_PROGRESS
    ) -> tuple[Any, ...]:
        """Checks the key itself (not only the page): the Gradio API and raw queue calls end here too."""
        if not files:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        refusal = write_refusal(settings, key)
        if refusal:
            return f"**上傳失敗**：{refusal}", None, *refresh()
        if len(files) > settings.max_upload_files:
            return f"**上傳失敗**：一次最多上傳 {settings.max_upload_files} 個檔案，請分批上傳。", None, *refresh()
        total = sum(Path(path).stat().st_size for path in files)
        if total > settings.max_upload_total_bytes:
            limit = settings.max_upload_total_bytes / 1e6
            message = f"**上傳失敗**：這批檔案共 {total / 1e6:.1f} MB，超過一次上傳的上限 {limit:.0f} MB，請分批上傳。"
            return message, None, *refresh()
        progress(0, desc="讀取檔案…")
        sources, rejected = [], {}
        for path in files:
            name = upload_name(path)  # for messages; a nameless file is named after its content below
            size = Path(path).stat().st_size
            if size > settings.max_upload_bytes:
                rejected[name] = f"檔案太大（{size / 1e6:.1f} MB，上限 {settings.max_upload_bytes / 1e6:.0f} MB）"
                continue
            data = Path(path).read_bytes()
            sources.append(Source(upload_name(path, data), data))
        progress(0.2, desc=f"切分並嵌入 {len(sources)} 個檔案…")
        try:
            report = service.ingest(sources, show_progress=True)
        except TongwenError as exc:
            return f"**上傳失敗**：{exc}", None, *refresh()
        progress(1.0, desc="完成")
        return report_text(report, rejected), None, *refresh()

    def ask_to_confirm(doc_id: str | None) -> tuple[Any, ...]:
        """First click on 刪除: name the document and show 確認刪除 / 取消 instead of deleting."""
        if not doc_id:
            return "請先選擇要刪除的文件。", gr.update(visible=False), gr.update(visible=False)
        names = dict((d, n) for n, d in document_choices(service))
        message = f"確定要刪除「{names.get(doc_id, doc_id)}」嗎？按「確認刪除」後無法復原。"
        return message, gr.update(visible=True), gr.update(visible=True)

    def cancel_delete() -> tuple[Any, ...]:
        return "已取消刪除。", gr.update(visible=False), gr.update(visible=False)

    def delete(doc_id: str | None, key: str | None = None) -> tuple[Any, ...]:
        """Checks the key itself (not only the page): the Gradio API and raw queue calls end here too."""
        hide = gr.update(visible=False), gr.update(visible=False)
        refusal = write_refusal(settings, key)
        if refusal:
            return f"**刪除失敗**：{refusal}", *refresh(), *hide
        if not doc_id:
            return "請先選擇要刪除的文件。", *refresh(), *hide
        try:
            report = service.delete(doc_id)
        except TongwenError as exc:
            return f"**刪除失敗**：{exc}", *refresh(), *hide
        return report_text(report), *refresh(), *hide

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(
            "## 同文 Tongwen：中文文件問答\n"
            "以繁體或簡體提問皆可（臺灣用語與大陸用語互通），回答以您提問的字體呈現，並附上原文出處。"
        )
        panels = gr.State({})
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                chatbot = gr.Chatbot(
                    label="對話",
                    elem_id="chatbot",
                    height=460,
                    buttons=["copy"],
                    feedback_options=None,
                    placeholder="請在下方輸入問題，或點選範例問題。",
                )
                with gr.Row(equal_height=True):
                    question = gr.Textbox(
                        label="問題",
                        show_label=False,
                        placeholder="輸入問題（繁體或簡體），按 Enter 送出",
                        elem_id="question",
                        scale=6,
                        lines=1,
                        max_lines=4,
                        autofocus=True,
                    )
                    send = gr.Button("送出", variant="primary", elem_id="send", scale=1, min_width=80)
                    clear_btn = gr.Button("清除對話", elem_id="clear", scale=1, min_width=80)
                gr.Examples(examples=[[q] for q in EXAMPLES], inputs=[question], label="範例問題（繁體與簡體）")
                sources = gr.HTML(
                    EMPTY_PANEL,
                    label="來源",
                    elem_id="sources",
                    css_template=SOURCES_CSS,
                    js_on_load=None,
                    container=True,
                    padding=True,
                )
            with gr.Column(scale=2, min_width=300):
                read_key = gr.Textbox(
                    label="存取金鑰",
                    type="password",
                    placeholder="這個伺服器需要金鑰才能提問",
                    elem_id="read-key",
                    visible=bool(settings.read_key),
                )
                with gr.Group():
                    backend = gr.Radio(
                        BACKENDS,
                        value="extractive",
                        label="生成方式",
                        info="預設「摘錄式」：不經語言模型，立即回答並逐字引用原文。",
                        elem_id="backend",
                    )
                    top_k = gr.Slider(
                        1,
                        20,
                        value=settings.top_k,
                        step=1,
                        label="檢索段落數（top-k）",
                        elem_id="topk",
                    )
                with gr.Accordion("文件管理", open=True):
                    admin_key = gr.Textbox(
                        label="管理金鑰",
                        type="password",
                        placeholder="上傳或刪除文件前請輸入管理金鑰（TONGWEN_API_KEY）",
                        info="只保存在這個分頁中，重新整理頁面後需再次輸入。",
                        elem_id="admin-key",
                        visible=bool(settings.api_key),
                    )
                    files = gr.File(
                        label="上傳文件（.txt .md .pdf .docx .html，可多選）",
                        file_count="multiple",
                        file_types=UPLOAD_TYPES,
                        elem_id="upload",
                    )
                    status = gr.Markdown(elem_id="upload-status")
                    documents = gr.Dataframe(
                        value=document_rows(service),
                        headers=["文件", "段落數", "doc_id"],
                        datatype=["str", "number", "str"],
                        label="已索引的文件",
                        interactive=False,
                        wrap=True,
                        max_height=300,
                        elem_id="documents",
                    )
                    with gr.Row(equal_height=True):
                        to_delete = gr.Dropdown(
                            choices=document_choices(service),
                            value=None,
                            label="選擇要刪除的文件",
                            elem_id="delete-doc",
                            scale=3,
                        )
                        delete_btn = gr.Button("刪除", variant="stop", elem_id="delete", scale=1, min_width=70)
                    with gr.Row(equal_height=True):
                        confirm_btn = gr.Button("確認刪除", variant="stop", elem_id="confirm-delete", visible=False)
                        cancel_btn = gr.Button("取消", elem_id="cancel-delete", visible=False)

        ask_inputs = [question, chatbot, panels, backend, top_k, read_key]
        ask_outputs = [chatbot, sources, question, panels]
        # One queue for both ways of asking (a local LLM answers one question at a time anyway).
        asking = {"concurrency_id": "ask", "show_progress": "hidden"}
        question.submit(respond, ask_inputs, ask_outputs, api_name="ask", **asking)
        send.click(respond, ask_inputs, ask_outputs, api_visibility="private", **asking)
        clear_btn.click(clear, None, ask_outputs, api_visibility="private")
        chatbot.select(show_panel, [panels], [sources], api_visibility="private")
        # The write events take the key as an input and check it themselves: the page, the Gradio API
        # (`/upload`, `/delete`) and raw queue calls all end in these handlers.
        files.upload(
            upload, [files, admin_key], [status, files, documents, to_delete], api_name="upload", concurrency_id="write"
        )
        # Gradio's upload route (before the event) checks the key too: keep it in a session cookie.
        admin_key.change(None, [admin_key], None, js=KEY_COOKIE_JS, api_visibility="private")
        confirming = [confirm_btn, cancel_btn]
        delete_btn.click(ask_to_confirm, [to_delete], [status, *confirming], api_visibility="private")
        cancel_btn.click(cancel_delete, None, [status, *confirming], api_visibility="private")
        confirm_btn.click(
            delete,
            [to_delete, admin_key],
            [status, documents, to_delete, *confirming],
            api_name="delete",
            concurrency_id="write",
        )
        demo.load(refresh, None, [documents, to_delete], api_visibility="private")
    return demo
