"""What a results.json read from disk must hold before a report reads it: types, ranges, intervals.

A hand-edited or damaged file is the user's input: its first problem is one line (where, what it is,
what was expected), never an error deep inside a plot. The specs below say what the reports read.
A spec is a kind ("num", "int", "frac" (0..1), "str", "bool", "pair" ([lo, hi], lo <= hi), "any"), `!`
after a kind for a field that must be present and not null, a one-element list for "a list of", or a
dict for an object whose listed fields are checked (others are kept, unread). A list or an object may be
absent but not null, unless wrapped in Maybe; wrapped in Required, it must be present.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

QUANTILES = ("0", "1", "5", "10", "25", "50", "75", "90", "95", "99", "100")  # bench.QUANTILES, as JSON keys


@dataclass(frozen=True)
class Maybe:
    """A list or object spec whose value may also be null."""

    spec: object


@dataclass(frozen=True)
class Required:
    """A list or object spec whose value must be present and not null."""

    spec: object


WORDS = {"num": "a finite number", "int": "a whole number", "frac": "a number from 0 to 1", "str": "text",
         "bool": "true or false", "pair": "[low, high], two numbers with low <= high", "any": "a value"}
LATENCY = {"median": "num!", "ci95": "pair", "p90": "num!", "p99": "num!", "n": "int", "batch": "int",
           "stopped": "str", "quantiles": {q: "num!" for q in QUANTILES}, "group": "int",
           "vs_float32": Maybe({"median": "num!", "ci95": "pair"})}
THROUGHPUT = {"batch": "int!", "samples_per_s": "num!", "ci95": "pair", "n": "int", "batch_asked": "int",
              "stopped": "str"}
VERDICT = {"output": "str!", "task": "str!", "criterion": "str!", "passed": "bool!", "uncertain": "bool",
           "figure": "str", "reach": "str"}
MCU = {"runs": "bool!", "reason": "str", "arena_bytes": "int", "flash_bytes": "int!", "samples": "int",
       "accuracy": "frac", "agreement_litert": "frac", "agreement_float": "frac", "max_diff_steps": "num",
       "wrong": "bool", "arena_probes": ["any"], "arena_short": "str", "gate": [VERDICT]}
OUTPUT = {"output": "str!", "task": "str!", "metric": "str!", "labels": "bool", "value": "num", "ci": "pair",
          "reference": "num", "loss": "num", "loss_ci": "pair", "p": "frac", "n": "int", "hits": "int",
          "reference_hits": "int", "agreement": "frac", "agreements": "int", "sqnr_db": "num", "cosine": "num",
          "max_abs_err": "num", "top5": "frac", "auc": "frac", "rmse": "num", "threshold": "num", "scored": "bool",
          "error_sum": "num", "reference_error_sum": "num", "name": "str"}
VARIANT = {"technique": "str!", "engine": "str!", "status": "str!", "error": "str", "path": "str", "bytes": "int",
           "input_dtype": "str", "output_dtype": "str", "accuracy": "frac", "accuracy_ci": "pair",
           "drop_ci_pp": "pair", "accuracy_delta_pp": "num", "p_vs_float32": "frac", "top5": "frac",
           "agreement": "frac", "sqnr_db": "num", "kl": "num",
           "fidelity": Maybe([{"output": "str", "agreement": "frac", "sqnr_db": "num", "max_abs_err": "num"}]),
           "outputs": Maybe([OUTPUT]),
           "latency_ms": Maybe(LATENCY), "throughput": Maybe(THROUGHPUT), "convert_s": "num", "mcu": Maybe(MCU),
           "xnnpack_refused": "str", "memory_bytes": "int"}
WHY = [{"technique": "str!", "why": "str!"}]
RESULTS = {  # the four objects first: a file that lacks one is named by it, before any other field
    "model": Required({"name": "str", "format": "str", "inputs": [{"name": "str", "shape": ["int"]}],
                       "outputs": [{"name": "str", "shape": ["int"]}]}),
    "data": Required({"eval_samples": "int", "labels": "bool", "eval_from": "str", "name": "str",
                      "calibration": Maybe({"samples": "int", "from": "str", "seed": "int"}),
                      "classes": ["str"], "labelled_outputs": {}}),
    "machine": Required({"cpu": "str", "arch": "str", "simd": ["str"], "int8_dot": "bool", "cores": "int",
                         "threads": "int"}),
    "settings": Required({}),
    "quantbench_version": "str!",
    "variants": [VARIANT],
    "recommendation": Maybe({"technique": "str", "summary": "str!", "runners_up": WHY, "excluded": WHY,
                             "criteria": [{"output": "str!", "task": "str!", "criterion": "str!"}],
                             "verdicts": [VERDICT],
                             "decision_tree": [{"target": "str!", "question": "str!", "techniques": "str!",
                                                "why": "str!"}]}),
    "studies": {
        "selective": {"error": "str", "met": "bool", "float_layers": ["str"], "conversions": "int", "seconds": "num",
                      "steps": [{"float_layers": ["str"], "bytes": "int!", "drop_pp": "num!", "ok": "bool!"}]},
        "layer_errors": {"error": "str", "samples": "int", "techniques": ["str"],
                         "rows": [{"name": "str!", "op": "str!", "rmse_over_scale": "num",
                                   "mean_squared_error": "num!", "num_elements": "int!"}]},
        "calibration_sizes": {"technique": "str", "samples": "int",
                              "rows": [{"samples": "int!", "error": "str", "accuracy": "frac", "accuracy_ci": "pair",
                                        "agreement": "frac", "bytes": "int"}]}},
    "degenerate_outputs": [{"output": "str!", "why": "str!"}],
    "choices": [{"choice": "str!", "text": "str!"}],
}
BENCH = {  # what `quantbench bench --json` writes, as far as `quantbench report` prints it
    "files": [{"path": "str!", "bytes": "int!", "inputs": ["str"], "input_shapes": [["int"]],
               "latency_ms": Required({**LATENCY, "n": "int!", "stopped": "str!"}),
               "throughput": Required({**THROUGHPUT, "n": "int!", "stopped": "str!"}), "xnnpack_refused": "str"}],
    "machine": Required({"cpu": "str!", "simd": Required(["str"]), "threads": "int!", "litert": "str!"}),
    "settings": Required({"batch": "int!", "batch_used": "int!", "time_budget_s": "num!", "input": "str!"}),
}
STATUSES = ("ok", "failed", "skipped")


def _num(v) -> bool:
    """A finite number: quantbench writes strict JSON, so NaN or Infinity (which Python's reader accepts) was
    put there by hand."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fits(value, kind: str) -> bool:
    if kind == "num":
        return _num(value)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "frac":
        return _num(value) and 0 <= value <= 1
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "pair":
        return isinstance(value, list) and len(value) == 2 and all(map(_num, value)) and value[0] <= value[1]
    return True


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def problem(value, spec, where: str, present: bool = True) -> str | None:
    """The first way `value` departs from `spec`, as 'where is X; expected Y', or None. `present`: the field
    exists (an absent one arrives as None with present=False)."""
    if isinstance(spec, str):
        kind, required = spec.rstrip("!"), spec.endswith("!")
        if value is None:
            return f"{where} is missing or null; expected {WORDS[kind]}" if required else None
        return None if _fits(value, kind) else f"{where} is {_shown(value)}; expected {WORDS[kind]}"
    if isinstance(spec, Maybe):
        return None if value is None else problem(value, spec.spec, where)
    if isinstance(spec, Required):
        what = "a list" if isinstance(spec.spec, list) else "an object"
        return f"{where} is null; expected {what}" if value is None else problem(value, spec.spec, where)
    if value is None:
        return f"{where} is null; expected {'a list' if isinstance(spec, list) else 'an object'}" if present else None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"{where} is {_shown(value)}; expected a list"
        return next((p for i, item in enumerate(value) if (p := problem(item, spec[0], f"{where}[{i}]"))), None)
    if not isinstance(value, dict):
        return f"{where} is {_shown(value)}; expected an object"
    return next((p for key, sub in spec.items()
                 if (p := problem(value.get(key), sub, f"{where}.{key}", key in value))), None)


def _inside(point, interval) -> bool:
    """`point` within `interval`, give or take rounding (a relative 1e-9)."""
    if point is None or interval is None:
        return True
    slack = 1e-9 * max(1.0, abs(point))
    return interval[0] - slack <= point <= interval[1] + slack


def _outside(where: str, point, interval) -> str | None:
    """`where` is `point`, and it lies outside its `interval`: the problem, else None."""
    if _inside(point, interval):
        return None
    return f"{where} is {point}, outside its interval {interval}; expected low <= value <= high"


def _row_problem(row: dict, where: str) -> str | None:
    """What the specs cannot say: a status reports know, intervals that hold their point."""
    if row["status"] not in STATUSES:
        return f"{where}.status is {_shown(row['status'])}; expected one of {', '.join(STATUSES)}"
    pairs = [("accuracy", row.get("accuracy"), row.get("accuracy_ci")),
             ("latency_ms.median", (row.get("latency_ms") or {}).get("median"), (row.get("latency_ms") or {}).get("ci95")),
             ("throughput.samples_per_s", (row.get("throughput") or {}).get("samples_per_s"),
              (row.get("throughput") or {}).get("ci95"))]
    for name, point, interval in pairs:
        if found := _outside(f"{where}.{name}", point, interval):
            return found
    mcu = row.get("mcu")
    if mcu and mcu["runs"]:
        for key, kind in (("arena_bytes", "int!"), ("max_diff_steps", "num!"), ("wrong", "bool!")):
            if found := problem(mcu.get(key), kind, f"{where}.mcu.{key}"):
                return found + " (the variant runs on TFLite Micro)"
    return None


def _studies_problem(studies: dict) -> str | None:
    """What a finished side study must hold beyond its kinds (one that failed holds only its error)."""
    sel = studies.get("selective")
    if sel and "error" not in sel:
        for key, kind in (("met", "bool!"), ("conversions", "int!"), ("seconds", "num!")):
            if found := problem(sel.get(key), kind, f"studies.selective.{key}"):
                return found
        if not isinstance(sel.get("float_layers"), list):
            return f"studies.selective.float_layers is {_shown(sel.get('float_layers'))}; expected a list"
    errs = studies.get("layer_errors")
    if errs and "error" not in errs and not isinstance(errs.get("techniques"), list):  # a failed study: its error
        return f"studies.layer_errors.techniques is {_shown(errs.get('techniques'))}; expected a list"
    for i, row in enumerate((studies.get("calibration_sizes") or {}).get("rows") or []):
        if "error" in row:
            continue
        where = f"studies.calibration_sizes.rows[{i}]"
        needs = [("bytes", "int!")] if row.get("accuracy") is None else [("bytes", "int!"), ("accuracy_ci", "pair!")]
        if found := next((p for key, kind in needs if (p := problem(row.get(key), kind, f"{where}.{key}"))), None):
            return found
        if row["samples"] < 1:
            return f"{where}.samples is {row['samples']}; expected a whole number of at least 1"
        if not _inside(row.get("accuracy"), row.get("accuracy_ci")):
            return f"{where}.accuracy is {row['accuracy']}, outside its interval {row['accuracy_ci']}"
    return None


def results_problem(raw) -> str | None:
    """The first problem of a parsed results.json (already known to be an object with every top-level key)."""
    found = problem(raw, RESULTS, "results")
    if found:
        return found.removeprefix("results.")
    for i, row in enumerate(raw["variants"]):
        if found := _row_problem(row, f"variants[{i}]"):
            return found
    return _studies_problem(raw.get("studies") or {})


def bench_problem(raw: dict) -> str | None:
    """The first problem of a parsed `quantbench bench --json` file (already known to be an object with files)."""
    if not isinstance(raw["files"], list) or not raw["files"]:
        return f"files is {_shown(raw['files'])}; expected a list of at least one timed file"
    found = problem(raw, BENCH, "bench")
    if found:
        return found.removeprefix("bench.")
    for i, f in enumerate(raw["files"]):
        for name, key in (("latency_ms", "median"), ("throughput", "samples_per_s")):
            if found := _outside(f"files[{i}].{name}.{key}", f[name][key], f[name].get("ci95")):
                return found
    return None
