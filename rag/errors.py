"""The core's errors: the document errors of ``ingest`` plus those of questions, index and models.

Domain errors only; which HTTP status each becomes is decided in ``ui.api.errors``.
"""

from __future__ import annotations

from ingest.errors import (
    CorruptDocument,
    DocumentNotFound,
    DocumentTooLarge,
    EmptyDocument,
    InvalidText,
    TongwenError,
    UnsupportedFileType,
)

__all__ = [
    "CorruptDocument",
    "DocumentNotFound",
    "DocumentTooLarge",
    "EmptyDocument",
    "EmptyQuestion",
    "IndexCorrupt",
    "IndexMissing",
    "InvalidText",
    "ModelUnavailable",
    "QuestionTooLong",
    "StoreUnavailable",
    "TongwenError",
    "UnsupportedFileType",
]


class EmptyQuestion(TongwenError):
    pass


class QuestionTooLong(TongwenError):
    pass


class IndexMissing(TongwenError):
    """No index on disk yet: tell the user to run `tongwen ingest`."""


class IndexCorrupt(TongwenError):
    """An index file is damaged or gone: tell the user how to roll back or re-index.

    Nothing is wrong with the request or with Tongwen's code: the service is unavailable until an
    operator acts, and the message says how.
    """


class ModelUnavailable(TongwenError):
    """A model cannot be prepared or loaded offline."""


class StoreUnavailable(TongwenError):
    """The external vector store (Milvus) cannot be reached or refuses the request after retries.

    503: the question is fine and so is Tongwen; the service works again once the store is back.
    """
