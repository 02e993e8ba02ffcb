"""Issue 8: keys that every write path honours, limits that cannot be walked around, small edge cases.

One real server (``ui.server.create_app`` with the Gradio UI mounted at ``/``) with an API key and
small limits; the Gradio bypasses are tried with ``gradio_client``, as an attacker would.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest

from ingest.load import DOCX_MAX_XML_BYTES, check_docx_archive
from rag.errors import DocumentTooLarge
from rag.service import Tongwen
from tests.servers import serve
from ui.auth import bearer_token, key_matches
from ui.server import create_app

KEY = "s3cret-write"
READ_KEY = "s3cret-read"
UPLOAD_LIMIT = 200_000
HISTORY_LIMIT = 500
BODY_LIMIT = 20_000
pytestmark = pytest.mark.both_stores  # the key guards over FAISS and over Milvus Lite (tests/conftest.py)

LUX = "盧森堡的總人口雖然僅有50餘萬人，但人均所得位居全球首位。"


@pytest.fixture(scope="module")
def url(tmp_path_factory, make_store_settings):
    home = tmp_path_factory.mktemp("sec")
    corpus = tmp_path_factory.mktemp("sec-corpus")
    (corpus / "lux.txt").write_text(LUX, "utf-8")
    settings = make_store_settings(
        home,
        corpus_dir=corpus,
        api_key=KEY,
        max_upload_bytes=UPLOAD_LIMIT,
        max_upload_files=3,
        max_upload_total_bytes=300_000,
        max_history_chars=HISTORY_LIMIT,
        max_request_bytes=BODY_LIMIT,
    )
    with serve(create_app(service=Tongwen(settings), with_ui=True)) as base:
        yield base


@pytest.fixture(scope="module")
def read_url(tmp_path_factory, make_store_settings):
    """A server that also closes reading: TONGWEN_READ_KEY."""
    home = tmp_path_factory.mktemp("sec-read")
    corpus = tmp_path_factory.mktemp("sec-read-corpus")
    (corpus / "lux.txt").write_text(LUX, "utf-8")
    settings = make_store_settings(home, corpus_dir=corpus, api_key=KEY, read_key=READ_KEY)
    with serve(create_app(service=Tongwen(settings), with_ui=True)) as base:
        yield base


def auth(key: str = KEY, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {key}"}


def names(url: str) -> set[str]:
    return {d["name"] for d in httpx.get(f"{url}/api/documents").json()["documents"]}


def doc_id(url: str, name: str) -> str:
    return next(d["doc_id"] for d in httpx.get(f"{url}/api/documents").json()["documents"] if d["name"] == name)


def gradio(url: str, headers: dict[str, str] | None = None):
    from gradio_client import Client

    # A generous read timeout: gradio_client's default (20 s) is shorter than an answer can take on
    # a busy 2-core CI machine, and a timeout here would say nothing about the key.
    return Client(url + "/", verbose=False, download_files=False, headers=headers, httpx_kwargs={"timeout": 120})


def raw_queue_call(url: str, api_name: str, data: list) -> list:
    """Call a Gradio event the way the page's JavaScript does: join the queue, read the SSE stream."""
    config = httpx.get(f"{url}/config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)
    session = uuid.uuid4().hex
    join = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
    httpx.post(f"{url}/gradio_api/queue/join", json=join).raise_for_status()
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}, timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    assert message.get("success"), message
                    return message["output"]["data"]
    raise AssertionError("the queue never completed the call")


# -- part 1: the key ------------------------------------------------------------------------------
def test_keys_compare_in_constant_time_and_bearer_is_case_insensitive():
    assert bearer_token("bearer abc") == bearer_token("BEARER  abc ") == bearer_token("Bearer abc") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer") is None and bearer_token(None) is None
    assert key_matches("abc", "abc") and not key_matches("abd", "abc") and not key_matches("", "")
    assert not key_matches(None, "abc") and not key_matches("abc", None)


