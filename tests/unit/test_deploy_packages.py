"""deploy's sub-packages: their public names resolve, and they are loaded only when used."""

from __future__ import annotations

import subprocess
import sys



def test_every_command_module_registers_its_commands():
    import deploy.commands as commands

    for name in commands.__all__:
        assert callable(getattr(commands, name).add_parser), name


def test_the_bench_child_does_not_load_the_run_whose_memory_it_measures():
    code = "import sys, deploy.bench.child; print(sorted(m for m in sys.modules if m.startswith('deploy.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "['deploy.bench', 'deploy.bench.child', 'deploy.collector']\n"


def test_python_m_deploy_commands_chaos_starts_without_a_warning():
    done = subprocess.run([sys.executable, "-m", "deploy.commands.chaos", "--rounds", "0"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("roadx: error: --rounds")


def test_no_module_of_deploy_imports_one_that_imports_it_back():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]

    def name_of(path: Path) -> str:
        parts = path.relative_to(root).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(p): p for p in (root / "deploy").rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        edges[name] = {m for m in found if m in modules and m != name}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            here = todo.pop()
            if here == goal:
                return True
            if here not in seen:
                seen.add(here)
                todo.extend(edges.get(here, ()))
        return False

    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and reaches(b, a))
    assert cycles == []
