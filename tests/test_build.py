"""Atomic builds (``rag.build``): nothing half-built is ever visible, one builder at a time.

Real files, a real second process holding the lock; no mocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.build import (
    build_dir,
    build_file,
    complete_marker,
    is_complete,
    lock_file_for,
    locked,
    read_marker,
    sweep_leftovers,
)

PROJECT = Path(__file__).resolve().parent.parent
MARKER = "done.json"

# Another process: takes the lock, starts building, says so, and finishes when told on stdin.
BUILD_IN_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from rag.build import build_dir, lock_file_for, locked
target = Path(sys.argv[1])
with locked(lock_file_for(target)):
    with build_dir(target, "done.json") as build:
        (build.folder / "data.bin").write_bytes(b"from the other process")
        build.marker["format_version"] = 1
        print("building", flush=True)
        sys.stdin.readline()
print("built", flush=True)
"""


def _siblings(target: Path) -> list[str]:
    """Everything beside ``target`` except the target and its lock file."""
    return sorted(p.name for p in target.parent.iterdir() if p != target and p != lock_file_for(target))


def test_a_successful_build_is_marked_complete_and_swapped_in(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with build_dir(target, MARKER) as build:
        assert build.folder.parent == tmp_path and build.folder != target
        (build.folder / "sub").mkdir()
        (build.folder / "sub" / "a.bin").write_bytes(b"abc")
        (build.folder / "b.txt").write_text("hello", encoding="utf-8")
        build.marker["format_version"] = 3
        assert not target.exists()
    assert sorted(p.name for p in target.iterdir()) == ["b.txt", MARKER, "sub"]
    marker = read_marker(target, MARKER)
    assert marker == {"format_version": 3, "files": {"b.txt": 5, "sub/a.bin": 3}}
    assert is_complete(target, MARKER, 3)
    assert not is_complete(target, MARKER, 4), "another format version must not count"
    assert (target.stat().st_mode & 0o777) == 0o755 and ((target / "b.txt").stat().st_mode & 0o777) == 0o644
    assert _siblings(target) == []


def test_a_changed_or_missing_file_makes_a_build_incomplete(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with build_dir(target, MARKER) as build:
        (build.folder / "a.bin").write_bytes(b"abc")
        (build.folder / "b.bin").write_bytes(b"defg")
        build.marker["format_version"] = 1
    assert complete_marker(target, MARKER, 1) is not None
    (target / "a.bin").write_bytes(b"ab")  # truncated
    assert not is_complete(target, MARKER, 1)
    (target / "a.bin").write_bytes(b"abc")
    (target / "b.bin").unlink()
    assert not is_complete(target, MARKER, 1)
    (target / MARKER).write_text("{not json", encoding="utf-8")
    assert read_marker(target, MARKER) is None and not is_complete(target, MARKER, 1)


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_build_leaves_nothing_and_keeps_the_old_target(tmp_path: Path, failure: BaseException) -> None:
    target = tmp_path / "model"
    with pytest.raises(type(failure)), build_dir(target, MARKER) as build:
        (build.folder / "half.bin").write_bytes(b"x" * 100)
        raise failure
    assert not target.exists()
    assert _siblings(target) == []

    # An older build stays exactly as it was when a rebuild fails.
    with build_dir(target, MARKER) as build:
        (build.folder / "v1.bin").write_bytes(b"v1")
        build.marker["format_version"] = 1
    with pytest.raises(type(failure)), build_dir(target, MARKER) as build:
        (build.folder / "v2.bin").write_bytes(b"v2")
        raise failure
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "v1.bin"]
    assert is_complete(target, MARKER, 1)
    assert _siblings(target) == []


def test_a_rebuild_replaces_the_old_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "junk-from-a-crash").write_text("half", encoding="utf-8")
    with build_dir(target, MARKER) as build:
        (build.folder / "new.bin").write_bytes(b"new")
        build.marker["format_version"] = 1
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "new.bin"]
    assert _siblings(target) == []


def test_stale_temporary_folders_of_a_crashed_build_are_swept(tmp_path: Path) -> None:
    target = tmp_path / "model"
    crashed = tmp_path / ".model.building-abc123"
    crashed.mkdir()
    (crashed / "half.bin").write_bytes(b"x" * 1000)
    aside = tmp_path / ".model.stale-xyz"
    (aside / "old").mkdir(parents=True)
    other = tmp_path / ".other.building-keep"  # another target's build: not ours to touch
    other.mkdir()
    with build_dir(target, MARKER) as build:
        build.marker["format_version"] = 1
        (build.folder / "a.bin").write_bytes(b"a")
    assert not crashed.exists() and not aside.exists()
    assert other.is_dir()


def test_sweep_can_spare_recent_leftovers(tmp_path: Path) -> None:
    old = tmp_path / "m.gguf.1.part"
    new = tmp_path / "m.gguf.2.part"
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    sweep_leftovers(tmp_path, "m.gguf.*.part", older_than_s=600)
    assert not old.exists() and new.exists()


def test_build_file_renames_in_on_success_and_removes_the_temp_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "models" / "m.gguf"
    with pytest.raises(ValueError), build_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise ValueError("hash mismatch")
    assert list(target.parent.iterdir()) == []
    with build_file(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".part")
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and (target.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["m.gguf"]


def test_a_second_builder_waits_for_the_first_and_then_sees_its_build(tmp_path: Path) -> None:
    """The recipe every user follows: check, lock, check again, build. The waiter must not rebuild."""
    target = tmp_path / "model"
    other = subprocess.Popen(
        [sys.executable, "-c", BUILD_IN_ANOTHER_PROCESS, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    waits: list[str] = []
    outcome: list[str] = []

    def second_builder() -> None:
        with locked(lock_file_for(target), on_wait=waits.append):
            if is_complete(target, MARKER, 1):
                outcome.append("reused")
                return
            with build_dir(target, MARKER) as build:
                (build.folder / "data.bin").write_bytes(b"from the test")
                build.marker["format_version"] = 1
            outcome.append("rebuilt")

    try:
        assert other.stdout.readline().strip() == "building"
        waiter = threading.Thread(target=second_builder)
        waiter.start()
        waiter.join(timeout=1.5)
        assert waiter.is_alive() and not outcome, "the second builder did not wait for the lock"
        assert waits == [str(other.pid)], "on_wait must hear the holder's pid"
        other.stdin.write("go\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "built"
        waiter.join(timeout=30)
        assert not waiter.is_alive()
    finally:
        if other.poll() is None:
            other.kill()
        other.wait(timeout=30)
    assert outcome == ["reused"]
    assert (target / "data.bin").read_bytes() == b"from the other process"
    assert json.loads((target / MARKER).read_text(encoding="utf-8"))["files"] == {"data.bin": 22}


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    target = tmp_path / "model"
    other = subprocess.Popen(
        [sys.executable, "-c", BUILD_IN_ANOTHER_PROCESS, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    try:
        assert other.stdout.readline().strip() == "building"
        other.kill()
        other.wait(timeout=30)
    finally:
        if other.poll() is None:
            other.kill()
            other.wait(timeout=30)
    started = time.monotonic()
    with locked(lock_file_for(target)):
        assert time.monotonic() - started < 5
        assert not target.exists()  # the killed build never became visible
        with build_dir(target, MARKER) as build:
            (build.folder / "a.bin").write_bytes(b"a")
            build.marker["format_version"] = 1
    assert is_complete(target, MARKER, 1)
    assert _siblings(target) == [], "the killed process's temporary folder was not swept"
