"""The results of a study: frozen dataclasses with one JSON round trip; reports read only these."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputError
from ..core.names import Name
from .bench_file import BenchResult
from .schema import results_problem

REFERENCE = "keras"   # the row of the Keras model itself: fidelity is measured against it
BASELINE = "float32"  # the row accuracy changes are tested against, paired


class Status(Name):
    """A row's outcome; results.json keeps the value."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Variant:
    """One row of the study: a technique's model and its measurements."""

    technique: str
    engine: str
    status: Status                   # ok, failed or skipped (results.json: the string)
    error: str | None = None
    path: str | None = None          # relative to the study folder
    bytes: int | None = None
    input_dtype: str | None = None
    output_dtype: str | None = None
    accuracy: float | None = None    # fraction 0..1, when labels exist
    accuracy_ci: list | None = None  # [lo, hi], 95 % Wilson interval of accuracy
    drop_ci_pp: list | None = None   # [lo, hi], 95 % interval of the accuracy drop against the float model, paired
    accuracy_delta_pp: float | None = None  # percentage points against float32
    p_vs_float32: float | None = None  # exact McNemar p-value, paired against float32
    top5: float | None = None        # when the model has more than 5 classes
    agreement: float | None = None   # top-1 agreement with the float model (first output, when classes)
    sqnr_db: float | None = None     # output SQNR against the float model; None if identical (infinite)
    kl: float | None = None          # mean KL(float || variant) in nats, when outputs are probabilities
    fidelity: list | None = None     # per output: {"output", "agreement", "sqnr_db", "max_abs_err"}
    # per output, scored by its task (outputs.score): {"output", "task", "labels", "metric", "value", "ci",
    # "reference", "loss", "loss_ci", "p", ...}; the last row is a user's own metric ("output": "*") when given
    outputs: list | None = None
    latency_ms: dict | None = None   # batch 1: {"median", "ci95": [lo, hi], "p90", "p99", "n", "quantiles"}
    throughput: dict | None = None   # {"batch", "samples_per_s", "ci95": [lo, hi], "n"}
    convert_s: float | None = None
    mcu: dict | None = None          # on TFLite Micro (--target mcu): quantbench.measure.mcu.Facts as a dict
    xnnpack_refused: str | None = None  # XNNPACK's reason when the timing ran on LiteRT's built-in kernels
    # bytes its interpreter holds at the evaluation batch (runtime.LiteModel.memory_bytes: the file plus every
    # tensor's bytes); the Keras row: the RSS its load and first predict added
    memory_bytes: int | None = None

    def __post_init__(self):
        try:
            object.__setattr__(self, "status", Status(self.status))
        except ValueError:  # a damaged file's other value: the schema's check names it
            pass

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


@dataclass(frozen=True)
class Results:
    quantbench_version: str
    model: dict
    data: dict
    machine: dict
    settings: dict
    variants: list[Variant] = field(default_factory=list)
    recommendation: dict | None = None  # recommend.Recommendation as a dict, with the decision tree
    studies: dict = field(default_factory=dict)  # "layer_errors", "selective", "calibration_sizes"
    # the float model's outputs that cannot tell variants apart: [{"output", "why"}] (evaluate.degenerate)
    degenerate_outputs: list = field(default_factory=list)
    # what quantbench chose that the command line did not say, one line each: [{"choice", "text"}] (issue 24;
    # absent from files written before it, read as [])
    choices: list = field(default_factory=list)

    def variant(self, technique: str) -> Variant:
        for v in self.variants:
            if v.technique == technique:
                return v
        raise KeyError(f"No variant {technique!r} in these results; have {[v.technique for v in self.variants]}.")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, allow_nan=False)  # strict JSON only

    @classmethod
    def from_json(cls, text: str) -> "Results":
        return cls._from_dict(json.loads(text))

    @classmethod
    def _from_dict(cls, raw: dict) -> "Results":
        raw = dict(raw)
        known = {f.name for f in dataclasses.fields(Variant)}
        variants = [Variant(**{k: v for k, v in row.items() if k in known}) for row in raw.pop("variants")]
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in fields}, variants=variants)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        """Read a results.json; a missing, non-JSON or non-quantbench file is an InputError."""
        path = Path(path)
        raw = read_json(path)
        if is_bench(raw):
            raise InputError(f"{path} is a `quantbench bench` file, not a study's results.json. {EXPECTED}. Fix: "
                             f"pass a study's results.json; `quantbench report {path}` alone prints the bench's table.")
        return cls._checked(raw, path)

    @classmethod
    def _checked(cls, raw, path: Path) -> "Results":
        top = [f.name for f in dataclasses.fields(cls) if f.name not in ("recommendation", "studies",
                                                                       "degenerate_outputs", "choices")]
        row_keys = [f.name for f in dataclasses.fields(Variant) if f.default is dataclasses.MISSING]
        missing = [k for k in top if k not in raw] if isinstance(raw, dict) else top
        bad_rows = not missing and not (isinstance(raw["variants"], list) and all(
            isinstance(row, dict) and all(k in row for k in row_keys) for row in raw["variants"]))
        if missing or bad_rows:
            what = f"it lacks {', '.join(map(repr, missing))}" if missing else \
                f"'variants' is not a list of rows each with {', '.join(map(repr, row_keys))}"
            raise InputError(f"{path} is JSON but not quantbench results: {what}. "
                             f"{EXPECTED}, an object with {', '.join(map(repr, top))}. {FIX}")
        found = results_problem(raw)
        if found:
            raise InputError(f"{path} is not a results.json quantbench can read: {found}. Fix: restore the file "
                             "as quantbench wrote it, or run the study again.")
        return cls._from_dict(raw)


EXPECTED = "Expected a results.json written by quantbench"
FIX = "Fix: pass the results.json of a quantbench study (e.g. runs/demo/results.json)."


def read_json(path: Path):
    """The parsed JSON of a file `quantbench report` reads; a missing or non-JSON file is an InputError."""
    if not path.is_file():
        raise InputError(f"No results file at {path}. {EXPECTED}. {FIX}")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not JSON ({str(exc).splitlines()[0]}). {EXPECTED}. {FIX}") from None


def is_bench(raw) -> bool:
    """Whether parsed JSON is what `quantbench bench --json` writes (its files, no variants)."""
    return isinstance(raw, dict) and "files" in raw and "variants" not in raw


def load_saved(path: str | Path):
    """A study's results.json as Results, or a `quantbench bench --json` file as a BenchResult."""
    path = Path(path)
    raw = read_json(path)
    return BenchResult.checked(raw, path) if is_bench(raw) else Results._checked(raw, path)
