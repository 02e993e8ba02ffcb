"""The README stays true to the code: settings, CLI commands, API routes, screenshot, Quickstart.

Fast and model-free: it reads README.md, the Makefile and the code's own declarations (the
``Settings`` fields, the typer app, the FastAPI app built over an unloaded service).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
from pydantic_core import PydanticUndefined

from eval.report import README_END, README_START
from rag.config import PROJECT_ROOT, Settings
from ui.cli import app as cli_app

PROJECT = Path(__file__).resolve().parent.parent
README = PROJECT / "README.md"
MAKEFILE = PROJECT / "Makefile"

SECTIONS = (
    "Quickstart",
    "Configuration",
    "Using another LLM or embedding model",
    "HTTP API",
    "Command line",
    "Evaluation",
    "Benchmarks and reliability",
    "Architecture",
    "Known limits",
)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text("utf-8")


def section(text: str, title: str) -> str:
    """The body of ``## title`` up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)


def code_texts(text: str) -> list[str]:
    """Every fenced block and every inline code span: where commands and routes are written."""
    blocks = fenced_blocks(text)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return blocks + re.findall(r"`([^`\n]+)`", prose)


# -- configuration table ---------------------------------------------------------------------------
def config_rows(readme: str) -> list[tuple[str, str, str]]:
    rows = re.findall(r"^\| `(TONGWEN_\w+)` \| (.*?) \| (.*) \|$", section(readme, "Configuration"), re.M)
    assert rows, "no configuration table rows found"
    return rows


def parse_default(cell: str) -> Any:
    """The README's default cell back as a value: (unset), `value`, or `path` (in the checkout)."""
    if cell == "(unset)":
        return None
    match = re.fullmatch(r"`([^`]*)`( \(in the checkout\))?", cell)
    assert match, f"unreadable default cell {cell!r}"
    return PROJECT_ROOT / match.group(1) if match.group(2) else match.group(1)


def same_default(documented: Any, actual: Any) -> bool:
    if actual is None or actual is PydanticUndefined:
        return documented is None
    if documented is None:
        return False
    if isinstance(actual, Path):
        return Path(documented) == actual
    if isinstance(actual, bool):
        return documented in ("True", "False") and (documented == "True") == actual
    return type(actual)(documented) == actual


def test_configuration_table_lists_every_setting_in_order(readme):
    documented = [name for name, _, _ in config_rows(readme)]
    expected = [f"TONGWEN_{name.upper()}" for name in Settings.model_fields]
    assert Settings.model_config.get("env_prefix") == "TONGWEN_"
    assert documented == expected


def test_configuration_table_has_the_real_defaults(readme):
    wrong = {}
    for (env, cell, meaning), (name, field) in zip(config_rows(readme), Settings.model_fields.items(), strict=False):
        assert env == f"TONGWEN_{name.upper()}"
        assert meaning.strip(), f"{env} has no meaning"
        if not same_default(parse_default(cell), field.default):
            wrong[env] = (cell, field.default)
    assert not wrong, f"README defaults differ from rag/config.py: {wrong}"