def test_rest_writes_need_the_key_in_any_case_of_bearer(url):
    files = {"files": ("rest.txt", "玉里鎮以玉里麵聞名。".encode(), "text/plain")}
    assert httpx.post(f"{url}/api/documents", files=files).status_code == 401
    assert httpx.post(f"{url}/api/documents", files=files, headers=auth("wrong")).status_code == 401
    r = httpx.post(f"{url}/api/documents", files=files, headers=auth(scheme="bearer"), timeout=120)
    assert r.status_code == 200 and r.json()["added"] == ["rest.txt"], r.text
    assert httpx.delete(f"{url}/api/documents/{doc_id(url, 'rest.txt')}").status_code == 401
    r = httpx.delete(f"{url}/api/documents/{doc_id(url, 'rest.txt')}", headers=auth(scheme="BEARER"))
    assert r.status_code == 200 and "rest.txt" not in names(url)


def test_gradio_upload_and_delete_refuse_without_the_key(url, tmp_path: Path):
    from gradio_client import handle_file

    path = tmp_path / "bypass.txt"
    path.write_text("花蓮的無人分行以人臉辨識核對客戶身分。", "utf-8")
    client = gradio(url)
    with pytest.raises(httpx.HTTPStatusError, match="401"):  # the temporary upload is refused first
        client.predict([handle_file(str(path))], api_name="/upload")
    # A file already on the server (uploaded with the key) still cannot be ingested without it:
    # the event handler checks the key itself, so the Gradio API and raw queue calls are covered.
    stored = httpx.post(f"{url}/gradio_api/upload", files={"files": ("bypass.txt", path.read_bytes())}, headers=auth())
    server_file = {"path": stored.json()[0], "orig_name": "bypass.txt", "meta": {"_type": "gradio.FileData"}}
    status, *_ = raw_queue_call(url, "upload", [[server_file], "", "traditional"])
    assert "需要管理金鑰" in status and "bypass.txt" not in names(url)
    status, *_ = raw_queue_call(url, "upload", [[server_file], "wrong", "traditional"])
    assert "金鑰不正確" in status and "bypass.txt" not in names(url)
    keyed = gradio(url, auth())  # its Authorization header opens the temporary upload only
    status, *_ = keyed.predict([handle_file(str(path))], KEY, api_name="/upload")
    assert "新增" in status and "bypass.txt" in names(url)

    target = doc_id(url, "bypass.txt")  # in this session's dropdown since the upload refreshed it
    status, *_ = keyed.predict(target, api_name="/delete")
    assert "需要管理金鑰" in status and "bypass.txt" in names(url)
    status, *_ = keyed.predict(target, "wrong", api_name="/delete")
    assert "金鑰不正確" in status and "bypass.txt" in names(url)
    status, *_ = raw_queue_call(url, "delete", [doc_id(url, "lux.txt"), "", "traditional"])  # a fresh session's choice
    assert "需要管理金鑰" in status and "lux.txt" in names(url)
    status, *_ = keyed.predict(target, KEY, api_name="/delete")
    assert "已刪除" in status and "bypass.txt" not in names(url)


def test_gradio_temporary_upload_needs_the_key_and_has_the_rest_size_limit(url):
    def upload(size: int, **kwargs) -> httpx.Response:
        return httpx.post(f"{url}/gradio_api/upload", files={"files": ("s.txt", b"x" * size, "text/plain")}, **kwargs)

    refused = upload(1000)
    assert refused.status_code == 401 and "管理金鑰" in refused.json()["error"]["message"]
    assert upload(1000, headers=auth("wrong")).status_code == 401
    assert upload(1000, headers=auth(scheme="bearer")).status_code == 200
    assert upload(1000, cookies={"tongwen_key": KEY}).status_code == 200  # what the UI's key field sets
    big = upload(UPLOAD_LIMIT + 1, headers=auth())
    assert big.status_code == 413, (big.status_code, big.text[:300])


def test_ui_delete_asks_for_confirmation_first(url):
    info = httpx.get(f"{url}/gradio_api/info").json()
    assert {"/upload", "/delete"} <= set(info["named_endpoints"])  # still scriptable, with the key
    config = httpx.get(f"{url}/config").json()
    buttons = {c["props"].get("elem_id"): c for c in config["components"] if c["type"] == "button"}
    assert buttons["confirm-delete"]["props"]["visible"] is False
    delete = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "delete")
    confirm = buttons["confirm-delete"]["id"]
    doc_list = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "documents")
    # The 刪除 button only shows the confirmation; the one that deletes is 確認刪除.
    first = next(d for d in config["dependencies"] if [t[0] for t in d["targets"]] == [delete])
    final = next(d for d in config["dependencies"] if [t[0] for t in d["targets"]] == [confirm])
    assert doc_list not in first["outputs"] and confirm in first["outputs"]
    assert doc_list in final["outputs"]


