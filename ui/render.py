"""HTML for answers and their sources: clickable ``[n]`` markers and every quoted sentence marked.

Pure functions of the service's answer (``Tongwen.ask`` / the events of ``ask_stream``, or a turn
restored from the browser: see ``ui.answer_view``), testable without a browser. Stable hooks for
the page script and for tests:

* ``a.tw-cite`` — a ``[n]`` marker; ``href="#tw-src-T-N-qK"`` names turn T, source N and the K-th
  sentence quoted from it; ``title`` is that sentence (shown on hover).
* ``details#tw-src-T-N`` — source N in the sources panel (desktop); ``details#tw-inline-T-N`` — the
  same source folded under the answer (phone). Each quoted sentence is ``mark#…-qK``.
* ``a.tw-open-doc`` — ``href="#open:DOCID:SEQ:T:N"`` opens the document reader at chunk SEQ.

Gradio's chatbot sanitiser keeps ``id``, ``class``, ``href`` and ``title`` but drops ``data-*``
attributes, so everything the page script needs is in those.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ingest.sentences import split_sentences
from rag.cite import best_quote
from rag.generate import registry
from rag.results import Location, Source
from ui.answer_view import AnswerView, Shown
from ui.i18n import in_script, t

CITATION = re.compile(r"\[(\d{1,2})\]")


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


def location_text(location: Location | Mapping[str, Any] | None, script: str) -> str:
    """「第 3 頁，第 10–12 行」: a source's location, or a passage's from ``Tongwen.document_view``."""
    if not location:
        return ""
    if isinstance(location, Mapping):
        try:
            location = Location.model_validate(location)
        except ValueError:
            return ""
    parts = []
    if location.page:
        parts.append(t("page", script, page=location.page))
    start, end = location.line_start, location.line_end
    if start:
        parts.append(
            t("line", script, line=start) if not end or end == start else t("lines", script, start=start, end=end)
        )
    return "，".join(parts)


def quotes_by_source(shown: Shown) -> dict[int, list[str]]:
    """Source number -> every sentence of it the answer leans on, in order of first use.

    The service's ``citations`` (``quotes``) come first; each citing sentence of the answer adds
    its own closest sentence (``rag.chain.best_quote``, the function the service uses), so every
    ``[n]`` has a highlighted sentence to point at, also for answers stored before ``quotes``.
    """
    result = AnswerView.of(shown)
    sources = result.sources
    out: dict[int, list[str]] = {}
    for citation in result.citations:
        quotes = citation.quotes or [citation.quote]
        out.setdefault(citation.n, []).extend(q for q in quotes if q)
    answer = result.answer
    for start, end in split_sentences(answer):
        sentence = answer[start:end]
        for match in CITATION.finditer(sentence):
            n = int(match.group(1))
            if 1 <= n <= len(sources):
                quote = best_quote(sentence, sources[n - 1].text)
                if quote and quote not in out.setdefault(n, []):
                    out[n].append(quote)
    return {n: list(dict.fromkeys(q for q in quotes if q)) for n, quotes in out.items()}


def answer_html(shown: Shown, turn: int, script: str) -> str:
    """The answer, escaped, each ``[n]`` a link to the sentence of source n it relies on."""
    result = AnswerView.of(shown)
    answer = result.answer
    sources = result.sources
    quotes = quotes_by_source(result)
    out = []
    spans = split_sentences(answer) or [(0, len(answer))]
    cursor = 0
    for start, end in spans:
        out.append(_escape(answer[cursor:start]))
        sentence = answer[start:end]
        pos = 0
        for match in CITATION.finditer(sentence):
            out.append(_escape(sentence[pos : match.start()]))
            n = int(match.group(1))
            if 1 <= n <= len(sources):
                quote = best_quote(sentence, sources[n - 1].text)
                k = quotes.get(n, []).index(quote) if quote in quotes.get(n, []) else 0
                out.append(f'<a class="tw-cite" href="#tw-src-{turn}-{n}-q{k}" title="{html.escape(quote)}">[{n}]</a>')
            else:
                out.append(_escape(match.group()))
            pos = match.end()
        out.append(_escape(sentence[pos:]))
        cursor = end
    out.append(_escape(answer[cursor:]))
    return "".join(out)


def _escape(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def highlight(text: str, quotes: Sequence[str], id_prefix: str = "") -> str:
    """Escaped text with every quoted sentence in ``<mark id="{id_prefix}-qK">`` (K = its index)."""
    found: list[tuple[int, int, int]] = []
    for k, quote in enumerate(quotes):
        quote = quote.strip()
        at = text.find(quote) if quote else -1
        if at >= 0 and not any(s < at + len(quote) and at < e for s, e, _ in found):
            found.append((at, at + len(quote), k))
    out, cursor = [], 0
    for start, end, k in sorted(found):
        mark_id = f' id="{id_prefix}-q{k}"' if id_prefix else ""
        out.append(html.escape(text[cursor:start]))
        out.append(f'<mark class="tw-q{k}"{mark_id}>{html.escape(text[start:end])}</mark>')
        cursor = end
    out.append(html.escape(text[cursor:]))
    return "".join(out)


def open_ref(chunk_id: str, turn: int = 0, n: int = 0) -> str:
    """The link target that opens a document at a chunk (``DOCID:SEQ``) for turn T, source N."""
    return f"#open:{chunk_id}:{turn}:{n}"


def parse_open_ref(ref: str) -> tuple[str, int | None, int, int]:
    """(doc_id, chunk seq or None, turn, source number) from ``open_ref``'s text (with or without #)."""
    parts = ref.lstrip("#").removeprefix("open:").split(":")
    doc_id = parts[0]

    def number(i: int) -> int | None:
        return int(parts[i]) if len(parts) > i and parts[i].lstrip("-").isdigit() else None

    return doc_id, number(1), number(2) or 0, number(3) or 0


