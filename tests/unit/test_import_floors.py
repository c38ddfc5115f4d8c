"""Imports run one way, down: every import of every module, read with ``ast``.

    deploy/                          the top floor: may import every package below
    producers/  streams/  sinks/     the stages: each imports ``schemas`` (and itself) only
    schemas/                         the bottom floor: imports nothing else of the project

Imports inside functions, under ``if TYPE_CHECKING`` and relative imports count the same
as the ones at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT = ("schemas", "producers", "streams", "sinks", "deploy")
# What each package may import of the project besides itself.
ALLOWED = {
    "schemas": set(),
    "producers": {"schemas"},
    "streams": {"schemas"},
    "sinks": {"schemas"},
    "deploy": {"schemas", "producers", "streams", "sinks"},
}


def modules() -> list[Path]:
    return sorted(p for package in PROJECT for p in (REPO / package).rglob("*.py"))


def imported(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, dotted module name) of every import in ``path`` (or ``source``), relative ones resolved."""
    tree = ast.parse(path.read_text("utf-8") if source is None else source, str(path))
    package = path.relative_to(REPO).parts[:-1]  # what a leading dot names
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return sorted(found)


def wrong_way(path: Path, source: str | None = None) -> list[str]:
    """Each import of ``path`` that runs up or sideways, as ``file:line: import X (why)``."""
    home = path.relative_to(REPO).parts[0]
    problems = []
    for line, name in imported(path, source):
        target = name.split(".")[0]
        if target in PROJECT and target != home and target not in ALLOWED[home]:
            direction = "up" if target == "deploy" or home == "schemas" else "sideways"
            problems.append(f"{path.relative_to(REPO)}:{line}: imports {name} ({home} must not import {target}: "
                            f"runs {direction})")
    return problems


def test_every_package_imports_only_the_floors_below_it():
    problems = [problem for path in modules() for problem in wrong_way(path)]
    assert problems == [], "imports that run the wrong way:\n" + "\n".join(problems)


def test_the_walk_finds_imports_inside_functions_and_relative_ones():
    probe = REPO / "sinks" / "probe.py"
    source = ("from . import errors\n"
              "from .store import open_store\n"
              "def late():\n"
              "    from deploy.stack import StackInfo\n"
              "    import streams.runner\n")
    assert imported(probe, source) == [(1, "sinks"), (2, "sinks.store"), (4, "deploy.stack"), (5, "streams.runner")]
    assert wrong_way(probe, source) == [
        "sinks/probe.py:4: imports deploy.stack (sinks must not import deploy: runs up)",
        "sinks/probe.py:5: imports streams.runner (sinks must not import streams: runs sideways)",
    ]
