"""The command line: parse, call the API, print. Errors become one line and exit code 2."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Every TFLite (LiteRT) variant of a Keras model, measured honestly.")


# Options that demo and compare share: one definition each.
MAX_DROP = typer.Option(1.0, "--max-accuracy-drop", help="Accuracy budget, in points against the float model.")
TARGET = typer.Option("cpu", "--target", help="Where it will run: cpu, gpu, int-only or mcu (TFLite Micro).")
# Read as text so a bad value is quantbench's one-line error (recommend.budget_kb), not a usage panel.
MAX_RAM = typer.Option(None, "--max-ram", metavar="KB", help="--target mcu: tensor arena budget, KB (1,024 B).")
MAX_FLASH = typer.Option(None, "--max-flash", metavar="KB", help="--target mcu: model file budget, KB (1,024 B).")
OPTIMIZE = typer.Option("size", "--optimize", help="Among variants within budget: smallest (size) or fastest here "
                        "(latency).")
CALIB_SIZES = typer.Option(None, "--calib-sizes", help="e.g. 1,10,100,500: int8-only accuracy against calibration "
                           "samples.")
# Budgets whose defaults live in outputs.Budget (None here: the library's default)
MAX_ERROR = typer.Option(None, "--max-error-increase", metavar="PCT", help="Regression outputs: how much the MAE "
                         "may grow, in % of the float model's MAE (default 5).")
MIN_SQNR = typer.Option(None, "--min-sqnr", metavar="DB", help="Outputs judged by fidelity (no labels, or not "
                        "classes): the lowest SQNR against the float model, dB (default 30; the README says why).")
MIN_AGREEMENT = typer.Option(None, "--min-agreement", metavar="PCT", help="Class outputs without labels: the "
                             "lowest top-1 agreement with the float model, % (default 99).")
QUIET = typer.Option(False, "--quiet", help="No progress bars and no table.")
WORKERS = typer.Option(None, "--workers", help="Worker processes for conversions and evaluation (0: in this "
                       "process). Default: one per usable core for a model of 1 MB or more, 0 for smaller ones.")
RAY = typer.Option(None, "--ray", envvar="RAY_ADDRESS", help="Run the study's tasks on this Ray cluster "
                   "(ray://HOST:10001; host:port on a node; also RAY_ADDRESS). "
                   "Needs `pip install 'quantbench\\[ray]'`.")
AS_JSON = typer.Option(False, "--json", help="Print results.json on stdout.")
WIDE = typer.Option(False, "--wide", help="Every column of the report in the table (engine, p-values, agreement, "
                    "SQNR, throughput, p90/p99, memory), one line per row however wide.")
TIME_BUDGET = typer.Option(None, "--time-budget", min=0.0, help="Seconds for the timing (default 30; the demo 10); "
                           "it stops sooner once every median is known within ±3 %.")
MAX_MEMORY = typer.Option(None, "--max-memory", metavar="GiB", help="Memory the study's processes may hold in "
                          "all, GiB (default: half the memory available at the start, at most 3): workers start only "
                          "while they fit, and the timing holds only the interpreters that fit.")
MLFLOW = typer.Option(None, "--mlflow", metavar="[URI]", help="Log the study to MLflow: --mlflow alone uses "
                      "MLFLOW_TRACKING_URI, else sqlite:///mlflow.db; or --mlflow URI (sqlite:///..., http://...).")


def _version(value: bool) -> None:
    if value:
        from .core.version import __version__

        print(f"quantbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print quantbench's version and exit.")) -> None:
    """Every TFLite (LiteRT) variant of a Keras model, measured honestly.

    Add --debug anywhere for tracebacks and TensorFlow's own logs.
    """


def _sizes(text: str | None) -> list[int] | None:
    """'1,10,100' as numbers; the one parsing the CLI does itself."""
    if not text:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        from .core.errors import InputError

        raise InputError(f"--calib-sizes {text!r} is not a list of whole numbers. Expected e.g. 1,10,100,500. "
                         "Fix: pass comma-separated sample counts.") from None


def _console():
    """A rich Console on stdout: the terminal's width, COLUMNS when set, else 160 for a pipe or a log file."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # the fullest compact form, one line per row
    return console


