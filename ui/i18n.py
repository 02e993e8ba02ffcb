"""Every text the UI shows, in the reader's script: one table, Traditional first, Simplified derived.

The strings are written once in Traditional Chinese (Taiwan usage). The Simplified version is the
OpenCC conversion (``ingest.normalise.to_script``) after a few Taiwan terms are swapped for their
Mainland counterparts (文件 → 文档, 檔案 → 文件…): mechanical conversion is right for characters,
not for vocabulary. ``gradio_i18n`` hands the same table to Gradio so static labels follow the
reader's choice too; messages made on the server (sources, errors, upload results) call ``t``.

Which script: ``LOCALE_SCRIPT`` runs in the page's ``<head>`` before Gradio starts. It follows the
browser (zh-TW/zh-HK → Traditional, zh-CN/zh-SG → Simplified, anything else → Traditional) unless
the reader chose one with the switch (kept in localStorage), and tells Gradio the matching locale,
so Gradio's own labels ("拖放檔案至此處") are in the same script as ours.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Literal

from ingest.normalise import to_script
from rag import errors
from ui.api.errors import RequestTooLarge

UiScript = Literal["traditional", "simplified"]
SCRIPTS: tuple[UiScript, ...] = ("traditional", "simplified")
LOCALES: dict[UiScript, str] = {"traditional": "zh-TW", "simplified": "zh-CN"}
STORAGE_KEY = "tongwen-script"

# Taiwan term -> Mainland term, applied before the character conversion (longest first).
MAINLAND_TERMS = {
    "文件": "文檔",
    "檔案": "文件",
    "金鑰": "密鑰",
    "伺服器": "服務器",
    "重新整理": "刷新",
    "範例": "示例",
    "預設": "默認",
    "本機": "本地",
    "訊息": "信息",
    "分頁": "標籤頁",
    "支援": "支持",
    "檔名": "文件名",
    "紀錄": "記錄",
    "設定": "設置",
    "開啟": "打開",
    "點選": "點擊",
    "遠端": "遠程",
    "存取": "訪問",
    "即時": "實時",
}
_TERMS = re.compile("|".join(sorted(map(re.escape, MAINLAND_TERMS), key=len, reverse=True)))

STRINGS: dict[str, str] = {
    # page
    "heading": "## 同文：中文文件問答",
    "intro": "繁體或簡體提問皆可，回答以您提問的字體呈現；點選回答中的 [1] 查看原文出處。",
    "script_switch": "字體",
    # conversations
    "conversations": "對話紀錄",
    "new_chat": "＋ 新對話",
    "untitled": "新對話",
    "settings": "設定",
    "backend": "生成方式",
    "backend_info": "預設「摘錄式」：不經語言模型，立即回答並逐字引用原文。",
    "top_k": "檢索段落數",
    # chat
    "chat": "對話",
    "chat_placeholder": "請在下方輸入問題，或點選以下範例問題。",
    "question": "問題",
    "question_placeholder": "輸入問題（繁體或簡體），按 Enter 送出",
    "send": "送出",
    "stop": "停止",
    "regenerate": "重新生成",
    "stopped": "（已停止）",
    "read_key": "存取金鑰",
    "read_key_placeholder": "這個伺服器需要金鑰才能提問",
    # side tabs
    "tab.sources": "來源",
    "tab.documents": "文件",
    "tab.reader": "閱讀",
    # sources panel
    "sources_empty": "提問後，這裡會列出答案引用的原文段落；被引用的句子以黃色標示。",
    "sources_heading": "來源（{n}）",
    "no_passages": "沒有檢索到任何段落。",
    "not_found": "文件中沒有找到答案。以下是最接近的段落，供您自行查閱。",
    "small_talk": "這則訊息沒有問到文件的內容，所以沒有查閱文件。",
    "condensed": "已理解為：{question}",
    "generating": "正在生成回答…",
    "backend_used": "生成方式：{backend}",
    "took": "耗時 {seconds:.2f} 秒",
    "cited": "已引用",
    "open_document": "開啟文件",
    "page": "第 {page} 頁",
    "line": "第 {line} 行",
    "lines": "第 {start}–{end} 行",
    "score.fused": "融合分數 {value}",
    "score.dense": "語意相似度 {value}",
    "score.keyword": "關鍵詞分數 {value}",
    "error": "出錯了：{message}",
    "internal_error": "內部錯誤（{kind}），請重試；若一再發生，請回報管理者。",
    "extractive_note": "摘錄式回答：直接引用文件原句，未經語言模型改寫。",
    # documents
    "documents": "已索引的文件",
    "documents_empty": "還沒有文件。請在上方上傳。",
    "col.title": "標題",
    "col.name": "檔名",
    "col.size": "大小",
    "col.chunks": "段落數",
    "col.added": "加入時間",
    "chars": "{n:,} 字",
    "upload": "上傳文件（{suffixes}，可多選）",
    "admin_key": "管理金鑰",
    "admin_key_placeholder": "上傳或刪除文件前請輸入管理金鑰",
    "admin_key_info": "只保存在這個分頁中，重新整理頁面後需再次輸入。",
    "delete_select": "選擇要刪除的文件",
    "delete": "刪除",
    "confirm_delete": "確認刪除",
    "cancel": "取消",
    "pick_document": "請先選擇要刪除的文件。",
    "confirm_question": "確定要刪除「{name}」嗎？按「確認刪除」後無法復原。",
    "delete_cancelled": "已取消刪除。",
    "delete_failed": "**刪除失敗**：{reason}",
    "upload_failed": "**上傳失敗**：{reason}",
    "too_many_files": "一次最多上傳 {limit} 個檔案，請分批上傳。",
    "batch_too_large": "這批檔案共 {size:.1f} MB，超過一次上傳的上限 {limit:.0f} MB，請分批上傳。",
    "file_too_large": "檔案太大（{size:.1f} MB，上限 {limit:.0f} MB）。請分割後再上傳。",
    "progress.reading": "正在讀取 {name}…（{done}/{total} 個檔案）",
    "progress.embedding": "正在嵌入 {chunks} 個段落…",
    "progress.saving": "正在寫入索引…",
    "progress.elapsed": "已用 {seconds:.0f} 秒",
    "result.added": "新增",
    "result.updated": "更新",
    "result.unchanged": "未變更（內容相同）",
    "result.deleted": "已刪除",
    "result.failed": "失敗",
    "result.embedded": "嵌入 {chunks} 個段落，用時 {seconds:.1f} 秒。",
    "result.nothing": "沒有變更。",
    "write_key_missing": "需要管理金鑰才能上傳或刪除文件：請在「管理金鑰」欄輸入伺服器設定的管理金鑰。",
    "write_key_wrong": "管理金鑰不正確，無法上傳或刪除文件。請確認後重新輸入。",
    "read_key_missing": "這個伺服器需要存取金鑰才能提問：請在「存取金鑰」欄輸入存取金鑰（或管理金鑰）。",
    "read_key_wrong": "存取金鑰不正確，無法提問。請確認後重新輸入。",
    "wrong_type": "不支援這種檔案類型。可上傳：{suffixes}。",
    # document reader
    "reader_empty": "從來源或文件清單點選「開啟文件」，即可在這裡閱讀全文。",
    "reader_meta": "{name}　·　{chunks} 個段落　·　{size}　·　加入於 {added}",
    "reader_text": "全文",
    "reader_chunks": "索引中的段落（{n}）",
    "reader_missing": "找不到這份文件，可能已被刪除。請重新整理文件清單。",
    "chunk_label": "段落 {seq}",
}

# Errors from rag.errors, said in Chinese with what to do; the English detail is not shown.
ERRORS: dict[type[errors.TongwenError], str] = {
    errors.UnsupportedFileType: "不支援這種檔案類型。可上傳：{suffixes}。",
    errors.CorruptDocument: "檔案已損毀或格式不符，無法讀取。請確認檔案能正常開啟，或另存新檔後再上傳。",
    errors.EmptyDocument: "檔案中沒有可索引的文字（可能是掃描圖檔）。請上傳含文字的版本。",
    errors.DocumentTooLarge: "檔案太大，超過伺服器的上限。請分割後再上傳。",
    errors.DocumentNotFound: "找不到這份文件，可能已被刪除。請重新整理文件清單。",
    errors.EmptyQuestion: "問題是空的，請輸入問題。",
    errors.QuestionTooLong: "問題太長，請縮短後再問。",
    errors.IndexMissing: "還沒有建立索引。請先上傳文件。",
    errors.IndexCorrupt: "索引已損壞，暫時無法回答。請管理者重建索引（tongwen ingest --rebuild）。",
    errors.ModelUnavailable: "模型無法載入，暫時無法處理。請管理者確認模型已下載，或改用「摘錄式」。",
    errors.StoreUnavailable: "向量資料庫暫時連不上。請稍後再試；若一再發生，請回報管理者。",
    errors.InvalidText: "文字含有無效字元，請重新輸入或另存為 UTF-8 後再上傳。",
    RequestTooLarge: "內容超過上限，請分批處理或縮短對話。",
}
GENERIC_ERROR = "無法完成這個操作，請重試；若一再發生，請回報管理者。"


def simplified(text: str) -> str:
    """Traditional UI text as a Mainland reader writes it: vocabulary first, then characters."""
    return to_script(_TERMS.sub(lambda m: MAINLAND_TERMS[m.group()], text), "simplified")


@cache
def _table(script: UiScript) -> dict[str, str]:
    if script == "simplified":
        return {key: simplified(value) for key, value in STRINGS.items()}
    return dict(STRINGS)


def as_script(value: str | None) -> UiScript:
    """A script from the page (or a default): anything unknown is Traditional."""
    return "simplified" if value == "simplified" else "traditional"


def t(key: str, script: str | None, **values: Any) -> str:
    """The UI text ``key`` in the reader's script, with ``values`` filled in (values are not converted)."""
    text = _table(as_script(script))[key]
    return text.format(**values) if values else text


