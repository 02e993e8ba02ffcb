"""Tongwen (同文): retrieval-augmented Q&A over Chinese documents, script-agnostic by design."""

__version__ = "0.1.0"