def _show(results, as_json: bool, quiet: bool, wide: bool = False) -> None:
    from .report.report import print_table

    if as_json:
        print(results.to_json())
    elif not quiet:
        print_table(results, _console(), wide)


def _config(*, techniques, seed, threads, batch, qat_epochs, max_drop, target, optimize, max_ram, max_flash,
            max_error, min_sqnr, min_agreement, calib_sizes, workers, ray, time_budget, max_memory, force,
            max_metric_drop=None):
    """The StudyConfig (with its Goal) that `demo` and `compare` build once from the options they share."""
    from .study.config import StudyConfig
    from .study.recommend import Goal, budget_kb

    given = {k: v for k, v in (("max_error_increase_pct", max_error), ("min_sqnr_db", min_sqnr),
                                ("min_agreement_pct", min_agreement)) if v is not None}
    goal = Goal(max_drop, target, optimize, budget_kb(max_ram, "--max-ram"), budget_kb(max_flash, "--max-flash"),
                max_metric_drop=max_metric_drop, **given)
    return StudyConfig(techniques=techniques, goal=goal, seed=seed, threads=threads, batch=batch,
                       qat_epochs=qat_epochs, calib_sizes=_sizes(calib_sizes), time_budget=time_budget,
                       max_memory=_max_memory(max_memory), workers=workers, ray=ray, force=force)


# ---- --mlflow, shared by demo and compare (issue 13) ------------------------------------------------

def _tracking_check(mlflow: str | None) -> str | None:
    """The tracking URI when --mlflow was given ('' means the default), checked before any work starts."""
    if mlflow is None:
        return None
    import logging

    from .core.quiet import debug_enabled
    from .report.tracking import check

    uri = check(mlflow or None)  # imports mlflow, which sets its loggers up at import: quiet them after it
    if not debug_enabled():
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial MLflow database tables..."
    return uri


def _tracking_log(results, folder: Path, uri: str | None, quiet: bool) -> None:
    if uri is None:
        return
    from .report.tracking import log_study

    run_id = log_study(results, folder, uri)
    if not quiet:
        print(f"Logged to MLflow at {uri}: run {run_id} with {len(results.variants)} child runs", file=sys.stderr)


def _mlflow_argv(argv: list[str]) -> list[str]:
    """`--mlflow [URI]` as typer can parse it: `--mlflow=URI`, or `--mlflow=` (the default URI) when alone.

    typer has no options with an optional value. The word after --mlflow is its URI only when it has a
    scheme (sqlite:, http:, file:, ...), so `compare --mlflow model.keras` keeps model.keras as the model.
    """
    import re

    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return out + argv[i:]
        if arg == "--mlflow":
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            has_uri = re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", nxt) is not None  # two letters at least: not C:
            out.append(f"--mlflow={nxt if has_uri else ''}")
            i += 2 if has_uri else 1
            continue
        out.append(arg)
        i += 1
    return out

def _max_memory(value: str | None) -> float | None:
    """--max-memory in GiB, checked before any work (`memory.check`: one line, exit 2, when it is not a number)."""
    from .core.memory import check

    return None if value is None else check(value)


def _choices(results, quiet: bool) -> None:
    """One line each on the terminal for what quantbench chose that the command line did not say."""
    if not quiet:
        for c in results.choices:
            print(c["text"], file=sys.stderr)


def _workers_note(results, quiet: bool) -> None:
    """One line on the terminal when the memory budget let fewer workers run than were asked for."""
    mem = results.settings.get("memory") or {}
    asked, ran = mem.get("workers_asked") or 0, mem.get("workers_ran") or 0
    if not quiet and 0 < ran < asked:
        print(f"Ran {ran} of {asked} workers: more would not fit the memory budget of "
              f"{mem['budget_bytes'] / 2 ** 30:.1f} GiB (--max-memory), at the "
              f"{(mem.get('per_worker_bytes') or 0) / 2 ** 30:.1f} GiB a worker of this study reached.", file=sys.stderr)


