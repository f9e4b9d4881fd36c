"""A sweep: models × data × calibration sizes as many studies, read from a TOML file, run one after the other on
one shared executor, written one folder each beside `sweep.json` and `index.html`; a sweep run again resumes.

Studies run one after the other, not side by side: each study's timing task must have the machine (or a
node) to itself, and a study already spreads its conversions and evaluation shards over every worker.

The file (every path relative to the file's folder; only `[models]` and `[data]` are required):

    out = "runs/sweep"                          # the sweep folder; --out wins
    techniques = ["float16", "dynamic", "int8-only"]   # default: quantbench's default set
    calib_size = [100, 200]                     # a number or a list: one study per value (default 200)
    seed = 0
    max_accuracy_drop = 1.0
    target = "cpu"                              # cpu, gpu, int-only, mcu
    optimize = "size"                           # size, latency
    time_budget = 20                            # seconds of timing per study
    [models]
    cnn = "models/cnn.keras"
    [data]
    digits = { data = "test.npz", calib = "train.npz" }   # or just "test.npz": calibration split from it
"""
from __future__ import annotations

import dataclasses
import html
import json
import math
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InputError, QuantbenchError
from ..core.files import MARKER, protected, write_file
from ..record.results import Results
from .config import StudyConfig

SWEEP_JSON = "sweep.json"
INDEX = "index.html"
NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")
TOP = ("out", "techniques", "calib_size", "seed", "max_accuracy_drop", "target", "optimize", "time_budget",
       "max_ram_kb", "max_flash_kb", "models", "data")


@dataclass(frozen=True)
class Study:
    """One study of a sweep: what `study.compare` is called with, and the folder it writes."""

    name: str
    model: str
    data: str
    calib: str | None
    calib_size: int | None
    techniques: tuple | None
    seed: int
    max_accuracy_drop: float
    target: str
    optimize: str
    time_budget: float | None
    max_ram_kb: float | None
    max_flash_kb: float | None

    def config(self, base: StudyConfig) -> StudyConfig:
        """What `compare` runs this study with: its file's settings over the command line's `base`."""
        return dataclasses.replace(base, techniques=list(self.techniques or []) or None, seed=self.seed,
                                   goal=_goal(self), time_budget=self.time_budget)

    def spec(self) -> dict:
        """The settings that make the study what it is: a finished study with other settings is not reused."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Sweep:
    path: Path
    out: Path | None
    studies: tuple[Study, ...]


# ---- reading the file --------------------------------------------------------------------------------

class _Reader:
    """Checks one field at a time; every complaint names the file and the field, and says how to fix it."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, field: str, got, expected: str, fix: str):
        raise InputError(f"{self.path}: field `{field}` is {got!r}. Expected {expected}. Fix: {fix}")

    def number(self, raw: dict, field: str, default, minimum: float, integer: bool = False, above: bool = False):
        if field not in raw:
            return default
        value = raw[field]
        kinds = (int,) if integer else (int, float)
        ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value) and (
            value > minimum if above else value >= minimum)
        if not ok:
            what = "a whole number" if integer else "a number"
            bound = f"{'>' if above else '≥'} {minimum:g}"
            self.fail(field, value, f"{what} {bound}", f"write e.g. {field} = {int(minimum) + 1}.")
        return value

    def text(self, raw: dict, field: str, default, choices: tuple | None = None):
        if field not in raw:
            return default
        value = raw[field]
        if not isinstance(value, str) or (choices and value not in choices):
            expected = f"one of {', '.join(map(repr, choices))}" if choices else "a string"
            self.fail(field, value, expected, f"write e.g. {field} = {json.dumps(choices[0] if choices else 'x')}.")
        return value

    def file(self, field: str, value) -> str:
        if not isinstance(value, str) or not value:
            self.fail(field, value, "a path (a string), relative to the sweep file's folder",
                      f'write e.g. {field} = "models/model.keras".')
        path = (self.path.parent / value).resolve()  # absolute: the same study from any current folder
        if not path.exists():
            raise InputError(f"{self.path}: field `{field}` names {value}, which does not exist (looked for "
                             f"{path}). Expected a path relative to the sweep file's folder. Fix: correct the path.")
        return str(path)

    def names(self, raw: dict, table: str) -> dict:
        value = raw.get(table)
        example = 'cnn = "models/cnn.keras"' if table == "models" else 'digits = "test.npz"'
        if not isinstance(value, dict) or not value:
            self.fail(table, value, f"a table [{table}] with at least one entry, name = path",
                      f"add [{table}] and a line like {example}.")
        for name in value:
            if not NAME.match(name):
                self.fail(f"{table}.{name}", name, "a name of letters, digits, '.', '_' or '-' (it names the "
                          "study's folder)", f"rename it, e.g. {re.sub(r'[^A-Za-z0-9_.-]', '-', name) or 'a'}.")
        return value