def test_configuration_table_is_the_generated_one(readme):
    """The pasted table is exactly what docs/config_table.py prints (descriptions included)."""
    spec = importlib.util.spec_from_file_location("config_table", PROJECT / "docs" / "config_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.table() in readme, "re-run `.venv/bin/python docs/config_table.py` and paste its output"


# Variables the test suite reads (tests/conftest.py), not settings of the application.
TEST_VARIABLES = {"TONGWEN_TEST_HOME", "TONGWEN_UPDATE_DOCS"}


def test_every_tongwen_variable_in_the_readme_exists(readme):
    fields = {f"TONGWEN_{name.upper()}" for name in Settings.model_fields} | TEST_VARIABLES
    mentioned = set(re.findall(r"\bTONGWEN_[A-Z0-9_]*[A-Z0-9]", readme))
    assert mentioned - fields == set()


# -- CLI -------------------------------------------------------------------------------------------
def app_commands() -> set[str]:
    names = set()
    for name, command in typer.main.get_command(cli_app).commands.items():
        subcommands = getattr(command, "commands", None)
        if subcommands:
            names |= {f"{name} {sub}" for sub in subcommands}
        else:
            names.add(name)
    return names


def readme_commands(readme: str) -> set[str]:
    groups = {name.split()[0] for name in app_commands() if " " in name}
    found = set()
    for code in code_texts(readme):
        for first, second in re.findall(r"(?<![\w-])tongwen[ \t]+([a-z][\w-]*)(?:[ \t]+([a-z][\w-]*))?", code):
            found.add(f"{first} {second}" if first in groups else first)
    return found


def test_cli_commands_in_the_readme_exist(readme):
    assert readme_commands(readme) - app_commands() == set()


def test_every_cli_command_is_in_the_readme(readme):
    assert app_commands() - readme_commands(readme) == set()


# -- HTTP API --------------------------------------------------------------------------------------
def api_routes(tmp_path: Path) -> set[str]:
    """``METHOD /path`` of every route, from an app over a service that has loaded nothing."""
    from rag.service import Tongwen
    from ui.api import create_api

    api = create_api(Tongwen(Settings(_env_file=None, home=tmp_path)))
    return {f"{method.upper()} {path}" for path, ops in api.openapi()["paths"].items() for method in ops}


def readme_routes(readme: str) -> set[str]:
    methods = "|".join(HTTP_METHODS)
    found = re.findall(rf"\b({methods})[ \t]+(/[\w/{{}}.-]*)", readme)
    return {f"{method} {path.rstrip('./-')}" for method, path in found}


def test_every_api_route_is_documented(readme, tmp_path):
    routes = api_routes(tmp_path)
    assert len(routes) >= 8
    assert routes - readme_routes(readme) == set()


def test_documented_api_routes_exist(readme, tmp_path):
    assert readme_routes(readme) - api_routes(tmp_path) == set()


# -- files, Quickstart, markers --------------------------------------------------------------------
def test_screenshot_and_links_exist(readme):
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme)
    assert {"docs/screenshot.png", "docs/screenshot-phone.png"} <= set(images)  # desktop and phone
    for image in images:
        data = (PROJECT / image).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{image} is not a PNG (an LFS pointer?)"
    links = [t for t in re.findall(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)", readme) if not re.match(r"[a-z]+:|#", t)]
    missing = [t for t in links if not (PROJECT / t).exists()]
    assert not missing


def makefile_targets() -> dict[str, str]:
    """Target name -> its recipe text."""
    targets: dict[str, str] = {}
    current = None
    for line in MAKEFILE.read_text("utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", line)
        if match:
            current = match.group(1)
            targets[current] = ""
        elif line.startswith("\t") and current:
            targets[current] += line.strip() + "\n"
        elif line.strip() and not line.startswith("#"):
            current = None
    return targets


def test_quickstart_is_make_run_and_make_test(readme):
    commands = [
        line.split("#", 1)[0].strip()
        for block in fenced_blocks(section(readme, "Quickstart"))
        for line in block.splitlines()
        if line.split("#", 1)[0].strip()
    ]
    assert commands == ["make run", "make test"]


def test_makefile_has_the_quickstart_targets_as_described():
    targets = makefile_targets()
    assert "tongwen serve" in targets.get("run", "")
    test = targets.get("test", "")
    assert "scripts/ensure-browser.sh" in test and "ruff check" in test and "pytest" in test


def test_sections_are_in_order(readme):
    headings = re.findall(r"^## (.+)$", readme, re.M)
    assert [h for h in headings if h in SECTIONS] == list(SECTIONS)
    assert readme.index("docs/screenshot.png") < readme.index("## Quickstart")


@pytest.mark.parametrize(
    "start, end",
    [(README_START, README_END), ("<!-- bench:start -->", "<!-- bench:end -->")],
)
def test_generated_blocks_have_their_markers(readme, start, end):
    assert readme.count(start) == 1 and readme.count(end) == 1
    assert readme.index(start) < readme.index(end)
