"""The page's own CSS and scripts: layout (side by side on desktop, stacked on a phone), citation
clicks, opening documents, and Chinese for the few Gradio texts its translations miss.

Kept apart from the Python handlers: these strings run in the browser. ``DESKTOP_MIN_PX`` is the
width from which the sources panel stands beside the conversation; below it each answer carries
its sources folded under it (``ui.render.bot_message``).
"""

from __future__ import annotations

import json

from ui.i18n import SCRIPTS, in_script

DESKTOP_MIN_PX = 1000

CSS = f"""
.gradio-container {{ max-width: 100% !important; padding-top: 6px !important; }}
#topbar {{ align-items: center; gap: 12px; }}
#topbar .prose h2 {{ margin: 0; }}
#heading {{ flex-grow: 1; }}
#script {{ flex-grow: 0 !important; }}
#script .wrap {{ flex-direction: row; flex-wrap: nowrap; gap: 4px; }}
footer {{ display: none !important; }}
/* Gradio's status tracker writes "queue: 1/2 |", "processing |" and ETA figures in English,
   with no translation hook; our own progress line (in the reader's script) says what is going on. */
.meta-text, .meta-text-center {{ display: none !important; }}
#turn-actions {{ gap: 4px; }}
#main {{ align-items: stretch; }}
.tw-cite {{ font-weight: 700; color: var(--color-accent) !important; text-decoration: none !important;
  padding: 0 1px; cursor: pointer; }}
.tw-cite:hover {{ text-decoration: underline !important; }}
mark {{ background: #fde68a !important; color: inherit !important; padding: 0 1px; border-radius: 2px; }}
.tw-flash {{ outline: 3px solid var(--color-accent); outline-offset: 2px; transition: outline 0.3s; }}
.tw-inline-sources {{ margin-top: 0.6em; font-size: 0.92em; }}
.tw-inline-sources > summary {{ cursor: pointer; color: var(--color-accent); }}
.tw-source {{ border: 1px solid var(--border-color-primary); border-radius: 6px; margin: 0.45em 0;
  padding: 0.3em 0.7em; }}
.tw-source.tw-cited {{ border-color: var(--color-accent); }}
.tw-source summary {{ cursor: pointer; }}
.tw-n {{ font-weight: 700; color: var(--color-accent); }}
.tw-title {{ font-weight: 600; }}
.tw-doc {{ font-weight: 600; word-break: break-all; }}
.tw-title + .tw-doc {{ font-weight: 400; opacity: 0.75; font-size: 0.85em; }}
.tw-badge {{ font-size: 0.75rem; padding: 0 0.45em; border-radius: 999px;
  background: var(--color-accent-soft); color: var(--color-accent); }}
.tw-heading, .tw-loc, .tw-meta, .tw-lineno {{ color: var(--body-text-color-subdued); font-size: 0.85rem; }}
.tw-text {{ white-space: pre-wrap; margin: 0.4em 0; padding-left: 0.8em;
  border-left: 3px solid var(--border-color-primary); }}
.tw-open-doc {{ font-size: 0.85rem; }}
.tw-sources, .tw-reader {{ font-size: 0.92rem; line-height: 1.6; }}
.tw-sources h4 {{ margin: 0.6em 0 0.3em; font-size: 1rem; }}
.tw-note {{ padding: 0.45em 0.7em; margin: 0.35em 0; border-radius: 6px;
  background: var(--background-fill-secondary); border-left: 4px solid var(--color-accent); }}
.tw-note.tw-warn {{ border-left-color: #d97706; background: rgba(217, 119, 6, 0.08); }}
.tw-note.tw-error {{ border-left-color: #dc2626; background: rgba(220, 38, 38, 0.08); }}
.tw-empty {{ color: var(--body-text-color-subdued); }}
.tw-docs {{ width: 100%; font-size: 0.88rem; border-collapse: collapse; }}
.tw-docs th, .tw-docs td {{ text-align: left; padding: 0.3em 0.4em;
  border-bottom: 1px solid var(--border-color-primary); }}
.tw-file {{ word-break: break-all; color: var(--body-text-color-subdued); }}
.tw-reader-title {{ margin: 0.2em 0; }}
.tw-reader-heading {{ font-weight: 700; margin: 0.8em 0 0.2em; }}
.tw-passage {{ margin: 0.3em 0; padding: 0.2em 0.5em; border-left: 3px solid transparent; }}
.tw-passage.tw-target {{ border-left-color: var(--color-accent); background: var(--background-fill-secondary); }}
.tw-passage-text {{ white-space: pre-wrap; }}
.tw-chunk {{ margin: 0.5em 0; }}
@media (min-width: {DESKTOP_MIN_PX}px) {{
  .tw-inline-sources {{ display: none; }}
  #sources, #reader {{ max-height: calc(100vh - 210px); overflow-y: auto; }}
  #documents {{ max-height: calc(100vh - 470px); min-height: 120px; overflow-y: auto; }}
}}
@media (max-width: {DESKTOP_MIN_PX - 1}px) {{
  #main {{ flex-direction: column; }}
  #chat-col {{ order: 1; }} #side-col {{ order: 2; }} #sidebar {{ order: 3; }}
  #sources-tab-button, #sources {{ display: none !important; }}
  #topbar {{ flex-wrap: wrap; }}
}}
"""

