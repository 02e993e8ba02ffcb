"""Shared, session-scoped fixtures: the real embedding model and a real index, built once.

Models are prepared in a per-machine test home (``TONGWEN_TEST_HOME``, default
``.tongwen/test-home`` in the project) so a second run reuses them; every index lives in a
fresh temporary folder. Tests that don't need the whole corpus use a small slice of it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from rag.config import Settings
from rag.service import Tongwen

PROJECT = Path(__file__).resolve().parent.parent
CORPUS = PROJECT / "data" / "corpus"
# Tests leave their figures and screenshots here; TONGWEN_UPDATE_DOCS=1 writes the committed copies
# (docs/screenshot.png, bench/out/reliability.json) instead, so a plain test run changes no file.
UPDATE_DOCS = os.environ.get("TONGWEN_UPDATE_DOCS") == "1"
ARTIFACTS = PROJECT / ".tongwen" / "test-artifacts"


def artifact_path(committed: Path) -> Path:
    """Where a test writes a file the repository also commits (see UPDATE_DOCS)."""
    return committed if UPDATE_DOCS else ARTIFACTS / committed.name


# The index stores a test marked ``both_stores`` runs against: FAISS always, Milvus (Lite, a file in
# the test's home) when pymilvus and milvus-lite are installed (`make test` installs them).
MILVUS_LITE = all(importlib.util.find_spec(m) is not None for m in ("pymilvus", "milvus_lite"))
STORES = ["faiss", "milvus"] if MILVUS_LITE else ["faiss"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests (or modules) marked ``both_stores`` once per store, unless marked ``faiss_only``
    (which must say why: on-disk files, several processes on one Milvus Lite file, ...)."""
    if "store" not in metafunc.fixturenames:
        return
    marked = metafunc.definition.get_closest_marker("both_stores") is not None
    both = marked and metafunc.definition.get_closest_marker("faiss_only") is None
    if marked and metafunc.definition.get_closest_marker("milvus_only") is not None:
        stores = [s for s in STORES if s == "milvus"]
    else:
        stores = STORES if both else ["faiss"]
    # Every test gets a parameter, FAISS-only ones too: then they share the FAISS session index.
    metafunc.parametrize("store", stores, indirect=True, scope="session")


# Small documents: 000 (Luxembourg), 002 (OECD forum trip report), 003 (Taiwan blue ocean).
SLICE = ("000_6e77f61679c9a0c3.txt", "002_89eccff8fcb5eb51.txt", "003_84286bf869086792.txt")


@pytest.fixture(scope="session")
def test_home() -> Path:
    home = Path(os.environ.get("TONGWEN_TEST_HOME", PROJECT / ".tongwen" / "test-home"))
    (home / "models").mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture(scope="session")
def make_settings(test_home: Path):
    """Settings for a test: its own index home, the shared models, extractive unless told."""

    def make(home: Path, **overrides) -> Settings:
        values = {"home": home, "model_dir": test_home / "models", "llm": "extractive", **overrides}
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture(scope="session")
def store(request: pytest.FixtureRequest) -> str:
    """The index store under test: ``faiss`` unless the test is parametrised over both (see above)."""
    return getattr(request, "param", "faiss")


@pytest.fixture(scope="session")
def make_store_settings(make_settings, store: str):
    """``make_settings`` on the store under test; Milvus Lite keeps its file in the test's home."""

    def make(home: Path, **overrides) -> Settings:
        if store == "milvus":
            overrides = {"vector_store": "milvus", "milvus_uri": str(Path(home) / "milvus.db"), **overrides}
        return make_settings(home, **overrides)

    return make


@pytest.fixture(scope="session")
def slice_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("slice-corpus")
    for name in SLICE:
        shutil.copy(CORPUS / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, make_store_settings, slice_corpus: Path) -> Tongwen:
    """A real index of the corpus slice, built once per session and store (FAISS + BM25 on disk, or
    Milvus Lite in a file)."""
    home = tmp_path_factory.mktemp("home")
    tongwen = Tongwen(make_store_settings(home, corpus_dir=slice_corpus))
    report = tongwen.ensure_index()
    assert report is not None and not report.failed, report
    return tongwen


@pytest.fixture(scope="session")
def embedding_model(service: Tongwen):
    return service.model
