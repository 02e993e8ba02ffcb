"""The HTTP API over a real uvicorn server on 127.0.0.1 with a real index."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from rag.config import Settings
from rag.errors import ModelUnavailable
from rag.results import QuestionEvent
from rag.service import Tongwen
from tests.servers import serve
from ui.api import create_api
from ui.api.uploads import safe_filename
from ui.server import create_app

QUESTION_SIMP = "数字发展部是什么时候成立的？"
QUESTION_TRAD = "數位發展部是什麼時候成立的？"
KEY = "s3cret"
pytestmark = pytest.mark.both_stores  # the routes over FAISS and over Milvus Lite (tests/conftest.py)


@pytest.fixture(scope="module")
def url(service: Tongwen):
    with serve(create_app(service=service, with_ui=False)) as base:
        yield base


@pytest.fixture(scope="module")
def write_url(tmp_path_factory, make_store_settings):
    """A second server with its own index, an API key and a small upload limit: tests that write."""
    home = tmp_path_factory.mktemp("api-write")
    corpus = tmp_path_factory.mktemp("api-corpus")
    (corpus / "lux.txt").write_text("盧森堡的總人口雖然僅有50餘萬人，但人均所得位居全球首位。", "utf-8")
    tongwen = Tongwen(make_store_settings(home, corpus_dir=corpus, api_key=KEY, max_upload_bytes=200_000))
    with serve(create_app(service=tongwen, with_ui=False)) as base:
        yield base


def test_health(url):
    r = httpx.get(f"{url}/health")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok" and body["index_error"] is None
    assert body["index"]["documents"] == 3 and body["index"]["chunks"] > 10
    assert body["embedding_model"] and body["generator"]
    store = body["store"]
    assert store["name"] in ("faiss", "milvus") and store["keyword"]
    assert body["index"]["store"]["engine"] in ("faiss", "milvus-lite", "milvus")
    if store["name"] == "milvus":  # Milvus Lite has BM25: words ranked by Milvus, bigrams locally
        assert store["bm25"] and body["index"]["store"]["keyword"].startswith("milvus")
    # Sentence vectors on by default, in both stores: the chunk vectors are pooled from them.
    assert body["index"]["chunk_vectors"] == "sentence-mean"
    assert body["index"]["sentence_vectors"] > body["index"]["chunks"]


def test_an_unreachable_milvus_is_a_503_that_says_what_to_check(tmp_path, make_settings):
    """Milvus down is the operator's to fix, not a bug: /health degraded and every index route 503."""
    pytest.importorskip("pymilvus")
    from rag.store.select import MilvusIndexStore

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(tmp_path, vector_store="milvus", milvus_uri=f"http://127.0.0.1:{port}")
    tongwen = Tongwen(settings)
    tongwen._store = MilvusIndexStore(settings, timeout=1, retries=2, backoff=0.05)  # fail fast, same code
    client = TestClient(create_api(tongwen))
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["index_error"]["type"] == "StoreUnavailable"
    retrieved = client.post("/api/retrieve", json={"query": QUESTION_TRAD})
    assert retrieved.status_code == 503 and "TONGWEN_MILVUS_URI" in retrieved.json()["error"]["message"]


def test_retrieve(url):
    hits = httpx.post(f"{url}/api/retrieve", json={"query": QUESTION_SIMP, "top_k": 3}).json()["hits"]
    assert len(hits) == 3
    assert hits[0]["doc"] == "002_89eccff8fcb5eb51.txt"
    assert {"doc", "text", "score", "heading", "location", "id"} <= hits[0].keys()


def test_ask(url):
    body = httpx.post(f"{url}/api/ask", json={"question": QUESTION_SIMP, "llm": "extractive"}, timeout=60).json()
    assert body["found"] is True and "2022" in body["answer"]
    assert body["backend"] == "extractive"
    assert body["citations"] and body["sources"]
    assert "retrieve" in body["timings"]


def test_thanks_get_a_reply_and_no_sources(url):
    body = httpx.post(f"{url}/api/ask", json={"question": "谢谢！"}, timeout=60).json()
    assert (body["small_talk"], body["found"], body["sources"], body["script"]) == ("thanks", False, [], "simplified")
    assert body["answer"].startswith("不客气")
    asked = httpx.post(f"{url}/api/ask", json={"question": QUESTION_SIMP, "llm": "extractive"}, timeout=60).json()
    assert asked["small_talk"] is None


