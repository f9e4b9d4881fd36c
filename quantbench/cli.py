"""The command line: parse, call the API, print. Errors become one line and exit code 2."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Every TFLite (LiteRT) variant of a Keras model, measured honestly.")


# Options that demo and compare share: one definition each.
MAX_DROP = typer.Option(1.0, "--max-accuracy-drop", help="Accuracy budget, in points against the float model.")
TARGET = typer.Option("cpu", "--target", help="Where it will run: cpu, gpu or int-only.")
OPTIMIZE = typer.Option("size", "--optimize", help="Among variants within budget: smallest (size) or fastest here "
                        "(latency).")
CALIB_SIZES = typer.Option(None, "--calib-sizes", help="e.g. 1,10,100,500: int8-only accuracy against calibration "
                           "samples.")
QUIET = typer.Option(False, "--quiet", help="No progress bars and no table.")
AS_JSON = typer.Option(False, "--json", help="Print results.json on stdout.")


@app.callback()
def _root() -> None:
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
        from .errors import InputError

        raise InputError(f"--calib-sizes {text!r} is not a list of whole numbers. Expected e.g. 1,10,100,500. "
                         "Fix: pass comma-separated sample counts.") from None


def _show(results, as_json: bool, quiet: bool) -> None:
    from rich.console import Console

    from .report import rich_table

    if as_json:
        print(results.to_json())
    elif not quiet:
        console = Console()
        if not console.is_terminal:
            console.width = 160  # a pipe or a log file: keep the whole table on one line per row
        console.print(rich_table(results))
        if results.recommendation:
            console.print(results.recommendation["summary"], highlight=False)


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
    calib_sizes: Optional[str] = CALIB_SIZES,
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    quiet: bool = QUIET,
    as_json: bool = AS_JSON,
):
    """Reproduce the reference experiment: digits CNN, every technique, one table.

    Example: quantbench demo --out runs/demo --epochs 10 --seed 0 --qat-epochs 3
    """
    from .progress import reporter
    from .recommend import Goal
    from .study import demo as run_demo

    results = run_demo(out=out, epochs=epochs, seed=seed, calib_size=calib_size, force=force,
                       techniques=techniques, threads=threads, batch=batch, qat_epochs=qat_epochs,
                       goal=Goal(max_drop, target, optimize), calib_sizes=_sizes(calib_sizes),
                       reporter=reporter(quiet or as_json))
    _show(results, as_json, quiet)
    if not (quiet or as_json):
        print(f"Wrote {out}/ (report.html, report.md, results.json, model.keras, one .tflite per technique)",
              file=sys.stderr)


@app.command()
def report(
    results_file: Path = typer.Argument(..., metavar="RESULTS.json", help="A study's results.json."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the report (default: beside RESULTS.json)."),
    force: bool = typer.Option(False, "--force", help="Replace report files already in --out."),
):
    """Render report.md and report.html (with their plots) from a study's results.json alone.

    Example: quantbench report runs/demo/results.json --out runs/demo-report
    """
    from .report import write
    from .results import Results

    results = Results.load(results_file)
    written = write(results, out or results_file.parent, force=force)
    print(f"Wrote {', '.join(str(p) for p in written)}", file=sys.stderr)


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
    y_key: str = typer.Option("y", "--y-key", help="Name of the label array in the .npz."),
    threads: int = typer.Option(1, "--threads", min=1, help="LiteRT threads for timing."),
    batch: int = typer.Option(32, "--batch", min=1, help="Batch size for the throughput measurement."),
    qat_epochs: int = typer.Option(0, "--qat-epochs", min=0,
                                   help="Add the qat-int8 row: N epochs of QAT on the calibration samples."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Allow Lambda layers (runs the file's Python code)."),
    max_drop: float = MAX_DROP,
    target: str = TARGET,
    optimize: str = OPTIMIZE,
    calib_sizes: Optional[str] = CALIB_SIZES,
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    quiet: bool = QUIET,
    as_json: bool = AS_JSON,
):
    """Study your model on your data: every technique, measured, one table.

    Example: quantbench compare model.keras --data test.npz --calib train.npz --out runs/mine
    """
    from .progress import reporter
    from .recommend import Goal
    from .study import compare as run_compare

    results = run_compare(model, data, calib, techniques, out, calib_size=calib_size, seed=seed, x_key=x_key,
                          y_key=y_key, unsafe=unsafe, force=force, threads=threads, batch=batch,
                          qat_epochs=qat_epochs, goal=Goal(max_drop, target, optimize),
                          calib_sizes=_sizes(calib_sizes), reporter=reporter(quiet or as_json))
    _show(results, as_json, quiet)


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
    from .study import convert_file

    conv = convert_file(model, technique, output, calib, calib_size=calib_size, seed=seed, x_key=x_key,
                        unsafe=unsafe, force=force)
    print(f"Wrote {output} ({len(conv.content):,} bytes, {conv.technique}, {conv.seconds:.2f} s)")


@app.command("inspect")
def inspect_cmd(model: Path = typer.Argument(..., help="A .tflite file.")):
    """Show a .tflite file's inputs, outputs, ops, and which ops run in float or integer.

    Example: quantbench inspect runs/demo/int8-only.tflite
    """
    from .inspection import inspect, render

    print(render(inspect(model)))


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
    from .predicting import predict_file, render

    result = predict_file(model, input, output, force=force)
    print(render(result, top=top, saved=output))
    if result.delegate_fallback:  # issue 10: the model ran, but not on the kernels a deployment would use
        print(f"quantbench: note: XNNPACK refused {model} ({result.delegate_fallback}); it ran on LiteRT's "
              "built-in kernels instead.", file=sys.stderr)


@app.command()
def techniques():
    """List the techniques quantbench knows."""
    from .techniques import get, names

    for name in names():
        t = get(name)
        print(f"{name:<16} {t.engine:<17} {t.summary}")


@app.command("qat")
def qat_command(
    model: Path = typer.Argument(..., help="Trained model: .keras (Keras 3) or .h5 (legacy tf_keras)."),
    data_file: Path = typer.Option(..., "--data", help="Training data: .npz with x and, optionally, y."),
    out: Path = typer.Option(..., "-o", "--out", help="The .tflite file to write."),
    epochs: int = typer.Option(3, "--epochs", min=1, help="Fine-tuning epochs."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation data (.npz), reported each epoch."),
    learning_rate: float = typer.Option(1e-4, "--learning-rate", min=0.0, help="Adam learning rate."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed"),
    unsafe: bool = typer.Option(False, "--unsafe", help="Load a .keras file that contains Python code."),
    force: bool = typer.Option(False, "--force", help="Replace -o if it exists."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
):
    """Quantization-aware training: fine-tune with int8 simulated, write an integer-only int8 .tflite.

    Without y in --data, the model learns from its own float outputs (distillation).

    Example: quantbench qat model.keras --data train.npz --epochs 3 -o model_int8.tflite
    """
    from .progress import reporter
    from .qat import qat_file

    keys = ("loss", "accuracy", "agreement", "val_accuracy")
    with reporter(quiet).task("Fine-tuning (QAT)", epochs) as advance:
        result = qat_file(model, data_file, out, epochs=epochs, val=val, batch_size=batch_size, seed=seed,
                          learning_rate=learning_rate, unsafe=unsafe, force=force,
                          on_epoch=lambda e, logs: advance(note=" ".join(f"{k} {logs[k]:.4f}" for k in keys if k in logs)))
    for name, reason in result.float_layers:
        print(f"left in float during training: {name}: {reason}", file=sys.stderr)
    if not quiet:
        print(f"Wrote {out} ({len(result.content):,} bytes, integer-only int8, int8 input and output; "
              f"{result.engine}, {result.seconds:.1f} s)", file=sys.stderr)

def main(argv: list[str] | None = None) -> int:
    """Entry point: `--debug` anywhere shows tracebacks and TensorFlow's own logs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:
        argv.remove("--debug")
        os.environ["QUANTBENCH_DEBUG"] = "1"
    from .errors import QuantbenchError
    from .quiet import configure, debug_enabled

    configure()
    try:
        # typer handles usage errors itself (message and exit code 2) and exits through SystemExit
        app(args=argv, prog_name="quantbench")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        print("quantbench: interrupted", file=sys.stderr)
        return 130
    except QuantbenchError as exc:
        if debug_enabled():
            raise
        print(f"quantbench: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # an unexpected failure: say so in one line, traceback with --debug
        if debug_enabled():
            raise
        print(f"quantbench: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
              " (run again with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    sys.exit(main())
