"""Soak test: many clients question the API while documents are uploaded, then everything is checked.

    python -m bench.soak [--minutes 5] [--clients 50] [--out bench/out/soak.json]

Builds a small index of its own in a temporary home (models from the ``TONGWEN_*`` settings),
serves the real app on a free 127.0.0.1 port, and for ``--minutes`` runs ``--clients`` concurrent
clients mixing ``/api/retrieve``, extractive ``/api/ask`` and ``/v1/chat/completions`` while a
writer uploads documents one after another (later rounds re-upload changed versions). Then it
checks: no response >= 500, every request answered, every uploaded document is the top hit for
a question about it, and no original document is gone. Figures and problems go to a JSON file;
the exit status is 1 when a check failed.

``tests/test_reliability.py`` runs the same load and checks for 30 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.api_load import Call, ask_call, chat_call, machine, make_client, retrieve_call, serve_app


@dataclass(frozen=True)
class Doc:
    """A document with unique content and a question whose top hit it must be."""

    name: str
    text: str
    question: str


ORIGINALS: tuple[Doc, ...] = (
    Doc(
        "orig-bridge.md",
        "# 港珠澳大橋\n\n港珠澳大橋全長55公里，於2018年10月24日正式通車，連接香港、珠海和澳門三地。"
        "大橋由橋樑、人工島和海底隧道組成，其中海底隧道長約6.7公里。",
        "港珠澳大桥是什么时候通车的？",
    ),
    Doc(
        "orig-rail.txt",
        "青藏鐵路東起青海西寧，西至西藏拉薩，全長1956公里，是世界上海拔最高的高原鐵路。"
        "最高點唐古拉山口海拔5072米，全線於2006年7月1日通車。",
        "青藏铁路的最高点海拔多少米？",
    ),
    Doc(
        "orig-brocade.txt",
        "苏州宋锦起源于宋代，与南京云锦、四川蜀锦并称中国三大名锦。"
        "2009年，宋锦织造技艺被列入联合国教科文组织人类非物质文化遗产代表作名录。",
        "宋錦織造技藝哪一年被列入非物質文化遺產名錄？",
    ),
)

UPLOADS: tuple[Doc, ...] = (
    Doc(
        "upload-tea.txt",
        "阿里山高山茶產於嘉義縣阿里山鄉，茶園多位於海拔一千公尺以上。當地茶農每年春分前後舉辦採茶祭，以歌舞祈求茶葉豐收。",
        "阿里山的採茶祭在什麼時候舉辦？",
    ),
    Doc(
        "upload-lighthouse.md",
        "# 鵝鑾鼻燈塔\n\n鵝鑾鼻燈塔位於屏東縣恆春半島最南端，建於1883年，因光力強大而被稱為「東亞之光」。",
        "鹅銮鼻灯塔建于哪一年？",
    ),
    Doc(
        "upload-noodles.txt",
        "兰州牛肉拉面讲究“一清二白三红四绿五黄”：汤清、萝卜白、辣油红、香菜蒜苗绿、面条黄亮。",
        "蘭州牛肉拉麵講究的一清二白是指什麼？",
    ),
    Doc(
        "upload-weir.txt",
        "澎湖縣七美嶼的雙心石滬是以玄武岩和珊瑚礁石堆砌而成的捕魚陷阱，漲潮時魚群游入，退潮時便被困在石滬之中。",
        "七美屿的双心石沪是用什么堆砌的？",
    ),
    Doc(
        "upload-panda.html",
        "<html><head><title>卧龙</title></head><body><h1>卧龙大熊猫基地</h1>"
        "<p>卧龙国家级自然保护区位于四川省阿坝州汶川县，1963年建立，是中国最早以保护大熊猫为主的自然保护区之一。</p>"
        "</body></html>",
        "臥龍自然保護區是哪一年建立的？",
    ),
    Doc(
        "upload-snow-mountain.md",
        "# 玉龍雪山\n\n玉龍雪山位於雲南省麗江市，主峰扇子陡海拔5596米；山下的白水河因河床由白色石灰岩碎塊組成而得名。",
        "玉龙雪山的主峰叫什么名字？",
    ),
)

UNANSWERABLE = ("火星上有多少座城市？", "量子糾纏是什麼？", "今天股市收盘多少点？", "北極熊吃什麼？")
ENDPOINT_WEIGHTS = {"retrieve": 0.4, "ask": 0.35, "chat": 0.25}


def questions() -> list[str]:
    return [d.question for d in (*ORIGINALS, *UPLOADS)] + list(UNANSWERABLE)


def pick_call(rng: random.Random) -> Call:
    """A random request of the mix: endpoint by weight, question from the pool, top_k varied."""
    question = rng.choice(questions())
    endpoint = rng.choices(list(ENDPOINT_WEIGHTS), weights=list(ENDPOINT_WEIGHTS.values()))[0]
    if endpoint == "retrieve":
        return retrieve_call(question, top_k=rng.choice((1, 3, 5, 10)))
    if endpoint == "ask":
        return ask_call(question, top_k=rng.choice((3, 5)))
    return chat_call(question)


def upload_schedule(count: int) -> list[Doc]:
    """``count`` uploads cycling through :data:`UPLOADS`; later rounds carry changed text."""
    out = []
    for i in range(count):
        doc = UPLOADS[i % len(UPLOADS)]
        round_ = i // len(UPLOADS)
        out.append(doc if round_ == 0 else Doc(doc.name, f"{doc.text}\n\n（第{round_ + 1}版）", doc.question))
    return out


async def _upload_one(client: httpx.AsyncClient, doc: Doc, timeout: float, t0: float) -> dict[str, Any]:
    started = time.perf_counter()
    entry: dict[str, Any] = {"name": doc.name, "started_at_s": round(started - t0, 1)}
    try:
        response = await client.post(
            "/api/documents", files={"files": (doc.name, doc.text.encode("utf-8"))}, timeout=timeout
        )
    except Exception as exc:  # recorded and checked, never raised into the load
        entry |= {"status": None, "error": f"{type(exc).__name__}: {exc}"}
    else:
        entry["status"] = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {"raw": response.text[:300]}
        if response.status_code == 200:
            entry |= {"added": body.get("added"), "updated": body.get("updated"), "unchanged": body.get("unchanged")}
        else:
            entry["error"] = body
    entry["seconds"] = round(time.perf_counter() - started, 2)
    return entry


async def _uploader(
    client: httpx.AsyncClient,
    docs: Sequence[Doc],
    start: float,
    gap: float,
    t0: float,
    until: float | None,
    timeout: float,
) -> list[dict[str, Any]]:
    """Upload the documents one after another while the load runs; with ``until`` (a
    ``perf_counter`` time) none starts later, without it every one is uploaded."""
    log: list[dict[str, Any]] = []
    await asyncio.sleep(start)
    for doc in docs:
        if until is not None and time.perf_counter() >= until:
            break
        log.append(await _upload_one(client, doc, timeout, t0))
        await asyncio.sleep(gap)
    return log


def run_mixed_load(
    base_url: str,
    *,
    clients: int,
    duration: float,
    uploads: Sequence[Doc],
    max_requests: int,
    upload_start: float = 2.0,
    upload_gap: float = 3.0,
    finish_uploads: bool = False,
    timeout: float = 120.0,
    upload_timeout: float = 300.0,
    seed: int = 0,
) -> dict[str, Any]:
    """The mixed load with concurrent uploads; returns the figures (see :func:`problems`).

    Uploads start ``upload_start`` s into the load, ``upload_gap`` s apart; with
    ``finish_uploads`` all of them are sent even if the load ends first (else the rest are
    dropped)."""
    from bench.api_load import drive

    async def go() -> dict[str, Any]:
        async with make_client(base_url, clients, timeout) as client:
            t0 = time.perf_counter()
            until = None if finish_uploads else t0 + duration
            writer = asyncio.create_task(
                _uploader(client, uploads, upload_start, upload_gap, t0, until, upload_timeout)
            )
            result = await drive(client, pick_call, clients, duration, max_requests, seed)
            upload_log = await writer
        return {"load": result.summary(), "uploads": upload_log}

    return asyncio.run(go())


def verify_documents(base_url: str, originals: Sequence[Doc], uploaded: Sequence[Doc]) -> dict[str, Any]:
    """After the load: every document listed, and each the top hit for its own question."""
    with httpx.Client(base_url=base_url, timeout=120, trust_env=False) as client:
        listed = {d["name"] for d in client.get("/api/documents").json()["documents"]}
        top: dict[str, str | None] = {}
        for doc in {d.name: d for d in (*originals, *uploaded)}.values():
            hits = client.post("/api/retrieve", json={"query": doc.question, "top_k": 3}).json()["hits"]
            top[doc.name] = hits[0]["doc"] if hits else None
        health = client.get("/health").status_code
    return {
        "listed": sorted(listed),
        "missing_originals": sorted(d.name for d in originals if d.name not in listed),
        "missing_uploads": sorted({d.name for d in uploaded} - listed),
        "wrong_top_hit": {name: got for name, got in top.items() if got != name},
        "health": health,
    }


def problems(report: dict[str, Any]) -> list[str]:
    """What went wrong in a run, in words; empty when every check passed."""
    out = []
    total = report["load"]["total"]
    if total["errors_5xx"]:
        out.append(f"{total['errors_5xx']} responses >= 500")
    if total["sent"] != total["answered"]:
        out.append(f"{total['sent']} requests sent but {total['answered']} answered")
    if total["exceptions"]:
        out.append(f"client exceptions: {total['exceptions']}")
    if total["ok"] != total["answered"]:
        out.append(f"non-200 answers: {total['statuses']}")
    if total["bad_bodies"]:
        out.append(f"{total['bad_bodies']} 200 answers with a malformed body")
    if total["failure_examples"]:
        out.append(f"examples: {total['failure_examples']}")
    failed_uploads = [u for u in report["uploads"] if u.get("status") != 200]
    if failed_uploads:
        out.append(f"failed uploads: {failed_uploads}")
    check = report.get("verify", {})
    for key in ("missing_originals", "missing_uploads", "wrong_top_hit"):
        if check.get(key):
            out.append(f"{key}: {check[key]}")
    if check and check.get("health") != 200:
        out.append(f"/health answered {check.get('health')} after the load")
    return out


def rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def index_originals(service: Any) -> None:
    from ingest.sources import Source

    report = service.ingest([Source(d.name, d.text.encode("utf-8")) for d in ORIGINALS])
    if report.failed or len(report.added) != len(ORIGINALS):
        raise RuntimeError(f"could not index the original documents: {report}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--upload-gap", type=float, default=20.0, help="Seconds between two uploads.")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="Hard cap on requests.")
    parser.add_argument("--out", type=Path, default=Path("bench/out/soak.json"))
    args = parser.parse_args(argv)

    from rag.config import Settings
    from rag.service import Tongwen
    from ui.server import create_app

    duration = args.minutes * 60
    base = Settings()
    with tempfile.TemporaryDirectory(prefix="tongwen-soak-") as home:
        settings = Settings(home=Path(home), model_dir=base.models_dir, llm="extractive")
        service = Tongwen(settings)
        index_originals(service)
        app = create_app(service=service, with_ui=False)
        uploads = upload_schedule(max(1, int(duration // args.upload_gap)))
        rss_before = rss_mb()
        with serve_app(app) as url:
            print(f"soak: {args.clients} clients for {args.minutes:g} min against {url} …", flush=True)
            report = run_mixed_load(
                url,
                clients=args.clients,
                duration=duration,
                uploads=uploads,
                max_requests=args.max_requests,
                upload_start=2.0,
                upload_gap=args.upload_gap,
            )
            uploaded = [d for d, u in zip(uploads, report["uploads"], strict=False) if u.get("status") == 200]
            report["verify"] = verify_documents(url, ORIGINALS, uploaded)
    report |= {**machine(), "rss_mb_before": rss_before, "rss_mb_after": rss_mb()}
    report["problems"] = problems(report)

    load = report["load"]
    print(f"{load['total']['answered']} requests in {load['seconds']} s, {len(report['uploads'])} uploads")
    for name, s in load["endpoints"].items():
        print(f"  {name:<9} {s['answered']:>6}  p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms  5xx {s['errors_5xx']}")
    if report["problems"]:
        print("problems:", *report["problems"], sep="\n  ")
    else:
        print("all checks passed")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(f"wrote {args.out}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
