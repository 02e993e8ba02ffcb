"""Print the README's configuration table from ``rag.config.Settings``.

    .venv/bin/python docs/config_table.py

Paste the output into README.md under "Configuration"; ``tests/test_readme.py`` fails when the
table and the code disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pydantic_core import PydanticUndefined  # noqa: E402

from rag.config import PROJECT_ROOT, Settings  # noqa: E402

PREFIX = Settings.model_config.get("env_prefix", "")


def env_name(field: str) -> str:
    return f"{PREFIX}{field}".upper()


def render_default(value: Any) -> str:
    """The default as the README shows it: unset for None, paths in the checkout relative to it."""
    if value is None or value is PydanticUndefined:
        return "(unset)"
    if isinstance(value, Path):
        if value.is_absolute() and value.is_relative_to(PROJECT_ROOT):
            return f"`{value.relative_to(PROJECT_ROOT).as_posix()}` (in the checkout)"
        return f"`{value.as_posix()}`"
    return f"`{value}`"


def meaning(field: Any) -> str:
    """The field's description, plus the allowed values when the type is a Literal."""
    text = field.description or ""
    if get_origin(field.annotation) is Literal:
        text += " One of " + ", ".join(f"`{v}`" for v in get_args(field.annotation)) + "."
    return text.replace("|", "\\|")


def rows() -> list[tuple[str, str, str]]:
    return [
        (f"`{env_name(name)}`", render_default(field.default), meaning(field))
        for name, field in Settings.model_fields.items()
    ]


def table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| {name} | {default} | {meaning} |" for name, default, meaning in rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