def _data_entry(reader: _Reader, name: str, value) -> tuple[str, str | None]:
    field = f"data.{name}"
    if isinstance(value, str):
        return reader.file(field, value), None
    if not isinstance(value, dict):
        reader.fail(field, value, 'a path, or a table { data = "test.npz", calib = "train.npz" }',
                    f'write {name} = "test.npz".')
    unknown = sorted(set(value) - {"data", "calib"})
    if unknown:
        reader.fail(f"{field}.{unknown[0]}", value[unknown[0]], "only the keys data and calib",
                    f"remove {unknown[0]}.")
    if "data" not in value:
        reader.fail(field, value, "a table with a `data` path", f'write {name} = {{ data = "test.npz" }}.')
    calib = value.get("calib")
    return reader.file(f"{field}.data", value["data"]), None if calib is None else reader.file(f"{field}.calib",
                                                                                               calib)


def load(path: str | Path) -> Sweep:
    """Read and check a sweep file; every path must exist and every setting be valid before anything runs."""
    from ..engines.techniques import resolve
    from .recommend import Goal

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Sweep file {path} does not exist or is not a file. Expected a TOML file listing "
                         "[models] and [data]. Fix: pass the path of your sweep.toml (see `quantbench sweep --help`).")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}. Expected a TOML file with [models] and [data]. "
                         "Fix: correct the file at that line.") from None
    reader = _Reader(path)
    unknown = [k for k in raw if k not in TOP]
    if unknown:
        reader.fail(unknown[0], raw[unknown[0]], f"only the fields {', '.join(TOP)}", f"remove or rename {unknown[0]}.")
    techniques = raw.get("techniques")
    if techniques is not None:
        if not isinstance(techniques, list) or not techniques or not all(isinstance(t, str) for t in techniques):
            reader.fail("techniques", techniques, "a non-empty list of technique names",
                        'write e.g. techniques = ["float16", "int8-only"] (see `quantbench techniques`).')
        try:
            techniques = tuple(t.name for t in resolve(techniques))
        except InputError as exc:
            raise InputError(f"{path}: field `techniques`: {exc}") from None
    sizes = raw.get("calib_size")
    sizes = [sizes] if sizes is None or not isinstance(sizes, list) else sizes
    if not sizes:
        reader.fail("calib_size", [], "a number ≥ 1 or a non-empty list of them",
                    "write e.g. calib_size = [100, 200].")
    for size in sizes:
        if size is not None:
            reader.number({"calib_size": size}, "calib_size", None, 1, integer=True)
    common = {"seed": reader.number(raw, "seed", 0, 0, integer=True),
              "max_accuracy_drop": reader.number(raw, "max_accuracy_drop", 1.0, 0),
              "target": reader.text(raw, "target", "cpu", ("cpu", "gpu", "int-only", "mcu")),
              "optimize": reader.text(raw, "optimize", "size", ("size", "latency")),
              "time_budget": reader.number(raw, "time_budget", None, 0, above=True),
              "max_ram_kb": reader.number(raw, "max_ram_kb", None, 0, above=True),
              "max_flash_kb": reader.number(raw, "max_flash_kb", None, 0, above=True)}
    try:
        Goal(float(common["max_accuracy_drop"]), common["target"], common["optimize"], common["max_ram_kb"],
             common["max_flash_kb"])
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    out = reader.text(raw, "out", None)
    models = {name: reader.file(f"models.{name}", p) for name, p in reader.names(raw, "models").items()}
    datas = {name: _data_entry(reader, name, v) for name, v in reader.names(raw, "data").items()}
    studies = []
    for model_name, model in models.items():
        for data_name, (data, calib) in datas.items():
            for size in sizes:
                name = f"{model_name}-{data_name}" + (f"-calib{size}" if len(sizes) > 1 else "")
                studies.append(Study(name, model, data, calib, size, techniques, **common))
    return Sweep(path, None if out is None else path.parent / out, tuple(studies))


# ---- running it --------------------------------------------------------------------------------------

def finished(folder: Path) -> bool:
    """A study folder quantbench wrote to the end: its marker and a readable results.json."""
    if not (folder / MARKER).is_file():
        return False
    try:
        Results.load(folder / "results.json")
    except InputError:
        return False
    return True


