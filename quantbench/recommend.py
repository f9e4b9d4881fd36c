"""Choosing the variant to ship: the article's decision tree as data, then a choice from measurements."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from typing import Callable

from .errors import InputError
from .results import Results, Variant
from .techniques import Technique, get, names

TARGETS = ("cpu", "gpu", "int-only", "mcu")
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
    tflite_micro: bool = False       # candidates are the variants the TFLite Micro interpreter runs, measured

    def allows(self, technique) -> bool:
        return self.accepts(get(technique))


DECISION_TREE = (
    Branch("mcu", "Will it run on a microcontroller (TensorFlow Lite Micro)?", lambda t: True,
           ("int8-only", "uint8-only"),
           "every variant is run on the real TFLite Micro interpreter: the candidates are those it runs and "
           "computes as LiteRT does, within the RAM (tensor arena) and flash (file) budgets; it has no hybrid "
           "kernels and dequantizes only int8 and int16 weights", tflite_micro=True),
    Branch("int-only", "Must it run on integer-only hardware (Edge TPU, NPU, a microcontroller without FPU)?",
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
    max_ram_kb: float | None = None    # --target mcu: tensor arena budget, KB of 1,024 bytes
    max_flash_kb: float | None = None  # --target mcu: model file budget, KB of 1,024 bytes

    def __post_init__(self):
        check_options(self.target, self.optimize, self.max_drop_pp, self.max_ram_kb, self.max_flash_kb)


def budget_kb(value, option: str) -> float | None:
    """A --max-ram / --max-flash value as a positive number of KB; None stays None."""
    if value is None:
        return None
    try:
        kb = float(value)
    except (TypeError, ValueError):
        kb = float("nan")
    if not (math.isfinite(kb) and kb > 0):
        raise InputError(f"{option} is {value!r}. Expected a positive number of KB (1 KB = 1,024 bytes). "
                         f"Fix: pass, for example, {option} 64.")
    return kb


def branch(target: str) -> Branch:
    for b in DECISION_TREE:
        if b.target == target:
            return b
    raise InputError(f"Unknown --target {target!r}. Expected one of: {', '.join(TARGETS)}. "
                     "Fix: pick a target from that list.")


def check_options(target: str, optimize: str, max_drop_pp: float, max_ram_kb=None, max_flash_kb=None) -> None:
    """Validate the options before any work is done."""
    b = branch(target)
    budget_kb(max_ram_kb, "--max-ram")
    budget_kb(max_flash_kb, "--max-flash")
    if not b.tflite_micro and (max_ram_kb is not None or max_flash_kb is not None):
        raise InputError(f"--max-ram and --max-flash are microcontroller budgets, measured on TFLite Micro; "
                         f"--target is {target}. Fix: add --target mcu, or drop the budgets.")
    if b.tflite_micro and optimize == "latency":
        raise InputError("--optimize latency with --target mcu: latency on this host says nothing about a "
                         "microcontroller, so quantbench does not rank by it. Fix: drop --optimize latency "
                         "(the smallest variant in RAM plus flash is chosen).")
    if b.tflite_micro:
        from .mcu import check_available

        check_available()
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
    max_ram_kb: float | None = None
    max_flash_kb: float | None = None
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
    if v.mcu and v.mcu.get("runs"):  # on a microcontroller: RAM and flash, never host latency
        return (v.mcu["arena_bytes"] + v.mcu["flash_bytes"], v.mcu["arena_bytes"])
    latency = (v.latency_ms or {}).get("median", float("inf"))
    return (v.bytes, latency) if optimize == "size" else (latency, v.bytes)


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


def _fmt(v: Variant, optimize: str) -> str:
    if v.mcu and v.mcu.get("runs"):
        return f"{_kb(v.mcu['arena_bytes'])} RAM + {_kb(v.mcu['flash_bytes'])} flash"
    latency = (v.latency_ms or {}).get("median")
    return (f"{v.bytes / 1024:.1f} KB" if optimize == "size" else
            (f"{latency:.3f} ms/img" if latency is not None else "no latency"))


def mcu_refusal(v: Variant) -> str | None:
    """Why a variant cannot be shipped to a microcontroller, from its TFLite Micro facts; None if it can."""
    from .mcu import steps_text

    m = v.mcu
    if not m:
        return "was not run on TFLite Micro"
    if not m["runs"]:
        return f"TFLite Micro cannot run it: {m['reason']}"
    if m["wrong"]:
        agree = "" if m["agreement_litert"] is None else f", top-1 agreement {m['agreement_litert'] * 100:.1f} %"
        return (f"wrong on TFLite Micro: its outputs depart from LiteRT's by {steps_text(m['max_diff_steps'])} 8-bit "
                f"steps{agree}")
    return None


def _over_budgets(v: Variant, ram_kb, flash_kb) -> list[str]:
    over = []
    if ram_kb is not None and v.mcu["arena_bytes"] > ram_kb * 1024:
        over.append(f"needs {_kb(v.mcu['arena_bytes'])} of RAM (arena), past --max-ram {ram_kb:g}")
    if flash_kb is not None and v.mcu["flash_bytes"] > flash_kb * 1024:
        over.append(f"needs {_kb(v.mcu['flash_bytes'])} of flash, past --max-flash {flash_kb:g}")
    return over


def _unmet(runnable: list, ref, max_drop_pp: float, ram_kb, flash_kb, metric: str) -> str:
    """Which budget no variant that runs correctly on TFLite Micro meets, and by how much."""
    if not runnable:
        return "No variant runs correctly on TFLite Micro (see the excluded rows)."
    parts = []
    least = min(runnable, key=lambda v: drop_pp(v, ref)[0])
    if drop_pp(least, ref)[0] > max_drop_pp:
        d = drop_pp(least, ref)[0]
        parts.append(f"the accuracy budget: the smallest drop is {least.technique}'s {d:.2f} pp ({metric}), "
                     f"{d - max_drop_pp:.2f} pp past --max-accuracy-drop {max_drop_pp:g}")
    for kb, key, option, what in ((ram_kb, "arena_bytes", "--max-ram", "RAM (arena)"),
                                  (flash_kb, "flash_bytes", "--max-flash", "flash")):
        if kb is None:
            continue
        best = min(runnable, key=lambda v: v.mcu[key])
        if best.mcu[key] > kb * 1024:
            need = best.mcu[key]
            parts.append(f"{option} {kb:g}: the least {what} is {best.technique}'s {_kb(need)} ({need:,} bytes), "
                         f"{need - kb * 1024:,.0f} bytes more")
    if parts:
        return "Nothing meets " + "; nor ".join(parts) + "."
    return ("Each budget is met by some variant, but no variant meets all of them at once (see the excluded "
            "rows).")


def choose(results: Results, max_drop_pp: float = 1.0, target: str = "cpu", optimize: str = "size",
           float_ops: dict[str, int] | None = None, max_ram_kb: float | None = None,
           max_flash_kb: float | None = None) -> Recommendation:
    """The variant that best meets the target and the accuracy budget, with its reasons.

    Args:
        results: a measured study.
        max_drop_pp: the budget, in percentage points of accuracy against the float model (of top-1
            agreement with it when there are no labels).
        float_ops: technique -> number of float compute ops (from `inspection`); required for int-only.
        max_ram_kb, max_flash_kb: --target mcu budgets, against each variant's TFLite Micro facts.
    """
    check_options(target, optimize, max_drop_pp, max_ram_kb, max_flash_kb)
    b, ref = branch(target), _reference(results)
    metric = "accuracy" if ref.accuracy is not None else (
        "agreement" if _agreement(ref, getattr) is not None else "none")
    degenerate = metric == "agreement" and bool(results.degenerate_outputs)
    if degenerate:  # agreement with a float model whose top-1 never changes is 100 % for anything
        metric = "none"
    excluded, within, runnable = [], [], []
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
        if b.tflite_micro:
            why = mcu_refusal(v)
            if why:
                excluded.append({"technique": v.technique, "why": why})
                continue
            runnable.append(v)
            over = _over_budgets(v, max_ram_kb, max_flash_kb)
            if over:
                excluded.append({"technique": v.technique, "why": "; ".join(over)})
                continue
        drop, worst = drop_pp(v, ref) if metric != "none" else (0.0, None)
        if drop > max_drop_pp:
            excluded.append({"technique": v.technique,
                             "why": f"{metric} {-drop:+.2f} pp is past the {max_drop_pp:g} pp budget"})
            continue
        within.append((v, drop, worst))
    budgets = {"max_ram_kb": max_ram_kb, "max_flash_kb": max_flash_kb}
    if not within:
        hint = (" Quantization-aware training (`quantbench qat`, or --qat-epochs) is the way to recover int8 "
                "accuracy for integer-only hardware." if target == "int-only" else "")
        words = f"No variant meets the {max_drop_pp:g} pp budget for --target {target}.{hint}"
        if b.tflite_micro:
            words = f"No variant meets every budget for --target {target}. " + \
                _unmet(runnable, ref, max_drop_pp, max_ram_kb, max_flash_kb, metric)
        return Recommendation(None, target, optimize, max_drop_pp, metric, excluded=excluded, summary=words,
                              **budgets)
    within.sort(key=lambda item: (_cost(item[0], optimize),
                                  b.prefer.index(item[0].technique) if item[0].technique in b.prefer else len(b.prefer)))
    best, drop, worst = within[0]
    uncertain = worst is not None and worst > max_drop_pp
    runners = [{"technique": v.technique,
                "why": f"{_fmt(v, optimize)} against {_fmt(best, optimize)}, {metric} {-d:+.2f} pp"}
               for v, d, _ in within[1:4]]
    least = "smallest in RAM plus flash" if b.tflite_micro else \
        ("smallest" if optimize == "size" else "fastest here")
    limits = "".join(f" and {o} {kb:g} KB" for o, kb in (("--max-ram", max_ram_kb), ("--max-flash", max_flash_kb))
                     if kb is not None)
    words = (f"Ship {best.technique}: the {least} of "
             f"{len(within)} variant(s) within the {max_drop_pp:g} pp budget{limits} for --target {target} "
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
    return Recommendation(best.technique, target, optimize, max_drop_pp, metric, uncertain, **budgets,
                          excluded=excluded, runners_up=runners, summary=words)


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