def _sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_ask_streams_server_sent_events(url):
    with httpx.stream("POST", f"{url}/api/ask", json={"question": QUESTION_TRAD, "stream": True}, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(r.read().decode())
    kinds = [k for k, _ in events]
    assert kinds[0] == "question" and kinds[-1] == "final" and "token" in kinds
    final = events[-1][1]
    assert final["found"] and final["sources"] and final["citations"]
    streamed = "".join(e["text"] for k, e in events if k == "token")
    assert "2022" in streamed


def test_openai_client_non_stream(url):
    client = OpenAI(base_url=f"{url}/v1", api_key="unused")
    assert "tongwen" in [m.id for m in client.models.list().data]
    resp = client.chat.completions.create(
        model="tongwen-extractive", messages=[{"role": "user", "content": QUESTION_SIMP}]
    )
    content = resp.choices[0].message.content
    assert "2022" in content and "[1]" in content and "来源" in content
    extra = resp.model_extra
    assert extra["sources"][0]["doc"].endswith(".txt") and extra["citations"]


def test_openai_client_stream(url):
    client = OpenAI(base_url=f"{url}/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="tongwen-extractive", messages=[{"role": "user", "content": QUESTION_TRAD}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "2022" in text and "來源" in text
    assert chunks[-1].model_extra["sources"]


def test_openai_multi_turn_is_condensed(url):
    client = OpenAI(base_url=f"{url}/v1", api_key="unused")
    resp = client.chat.completions.create(
        model="tongwen-extractive",
        messages=[
            {"role": "user", "content": "盧森堡在2016年發布了什麼策略？"},
            {"role": "assistant", "content": "第三次產業革命策略。"},
            {"role": "user", "content": "那臺灣呢？"},
        ],
    )
    assert resp.model_extra["question"] == "臺灣在2016年發布了什麼策略？"


def test_upload_ask_delete_cycle_with_api_key(write_url):
    auth = {"Authorization": f"Bearer {KEY}"}
    doc = "同文測試文件：花蓮縣的玉里鎮以生產優質稻米聞名，每年秋天舉辦稻穗節。".encode()
    assert httpx.post(f"{write_url}/api/documents", files={"files": ("rice.txt", doc)}).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert (
        httpx.post(f"{write_url}/api/documents", files={"files": ("rice.txt", doc)}, headers=wrong).status_code == 401
    )
    up = httpx.post(f"{write_url}/api/documents", files={"files": ("rice.txt", doc)}, headers=auth, timeout=120)
    assert up.status_code == 200, up.text
    assert up.json()["added"] == ["rice.txt"]
    docs = httpx.get(f"{write_url}/api/documents").json()["documents"]  # reads stay open
    doc_id = next(d["doc_id"] for d in docs if d["name"] == "rice.txt")
    answer = httpx.post(f"{write_url}/api/ask", json={"question": "玉里镇以什么闻名？"}, timeout=60).json()
    assert answer["found"] and answer["sources"][0]["doc"] == "rice.txt"
    assert httpx.delete(f"{write_url}/api/documents/{doc_id}").status_code == 401
    deleted = httpx.delete(f"{write_url}/api/documents/{doc_id}", headers=auth)
    assert deleted.status_code == 200 and deleted.json()["deleted"] == ["rice.txt"]
    hits = httpx.post(f"{write_url}/api/retrieve", json={"query": "玉里鎮稻米"}).json()["hits"]
    assert all(h["doc"] != "rice.txt" for h in hits)


def test_upload_name_is_sanitised(write_url):
    auth = {"Authorization": f"Bearer {KEY}"}
    files = {"files": ("../../etc/evil\x07.txt", "台東的釋迦是知名水果。".encode())}
    body = httpx.post(f"{write_url}/api/documents", files=files, headers=auth, timeout=120).json()
    (name,) = body["added"]  # the client may percent-encode the control character on the way
    assert name.startswith("evil") and name.endswith(".txt")
    assert "/" not in name and ".." not in name and all(ord(c) >= 32 for c in name)


@pytest.mark.parametrize(
    "raw, safe",
    [
        ("../../etc/evil\x07.txt", "evil_.txt"),
        ("..\\win\\a.md", "a.md"),
        ("...hidden.txt", "hidden.txt"),
        ("", "upload-e3b0c442.txt"),  # named after the (here empty) content
        (".txt", "upload-e3b0c442.txt"),  # only a suffix: still a .txt upload
        ("\u202etxt.exe", "txt.exe"),  # bidi and other format characters are dropped
        (" . .hidden.md", "hidden.md"),
        ("a" * 300, "a" * 200),
        ("長" * 220 + ".txt", "長" * 196 + ".txt"),  # cut in the stem: the suffix is the file type
        ("長" * 220 + " . .markdown", "長" * 191 + ".markdown"),
        ("x" * 250 + ".not-a-file-type-suffix", "x" * 200),
    ],
)
def test_safe_filename(raw, safe):
    assert safe_filename(raw) == safe


@pytest.mark.parametrize(
    "path, payload, status",
    [
        ("/api/ask", {"question": ""}, 422),
        ("/api/ask", {"question": "   \n\t "}, 422),
        ("/api/ask", {"question": "問" * 5000}, 413),
        ("/api/ask", {"question": 42}, 422),
        ("/api/ask", {"question": "問題", "top_k": "many"}, 422),
        ("/api/ask", {"question": "問題", "top_k": 0}, 422),
        ("/api/ask", {"question": "問題", "llm": "gpt9"}, 422),
        ("/api/ask", {}, 422),
        ("/api/retrieve", {"query": ""}, 422),
        ("/api/retrieve", {"query": ["a"]}, 422),
        ("/v1/chat/completions", {"messages": []}, 422),
        ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": "hi"}]}, 400),
        ("/v1/chat/completions", {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 400),
    ],
)
def test_bad_input_gets_a_clear_4xx_json(url, path, payload, status):
    r = httpx.post(f"{url}{path}", json=payload, timeout=30)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]


def test_malformed_json_body(url):
    r = httpx.post(f"{url}/api/ask", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["message"]


@pytest.mark.parametrize(
    "name, data, status",
    [
        ("slides.pptx", b"PK\x03\x04", 415),
        ("broken.pdf", b"%PDF-1.4 garbage", 422),
        ("noise.txt", bytes(range(256)) * 10, 422),
        ("big.txt", "大".encode() * 100_000, 413),
    ],
)
def test_bad_uploads(write_url, name, data, status):
    r = httpx.post(
        f"{write_url}/api/documents",
        files={"files": (name, data)},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]
    docs = httpx.get(f"{write_url}/api/documents").json()["documents"]
    assert name not in [d["name"] for d in docs] and "lux.txt" in [d["name"] for d in docs]


def test_a_mixed_batch_lands_the_good_files_and_lists_the_bad_ones(write_url):
    files = [
        ("files", ("taitung.txt", "台東的池上米以香Q聞名，每年秋天舉辦池上秋收稻穗藝術節。".encode())),
        ("files", ("slides.pptx", b"PK\x03\x04")),
        ("files", ("big.txt", "大".encode() * 100_000)),
        ("files", ("broken.pdf", b"%PDF-1.4 garbage")),
    ]
    r = httpx.post(f"{write_url}/api/documents", files=files, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == ["taitung.txt"]
    failed = {f["name"]: f for f in body["failed"]}
    assert {name: f["status"] for name, f in failed.items()} == {"slides.pptx": 415, "big.txt": 413, "broken.pdf": 422}
    assert all(f["error"] and f["type"] for f in failed.values())
    names = [d["name"] for d in httpx.get(f"{write_url}/api/documents").json()["documents"]]
    assert "taitung.txt" in names and not set(failed) & set(names)
    hits = httpx.post(f"{write_url}/api/retrieve", json={"query": "池上米", "top_k": 1}).json()["hits"]
    assert hits[0]["doc"] == "taitung.txt"


@pytest.mark.parametrize(
    "files, status",
    [
        ([("slides.pptx", b"PK\x03\x04"), ("tool.exe", b"MZ\x90\x00")], 415),
        ([("big.txt", "大".encode() * 100_000), ("big.md", "大".encode() * 100_000)], 413),
        ([("broken.pdf", b"%PDF-1.4 garbage"), ("noise.txt", bytes(range(256)) * 10)], 422),
        ([("slides.pptx", b"PK\x03\x04"), ("big.txt", "大".encode() * 100_000)], 422),  # mixed reasons
    ],
)
def test_a_batch_where_every_file_fails_is_an_error(write_url, files, status):
    r = httpx.post(
        f"{write_url}/api/documents",
        files=[("files", f) for f in files],
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"] and [f["name"] for f in error["failed"]] == [name for name, _ in files]
    names = [d["name"] for d in httpx.get(f"{write_url}/api/documents").json()["documents"]]
    assert not {name for name, _ in files} & set(names)


def test_unknown_document_is_404(write_url):
    r = httpx.delete(f"{write_url}/api/documents/deadbeef0000", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 404 and "deadbeef0000" in r.json()["error"]["message"]


def test_one_document_with_its_title_text_and_chunks(url):
    listed = httpx.get(f"{url}/api/documents").json()["documents"]
    luxembourg = next(d for d in listed if d["name"].startswith("000_"))
    body = httpx.get(f"{url}/api/documents/{luxembourg['doc_id']}").json()
    assert body["title"] == "推動第三次產業革命之方向：以盧森堡為例"
    assert len(body["chunks"]) == luxembourg["chunks"] == len(body["passages"])
    assert [c["seq"] for c in body["chunks"]] == sorted(c["seq"] for c in body["chunks"])
    # The text is each chunk once: the sentences neighbouring chunks share appear a single time.
    sentence = "「第三次產業革命」的規劃分由九個工作小組負責"
    assert body["text"].count(sentence) == 1
    assert all(p["text"] in c["text"] for p, c in zip(body["passages"], body["chunks"], strict=True))
    assert all(c["location"]["line_start"] >= 1 for c in body["chunks"])
    # Every source names its document by the same title.
    hits = httpx.post(f"{url}/api/retrieve", json={"query": "盧森堡第三次產業革命計畫以哪些技術為基礎？"}).json()[
        "hits"
    ]
    assert body["title"] in {h["title"] for h in hits if h["doc_id"] == luxembourg["doc_id"]}
    by_name = httpx.get(f"{url}/api/documents/{luxembourg['name']}").json()
    assert by_name["doc_id"] == luxembourg["doc_id"]
    assert httpx.get(f"{url}/api/documents/deadbeef0000").status_code == 404


def test_twenty_concurrent_questions_all_succeed(url):
    questions = [QUESTION_SIMP, QUESTION_TRAD, "盧森堡的人口有多少？", "台积电在芯片危机时能发挥什么作用？"] * 5

    def ask(q: str) -> httpx.Response:
        return httpx.post(f"{url}/api/ask", json={"question": q, "llm": "extractive"}, timeout=120)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(ask, questions))
    assert [r.status_code for r in responses] == [200] * 20
    assert all(r.json()["sources"] for r in responses)


class BrokenService:
    """Fails the way a bug or a lost model would, after a stream has already started."""

    settings = Settings(_env_file=None, max_upload_bytes=1000)

    def retrieve(self, query: str, top_k: int) -> list:
        raise RuntimeError("/private/path/secret exploded")

    def count_tokens(self, text: str) -> int:
        return len(text)

    def ask_stream(self, *_: object) -> Iterator[QuestionEvent]:
        yield QuestionEvent(question="問題", found=True, sources=[])
        raise ModelUnavailable("The model went away; run `tongwen models prepare`.")


def test_a_bug_is_a_json_500_without_internals():
    client = TestClient(create_api(BrokenService()), raise_server_exceptions=False)
    r = client.post("/api/retrieve", json={"query": "問題"})
    assert r.status_code == 500 and r.json()["error"]["type"] == "InternalError"
    assert "secret" not in r.text


def test_an_error_after_a_stream_started_ends_it_with_an_error_event():
    client = TestClient(create_api(BrokenService()), raise_server_exceptions=False)
    r = client.post("/api/ask", json={"question": "問題", "stream": True})
    assert r.status_code == 200
    kind, data = _sse_events(r.text)[-1]
    assert kind == "error" and data["error"]["type"] == "ModelUnavailable" and data["error"]["status"] == 503

    chat = {"model": "tongwen", "messages": [{"role": "user", "content": "問題"}], "stream": True}
    lines = [line for line in client.post("/v1/chat/completions", json=chat).text.splitlines() if line]
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2].removeprefix("data: "))["error"]["type"] == "ModelUnavailable"


def test_top_k_defaults_to_the_setting(service: Tongwen):
    """`TONGWEN_TOP_K` is what a request without `top_k` gets, on every question route."""
    client = TestClient(create_api(Tongwen(service.settings.model_copy(update={"top_k": 3}))))
    assert len(client.post("/api/retrieve", json={"query": QUESTION_TRAD}).json()["hits"]) == 3
    answer = client.post("/api/ask", json={"question": QUESTION_TRAD}).json()
    assert answer["found"] and len(answer["sources"]) == 3
    chat = {"model": "tongwen-extractive", "messages": [{"role": "user", "content": QUESTION_TRAD}]}
    assert len(client.post("/v1/chat/completions", json=chat).json()["sources"]) == 3
    asked = client.post("/api/retrieve", json={"query": QUESTION_TRAD, "top_k": 2}).json()["hits"]
    assert len(asked) == 2  # a request's own top_k still wins


def test_openai_fields_a_client_expects(url):
    """`developer` role accepted, `usage` counted, `stop` honoured, and the footer lists only the
    cited sources, each with its line range."""
    chat = {
        "model": "tongwen-extractive",
        "messages": [
            {"role": "developer", "content": "請用繁體中文回答。"},
            {"role": "user", "content": QUESTION_TRAD},
        ],
    }
    body = httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=60).json()
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    content = body["choices"][0]["message"]["content"]
    cited = {c["n"] for c in body["citations"]}
    footer = content.split("來源：", 1)[1]
    assert {int(n) for n in re.findall(r"^\[(\d+)\]", footer, re.M)} == cited
    assert all("行" in line for line in footer.strip().splitlines())
    stop = content[len(content) // 3 : len(content) // 3 + 2]
    stopped = httpx.post(f"{url}/v1/chat/completions", json={**chat, "stop": [stop]}, timeout=60).json()
    assert stop not in stopped["choices"][0]["message"]["content"]
    assert stopped["choices"][0]["finish_reason"] == "stop"
    short = httpx.post(f"{url}/v1/chat/completions", json={**chat, "max_tokens": 5}, timeout=60).json()
    assert short["choices"][0]["finish_reason"] == "length" and short["usage"]["completion_tokens"] <= 5


def test_stream_usage_chunk_and_extra_fields(url):
    chat = {
        "model": "tongwen-extractive",
        "messages": [{"role": "user", "content": QUESTION_TRAD}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=chat, timeout=60) as r:
        datas = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    last = next(c for c in reversed(chunks) if c["choices"] and c["choices"][0]["finish_reason"])
    assert {"question", "sources", "citations", "found"} <= set(last)


def test_openapi_documents_every_answer_shape(url):
    """`/docs` shows what each question route returns, not just "any JSON"."""
    spec = httpx.get(f"{url}/openapi.json").json()

    def schema_of(path: str) -> dict:
        ref = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]

    assert {"answer", "found", "sources", "citations", "timings"} <= schema_of("/api/ask")["properties"].keys()
    assert schema_of("/api/retrieve")["properties"]["hits"]["items"]["$ref"].endswith("/Source")
    chat = schema_of("/v1/chat/completions")["properties"]
    assert {"id", "choices", "usage", "question", "sources", "citations", "found", "backend"} <= chat.keys()
    assert {"Source", "Citation", "Location", "Answer"} <= spec["components"]["schemas"].keys()


def test_openai_completion_json_is_openais_shape_without_unused_nulls(url):
    """Built from `openai.types.chat`, sent without the optional fields Tongwen does not fill, and
    with the same sources (every field, `None` scores included) as `/api/ask`."""
    chat = {"model": "tongwen-extractive", "messages": [{"role": "user", "content": QUESTION_TRAD}]}
    body = httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=60).json()
    assert set(body) == {
        "id",
        "created",
        "model",
        "object",
        "choices",
        "usage",
        *["question", "sources", "citations", "found", "backend"],
    }
    assert body["object"] == "chat.completion" and set(body["choices"][0]) == {"index", "message", "finish_reason"}
    assert body["choices"][0]["message"].keys() == {"role", "content"}
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    asked = httpx.post(f"{url}/api/ask", json={"question": QUESTION_TRAD, "llm": "extractive"}, timeout=60).json()
    assert body["sources"] == asked["sources"] and body["citations"] == asked["citations"]
    assert set(body["sources"][0]["location"]) == {"start", "end", "line_start", "line_end", "page"}

    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**chat, "stream": True}, timeout=60) as r:
        chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    assert set(chunks[0]) == {"id", "created", "model", "object", "choices"}
    assert chunks[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    assert chunks[-1]["sources"] == asked["sources"] and chunks[-1]["answer"]


def test_langchain_chat_openai_streams_in_the_askers_script(url):
    """An ordinary LangChain client joins the deltas: they must already be the Simplified answer."""
    from langchain_openai import ChatOpenAI

    from ingest.normalise import detect_script

    chat = ChatOpenAI(base_url=f"{url}/v1", api_key="none", model="tongwen-extractive", timeout=60)
    joined = "".join(str(chunk.content) for chunk in chat.stream(QUESTION_SIMP))
    whole = str(chat.invoke(QUESTION_SIMP).content)
    assert joined == whole and "[1]" in joined
    assert detect_script(joined.split("来源：")[0]) == "simplified"
