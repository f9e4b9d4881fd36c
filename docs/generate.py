"""The documentation's real outputs, made by quantbench itself: nothing under docs/generated/ is written by hand.

    python docs/generate.py          # render the cheap parts (below) from the code and the committed results.json
    python docs/generate.py --check  # exit 1 naming every file that differs from what the code renders now
    python docs/generate.py --demo   # first run the demo (twice: --target cpu and mcu, about a minute), keep its
                                     # results.json, report and a few commands' output, and take the report's
                                     # screenshots with headless Chromium; then render the cheap parts

Cheap parts, checked by tests/test_docs.py in `make test`: every command's --help, `quantbench techniques`, the
technique registry as a table, the results.json field list (from quantbench/record/schema.py), and the demo's terminal
table, reading and TFLite Micro section rendered from docs/generated/{demo,mcu}/results.json. They are rendered in
a child process with a clean environment and 100 columns, so a CI runner's FORCE_COLOR or terminal width cannot
change them. The parts --demo makes (the run's results.json, report.html, a plot, inspect/bench/predict/convert
output, screenshots) depend on the machine and the moment; they change only when --demo runs again.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "docs" / "generated"
IMAGES = ROOT / "docs" / "images"
WIDTH = 100  # the terminal the docs show: the "100-column terminal"
COMMANDS = ["demo", "compare", "convert", "qat", "predict", "bench", "inspect", "report", "sweep", "techniques"]
STUDIES = {"demo": [], "mcu": ["--target", "mcu"]}  # docs/generated/<name>/: `quantbench demo` with these flags


# ---- the cheap parts: rendered in a clean child process ------------------------------------------------------------

def _clean_env() -> dict:
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR") if k in os.environ}
    return {**keep, "PYTHONPATH": str(ROOT), "COLUMNS": str(WIDTH), "LINES": "50", "TERM": "dumb",
            "PYTHONIOENCODING": "utf-8"}


def _lines(text: str) -> str:
    """Trailing spaces off every line (rich pads to the width), one newline at the end."""
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def _help(args: list[str]) -> str:
    import contextlib
    import io

    from quantbench import cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main([*args, "--help"])
    if code != 0:
        raise SystemExit(f"quantbench {' '.join(args)} --help exited {code}")
    return _lines(buf.getvalue())


def _terminal(results) -> str:
    """The table and recommendation a study prints at the end, as a 100-column terminal shows them."""
    import io

    from rich.console import Console

    from quantbench.report.report import print_table

    buf = io.StringIO()
    console = Console(file=buf, width=WIDTH, color_system=None, force_terminal=False, legacy_windows=False)
    print_table(results, console)  # the table, the notes under it and the recommendation, as compare prints them
    return _lines(buf.getvalue())


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]) + "\n"


def _techniques_table() -> str:
    from quantbench.engines.techniques import DEFAULT_TECHNIQUES, get, names
    from quantbench.study.recommend import DECISION_TREE

    rows = []
    for name in names():
        t = get(name)
        io_ = t.io_dtype or "float32"
        targets = ", ".join(f"`{b.target}`" for b in DECISION_TREE if b.allows(name))  # `int-only` stays whole
        rows.append([f"`{name}`", t.engine, t.compute, io_, "yes" if t.calibrate else "no",
                     "yes" if name in DEFAULT_TECHNIQUES else "no", targets, t.summary])
    return _md_table(["technique", "engine", "compute", "I/O", "calibrated", "default", "targets", "what it is"], rows)


def _schema_table() -> str:
    """Every field the reports read, with its kind, from quantbench/record/schema.py (the file's own checker)."""
    from quantbench.record import schema

    rows = []

    def walk(spec, path: str) -> None:
        required = isinstance(spec, schema.Required)
        nullable = isinstance(spec, schema.Maybe)
        inner = spec.spec if required or nullable else spec
        if isinstance(inner, dict):
            if path:
                rows.append([f"`{path}`", "object" + (" (may be null)" if nullable else ""),
                             "yes" if required else ""])
            for key, sub in inner.items():
                walk(sub, f"{path}.{key}" if path else key)
        elif isinstance(inner, list):
            item = inner[0]
            if isinstance(item, dict):  # a list of objects: its items' fields follow, as path[].field
                rows.append([f"`{path}`", "list of objects" + (" (may be null)" if nullable else ""),
                             "yes" if required else ""])
                for key, sub in item.items():
                    walk(sub, f"{path}[].{key}")
            elif isinstance(item, list):
                rows.append([f"`{path}`", f"list of lists, each item {schema.WORDS[item[0].rstrip('!')]}", ""])
            else:
                rows.append([f"`{path}`", f"list, each item {schema.WORDS[item.rstrip('!')]}",
                             "yes" if required else ""])
        else:
            kind = inner.rstrip("!")
            rows.append([f"`{path}`", schema.WORDS[kind], "yes" if inner.endswith("!") else ""])

    walk(schema.RESULTS, "")
    return _md_table(["field", "kind", "required"], rows)


# (the name a user calls it by, module, attribute path): the Python API page, signatures and docstrings as they are
API = [("quantbench.compare", "quantbench.study.pipeline", "compare"),
       ("quantbench.demo", "quantbench.study.pipeline", "demo"),
       ("quantbench.run_study", "quantbench.study.pipeline", "run_study"),
       ("quantbench.StudyConfig", "quantbench.study.config", "StudyConfig"),
       ("quantbench.Goal", "quantbench.study.recommend", "Goal"),
       ("quantbench.convert", "quantbench.engines.converter", "convert"),
       ("quantbench.load", "quantbench.runtime.litert", "load"),
       ("LiteModel.predict", "quantbench.runtime.litert", "LiteModel.predict"),
       ("quantbench.engines.qat.qat", "quantbench.engines.qat", "qat"),
       ("quantbench.api.bench_files", "quantbench.api", "bench_files"),
       ("quantbench.record.results.Results.load", "quantbench.record.results", "Results.load"),
       ("quantbench.report.report.write", "quantbench.report.report", "write"),
       ("quantbench.report.tracking.log_study", "quantbench.report.tracking", "log_study"),
       ("quantbench.core.quiet.configure", "quantbench.core.quiet", "configure")]


def _api() -> str:
    import importlib
    import inspect

    out = []
    for shown, module, attr in API:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        signature = str(inspect.signature(obj, eval_str=True)).replace("quantbench.record.results.", "")
        out += [f"### `{shown}`", "", "```python", f"{shown.rsplit('.', 1)[-1]}{signature}", "```", "",
                "```text", inspect.getdoc(obj) or "(no docstring)", "```", ""]
    return "\n".join(out)


def _study_parts(name: str) -> dict[str, str]:
    from quantbench.record.results import Results
    from quantbench.report import report

    path = GENERATED / name / "results.json"
    if not path.is_file():
        return {}
    results = Results.from_json(path.read_text())
    parts = {f"{name}/table.txt": _terminal(results),
             f"{name}/reading.md": "".join(f"- {line}\n" for line in report.reading(results))}
    if report.has_mcu(results):
        title, paragraphs, headers, rows = report.mcu_section(results)
        parts[f"{name}/mcu-section.md"] = _md_table(headers, rows)
    return parts


def render_here() -> dict[str, str]:
    """Every cheap part, keyed by its path under docs/generated/ (run in the clean child process)."""
    from quantbench.core import quiet

    quiet.configure()
    parts = {"help/quantbench.txt": _help([])}
    parts.update({f"help/{c}.txt": _help([c]) for c in COMMANDS})
    import contextlib
    import io

    from quantbench import cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        cli.main(["techniques"])
    parts["techniques.txt"] = _lines(buf.getvalue())
    parts["techniques.md"] = _techniques_table()
    parts["schema.md"] = _schema_table()
    parts["api.md"] = _api()
    for name in STUDIES:
        parts.update(_study_parts(name))
    return parts


def render() -> dict[str, str]:
    """The cheap parts, rendered in a child process with a clean environment (see the module's docstring)."""
    done = subprocess.run([sys.executable, __file__, "--render-json"], env=_clean_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"rendering the docs' snippets failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def stale(parts: dict[str, str]) -> list[str]:
    """The files under docs/generated/ that differ from `parts` (missing ones included)."""
    return sorted(name for name, text in parts.items()
                  if not (GENERATED / name).is_file() or (GENERATED / name).read_text(encoding="utf-8") != text)


# ---- the demo run: real files, real outputs, screenshots -------------------------------------------------------------

def _run(args: list[str], cwd: Path, timeout: float = 900) -> str:
    """A quantbench command as a user runs it, its stdout and stderr as the terminal shows them."""
    env = {**_clean_env(), "PATH": os.environ.get("PATH", "")}
    done = subprocess.run([sys.executable, "-m", "quantbench", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)  # one stream, in the order shown
    if done.returncode != 0:
        raise SystemExit(f"quantbench {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}")
    return _lines(done.stdout)


def _screenshot(page: Path, out: Path, height: int, width: int = 1400, scroll_tables: bool = False) -> None:
    """Headless Chromium, `width` pixels wide; with scroll_tables, a copy of the page whose tables are scrolled to
    their right end by a one-line script (the report itself has no script)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: `apt-get install -y chromium` (Debian) to take the screenshots")
    if scroll_tables:
        copy = page.with_name(page.stem + "-scrolled.html")
        script = ("<script>for (const d of document.querySelectorAll('.scroll')) d.scrollLeft = d.scrollWidth;"
                  "</script>")
        copy.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
        page = copy
    shot = out.with_suffix(".full.png")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image

    with Image.open(shot) as img:  # 256 colours: a third of the bytes, text stays sharp
        img.convert("RGB").quantize(colors=256).save(out, optimize=True)
    shot.unlink()


def run_demo() -> None:
    with tempfile.TemporaryDirectory(prefix="qb-docs-") as tmp:
        tmp = Path(tmp)
        for name, flags in STUDIES.items():
            _run(["demo", "--out", name, *flags], tmp)
            (GENERATED / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp / name / "results.json", GENERATED / name / "results.json")
        shutil.copyfile(tmp / "demo" / "report.html", GENERATED / "demo" / "report.html")
        shutil.copyfile(tmp / "demo" / "accuracy_vs_size.png", GENERATED / "demo" / "accuracy_vs_size.png")
        run = GENERATED / "run"
        run.mkdir(exist_ok=True)
        import numpy as np

        with np.load(tmp / "demo" / "digits-test.npz") as d:
            np.save(tmp / "x5.npy", d["x"][:5])
        outputs = {
            "inspect.txt": ["inspect", "demo/int8-only.tflite"],
            "inspect-mcu.txt": ["inspect", "demo/int8-only.tflite", "--mcu"],
            "predict.txt": ["predict", "demo/int8-only.tflite", "--input", "x5.npy", "-o", "probs.npy"],
            "convert.txt": ["convert", "demo/model.keras", "--technique", "int8-only", "--calib",
                            "demo/digits-train.npz", "-o", "model_int8.tflite"],
            "bench.txt": ["bench", "demo/float32.tflite", "demo/int8-only.tflite", "demo/dynamic-int4.tflite",
                          "--time-budget", "5"],
        }
        for file, args in outputs.items():
            (run / file).write_text(f"$ quantbench {' '.join(args)}\n" + _run(args, tmp), encoding="utf-8")
        IMAGES.mkdir(exist_ok=True)
        _screenshot(tmp / "demo" / "report.html", IMAGES / "report-demo.png", 1250)
        # at 1,400 px its table fits too (bench/report_width.py); a 1,000-px window shows how it scrolls
        _screenshot(tmp / "mcu" / "report.html", IMAGES / "report-mcu-scrolled.png", 900, width=1000,
                    scroll_tables=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    parser.add_argument("--demo", action="store_true", help="run the demo first (about a minute)")
    parser.add_argument("--render-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render_json:
        json.dump(render_here(), sys.stdout)
        return 0
    if args.demo:
        run_demo()
    parts = render()
    if args.check:
        old = stale(parts)
        if old:
            print(f"docs/generated is out of date: {', '.join(old)}. Fix: python docs/generate.py", file=sys.stderr)
        return 1 if old else 0
    for name, text in parts.items():
        path = GENERATED / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"Wrote {len(parts)} files under {GENERATED.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