# ---- end of --time-budget and --mlflow --------------------------------------------------------------


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the study (must be new or empty)."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Training epochs for the reference CNN."),
    seed: int = typer.Option(0, "--seed", help="Seed for training and calibration sampling."),
    calib_size: int = typer.Option(200, "--calib-size", help="Calibration samples, drawn from the training split."),
    techniques: Optional[str] = typer.Option(None, "--techniques", help="Comma-separated techniques, or 'all'."),
    threads: int = typer.Option(1, "--threads", min=1, help="LiteRT threads for timing."),
    batch: int = typer.Option(32, "--batch", min=1, help="Batch size for the throughput measurement."),
    qat_epochs: int = typer.Option(0, "--qat-epochs", min=0, help="Add the qat-int8 row: N epochs of QAT."),
    max_drop: float = MAX_DROP,
    target: str = TARGET,
    optimize: str = OPTIMIZE,
    max_ram: Optional[str] = MAX_RAM,
    max_flash: Optional[str] = MAX_FLASH,
    max_error: Optional[float] = MAX_ERROR,
    min_sqnr: Optional[float] = MIN_SQNR,
    min_agreement: Optional[float] = MIN_AGREEMENT,
    calib_sizes: Optional[str] = CALIB_SIZES,
    workers: Optional[int] = WORKERS,
    ray: Optional[str] = RAY,
    time_budget: Optional[float] = TIME_BUDGET,
    max_memory: Optional[str] = MAX_MEMORY,
    force: bool = typer.Option(False, "--force", help="Replace --out if it is a study quantbench wrote."),
    quiet: bool = QUIET,
    as_json: bool = AS_JSON,
    wide: bool = WIDE,
    mlflow: Optional[str] = MLFLOW,
):
    """Reproduce the reference experiment: digits CNN, every technique, one table.

    Example: quantbench demo --out runs/demo --epochs 10 --seed 0 --qat-epochs 3
    """
    from .core.progress import reporter
    from .study.pipeline import demo as run_demo

    config = _config(techniques=techniques, seed=seed, threads=threads, batch=batch, qat_epochs=qat_epochs,
                     max_drop=max_drop, target=target, optimize=optimize, max_ram=max_ram, max_flash=max_flash,
                     max_error=max_error, min_sqnr=min_sqnr, min_agreement=min_agreement, calib_sizes=calib_sizes,
                     workers=workers, ray=ray, time_budget=time_budget, max_memory=max_memory, force=force)
    uri = _tracking_check(mlflow)
    results = run_demo(out, config, epochs=epochs, calib_size=calib_size, reporter=reporter(quiet or as_json))
    _show(results, as_json, quiet, wide)
    _choices(results, quiet or as_json)
    _workers_note(results, quiet or as_json)
    _tracking_log(results, out, uri, quiet)
    if not (quiet or as_json):
        print(f"Wrote {out}/ (report.html, report.md, results.json, model.keras, one .tflite per technique)",
              file=sys.stderr)