# Installed once, from the sources panel (which can trigger Python events): a click on [n] opens
# and scrolls to the quoted sentence; a click on 開啟文件 asks Python for the document.
SOURCES_JS = f"""
window.tongwenOpenDoc = (ref) => trigger('open_doc', {{ref: ref}});
if (!window.tongwenClicks) {{
  window.tongwenClicks = true;
  const whenPresent = (id, done, tries = 0) => {{
    const el = document.getElementById(id);
    if (el) return done(el);
    if (tries < 60) setTimeout(() => whenPresent(id, done, tries + 1), 100);
  }};
  document.addEventListener('click', (event) => {{
    const target = event.target && event.target.closest ? event.target : null;
    if (!target) return;
    const cite = target.closest('a.tw-cite');
    if (cite) {{
      event.preventDefault();
      const m = /#tw-src-(\\d+)-(\\d+)-q(\\d+)/.exec(cite.getAttribute('href') || '');
      if (!m) return;
      const narrow = window.innerWidth < {DESKTOP_MIN_PX};
      if (!narrow) {{ const tab = document.getElementById('sources-tab-button'); if (tab) tab.click(); }}
      const sourceId = (narrow ? 'tw-inline' : 'tw-src') + '-' + m[1] + '-' + m[2];
      whenPresent(sourceId, (source) => {{
        for (let p = source; p; p = p.parentElement) if (p.tagName === 'DETAILS') p.open = true;
        const mark = document.getElementById(sourceId + '-q' + m[3]) || source.querySelector('mark') || source;
        setTimeout(() => {{
          mark.scrollIntoView({{block: 'center'}});
          source.classList.add('tw-flash');
          setTimeout(() => source.classList.remove('tw-flash'), 1600);
        }}, 30);
      }});
      return;
    }}
    const open = target.closest('a.tw-open-doc');
    if (open) {{
      event.preventDefault();
      const ref = (open.getAttribute('href') || '').replace(/^#/, '');
      window.tongwenOpenDoc(ref);
      // When the reader shows this document, bring the cited passage (or its first mark) into view.
      const scrollTo = (tries = 0) => {{
        const reader = document.querySelector('#reader .tw-reader[data-ref="' + CSS.escape(ref) + '"]');
        const spot = reader && (reader.querySelector('mark') || reader.querySelector('.tw-target'));
        if (reader && (!spot || spot.offsetParent !== null)) {{
          if (spot) spot.scrollIntoView({{block: 'center'}});
          else reader.scrollIntoView({{block: 'start'}});
          return;
        }}
        if (tries < 100) setTimeout(() => scrollTo(tries + 1), 100);
      }};
      scrollTo();
    }}
  }}, true);
}}
"""

# On load: the script chosen in <head> (ui.i18n.LOCALE_SCRIPT) goes to the switch.
# On a phone the sources tab is hidden (sources fold under each answer): show the documents tab.
LOAD_JS = f"""(store, script) => {{
  if (window.innerWidth < {DESKTOP_MIN_PX}) setTimeout(() => document.getElementById('docs-tab-button')?.click(), 0);
  return [store, window.tongwenScript || 'traditional'];
}}"""

# Gradio texts that no translation covers (the file picker's type warning): said in Chinese.
_UNTRANSLATED = [
    (r"Invalid file types?: (.*)\. Only (.*) allowed\.", "不支援這種檔案類型：$1。可上傳：$2。"),
    (r"^\s*Error\s*$", "錯誤"),  # toast titles: a whole text node, never document content
    (r"^\s*Warning\s*$", "注意"),
    (r"^\s*Info\s*$", "提示"),
]


_FIXES_JS = """<script>(function () {
  var all = __FIXES__;
  var fixes = (all[window.tongwenScript] || all.traditional).map(function (f) { return [new RegExp(f[0]), f[1]]; });
  function fix(node) {
    var walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
    for (var n = walker.currentNode; n; n = walker.nextNode()) {
      if (n.nodeType !== 3) continue;
      fixes.forEach(function (f) {
        if (f[0].test(n.nodeValue)) n.nodeValue = n.nodeValue.replace(f[0], f[1]);
      });
    }
  }
  new MutationObserver(function (records) {
    records.forEach(function (r) {
      r.addedNodes.forEach(function (n) { fix(n.nodeType === 3 ? n.parentNode || n : n); });
      if (r.type === 'characterData' && r.target.parentNode) fix(r.target.parentNode);
    });
  }).observe(document.documentElement, {childList: true, subtree: true, characterData: true});
})();</script>"""


def page_fixes_script() -> str:
    """A <script> that rewrites the untranslated Gradio texts as they appear, in the page's script."""
    fixes = {s: [(pattern, in_script(text, s)) for pattern, text in _UNTRANSLATED] for s in SCRIPTS}
    return _FIXES_JS.replace("__FIXES__", json.dumps(fixes, ensure_ascii=False))
