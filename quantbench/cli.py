"""The command line: parse, call the API, print. Errors become one line and exit code 2."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Every TFLite (LiteRT) variant of a Keras model, measured honestly.")


@app.callback()
def _root() -> None:
    """Every TFLite (LiteRT) variant of a Keras model, measured honestly.

    Add --debug anywhere for tracebacks and TensorFlow's own logs.
    """


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


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the study (must be new or empty)."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Training epochs for the reference CNN."),
    seed: int = typer.Option(0, "--seed", help="Seed for training and calibration sampling."),
    calib_size: int = typer.Option(200, "--calib-size", help="Calibration samples, drawn from the training split."),
    techniques: Optional[str] = typer.Option(None, "--techniques", help="Comma-separated techniques, or 'all'."),
    threads: int = typer.Option(1, "--threads", min=1, help="LiteRT threads for timing."),
    qat_epochs: int = typer.Option(0, "--qat-epochs", min=0, help="Add the qat-int8 row: N epochs of QAT."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars and no table."),
    as_json: bool = typer.Option(False, "--json", help="Print results.json on stdout."),
):
    """Reproduce the reference experiment: digits CNN, every technique, one table.

    Example: quantbench demo --out runs/demo --epochs 10 --seed 0 --qat-epochs 3
    """
    from .progress import reporter
    from .study import demo as run_demo

    results = run_demo(out=out, epochs=epochs, seed=seed, calib_size=calib_size, force=force,
                       techniques=techniques, threads=threads, reporter=reporter(quiet or as_json),
                       qat_epochs=qat_epochs)
    _show(results, as_json, quiet)
    if not (quiet or as_json):
        print(f"Wrote {out}/ (results.json, model.keras and one .tflite per technique)", file=sys.stderr)


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
    import warnings

    from .files import check_new_file
    from .progress import reporter
    from .qat import _load_model_file, _load_npz, qat

    check_new_file(out, force)  # fail before training, not after
    # Stand-ins until main's models.load_model / data.load_data are merged (lead: swap these two calls).
    keras_model = _load_model_file(model, unsafe)
    x, y = _load_npz(data_file)
    validation = _load_npz(val) if val else None
    if validation is not None and validation[1] is None:
        validation = validation[0]
    bar = reporter(quiet)
    with bar.task("Fine-tuning (QAT)", epochs) as advance, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float layers are listed below, once, in our words
        result = qat(keras_model, x, y, epochs=epochs, batch_size=batch_size, validation=validation, seed=seed,
                     learning_rate=learning_rate,
                     on_epoch=lambda e, logs: advance(note=" ".join(
                         f"{k} {logs[k]:.4f}" for k in ("loss", "accuracy", "agreement", "val_accuracy") if k in logs)))
    result.save(out, force)
    for name, reason in result.float_layers:
        print(f"left in float during training: {name}: {reason}", file=sys.stderr)
    if not quiet:
        print(f"Wrote {out} ({len(result.content)} bytes, integer-only int8, int8 input and output; "
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