def test_reading_stays_open_without_a_read_key(url):
    assert httpx.post(f"{url}/api/retrieve", json={"query": "盧森堡人口"}).status_code == 200
    assert httpx.get(f"{url}/v1/models").status_code == 200


def test_a_read_key_closes_questions_everywhere(read_url):
    ask = {"question": "盧森堡人口多少？"}
    chat = {"model": "tongwen", "messages": [{"role": "user", "content": "盧森堡人口多少？"}]}
    for path, body in (("/api/retrieve", {"query": "盧森堡"}), ("/api/ask", ask), ("/v1/chat/completions", chat)):
        assert httpx.post(f"{read_url}{path}", json=body, timeout=60).status_code == 401, path
        assert httpx.post(f"{read_url}{path}", json=body, headers=auth(READ_KEY), timeout=60).status_code == 200
        assert httpx.post(f"{read_url}{path}", json=body, headers=auth(KEY), timeout=60).status_code == 200
    assert httpx.get(f"{read_url}/v1/models").status_code == 401
    assert httpx.get(f"{read_url}/health").status_code == 200  # monitors need no key
    # The UI's own chat refuses too, with a Chinese message in the sources panel.
    chatbot, panel, *_ = gradio(read_url).predict("盧森堡人口多少？", None, "extractive", 5, "", api_name="/ask")
    assert "存取金鑰" in panel and not chatbot
    chatbot, panel, *_ = gradio(read_url).predict("盧森堡人口多少？", None, "extractive", 5, READ_KEY, api_name="/ask")
    assert 'data-state="final"' in panel and chatbot


