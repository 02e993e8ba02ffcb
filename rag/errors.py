"""Errors a user can act on.

Each carries a message written for the person at the keyboard; the CLI prints it and exits
non-zero, the HTTP API maps it to a JSON answer: 4xx for bad input, 503 when the server's own
index or models are unusable until someone acts. Anything else is a bug and may surface as 500.
"""

from __future__ import annotations


class TongwenError(Exception):
    """Base class: a problem with the user's input or setup, not with Tongwen itself."""

    http_status: int = 400


class EmptyQuestion(TongwenError):
    http_status = 422


class QuestionTooLong(TongwenError):
    http_status = 413


class UnsupportedFileType(TongwenError):
    http_status = 415


class CorruptDocument(TongwenError):
    """The file claims a type but cannot be read as it (broken PDF, binary in a .txt …)."""

    http_status = 422


class EmptyDocument(TongwenError):
    """The file was read but holds no text worth indexing."""

    http_status = 422


class DocumentTooLarge(TongwenError):
    http_status = 413


class DocumentNotFound(TongwenError):
    http_status = 404


class IndexMissing(TongwenError):
    """No index on disk yet: tell the user to run `tongwen ingest`."""

    http_status = 409


class IndexCorrupt(TongwenError):
    """An index file is truncated or gone: tell the user to re-index.

    503, not 500: nothing is wrong with the request or with Tongwen's code; the service is
    unavailable until an operator rebuilds the index, and the message says how.
    """

    http_status = 503


class ModelUnavailable(TongwenError):
    """A model cannot be prepared or loaded offline."""

    http_status = 503


class StoreUnavailable(TongwenError):
    """The external vector store (Milvus) cannot be reached or refuses the request after retries.

    503: the question is fine and so is Tongwen; the service works again once the store is back.
    """

    http_status = 503
