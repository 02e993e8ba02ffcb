"""The HTTP API (FastAPI): ``create_api(service)`` builds it; one router module per feature."""

from ui.api.app import create_api

__all__ = ["create_api"]
