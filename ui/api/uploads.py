"""Uploaded files as sources to ingest: safe names, type and size checks before any parsing."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from fastapi import UploadFile

from ingest.load import SUPPORTED_SUFFIXES
from ingest.sources import Source
from rag.config import Settings
from rag.errors import DocumentTooLarge, UnsupportedFileType

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
_LEADING_DOTS_AND_SPACES = re.compile(r"^[\s.]+")
MAX_NAME_CHARS = 200
MAX_SUFFIX_CHARS = 16  # ".markdown" fits; a longer "suffix" is part of the name, not a file type


def safe_filename(name: str | None, data: bytes = b"") -> str:
    """A file name that cannot climb out of the upload folder or carry control or bidi characters.

    Format characters (Unicode category Cf: right-to-left overrides, zero-width joiners …) are
    dropped, since they make a name display differently from what it is ("txt.exe" shown as
    "exe.txt"). Long names are cut in the stem, not at the end: the suffix decides the file type,
    so cutting it would turn a valid upload into an "unsupported type" refusal. A name that is
    empty, or only a suffix (".txt"), is named after the content's hash (``upload-1a2b3c4d.txt``),
    so two nameless uploads never silently replace each other.
    """
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = "".join(c for c in base if unicodedata.category(c) != "Cf")
    base = _UNSAFE_NAME.sub("_", base).strip()
    stripped = _LEADING_DOTS_AND_SPACES.sub("", base)
    suffix_only = stripped and base.startswith(".") and "." not in stripped and len(stripped) <= MAX_SUFFIX_CHARS
    if not stripped or suffix_only:
        suffix = "." + stripped.lower() if suffix_only else ".txt"
        return f"upload-{hashlib.sha256(data).hexdigest()[:8]}{suffix}"
    base = stripped
    if len(base) > MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        keep = dot + suffix if stem and 0 < len(suffix) <= MAX_SUFFIX_CHARS else ""
        base = base[: MAX_NAME_CHARS - len(keep)].rstrip(" .") + keep
    return base


def upload_name(upload: UploadFile, settings: Settings) -> str:
    """The safe name of an upload; a nameless one is named after its content (read, then rewound)."""
    if safe_filename(upload.filename).startswith("upload-"):
        data = upload.file.read(settings.max_upload_bytes + 1)
        upload.file.seek(0)
        return safe_filename(upload.filename, data)
    return safe_filename(upload.filename)


def read_upload(name: str, upload: UploadFile, max_bytes: int) -> Source:
    """One upload as a source, refused before any parsing when its type or size is wrong."""
    if not any(name.lower().endswith(s) for s in SUPPORTED_SUFFIXES):
        raise UnsupportedFileType(f"{name}: unsupported type; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    data = upload.file.read(max_bytes + 1)  # never more than one byte past the limit in memory
    if len(data) > max_bytes:
        raise DocumentTooLarge(f"{name} is larger than {max_bytes} bytes.")
    return Source(name, data)
