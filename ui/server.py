"""One process for everything: the FastAPI app with the Gradio chat UI mounted at ``/``."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

from rag.config import Settings
from rag.service import Tongwen

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    service: Tongwen | None = None,
    with_ui: bool = True,
    show_progress: bool = False,
) -> FastAPI:
    """Build the app; index the bundled corpus on first start so one command gives a chatbot.

    Over a damaged index the app still starts: ``/health`` answers 503 "degraded" and every
    question a 503 with the re-index advice, and once the index is rebuilt (by ``tongwen ingest
    --rebuild`` in another shell) the next request loads it, with no restart. A server that
    refused to start would only turn one clear message into a restart loop under a supervisor.
    """
    # Gradio and the hub client phone home unless told not to; this machine has no internet.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from ui.api import create_api

    service = service or Tongwen(settings or Settings())
    service.ensure_index(show_progress=show_progress)  # `tongwen serve` shows the embedding progress bar
    service.model  # noqa: B018 - load the embedding model now, not on the first question
    app = create_api(service)
    if with_ui:
        import gradio as gr

        from ui.chat import build_ui

        # Gradio stores every file sent to /gradio_api/upload before any event sees it: cap it like REST.
        settings = service.settings
        app = gr.mount_gradio_app(app, build_ui(service), path="/", max_file_size=settings.max_upload_bytes)
        if settings.api_key:
            from ui.api.guards import UploadGate
            from ui.auth import may_write

            app.add_middleware(UploadGate, allowed=lambda key: may_write(settings, key))
    return app
