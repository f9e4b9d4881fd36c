"""The package's import graph, counted as tests/test_architecture.py counts it (every import statement, those inside
functions too): modules, links between them, import circles, and quantbench imports at module top / elsewhere.

    python tools/import_graph.py [PACKAGE_DIR ...]     # default: quantbench/ of this checkout

An older layout: `git archive 753e814 quantbench | tar -x -C /tmp/flat`, then
`python tools/import_graph.py /tmp/flat/quantbench quantbench`
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import test_architecture as architecture  # noqa: E402


def own_imports(package: Path) -> tuple[int, int]:
    """quantbench imports (relative, or of quantbench) at a module's top level, and anywhere else."""
    top = inner = 0
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        at_top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            relative_or_ours = isinstance(node, ast.ImportFrom) and (
                node.level > 0 or (node.module or "").startswith("quantbench"))
            ours = relative_or_ours or isinstance(node, ast.Import) and any(
                a.name.startswith("quantbench") for a in node.names)
            if ours:
                top, inner = (top + 1, inner) if id(node) in at_top else (top, inner + 1)
    return top, inner


def main(argv: list[str]) -> None:
    for package in [Path(p) for p in argv] or [ROOT / "quantbench"]:
        graph = architecture.import_graph(package)
        circles = architecture.circles(graph)
        top, inner = own_imports(package)
        print(f"{package}: {len(graph)} modules, {sum(len(v) for v in graph.values())} links, {len(circles)} import "
              f"circle(s) {[len(c) for c in circles]}, quantbench imports at module top / elsewhere: {top} / {inner}")


if __name__ == "__main__":
    main(sys.argv[1:])
