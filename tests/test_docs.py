"""The documentation: a README that fits two screens, a site that builds with `mkdocs build --strict` (a broken link
fails it), a page per command, and docs/generated/ exactly as the code renders it now."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def generate():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mkdocs(folder: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(folder / "mkdocs.yml"),
                           "-d", str(site)], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_readme_fits_two_screens_and_starts_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 80 and max(map(len, lines)) <= 100  # two screens of a 100 × 40 terminal
    assert lines[0] == "# quantbench"
    assert lines[3].startswith("make demo") and lines[4].startswith("make test")
    assert "quantbench compare model.keras --data test.npz" in "\n".join(lines)  # one example on your own model


def test_readme_links_lead_to_files_that_exist():
    links = re.findall(r"\]\(([^)#:]+)(?:#[\w-]+)?\)", README.read_text(encoding="utf-8"))  # the file, not the anchor
    assert len(links) >= 10
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_every_command_has_a_page_in_the_nav():
    import typer
    import yaml

    from quantbench.cli import app

    commands = sorted(typer.main.get_command(app).commands)
    assert sorted(f"commands/{c}.md" for c in commands) == sorted(
        str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs" / "commands").glob("*.md"))
    # mkdocs.yml holds no Python tags, so a safe load reads its nav
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    listed = re.findall(r"'([\w/.-]+\.md)'", repr(nav))
    assert all(f"commands/{c}.md" in listed for c in commands)


def test_generated_docs_are_what_the_code_renders_now(generate):
    parts = generate.render()
    assert {"demo/table.txt", "mcu/table.txt", "mcu/mcu-section.md", "schema.md", "api.md"} <= set(parts)
    assert {f"help/{c}.txt" for c in generate.COMMANDS} <= set(parts)
    assert generate.stale(parts) == [], "docs/generated is out of date. Fix: python docs/generate.py, then commit"
    table = parts["demo/table.txt"]
    assert max(map(len, table.splitlines())) <= generate.WIDTH and "Ship " in table  # a terminal's width, and the
    # recommendation printed under the table


def test_generated_check_names_a_changed_file(generate, tmp_path, monkeypatch):
    parts = {"help/demo.txt": "the help as the code renders it\n"}
    monkeypatch.setattr(generate, "GENERATED", tmp_path)
    assert generate.stale(parts) == ["help/demo.txt"]  # missing
    (tmp_path / "help").mkdir()
    (tmp_path / "help" / "demo.txt").write_text("edited by hand\n")
    assert generate.stale(parts) == ["help/demo.txt"]
    (tmp_path / "help" / "demo.txt").write_text(parts["help/demo.txt"])
    assert generate.stale(parts) == []


def test_site_builds_strict(tmp_path):
    done = mkdocs(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    demo = (tmp_path / "site" / "commands" / "demo" / "index.html").read_text(encoding="utf-8")
    assert "--8&lt;--" not in demo and "dynamic-int4" in demo  # the snippets were put in
    assert (tmp_path / "site" / "generated" / "demo" / "report.html").is_file()


def test_strict_build_fails_on_a_broken_link_or_a_page_left_out(tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", copy)
    shutil.copytree(ROOT / "docs", copy / "docs")
    index = copy / "docs" / "index.md"
    index.write_text(index.read_text(encoding="utf-8") + "\n[gone](commands/nowhere.md)\n", encoding="utf-8")
    (copy / "docs" / "orphan.md").write_text("# Not in the nav\n", encoding="utf-8")
    done = mkdocs(copy, tmp_path / "site")
    assert done.returncode == 1
    assert "contains a link 'commands/nowhere.md', but the target is not found" in done.stderr
    assert "not included in the \"nav\" configuration" in done.stderr and "orphan.md" in done.stderr
