"""The document side of the UI: the list, the reader, upload results and progress, key checks.

Pure functions over the service's dicts (``Tongwen.documents``, ``Tongwen.document_view``) and
``IngestReport``, so they are testable without a browser. Errors are said in Chinese with what
to do (``ui.i18n.error_text``); the English ``TongwenError`` text stays in the server log.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.load import SUPPORTED_SUFFIXES
from ui.auth import may_read, may_write
from ui.i18n import error_text, t
from ui.render import highlight, location_text, open_ref

# One list for the file picker and the messages: the suffixes the API and `tongwen ingest` take.
UPLOAD_SUFFIXES: list[str] = sorted(SUPPORTED_SUFFIXES)


def suffix_text() -> str:
    return " ".join(UPLOAD_SUFFIXES)


def write_refusal(settings: Any, key: str | None, script: str) -> str | None:
    """The message explaining why a write is refused, or None when it may proceed."""
    if may_write(settings, key):
        return None
    return t("write_key_wrong" if key else "write_key_missing", script)


def read_refusal(settings: Any, key: str | None, script: str) -> str | None:
    if may_read(settings, key):
        return None
    return t("read_key_wrong" if key else "read_key_missing", script)


def added_text(iso: str) -> str:
    """``2026-12-01T15:59:40+00:00`` as a reader reads it, in the server's local time."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(iso or "")


def documents_table(documents: Sequence[Mapping[str, Any]], titles: Mapping[str, str], script: str) -> str:
    """The indexed documents by title, with file name, size, chunk count and when added."""
    if not documents:
        return f'<p class="tw-empty">{t("documents_empty", script)}</p>'
    head = "".join(f"<th>{t(k, script)}</th>" for k in ("col.title", "col.name", "col.size", "col.chunks", "col.added"))
    rows = []
    for doc in documents:
        title = titles.get(doc["doc_id"]) or Path(doc["name"]).stem
        rows.append(
            "<tr>"
            f'<td><a class="tw-open-doc" href="{open_ref(doc["doc_id"])}">{html.escape(title)}</a></td>'
            f'<td class="tw-file">{html.escape(doc["name"])}</td>'
            f"<td>{t('chars', script, n=int(doc.get('chars', 0)))}</td>"
            f"<td>{doc.get('chunks', 0)}</td>"
            f"<td>{added_text(doc.get('ingested_at', ''))}</td>"
            "</tr>"
        )
    return f'<table class="tw-docs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def reader_html(
    view: Mapping[str, Any] | None,
    script: str,
    seq: int | None = None,
    quotes: Sequence[str] = (),
    ref: str = "",
) -> str:
    """A document as the index holds it: title, text passage by passage with line numbers (the
    cited passage marked and its quoted sentences highlighted), then its chunks. ``data-ref`` says
    which link opened it, so the page script knows when to scroll to the passage."""
    if not view:
        return f'<div class="tw-reader" data-state="empty"><p class="tw-empty">{t("reader_empty", script)}</p></div>'
    passages = view.get("passages") or []
    target = _target_passage(passages, seq, quotes)
    meta = t(
        "reader_meta",
        script,
        name=f'<span class="tw-file">{html.escape(view["name"])}</span>',
        chunks=len(view.get("chunks") or []),
        size=t("chars", script, n=int(view.get("chars", 0))),
        added=added_text(view.get("ingested_at", "")),
    )
    out = [
        f'<div class="tw-reader" data-state="open" data-doc="{html.escape(view["doc_id"])}"'
        f' data-ref="{html.escape(ref)}">',
        f'<h3 class="tw-reader-title">{html.escape(view.get("title") or view["name"])}</h3>',
        f'<p class="tw-meta">{meta}</p>',
        f'<h4>{t("reader_text", script)}</h4><div class="tw-reader-text">',
    ]
    heading = None
    for i, passage in enumerate(passages):
        if passage.get("heading") and passage["heading"] != heading:
            heading = passage["heading"]
            out.append(f'<div class="tw-reader-heading">{html.escape(heading.split(" > ")[-1])}</div>')
        is_target = i == target
        body = highlight(passage["text"], quotes, "tw-reader") if is_target else html.escape(passage["text"])
        out.append(
            f'<div class="tw-passage{" tw-target" if is_target else ""}" id="tw-passage-{passage["seq"]}">'
            f'<span class="tw-lineno">{location_text(passage.get("location"), script)}</span>'
            f'<div class="tw-passage-text">{body}</div></div>'
        )
    out.append("</div>")
    chunks = view.get("chunks") or []
    out.append(f'<details class="tw-chunks"><summary>{t("reader_chunks", script, n=len(chunks))}</summary>')
    for chunk in chunks:
        where = location_text(chunk.get("location"), script)
        heading_text = (
            f'　<span class="tw-heading">{html.escape(chunk["heading"])}</span>' if chunk.get("heading") else ""
        )
        out.append(
            f'<div class="tw-chunk"><div class="tw-meta">{t("chunk_label", script, seq=chunk["seq"])}'
            f"　{where}{heading_text}</div>"
            f'<div class="tw-text">{html.escape(chunk["text"])}</div></div>'
        )
    out.append("</details></div>")
    return "".join(out)


def _target_passage(passages: Sequence[Mapping[str, Any]], seq: int | None, quotes: Sequence[str]) -> int | None:
    """Which passage to mark: the cited chunk's, or the one before it when the quoted sentence
    fell into the overlap (the reader shows shared sentences once, in the earlier passage)."""
    if seq is None:
        return None
    at = next((i for i, p in enumerate(passages) if p["seq"] == seq), None)
    if at is None:
        return None
    for i in (at, at - 1, at + 1):
        if 0 <= i < len(passages) and quotes and any(q and q in passages[i]["text"] for q in quotes):
            return i
    return at


_READING = re.compile(r"Reading (.+)")
_EMBEDDING = re.compile(r"Embedding (\d+) chunks(?:, sentence by sentence)?")


def progress_text(message: str, script: str, done: int, total: int) -> str:
    """The pipeline's progress lines (``ingest_sources``' ``on_progress``) in Chinese."""
    if m := _READING.fullmatch(message):
        return t("progress.reading", script, name=m.group(1), done=done, total=total)
    if m := _EMBEDDING.fullmatch(message):
        return t("progress.embedding", script, chunks=int(m.group(1)))
    return t("progress.saving", script)


def report_markdown(report: Any, script: str, rejected: Mapping[str, str] | None = None) -> str:
    """Per-file results: added / updated / unchanged / deleted, and failed with why and what to do."""
    lines = []
    for key, names in (
        ("result.added", report.added),
        ("result.updated", report.updated),
        ("result.unchanged", report.unchanged),
        ("result.deleted", getattr(report, "deleted", [])),
    ):
        for name in names:
            lines.append(f"- **{t(key, script)}**：{name}")
    for name, reason in (rejected or {}).items():
        lines.append(f"- **{t('result.failed', script)}**：{name}：{reason}")
    kinds = getattr(report, "failed_kinds", {})
    for name in report.failed:
        reason = error_text(kinds.get(name), script, suffixes=suffix_text())
        lines.append(f"- **{t('result.failed', script)}**：{name}：{reason}")
    if report.chunks_embedded:
        lines.append(t("result.embedded", script, chunks=report.chunks_embedded, seconds=report.seconds))
    return "\n".join(lines) or t("result.nothing", script)
