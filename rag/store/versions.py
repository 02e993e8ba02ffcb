"""A folder of index versions with an atomically switched ``CURRENT`` pointer.

A new version is built in a temporary folder, renamed into ``versions/`` and only then made
current by replacing the one-line ``CURRENT`` file (``os.replace`` is atomic). A crash at any
moment leaves the previous version current and loadable; half-built folders are swept later.

Writers, in any process, take the write lock (``rag.build.locked``: an ``flock`` on ``.lock``
beside ``CURRENT``) for their whole read-build-commit, so two ``tongwen ingest`` runs, or an ingest and a server upload,
follow one another instead of interleaving.

The last few versions stay on disk (``TONGWEN_KEEP_VERSIONS``): readers may still hold the previous
one open, and an operator can make an older one current again (``tongwen index rollback``) when
the newest is damaged, keeping every document uploaded before it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.build import build_dir, fsync_dir, locked
from rag.errors import IndexCorrupt

KEEP_VERSIONS = 3
LOCK_NAME = ".lock"
VERSION_NAME = re.compile(r"\d{6,}")


class VersionedDir:
    def __init__(self, root: Path, keep: int = KEEP_VERSIONS) -> None:
        self.root = root
        self.versions = root / "versions"
        self.pointer = root / "CURRENT"
        self.lock_file = root / LOCK_NAME
        self.keep = max(1, keep)

    def current(self) -> Path | None:
        """The folder of the current version, or None when nothing was ever committed.

        A pointer that exists but names no version (empty, undecodable, or anything but a version
        number, which could otherwise point outside ``versions/``) is damage, not "no index yet":
        treating it as missing would report a healthy server and, on start, index the bundled
        corpus over the user's documents.
        """
        try:
            raw = self.pointer.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexCorrupt(f"{self.pointer} cannot be read ({exc}).") from exc
        try:
            name = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            name = None
        if not name or not VERSION_NAME.fullmatch(name):
            shown = raw[:40].decode("utf-8", "backslashreplace")
            raise IndexCorrupt(f"{self.pointer} does not name an index version (it holds {shown!r}).")
        return self.versions / name

    def current_name(self) -> str | None:
        """The current version's name, or None when there is none or the pointer is damaged."""
        try:
            folder = self.current()
        except IndexCorrupt:
            return None
        return folder.name if folder else None

    def numbered(self) -> list[Path]:
        """Every committed version folder, oldest first."""
        if not self.versions.is_dir():
            return []
        return sorted((p for p in self.versions.iterdir() if VERSION_NAME.fullmatch(p.name)), key=lambda p: int(p.name))

    def set_current(self, name: str) -> None:
        """Make version ``name`` current (atomically: a crash leaves the old pointer or the new)."""
        pointer_tmp = self.root / f".CURRENT.{os.getpid()}"
        pointer_tmp.write_text(name + "\n", "utf-8")
        with open(pointer_tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(pointer_tmp, self.pointer)
        fsync_dir(self.root)

    @contextmanager
    def write_lock(self, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the index's write lock across processes until the block ends; wait for it if taken.

        A write reads the current version, embeds (possibly for minutes) and commits the next one.
        Two writers doing that at once would both build on the same old version, and the later
        commit would silently drop the other's documents; one could even sweep the other's build
        folder. The threading lock in the service only covers one process, hence a file lock: the
        kernel releases it when its holder exits or is killed, so a crash never leaves it stuck.
        ``on_wait`` hears once, with the holder's pid, that we are waiting.
        """

        def say_waiting(holder: str) -> None:
            if on_wait is not None:
                on_wait(f"Another writer (pid {holder}) is writing the index at {self.root}; waiting for it.")

        with locked(self.lock_file, on_wait=say_waiting):
            yield

    @contextmanager
    def new_version(self) -> Iterator[Path]:
        """Yield an empty folder to build in; commit it as current when the block succeeds.

        Call it under :meth:`write_lock`: the sweep of old build folders assumes no other writer.
        """
        self.versions.mkdir(parents=True, exist_ok=True)
        name = self._next_name()
        # build_dir first sweeps ``.build-*`` folders left by a crash. No marker: a version is
        # complete once CURRENT names it. Not made world-readable: it holds the user's documents.
        with build_dir(self.versions / name, temp_prefix=".build-", readable=False) as build:
            yield build.folder
        self.set_current(name)
        self._prune(keep=name)

    def _next_name(self) -> str:
        numbers = [int(p.name) for p in self.numbered()]
        return f"{max(numbers, default=0) + 1:06d}"

    def _prune(self, keep: str) -> None:
        """Keep the newest ``self.keep`` versions (the new current one always among them)."""
        numbered = self.numbered()
        for old in numbered[: max(0, len(numbered) - self.keep)]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)
