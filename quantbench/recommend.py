"""Choosing the variant to ship: the article's decision tree as data, then a choice from measurements."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from typing import Callable

from .errors import InputError
from .results import Results, Variant
from .techniques import Technique, get, names

TARGETS = ("cpu", "gpu", "int-only")
OPTIMIZE = ("size", "latency")


@dataclass(frozen=True)
class Branch:
    """One branch of the decision tree: a deployment target, what can serve it (a test of the technique's
    fields, not a list of names), and why."""

    target: str
    question: str
    accepts: Callable[[Technique], bool]
    prefer: tuple[str, ...]          # tried first when measurements tie
    why: str
    float_ops_allowed: bool = True

    def allows(self, technique) -> bool:
        return self.accepts(get(technique))


DECISION_TREE = (
    Branch("int-only", "Must it run on integer-only hardware (microcontroller, Edge TPU, NPU)?",
           lambda t: t.integer_only, ("int8-only", "qat-int8"),
           "integer-only accelerators execute no float op, so only full-integer variants with integer "
           "input and output can run there", float_ops_allowed=False),
    Branch("gpu", "Will it run on a mobile GPU delegate?",
           lambda t: t.io_dtype is None and t.compute in ("float", "int8"), ("float16",),
           "GPU delegates compute in float (float16 natively): float16 weights halve the file at no accuracy "
           "cost, and hybrid dynamic-range kernels do not run there"),
    Branch("cpu", "Otherwise: a CPU (phone, edge box, server).", lambda t: True, ("dynamic", "int8-fallback"),
           "every technique runs on CPU; which is smallest or fastest is a matter of measurement, not rule"),
)


@dataclass(frozen=True)
class Goal:
    """What the user asked for: an accuracy budget, a deployment target, and what to minimise."""

    max_drop_pp: float = 1.0
    target: str = "cpu"
    optimize: str = "size"

    def __post_init__(self):
        check_options(self.target, self.optimize, self.max_drop_pp)


def branch(target: str) -> Branch:
    for b in DECISION_TREE:
        if b.target == target:
            return b
    raise InputError(f"Unknown --target {target!r}. Expected one of: {', '.join(TARGETS)}. "
                     "Fix: pick a target from that list.")


def check_options(target: str, optimize: str, max_drop_pp: float) -> None:
    """Validate the options before any work is done."""
    branch(target)
    if optimize not in OPTIMIZE:
        raise InputError(f"Unknown --optimize {optimize!r}. Expected one of: {', '.join(OPTIMIZE)}. "
                         "Fix: pass --optimize size or --optimize latency.")
    if not (max_drop_pp >= 0):
        raise InputError(f"--max-accuracy-drop is {max_drop_pp}. Expected a number of percentage points ≥ 0. "
                         "Fix: pass, for example, --max-accuracy-drop 1.0.")


def plan(techniques, target: str) -> tuple[list, dict[str, str]]:
    """Before measuring: the techniques that can serve `target`, and the reason for each one skipped."""
    b = branch(target)
    kept, skipped = [], {}
    for t in techniques:
        name = getattr(t, "name", t)
        if b.allows(t):
            kept.append(t)
        else:
            skipped[name] = f"cannot serve --target {target}: {b.why}"
    return kept, skipped


@dataclass(frozen=True)
class Recommendation:
    technique: str | None
    target: str
    optimize: str
    max_drop_pp: float
    metric: str                     # "accuracy" or "agreement" (no labels)
    uncertain: bool = False
    excluded: list = field(default_factory=list)     # [{"technique", "why"}]
    runners_up: list = field(default_factory=list)   # [{"technique", "why"}]
    summary: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _reference(results: Results) -> Variant:
    for name in ("keras", "float32"):
        for v in results.variants:
            if v.technique == name and v.ok:
                return v
    raise InputError("These results have no float reference row (keras or float32) to measure drops against. "
                     "Fix: include float32 in --techniques.")


def drop_pp(v, ref) -> tuple[float, float | None]:
    """Accuracy drop against the float model in points, and the pessimistic end of its paired interval.

    Without labels, the drop is the share of samples whose top-1 class differs from the float model's.
    `v` and `ref` are Variants or dicts with the same fields.
    """
    get = (lambda o, k: o.get(k)) if isinstance(v, dict) else getattr
    acc, ref_acc = get(v, "accuracy"), get(ref, "accuracy")
    if ref_acc is not None and acc is not None:
        worst = (get(v, "drop_ci_pp") or [None, None])[1]
        return (ref_acc - acc) * 100, worst
    agree = _agreement(v, get)
    return (0.0, None) if agree is None else ((1 - agree) * 100, None)


def _agreement(v, get) -> float | None:
    """Top-1 agreement with the float model: the worst of the class outputs' (the first output's when the
    per-output figures are missing)."""
    values = [f["agreement"] for f in (get(v, "fidelity") or []) if f.get("agreement") is not None]
    return min(values) if values else get(v, "agreement")


def _cost(v: Variant, optimize: str) -> tuple:
    latency = (v.latency_ms or {}).get("median", float("inf"))
    return (v.bytes, latency) if optimize == "size" else (latency, v.bytes)


def _fmt(v: Variant, optimize: str) -> str:
    latency = (v.latency_ms or {}).get("median")
    return (f"{v.bytes / 1024:.1f} KB" if optimize == "size" else
            (f"{latency:.3f} ms/img" if latency is not None else "no latency"))


def choose(results: Results, max_drop_pp: float = 1.0, target: str = "cpu", optimize: str = "size",
           float_ops: dict[str, int] | None = None) -> Recommendation:
    """The variant that best meets the target and the accuracy budget, with its reasons.

    Args:
        results: a measured study.
        max_drop_pp: the budget, in percentage points of accuracy against the float model (of top-1
            agreement with it when there are no labels).
        float_ops: technique -> number of float compute ops (from `inspection`); required for int-only.
    """
    check_options(target, optimize, max_drop_pp)
    b, ref = branch(target), _reference(results)
    metric = "accuracy" if ref.accuracy is not None else (
        "agreement" if _agreement(ref, getattr) is not None else "none")
    degenerate = metric == "agreement" and bool(results.degenerate_outputs)
    if degenerate:  # agreement with a float model whose top-1 never changes is 100 % for anything
        metric = "none"
    excluded, within = [], []
    for v in results.variants:
        if v.technique in ("keras",) or v is ref:
            continue
        if not v.ok:
            excluded.append({"technique": v.technique, "why": f"{v.status}: {v.error}"})
            continue
        if not b.allows(v.technique):
            excluded.append({"technique": v.technique, "why": f"cannot serve --target {target}"})
            continue
        if not b.float_ops_allowed:
            n = (float_ops or {}).get(v.technique)
            integer_io = v.input_dtype in ("int8", "uint8") and v.output_dtype in ("int8", "uint8")
            if n is None or n > 0 or not integer_io:
                excluded.append({"technique": v.technique, "why": (
                    f"has {n} float compute op(s)" if n else "its input or output is not integer")
                    + f", which --target {target} cannot run"})
                continue
        drop, worst = drop_pp(v, ref) if metric != "none" else (0.0, None)
        if drop > max_drop_pp:
            excluded.append({"technique": v.technique,
                             "why": f"{metric} {-drop:+.2f} pp is past the {max_drop_pp:g} pp budget"})
            continue
        within.append((v, drop, worst))
    if not within:
        hint = (" Quantization-aware training (`quantbench qat`, or --qat-epochs) is the way to recover int8 "
                "accuracy for integer-only hardware." if target == "int-only" else "")
        return Recommendation(None, target, optimize, max_drop_pp, metric, excluded=excluded,
                              summary=f"No variant meets the {max_drop_pp:g} pp budget for --target {target}.{hint}")
    within.sort(key=lambda item: (_cost(item[0], optimize),
                                  b.prefer.index(item[0].technique) if item[0].technique in b.prefer else len(b.prefer)))
    best, drop, worst = within[0]
    uncertain = worst is not None and worst > max_drop_pp
    runners = [{"technique": v.technique,
                "why": f"{_fmt(v, optimize)} against {_fmt(best, optimize)}, {metric} {-d:+.2f} pp"}
               for v, d, _ in within[1:4]]
    words = (f"Ship {best.technique}: the {'smallest' if optimize == 'size' else 'fastest here'} of "
             f"{len(within)} variant(s) within the {max_drop_pp:g} pp budget for --target {target} "
             f"({_fmt(best, optimize)}, {metric} {-drop:+.2f} pp against the float model).")
    if degenerate:
        words += (" The float model's outputs are degenerate on these samples (" + results.degenerate_outputs[0]["why"]
                  + "), so top-1 agreement cannot measure a drop: the budget was not applied; compare the SQNR "
                  "column, and evaluate on data where the model's outputs vary, before shipping.")
    elif metric == "none":
        words += (" No output is a class distribution and there are no labels, so no drop could be measured: "
                  "the budget was not applied; compare the SQNR column before shipping.")
    if uncertain:
        words += (f" Uncertain: the 95 % interval of its drop reaches {worst:.2f} pp, past the budget; "
                  "measure on more data before relying on it.")
    if runners:
        words += " Runners-up: " + "; ".join(f"{r['technique']} ({r['why']})" for r in runners) + "."
    return Recommendation(best.technique, target, optimize, max_drop_pp, metric, uncertain, excluded, runners, words)


def needs_rescue(metrics: dict, reference: str, goal: Goal) -> bool:
    """True when no integer variant met the budget and the target allows float layers, so selective
    quantization should be tried. `metrics` maps technique -> measured fields (evaluate.measure)."""
    if not branch(goal.target).float_ops_allowed:
        return False
    read = lambda o, k: o.get(k)  # noqa: E731
    measured = [n for n in metrics if n in names() and get(n).compute == "int8" and
                (metrics[n].get("accuracy") is not None or _agreement(metrics[n], read) is not None)]
    return bool(measured) and all(drop_pp(metrics[n], metrics[reference])[0] > goal.max_drop_pp for n in measured)


def tree_rows() -> list[dict]:
    """The decision tree, for the report."""
    return [{"target": b.target, "question": b.question,
             "techniques": ", ".join(n for n in names() if b.allows(n)), "why": b.why}
            for b in DECISION_TREE]