def in_script(text: str, script: str | None) -> str:
    """Any Traditional UI text (not document content) in the reader's script."""
    return simplified(text) if as_script(script) == "simplified" else text


def error_text(kind: type[BaseException] | None, script: str | None, **values: Any) -> str:
    """A Chinese message with advice for an error class (the class's nearest known ancestor)."""
    for cls in kind.__mro__ if kind else ():
        if cls in ERRORS:
            message = ERRORS[cls]
            break
    else:
        message = GENERIC_ERROR
    if "{suffixes}" in message:
        values.setdefault("suffixes", "")
    return in_script(message.format(**values), script)


def script_for_locale(locale: str | None) -> UiScript:
    """zh-CN / zh-SG / zh-Hans → Simplified; everything else (zh-TW, zh-HK, en…) → Traditional.

    The same rule as ``LOCALE_SCRIPT`` (which runs in the browser); kept here to be tested.
    """
    return "simplified" if re.match(r"zh[-_](cn|sg|my|hans)", (locale or "").lower()) else "traditional"


def gradio_i18n(**values: str) -> Any:
    """The table for Gradio's translation of static labels (``i18n(key)`` in build_ui); entries
    with a ``{name}`` in ``values`` are filled in, the others are given as they are."""
    import gradio as gr

    def filled(text: str) -> str:
        return text.format(**values) if any("{" + name + "}" in text for name in values) else text

    return gr.I18n(**{LOCALES[s]: {k: filled(v) for k, v in _table(s).items()} for s in SCRIPTS})


# Runs first in <head> (injected by ui.server): decide the script, make Gradio use its locale.
LOCALE_SCRIPT = f"""<script>(function () {{
  try {{
    var saved = localStorage.getItem({STORAGE_KEY!r});
    var nav = (navigator.languages && navigator.languages[0]) || navigator.language || '';
    var simp = /^zh[-_](cn|sg|my|hans)/i.test(nav);
    var script = (saved === 'simplified' || saved === 'traditional') ? saved : (simp ? 'simplified' : 'traditional');
    var locale = script === 'simplified' ? 'zh-CN' : 'zh-TW';
    window.tongwenScript = script;
    var define = function (name, value) {{
      Object.defineProperty(Navigator.prototype, name, {{get: function () {{ return value; }}, configurable: true}});
    }};
    define('language', locale);
    define('languages', [locale]);
    document.documentElement.lang = locale;
  }} catch (e) {{ window.tongwenScript = 'traditional'; }}
}})();</script>"""

# The switch: remember the choice and reload, so Gradio starts again in the chosen locale.
SWITCH_JS = f"(script) => {{ localStorage.setItem({STORAGE_KEY!r}, script); window.location.reload(); return script; }}"