@app.command()
def report(
    results_files: List[Path] = typer.Argument(..., metavar="RESULTS.json [B.json]",
                                               help="A study's results.json; two to compare them side by side."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the report (default: beside RESULTS.json; "
                                       "with two files, the comparison is printed and written only with --out)."),
    force: bool = typer.Option(False, "--force", help="Replace report files already in --out."),
    wide: bool = WIDE,
    quiet: bool = typer.Option(False, "--quiet", help="No table: write the report files only."),
):
    """Render report.md and report.html (with their plots) from a study's results.json alone, and print its
    table again; or, given two, print them side by side (accuracy and latency with their intervals, and whether
    those overlap). A file written by `quantbench bench --json` is printed as its table again.

    Examples: quantbench report runs/demo/results.json --out runs/demo-report
              quantbench report runs/before/results.json runs/after/results.json --out runs
              quantbench report bench.json
    """
    if len(results_files) > 1:
        from .report.comparison import side_by_side

        text, written = side_by_side(results_files, out, force=force)
        if not quiet:
            print(text)
        if written:
            print(f"Wrote {written}", file=sys.stderr)
        return
    from .core.files import wrote
    from .report.report import from_file

    written = from_file(results_files[0], out, force=force, console=None if quiet else _console(), wide=wide)
    if written:
        print(wrote(written), file=sys.stderr)


@app.command()
def compare(
    model: Path = typer.Argument(..., help="A .keras or .h5 file, or a SavedModel folder."),
    data: Path = typer.Option(..., "--data", help=".npz (x, optional y), .npy, or a folder of class sub-folders."),
    calib: Optional[Path] = typer.Option(None, "--calib", help="Calibration inputs; default: a seeded split of --data."),
    techniques: Optional[str] = typer.Option(None, "--techniques", help="Comma-separated techniques, or 'all'."),
    out: Optional[Path] = typer.Option(None, "--out", help="Study folder (default runs/<model name>)."),
    calib_size: Optional[int] = typer.Option(None, "--calib-size", help="Calibration samples (default up to 200)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the calibration split."),
    x_key: str = typer.Option("x", "--x-key", help="Name of the input array in the .npz."),
    y_key: str = typer.Option("y", "--y-key", help="Name of the label array in the .npz; y_<output name> labels "
                              "one output (with --y-key labels: labels_<output name>)."),
    task: Optional[List[str]] = typer.Option(None, "--task", metavar="OUTPUT=KIND", help="Score an output as "
                                             "classes, binary, multilabel, regression or fidelity (repeatable); "
                                             "default: inferred from its labels and values."),
    output: Optional[str] = typer.Option(None, "--output", metavar="NAME[,NAME]", help="Score only these "
                                         "outputs (the others are shown, not judged)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Decision threshold of binary and "
                                              "multi-label outputs (default 0.5 for probabilities, 0 for logits)."),
    metric: Optional[str] = typer.Option(None, "--metric", metavar="MODULE:FUNCTION", help="Your own metric: "
                                         "f(labels, outputs) -> number, higher is better, both dicts by output "
                                         "name; held to --max-metric-drop."),
    max_metric_drop: Optional[float] = typer.Option(None, "--max-metric-drop", help="How far --metric may fall "
                                                    "below the float model's, in its own units."),
    threads: int = typer.Option(1, "--threads", min=1, help="LiteRT threads for timing."),
    batch: int = typer.Option(32, "--batch", min=1, help="Batch size for the throughput measurement."),
    qat_epochs: int = typer.Option(0, "--qat-epochs", min=0,
                                   help="Add the qat-int8 row: N epochs of QAT on the calibration samples."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Allow Lambda layers (runs the file's Python code)."),
    max_drop: float = MAX_DROP,
    target: str = TARGET,
    optimize: str = OPTIMIZE,
    max_ram: Optional[str] = MAX_RAM,
    max_flash: Optional[str] = MAX_FLASH,
    max_error: Optional[float] = MAX_ERROR,
    min_sqnr: Optional[float] = MIN_SQNR,
    min_agreement: Optional[float] = MIN_AGREEMENT,
    calib_sizes: Optional[str] = CALIB_SIZES,
    workers: Optional[int] = WORKERS,
    ray: Optional[str] = RAY,
    time_budget: Optional[float] = TIME_BUDGET,
    max_memory: Optional[str] = MAX_MEMORY,
    force: bool = typer.Option(False, "--force", help="Replace --out if it is a study quantbench wrote."),
    quiet: bool = QUIET,
    as_json: bool = AS_JSON,
    wide: bool = WIDE,
    mlflow: Optional[str] = MLFLOW,
):
    """Study your model on your data: every technique, measured, one table.

    Example: quantbench compare model.keras --data test.npz --calib train.npz --out runs/mine
    """
    from .core.progress import reporter
    from .measure.outputs import TaskSpec, load_metric, parse_tasks
    from .study.pipeline import compare as run_compare, study_folder

    config = _config(techniques=techniques, seed=seed, threads=threads, batch=batch, qat_epochs=qat_epochs,
                     max_drop=max_drop, target=target, optimize=optimize, max_ram=max_ram, max_flash=max_flash,
                     max_error=max_error, min_sqnr=min_sqnr, min_agreement=min_agreement, calib_sizes=calib_sizes,
                     workers=workers, ray=ray, time_budget=time_budget, max_memory=max_memory, force=force,
                     max_metric_drop=max_metric_drop)
    spec = TaskSpec(parse_tasks(task), threshold, tuple(n.strip() for n in output.split(",") if n.strip())
                    if output else None)
    fn = None if metric is None else (load_metric(metric), metric)
    uri = _tracking_check(mlflow)
    results = run_compare(model, data, calib, out, config, calib_size=calib_size, x_key=x_key, y_key=y_key,
                          unsafe=unsafe, spec=spec, metric=fn, reporter=reporter(quiet or as_json))
    _show(results, as_json, quiet, wide)
    _choices(results, quiet or as_json)
    _workers_note(results, quiet or as_json)
    _tracking_log(results, study_folder(model, out), uri, quiet)
    if not (quiet or as_json):
        print(f"Wrote {study_folder(model, out)}/ (report.html, report.md, results.json, one .tflite per technique"
              + (", recommended.tflite" if (results.recommendation or {}).get("technique") else "") + ")",
              file=sys.stderr)


@app.command()
def sweep(
    sweep_file: Path = typer.Argument(..., metavar="SWEEP.toml",
                                      help="The sweep: \\[models], \\[data] and settings (see the README)."),
    workers: Optional[int] = WORKERS,
    ray: Optional[str] = RAY,
    out: Optional[Path] = typer.Option(None, "--out", help="Sweep folder (default: the file's `out`, else "
                                       "runs/<file name>)."),
    force: bool = typer.Option(False, "--force", help="Redo every study, replacing the folders quantbench wrote."),
    quiet: bool = QUIET,
    mlflow: Optional[str] = typer.Option(None, "--mlflow", metavar="[URI]", help="Log each finished study to "
                                         "MLflow (URI as for compare); a study sweep.json records as logged to the "
                                         "same URI by an earlier run is not logged again."),
):
    """Run models × data × calibration sizes as many studies, one after the other; resumable.

    Writes one study folder each, sweep.json and index.html (the recommendations side by side). Run the same
    command again after a stop: finished studies are kept. The file's format is in the README.

    Example: quantbench sweep sweep.toml --out runs/sweep
    """
    from .core.progress import reporter
    from .study.config import StudyConfig
    from .study.sweep import check, run_sweep

    uri = _tracking_check(mlflow)

    def started(study, entry):
        if not quiet:
            print(f"study {study.name}", file=sys.stderr)

    folder, entries = run_sweep(sweep_file, out, StudyConfig(workers=workers, ray=ray, force=force),
                                reporter=reporter(quiet), on_study=started)
    if not quiet:
        for e in entries:
            rec = (e.get("recommendation") or {}).get("technique") or ""
            print(f"{e['name']:<32} {e['status']:<8} {rec}")
    if uri is not None:
        from .study.sweep import log_studies

        said = log_studies(folder, entries, uri)
        if not quiet:
            print(said, file=sys.stderr)
    if not quiet:
        print(f"Wrote {folder}/ (index.html, sweep.json, one folder per study)", file=sys.stderr)
    check(folder, entries)


@app.command("convert")
def convert_cmd(
    model: Path = typer.Argument(..., help="A .keras or .h5 file, or a SavedModel folder."),
    technique: str = typer.Option(..., "--technique", "-t", help="One technique name (see `quantbench techniques`)."),
    output: Path = typer.Option(..., "-o", "--output", help="The .tflite file to write."),
    calib: Optional[Path] = typer.Option(None, "--calib", help="Calibration inputs, for techniques that need them."),
    calib_size: int = typer.Option(200, "--calib-size", help="Calibration samples drawn from --calib."),
    seed: int = typer.Option(0, "--seed", help="Seed for drawing calibration samples."),
    x_key: str = typer.Option("x", "--x-key", help="Name of the input array in the .npz."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Allow Lambda layers (runs the file's Python code)."),
    force: bool = typer.Option(False, "--force", help="Replace -o if it exists."),
):
    """Make one variant.

    Example: quantbench convert model.keras -t int8-only --calib train.npz -o model-int8.tflite
    """
    from .api import convert_file

    conv = convert_file(model, technique, output, calib, calib_size=calib_size, seed=seed, x_key=x_key,
                        unsafe=unsafe, force=force)
    print(f"Wrote {output} ({len(conv.content):,} bytes, {conv.technique}, {conv.seconds:.2f} s)")


@app.command("inspect")
def inspect_cmd(model: Path = typer.Argument(..., help="A .tflite file."),
                mcu: bool = typer.Option(False, "--mcu", help="Also run it on TFLite Micro: runs?, RAM, flash, "
                                         "agreement with LiteRT on generated inputs.")):
    """Show a .tflite file's inputs, outputs, ops, and which ops run in float or integer.

    Example: quantbench inspect runs/demo/int8-only.tflite --mcu
    """
    from .inputs.inspection import inspect, render

    print(render(inspect(model)))
    if mcu:
        from .measure import mcu as micro

        print(micro.render(micro.inspect_file(model)))


@app.command()
def predict(
    model: Path = typer.Argument(..., help="A .tflite file."),
    input: Path = typer.Option(..., "--input", help=".npy inputs, or .npz with x (x_<name> per input)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Save outputs: .npy (one output) or .npz."),
    top: int = typer.Option(3, "--top", min=1, help="Classes to show per sample for class outputs."),
    force: bool = typer.Option(False, "--force", help="Replace -o if it exists."),
):
    """Run a .tflite file on float inputs; outputs come back dequantized.

    Example: quantbench predict runs/demo/int8-only.tflite --input x.npy -o probs.npy
    """
    from .api import predict_file, render

    result = predict_file(model, input, output, force=force)
    print(render(result, top=top, saved=output))
    if result.delegate_fallback:  # issue 10: the model ran, but not on the kernels a deployment would use
        print(f"quantbench: note: XNNPACK refused {model} ({result.delegate_fallback}); it ran on LiteRT's "
              "built-in kernels instead.", file=sys.stderr)


# ---- quantbench bench (issue 13) ----------------------------------------------------------------

@app.command("bench")
def bench_cmd(
    files: list[Path] = typer.Argument(..., metavar="FILE.tflite...", help="One or more .tflite files."),
    input: Optional[Path] = typer.Option(None, "--input", help="Inputs for every file: .npy, or .npz with x "
                                         "(x_<name> per input). Default: generated from each file's signature."),
    threads: int = typer.Option(1, "--threads", min=1, help="LiteRT threads."),
    batch: int = typer.Option(32, "--batch", min=1, help="Batch size for throughput (lowered to fit 64 MiB)."),
    time_budget: float = typer.Option(30.0, "--time-budget", min=0.0, help="Seconds for all the timing; it stops "
                                      "sooner once every median is known within ±3 %."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON to this file "
                                            "('-' for stdout)."),
    force: bool = typer.Option(False, "--force", help="Replace the --json file if it exists."),
    quiet: bool = QUIET,
):
    """Time .tflite files side by side, interleaved: median latency with its 95 % interval, p90/p99, throughput.

    Example: quantbench bench runs/demo/*.tflite --threads 1 --json bench.json
    """
    from .api import bench_files, check_json_out
    from .core.files import write_file
    from .core.progress import reporter
    from .report.text import render

    if json_out is not None and str(json_out) != "-":
        check_json_out(json_out, force)  # before the timing, not after
    result = bench_files(files, input, threads=threads, batch=batch, time_budget=time_budget,
                         reporter=reporter(quiet or str(json_out) == "-"))
    if str(json_out) == "-":
        print(result.to_json())
        return
    if not quiet:
        print(render(result))
    if json_out is not None:
        write_file(json_out, (result.to_json() + "\n").encode(), force=force)
        if not quiet:
            print(f"Wrote {json_out}", file=sys.stderr)

# ---- end of quantbench bench ---------------------------------------------------------------------


@app.command()
def techniques():
    """List the techniques quantbench knows, and which ones `compare` runs by default for each --target."""
    from .report.report import techniques_table

    console = _console()
    table, notes = techniques_table()
    console.print(table)
    for line in notes:
        console.print(line, highlight=False, markup=False)


@app.command("qat")
def qat_command(
    model: Path = typer.Argument(..., help="Trained model: .keras (Keras 3) or .h5 (legacy tf_keras)."),
    data_file: Path = typer.Option(..., "--data", help="Training data: .npz with x and, optionally, y."),
    out: Path = typer.Option(..., "-o", "--out", help="The .tflite file to write."),
    epochs: int = typer.Option(3, "--epochs", min=1, help="Fine-tuning epochs."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation data (.npz), reported each epoch."),
    learning_rate: float = typer.Option(1e-4, "--learning-rate", min=0.0, help="Adam learning rate."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Samples per training step."),
    seed: int = typer.Option(0, "--seed", help="Seed for the fine-tuning: its shuffling and sampling."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Load a .keras file that contains Python code."),
    force: bool = typer.Option(False, "--force", help="Replace -o if it exists."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
):
    """Quantization-aware training: fine-tune with int8 simulated, write an integer-only int8 .tflite.

    Without y in --data, the model learns from its own float outputs (distillation).

    Example: quantbench qat model.keras --data train.npz --epochs 3 -o model_int8.tflite
    """
    from .api import qat_file
    from .core.progress import reporter

    result = qat_file(model, data_file, out, epochs=epochs, val=val, batch_size=batch_size, seed=seed,
                      learning_rate=learning_rate, unsafe=unsafe, force=force, reporter=reporter(quiet))
    for name, reason in result.float_layers:
        print(f"left in float during training: {name}: {reason}", file=sys.stderr)
    if not quiet:
        print(f"Wrote {out} ({len(result.content):,} bytes, integer-only int8, int8 input and output; "
              f"{result.engine}, {result.seconds:.1f} s; learned from {result.learned_from})", file=sys.stderr)

@contextlib.contextmanager
def _warnings_as_lines():
    """quantbench's own warnings (an unused array...) as one line each on stderr; others as Python shows them."""
    import warnings

    from .core.errors import QuantbenchWarning

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, QuantbenchWarning):
                print(f"quantbench: warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        warnings.simplefilter("always", QuantbenchWarning)
        yield


def main(argv: list[str] | None = None) -> int:
    """Entry point: `--debug` anywhere shows tracebacks and TensorFlow's own logs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:
        argv.remove("--debug")
        os.environ["QUANTBENCH_DEBUG"] = "1"
    argv = _mlflow_argv(argv)  # --mlflow with an optional value (issue 13)
    from .core.errors import QuantbenchError
    from .core.quiet import configure, debug_enabled, restore

    configure()
    from .core import errors
    from .core.errors import Interrupted, interrupt

    errors.pending = None
    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # typer handles usage errors itself (message and exit code 2) and exits through SystemExit
        with _warnings_as_lines():
            app(args=argv, prog_name="quantbench")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Interrupted as exc:
        restore()
        print(f"quantbench: interrupted ({exc}); unfinished output removed", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        restore()
        print("quantbench: interrupted; unfinished output removed", file=sys.stderr)
        return 130
    except QuantbenchError as exc:
        restore()
        if debug_enabled():
            raise
        print(f"quantbench: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # an unexpected failure: say so in one line, traceback with --debug
        restore()
        if errors.pending is not None and not debug_enabled():
            # the signal's Interrupted was raised inside a library's cleanup, whose `finally` failed on the state
            # the interrupt left (seen once in TensorFlow: a TypeError replaced it): the signal is the cause
            print(f"quantbench: interrupted ({errors.pending}); unfinished output removed", file=sys.stderr)
            return errors.pending.exit_code
        if debug_enabled():
            raise
        print(f"quantbench: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
              " (run again with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        errors.pending = None  # a caller's next in-process study (the Python API) must not see this signal
    return 0


def run() -> None:
    code = main()
    if code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        # Interrupted, and the unfinished output already removed: end now. The interpreter's own teardown (TF's
        # and Keras's atexit work, thread joins) takes 1.7-2.3 s more on 2 cores, past the 2 s a stop may take.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
