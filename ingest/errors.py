"""Errors a user can act on, from the bottom layer up.

Each carries a message written for the person at the keyboard: what went wrong and what to do.
They say nothing about transport: the CLI prints them, the HTTP layer (``ui.api.errors``) maps
each class to a status code. Anything that is not a :class:`TongwenError` is a bug.
"""

from __future__ import annotations


class TongwenError(Exception):
    """Base class: a problem with the user's input or setup, not with Tongwen itself."""


class InvalidText(TongwenError):
    """Text that is not valid Unicode (lone surrogates) or not text at all."""


class UnsupportedFileType(TongwenError):
    pass


class CorruptDocument(TongwenError):
    """The file claims a type but cannot be read as it (broken PDF, binary in a .txt …)."""


class EmptyDocument(TongwenError):
    """The file was read but holds no text worth indexing."""


class DocumentTooLarge(TongwenError):
    """Too many bytes, or an archive (.docx) that would unpack to too much."""


class DocumentNotFound(TongwenError):
    """No such file or folder to ingest, or no such document in the index."""