def source_items(result: AnswerView, turn: int, script: str, prefix: str) -> str:
    """One ``<details>`` per source; cited ones open, every quoted sentence marked."""
    quotes = quotes_by_source(result)
    out = []
    for src in result.sources:
        n = src.n
        cited = n in quotes
        element_id = f"{prefix}-{turn}-{n}"
        summary = [f'<span class="tw-n">[{n}]</span>']
        if src.title and src.title != Path(src.doc).stem:  # a file name is not said twice
            summary.append(f'<span class="tw-title">{html.escape(src.title)}</span>')
        summary.append(f'<span class="tw-doc">{html.escape(src.doc)}</span>')
        if src.heading:
            summary.append(f'<span class="tw-heading">{html.escape(src.heading)}</span>')
        where = location_text(src.location, script)
        if where:
            summary.append(f'<span class="tw-loc">{where}</span>')
        if cited:
            summary.append(f'<span class="tw-badge">{t("cited", script)}</span>')
        opened = " open" if cited or (not quotes and n == 1) else ""
        link = open_ref(src.id, turn, n)
        out.append(
            f'<details class="tw-source{" tw-cited" if cited else ""}" id="{element_id}"{opened}'
            f' title="{html.escape(score_text(src, script))}">'
            f"<summary>{'　'.join(summary)}</summary>"
            f'<div class="tw-text">{highlight(src.text, quotes.get(n, []), element_id)}</div>'
            f'<a class="tw-open-doc" href="{link}">{t("open_document", script)} ›</a>'
            "</details>"
        )
    return "".join(out)


def score_text(src: Source, script: str) -> str:
    """Retrieval scores for a tooltip (fused RRF scores are tiny numbers, not for the headline)."""
    parts = [t("score.fused", script, value=src.score)]
    if src.dense_score is not None:
        parts.append(t("score.dense", script, value=src.dense_score))
    if src.keyword_score is not None:
        parts.append(t("score.keyword", script, value=src.keyword_score))
    return "，".join(parts)


def backend_name(backend: str, script: str) -> str:
    """The short name of a backend (its label before the parenthesis); a fallback note as it is."""
    return in_script(registry.label(backend), script).split("（")[0] if backend in registry.names() else backend


def sources_panel(
    shown: Shown,
    *,
    state: str,
    turn: int,
    script: str,
    typed: str = "",
    error: str | None = None,
) -> str:
    """The sources panel for one answer. ``data-state`` (pending/final/error/empty) and
    ``data-turn`` say which answer it shows and whether it is done (a hook for tests)."""
    result = AnswerView.of(shown)
    sources = result.sources
    out = [f'<div class="tw-sources" data-state="{state}" data-turn="{turn}" id="tw-panel-{turn}">']
    if error:
        out.append(f'<div class="tw-note tw-error">{t("error", script, message=html.escape(error))}</div>')
    condensed = result.question.strip()
    if condensed and typed and condensed != typed.strip():
        out.append(f'<div class="tw-note tw-condensed">{t("condensed", script, question=html.escape(condensed))}</div>')
    if state == "final" and result.small_talk and not error:
        out.append(f'<div class="tw-note tw-smalltalk">{t("small_talk", script)}</div>')
    elif state == "final" and not result.found and not error:
        out.append(f'<div class="tw-note tw-warn tw-notfound">{t("not_found", script)}</div>')
    if state == "final" and result.backend == "extractive" and result.found:
        out.append(f'<div class="tw-note tw-extractive">{t("extractive_note", script)}</div>')
    if state == "pending":
        out.append(f'<p class="tw-meta">{t("generating", script)}</p>')
    if result.backend:
        meta = [t("backend_used", script, backend=html.escape(backend_name(result.backend, script)))]
        timings = result.timings
        if "total" in timings:
            meta.append(t("took", script, seconds=timings["total"] / 1000))
        out.append(f'<p class="tw-meta">{"　·　".join(meta)}</p>')
    if sources:
        out.append(f"<h4>{t('sources_heading', script, n=len(sources))}</h4>")
    elif state not in ("error", "pending") and not result.small_talk:
        out.append(f'<p class="tw-empty">{t("no_passages", script)}</p>')
    out.append(source_items(result, turn, script, "tw-src"))
    out.append("</div>")
    return "".join(out)


def empty_panel(script: str) -> str:
    empty = t("sources_empty", script)
    return f'<div class="tw-sources" data-state="empty" data-turn="0"><p class="tw-empty">{empty}</p></div>'


def error_panel(message: str, turn: int, script: str) -> str:
    return sources_panel(AnswerView(), state="error", turn=turn, script=script, error=message)


def bot_message(shown: Shown, turn: int, script: str) -> str:
    """An answer as the chat shows it: linked markers, then its sources folded under it (shown
    on narrow screens only, where there is no room for the panel beside the conversation)."""
    result = AnswerView.of(shown)
    body = answer_html(result, turn, script)
    sources = result.sources
    if not sources:
        return body
    return (
        f"{body}"
        f'<details class="tw-inline-sources"><summary>{t("sources_heading", script, n=len(sources))}</summary>'
        f"{source_items(result, turn, script, 'tw-inline')}</details>"
    )


def user_message(question: str) -> str:
    return _escape(question)


def plain_answer(text: str) -> str:
    """A streaming (unfinished) answer: escaped text, no links yet."""
    return _escape(text)
