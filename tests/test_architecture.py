"""The layers of ARCHITECTURE.md hold: no import circle (imports inside functions count), every module in a
layer's sub-package, and import-linter's contracts (pyproject.toml) kept."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "quantbench"
LAYERS = ("core", "executors", "record", "runtime", "measure", "inputs", "engines", "report", "study")
TOP = ("__init__", "__main__", "cli", "api")  # the modules that stay at the top of the package


def modules(package: Path) -> dict[str, Path]:
    """Every module of a package by its dotted name (a package by its own name, for its __init__.py)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, from every import statement, those inside functions too."""
    mods = modules(package)
    graph = {name: set() for name in mods}
    for name, path in mods.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                # `from pkg import x`: the module pkg.x when there is one, else pkg itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in mods}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (or a module importing itself), Tarjan's way."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                found.append(sorted(group))

    sys.setrecursionlimit(max(1000, 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_counting_imports_inside_functions():
    assert circles(import_graph(PACKAGE)) == []


def test_the_circle_check_finds_a_circle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "top.py").write_text("from .low import base\n")
    (pkg / "low" / "base.py").write_text("def f():\n    from ..top import g\n    from . import base\n")
    graph = import_graph(pkg)
    assert graph["pkg.top"] == {"pkg.low.base"} and graph["pkg.low.base"] == {"pkg.top", "pkg.low.base"}
    assert circles(graph) == [["pkg.low.base", "pkg.top"]]
    (pkg / "low" / "base.py").write_text("def f():\n    from .. import top\n")
    assert circles(import_graph(pkg)) == [["pkg.low.base", "pkg.top"]]
    (pkg / "low" / "base.py").write_text("import os\n")
    assert circles(import_graph(pkg)) == []


def test_every_module_lives_in_a_layer_sub_package():
    misplaced = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                 if not (p.parent == PACKAGE and p.stem in TOP)
                 and p.relative_to(PACKAGE).parts[0] not in LAYERS]
    assert misplaced == []
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail(f"No lint-imports beside {sys.executable}. Fix: pip install -e '.[test]' (import-linter).")
    env = {"PATH": str(exe.parent), "PYTHONPATH": str(pythonpath), "HOME": str(cwd)}
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_lint_imports_keeps_every_contract():
    done = lint_imports(ROOT, ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_lint_imports_breaks_on_an_import_up_a_layer_and_on_tensorflow_in_a_record(tmp_path):
    """The contracts are wired to the real package: an import running back up, even inside a function, and
    TensorFlow in record/ each break one."""
    shutil.copytree(PACKAGE, tmp_path / "quantbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "quantbench" / "core" / "stats.py", "a") as f:
        f.write("\n\ndef _up():\n    from ..study import pipeline  # noqa: F401\n")
    with open(tmp_path / "quantbench" / "record" / "schema.py", "a") as f:
        f.write("\n\ndef _tf():\n    import tensorflow  # noqa: F401\n")
    done = lint_imports(tmp_path, tmp_path)
    assert done.returncode == 1, done.stdout[-4000:]
    assert "quantbench.core.stats -> quantbench.study.pipeline" in done.stdout
    assert "quantbench.record is not allowed to import tensorflow" in done.stdout
