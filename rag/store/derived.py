"""Things derived from an immutable index object once, on first use, and kept on the object.

Its own module so that what the versions hold (``rag.store.sentences``) and the versions
themselves (``rag.store.base``) can both use it without importing each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_DERIVED_LOCK = threading.RLock()


def derived(version: object, key: str, build: Callable[[], T]) -> T:
    """What ``build`` derives from an index version, built once and kept on the version object.

    A version never changes, so nothing derived from it goes stale, and it is dropped with the
    version. The lock keeps two first questions from building the same thing twice."""
    cached = version.__dict__.get(key)
    if cached is None:
        with _DERIVED_LOCK:
            cached = version.__dict__.get(key)
            if cached is None:
                cached = version.__dict__[key] = build()
    return cached