# -- part 3: limits -------------------------------------------------------------------------------
def test_history_beyond_the_cap_is_a_413_on_both_question_routes(url):
    history = [{"role": "user", "content": "問" * (HISTORY_LIMIT // 2)}, {"role": "assistant", "content": "答" * 300}]
    r = httpx.post(f"{url}/api/ask", json={"question": "那人口呢？", "history": history})
    assert r.status_code == 413 and "TONGWEN_MAX_HISTORY_CHARS" in r.json()["error"]["message"]
    chat = {"model": "tongwen", "messages": [*history, {"role": "user", "content": "那人口呢？"}]}
    r = httpx.post(f"{url}/v1/chat/completions", json=chat)
    assert r.status_code == 413 and r.json()["error"]["type"] == "RequestTooLarge"
    short = [{"role": "user", "content": "盧森堡"}, {"role": "assistant", "content": "盧森堡是歐洲國家。"}]
    assert httpx.post(f"{url}/api/ask", json={"question": "人口呢？", "history": short}).status_code == 200


def test_request_body_cap_holds_with_and_without_content_length(url):
    body = json.dumps({"question": "問", "history": [{"role": "user", "content": "x" * BODY_LIMIT}]}).encode()
    r = httpx.post(f"{url}/api/ask", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "TONGWEN_MAX_REQUEST_BYTES" in r.json()["error"]["message"]

    def chunked():
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    r = httpx.post(f"{url}/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "RequestTooLarge"


def docx_bomb(xml_bytes: int) -> bytes:
    """A zip that looks like a .docx and unpacks to ``xml_bytes`` of XML (a few KB compressed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        body = "<w:p><w:r><w:t>炸</w:t></w:r></w:p>" * (xml_bytes // 40)
        z.writestr("word/document.xml", f"<w:document><w:body>{body}</w:body></w:document>")
    return buffer.getvalue()


def test_a_docx_bomb_is_refused_before_parsing(url):
    bomb = docx_bomb(12 * 1024 * 1024)
    assert len(bomb) < UPLOAD_LIMIT  # small on the wire …
    with pytest.raises(DocumentTooLarge, match="unpacks to"):
        check_docx_archive(bomb, "bomb.docx")  # … refused from the zip directory alone
    check_docx_archive(docx_bomb(DOCX_MAX_XML_BYTES // 4), "fine.docx")
    files = {"files": ("bomb.docx", bomb, "application/octet-stream")}
    r = httpx.post(f"{url}/api/documents", files=files, headers=auth(), timeout=60)
    assert r.status_code == 413 and "unpacks to" in r.json()["error"]["message"], r.text


def test_upload_batches_are_capped_in_count_and_total_bytes(url):
    four = [("files", (f"f{i}.txt", "盧森堡。".encode(), "text/plain")) for i in range(4)]
    r = httpx.post(f"{url}/api/documents", files=four, headers=auth())
    assert r.status_code == 413 and "TONGWEN_MAX_UPLOAD_FILES" in r.json()["error"]["message"]
    heavy = [("files", (f"h{i}.txt", "盧".encode() * 60_000, "text/plain")) for i in range(2)]  # 2 × 180 KB
    r = httpx.post(f"{url}/api/documents", files=heavy, headers=auth())
    assert r.status_code == 413 and "TONGWEN_MAX_UPLOAD_TOTAL_BYTES" in r.json()["error"]["message"]


# -- part 5: small things -------------------------------------------------------------------------
def test_null_text_parts_and_lone_surrogates_are_clear_422s(url):
    messages = [{"role": "user", "content": [{"type": "text", "text": None}]}]
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "tongwen", "messages": messages})
    assert r.status_code == 422 and r.json()["error"]["type"] == "InvalidText"
    raw = b'{"question": "\\ud800"}'
    r = httpx.post(f"{url}/api/ask", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid Unicode" in r.json()["error"]["message"], r.text


def test_only_listed_model_names_are_accepted(url):
    listed = [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
    assert "tongwen" in listed and "tongwen-extractive" in listed
    for model in ("tongwen-", "tongwen--local", "tongwenlocal", "tongwen-extractive "):
        body = {"model": model, "messages": [{"role": "user", "content": "盧森堡人口多少？"}]}
        r = httpx.post(f"{url}/v1/chat/completions", json=body)
        assert r.status_code == 400 and "GET /v1/models" in r.json()["error"]["message"], model
    body = {"model": "tongwen-extractive", "messages": [{"role": "user", "content": "盧森堡人口多少？"}]}
    assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).status_code == 200


@pytest.mark.parametrize("method, path", [("PUT", "/api/documents"), ("DELETE", "/api/documents"), ("GET", "/api/ask")])
def test_wrong_methods_on_api_routes_are_json_405s_even_with_the_ui(url, method, path):
    r = httpx.request(method, f"{url}{path}")
    assert r.status_code == 405, (r.status_code, r.text[:200])
    assert r.json()["error"]["type"] == "MethodNotAllowed" and r.headers["allow"]
    assert httpx.get(f"{url}/").status_code == 200  # the UI is still there


def test_upload_names_nameless_suffix_only_and_bidi(url):
    # A name made only of characters that are dropped (an empty one is a plain form field, not a file).
    first = {"files": ("...", "第一份沒有名字的文件。".encode(), "text/plain")}
    second = {"files": ("/", "第二份沒有名字的文件。".encode(), "text/plain")}
    a = httpx.post(f"{url}/api/documents", files=first, headers=auth(), timeout=120).json()
    b = httpx.post(f"{url}/api/documents", files=second, headers=auth(), timeout=120).json()
    assert a["added"][0].startswith("upload-") and b["added"][0].startswith("upload-"), (a, b)
    assert a["added"] != b["added"] and {*a["added"], *b["added"]} <= names(url)  # neither replaced the other
    r = httpx.post(
        f"{url}/api/documents", files={"files": (".txt", "只有副檔名。".encode(), "text/plain")}, headers=auth()
    )
    assert r.status_code == 200 and r.json()["added"][0].endswith(".txt"), r.text
    evil = {"files": ("report\u202etxt.exe\u200b.md", "方向字元。".encode(), "text/plain")}
    (name,) = httpx.post(f"{url}/api/documents", files=evil, headers=auth(), timeout=120).json()["added"]
    assert name == "reporttxt.exe.md"