def _check_out(out: Path) -> None:
    why = protected(out)
    fix = "Fix: pass --out with a new folder, e.g. --out runs/sweep."
    if why:
        raise InputError(f"Sweep folder {out} {why}. Expected a folder of its own for the sweep. {fix}")
    if out.exists() and not out.is_dir():
        raise InputError(f"Sweep folder {out} exists and is a file. Expected a folder path. {fix}")
    if out.is_dir() and any(out.iterdir()) and not (out / SWEEP_JSON).is_file():
        raise InputError(f"Sweep folder {out} is not empty and holds no {SWEEP_JSON}: it is not a sweep quantbench "
                         f"wrote. Expected a new or empty folder, or an earlier run of this sweep. {fix}")


def _previous(out: Path) -> dict:
    try:
        raw = json.loads((out / SWEEP_JSON).read_text())
        return {s["name"]: s for s in raw["studies"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def plan(sweep: Sweep, out: Path, force: bool) -> list[dict]:
    """Every study's entry: `finished` when an earlier run made it with the same settings (and not --force)."""
    _check_out(out)
    before = _previous(out)
    entries = []
    for s in sweep.studies:
        entry = {"name": s.name, "folder": s.name, "status": "pending", "spec": s.spec()}
        folder = out / s.name
        if not force and finished(folder):
            if before.get(s.name, {}).get("spec") != s.spec():
                raise InputError(f"Study folder {folder} was made by an earlier run with other settings than "
                                 f"{sweep.path} now asks for. Expected the same settings to resume. Fix: pass "
                                 "--force to redo it, or --out with a new folder.")
            entry = {**before[s.name], "status": "ok", "resumed": True}
        entries.append(entry)
    return entries


def _figures(results: Results) -> dict:
    """The recommendation and the figures a side-by-side comparison needs."""
    from ..measure.outputs import scored_outputs

    rec = results.recommendation or {}
    chosen = rec.get("technique")
    ref = next((v for v in results.variants if v.technique in ("keras", "float32") and v.ok), None)
    figures = {"technique": chosen, "summary": rec.get("summary", ""), "metric": rec.get("metric"),
               "reference_accuracy": None if ref is None else ref.accuracy}
    if chosen:
        v = results.variant(chosen)
        figures.update(bytes=v.bytes, accuracy=v.accuracy, agreement=v.agreement, sqnr_db=v.sqnr_db,
                       drop_pp=None if ref is None else scored_outputs(v, ref, results)[0].get("loss"),
                       latency_ms=(v.latency_ms or {}).get("median"),
                       reference_bytes=None if ref is None else ref.bytes)
    return figures


def run(sweep: Sweep, out: Path, entries: list[dict], config: StudyConfig | None = None, *, executor=None,
        reporter=None, on_study=None) -> list[dict]:
    """Run every pending study in turn (on `executor` when given), writing sweep.json and index.html after
    each; `config` holds what the command line sets for every study (workers, Ray, --force), each study's file
    settings the rest. A study that fails with a quantbench error is recorded and the sweep goes on; bugs
    propagate."""
    from .pipeline import compare

    config = config or StudyConfig()
    out.mkdir(parents=True, exist_ok=True)
    _write(sweep, out, entries)
    for study, entry in zip(sweep.studies, entries):
        if entry["status"] == "ok":
            continue
        if on_study:
            on_study(study, entry)
        start = time.perf_counter()
        try:
            results = compare(study.model, study.data, study.calib, out / study.name, study.config(config),
                              calib_size=study.calib_size, runner=executor, reporter=reporter)
        except QuantbenchError as exc:
            entry.update(status="failed", error=str(exc), seconds=round(time.perf_counter() - start, 2))
        else:
            entry.update(status="ok", error=None, seconds=round(time.perf_counter() - start, 2),
                         recommendation=_figures(results))
            entry.pop("resumed", None)
        _write(sweep, out, entries)
    return entries


def run_sweep(path, out=None, config: StudyConfig | None = None, *, reporter=None,
              on_study=None) -> tuple[Path, list[dict]]:
    """Read the sweep file, then run its unfinished studies on one executor (workers or Ray, when asked for;
    else each study picks its own, as `compare` does). Returns the sweep folder and every study's entry."""
    import contextlib

    from ..executors import local as executor

    config = config or StudyConfig()
    sweep = load(path)
    out = Path(out) if out is not None else (sweep.out or Path("runs") / sweep.path.stem)
    entries = plan(sweep, out, config.force)
    if all(e["status"] == "ok" for e in entries):
        _write(sweep, out, entries)
        return out, entries
    shared = executor.make(config.workers, config.ray) if config.workers is not None or config.ray else None
    with shared if shared is not None else contextlib.nullcontext():
        run(sweep, out, entries, config, executor=shared, reporter=reporter, on_study=on_study)
    return out, entries


def log_studies(out: Path, entries: list[dict], uri: str) -> str:
    """Log every finished study to MLflow at `uri`, except those sweep.json records as logged there already (by an
    earlier run of this sweep); record each one logged now, in sweep.json, as it is. Returns what was done, in
    one line."""
    from ..report.tracking import log_study

    now, before = [], []
    for e in entries:
        if e["status"] != "ok":
            continue
        if (e.get("mlflow") or {}).get("uri") == uri:
            before.append(e["name"])
            continue
        folder = out / e["folder"]
        e["mlflow"] = {"uri": uri, "run_id": log_study(Results.load(folder / "results.json"), folder, uri)}
        now.append(e["name"])
        raw = json.loads((out / SWEEP_JSON).read_text())
        write_file(out / SWEEP_JSON, (json.dumps({**raw, "studies": entries}, indent=2, allow_nan=False) + "\n")
                   .encode(), force=True)
    kept = (f"; {len(before)} kept from an earlier run of this sweep {'was' if len(before) == 1 else 'were'} logged "
            "there then, not again") if before else ""
    return (f"Logged {len(now)} stud{'y' if len(now) == 1 else 'ies'} to MLflow at {uri}{kept} (their runs: "
            f"{out / SWEEP_JSON})")


def check(out: Path, entries: list[dict]) -> None:
    """A sweep with failed studies is an error: one line naming the first, the rest are in sweep.json."""
    failed = [e for e in entries if e["status"] == "failed"]
    if failed:
        first = " ".join(str(failed[0]["error"]).split())
        raise InputError(f"{len(failed)} of {len(entries)} studies failed (see {out / SWEEP_JSON}); "
                         f"{failed[0]['name']}: {first} Then run the same command again: finished studies are "
                         "kept, only the others run.")


def _goal(study: Study):
    from .recommend import Goal

    return Goal(float(study.max_accuracy_drop), study.target, study.optimize, study.max_ram_kb, study.max_flash_kb)


def _write(sweep: Sweep, out: Path, entries: list[dict]) -> None:
    """sweep.json and index.html, each written whole (temporary name, then rename)."""
    doc = {"sweep": str(sweep.path), "studies": entries}
    write_file(out / SWEEP_JSON, (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode(), force=True)
    write_file(out / INDEX, index_html(sweep, entries).encode(), force=True)


# ---- the index page ----------------------------------------------------------------------------------

def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.2f} %"


def _size(n) -> str:
    return "" if n is None else f"{n / 1024:,.1f} KB"


def index_html(sweep: Sweep, entries: list[dict]) -> str:
    """One self-contained page: each study's recommendation side by side, linked to its report."""
    from ..report.report import CSS

    esc = html.escape
    head = ["study", "model", "data", "calib", "status", "recommended", "size", "accuracy", "drop (pp)",
            "agreement", "latency (ms)", "report"]
    rows = []
    for e in entries:
        spec, rec = e.get("spec", {}), e.get("recommendation") or {}
        status = e["status"] + (" (earlier run)" if e.get("resumed") else "")
        link = (f'<a href="{esc(e["folder"])}/report.html">report</a>' if e["status"] == "ok" else
                esc(e.get("error") or ""))
        cells = [esc(e["name"]), esc(Path(spec.get("model", "")).name), esc(Path(spec.get("data", "")).name),
                 esc(str(spec.get("calib_size") or "")), esc(status), esc(rec.get("technique") or
                 ("none within budget" if e["status"] == "ok" else "")), _size(rec.get("bytes")),
                 _pct(rec.get("accuracy")), "" if rec.get("drop_pp") is None else f"{rec['drop_pp']:.2f}",
                 _pct(rec.get("agreement")),
                 "" if rec.get("latency_ms") is None else f"{rec['latency_ms']:.3f}", link]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    done = sum(e["status"] == "ok" for e in entries)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>quantbench sweep: {esc(sweep.path.name)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        "<main>", f"<h1>Sweep {esc(sweep.path.name)}</h1>",
        f"<p>{done} of {len(entries)} studies finished. Each row is one study's recommendation: the technique "
        "to ship, its size, its accuracy and drop against the float model, its agreement with it, and its "
        "batch-1 median latency on the machine that ran the study.</p>",
        "<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>", *rows, "</table>",
        "</main>", "</body>", "</html>", ""])
