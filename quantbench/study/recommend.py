"""Choosing the variant to ship: the article's decision tree as data, then a choice from measurements."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..core.errors import InputError
# the targets and their branches live below the report, which reads them too; named here as the decision's terms
from ..engines.targets import (DECISION_TREE, NOT_BY_DEFAULT, OPTIMIZE, TARGETS, Branch, Optimize,  # noqa: F401
                               Target, branch, defaults, tree_rows)
from ..engines.techniques import get, names
from ..measure.mcu import mcu_refusal
from ..measure.outputs import GATES, MIN_SQNR_DB, Budget, describe, scored_outputs, verdicts
from ..record.results import Results, Variant


@dataclass(frozen=True)
class Goal:
    """What the user asked for: a budget per kind of output, a deployment target, and what to minimise."""

    max_drop_pp: float = 1.0
    target: Target = Target.CPU
    optimize: Optimize = Optimize.SIZE
    max_ram_kb: float | None = None    # --target mcu: tensor arena budget, KB of 1,024 bytes
    max_flash_kb: float | None = None  # --target mcu: model file budget, KB of 1,024 bytes
    max_error_increase_pct: float = 5.0   # regression outputs: MAE increase, % of the float model's
    min_sqnr_db: float = MIN_SQNR_DB      # outputs judged by fidelity
    min_agreement_pct: float = 99.0       # class outputs without labels
    max_metric_drop: float | None = None  # a user's own metric (--metric)

    def __post_init__(self):
        check_options(self.target, self.optimize, self.max_drop_pp, self.max_ram_kb, self.max_flash_kb)
        self.budget  # noqa: B018  checks the budgets now, before any work
        object.__setattr__(self, "target", Target(self.target))  # checked above: "cpu" and Target.CPU alike
        object.__setattr__(self, "optimize", Optimize(self.optimize))

    @property
    def branch(self) -> Branch:
        """The target's branch of the decision tree: what can serve it, and whether TFLite Micro measures it. Looked
        up, not held: a Goal travels to workers and Ray nodes, and a branch holds a function."""
        return branch(self.target)

    @property
    def budget(self) -> Budget:
        return Budget(self.max_drop_pp, self.max_error_increase_pct, self.min_sqnr_db, self.min_agreement_pct,
                      self.max_metric_drop)


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
        from ..measure.mcu import check_available

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
    metric: str                     # what decided the first scored output: accuracy, f1, mae, agreement, sqnr_db
    uncertain: bool = False
    max_ram_kb: float | None = None
    max_flash_kb: float | None = None
    excluded: list = field(default_factory=list)     # [{"technique", "why"}]
    runners_up: list = field(default_factory=list)   # [{"technique", "why"}]
    summary: str = ""
    criteria: list = field(default_factory=list)     # [{"output", "task", "criterion"}]: what every output is held to
    verdicts: list = field(default_factory=list)     # the chosen variant's, one per output (outputs.verdict)

    def to_dict(self) -> dict:
        return asdict(self)


def _reference(results: Results) -> Variant:
    for name in ("keras", "float32"):
        for v in results.variants:
            if v.technique == name and v.ok:
                return v
    raise InputError("These results have no float reference row (keras or float32) to measure drops against. "
                     "Fix: include float32 in --techniques.")


def judge(v, ref, budget: Budget, results: Results | None = None) -> list[dict]:
    """Every scored output's verdict for one variant (outputs.verdict)."""
    return verdicts(scored_outputs(v, ref, results), budget)


def _failing(found: list[dict], several: bool) -> str:
    bad = [f for f in found if not f["passed"]]
    return "; ".join(f"{f['output'] + ': ' if several else ''}{f['figure']} is past the budget ({f['criterion']})"
                     for f in bad)


def _cost(v: Variant, optimize: str) -> tuple:
    if v.mcu and v.mcu.get("runs"):  # on a microcontroller: RAM and flash, never host latency
        return (v.mcu["arena_bytes"] + v.mcu["flash_bytes"], v.mcu["arena_bytes"])
    latency = (v.latency_ms or {}).get("median", float("inf"))
    return (v.bytes, latency) if optimize == "size" else (latency, v.bytes)


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


def _fmt(v: Variant, optimize: str, exact: bool = False) -> str:
    """What a variant is ranked by, in words: KB, KB of RAM + flash, or ms; `exact`: bytes, or 4 digits of ms."""
    if v.mcu and v.mcu.get("runs"):
        if exact:
            return f"{v.mcu['arena_bytes']:,} bytes of RAM + {v.mcu['flash_bytes']:,} of flash"
        return f"{_kb(v.mcu['arena_bytes'])} RAM + {_kb(v.mcu['flash_bytes'])} flash"
    latency = (v.latency_ms or {}).get("median")
    if optimize == "size":
        return f"{v.bytes:,} bytes" if exact else f"{v.bytes / 1024:.1f} KB"
    return (f"{latency:.4g} ms/img" if exact else f"{latency:.3f} ms/img") if latency is not None else "no latency"


def _versus(v: Variant, best: Variant, optimize: str) -> str:
    """'23.8 KB against 23.1 KB'; in bytes (or 4 digits of ms) where both would print alike, never '8.8 KB
    against 8.8 KB'; 'the same' where they are."""
    for exact in (False, True):
        mine, theirs = _fmt(v, optimize, exact), _fmt(best, optimize, exact)
        if mine != theirs:
            return f"{mine} against {theirs}"
    return f"{mine}, the same as {best.technique}"


def _over_budgets(v: Variant, ram_kb, flash_kb) -> list[str]:
    over = []
    if ram_kb is not None and v.mcu["arena_bytes"] > ram_kb * 1024:
        over.append(f"needs {_kb(v.mcu['arena_bytes'])} of RAM (arena), past --max-ram {ram_kb:g}")
    if flash_kb is not None and v.mcu["flash_bytes"] > flash_kb * 1024:
        over.append(f"needs {_kb(v.mcu['flash_bytes'])} of flash, past --max-flash {flash_kb:g}")
    return over


def _unmet(runnable: list, judged: dict, ram_kb, flash_kb) -> str:
    """Which budget no variant that runs correctly on TFLite Micro meets, and by how much."""
    if not runnable:
        return "No variant runs correctly on TFLite Micro (see the excluded rows)."
    parts = []
    if not any(all(f["passed"] for f in judged[v.technique]) for v in runnable):
        closest = min(runnable, key=lambda v: sum(not f["passed"] for f in judged[v.technique]))
        parts.append(f"the quality budget: the closest is {closest.technique}, where "
                     + _failing(judged[closest.technique], len(judged[closest.technique]) > 1))
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
           max_flash_kb: float | None = None, budget: Budget | None = None) -> Recommendation:
    """The variant that best meets the target and every output's budget, with its reasons.

    Args:
        results: a measured study.
        max_drop_pp: the accuracy budget, in percentage points against the float model (classes, binary; F1 for
            multi-label outputs); `budget` holds the other kinds' (default: outputs.Budget's).
        float_ops: technique -> number of float compute ops (from `inspection`); required for int-only.
        max_ram_kb, max_flash_kb: --target mcu budgets, against each variant's TFLite Micro facts.
    """
    check_options(target, optimize, max_drop_pp, max_ram_kb, max_flash_kb)
    budget = Budget(max_drop_pp) if budget is None else budget
    b, ref = branch(target), _reference(results)
    stated = judge(ref, ref, budget, results)
    several = len(stated) > 1
    criteria = [{"output": f["output"], "task": f["task"], "criterion": f["criterion"]} for f in stated]
    metric = scored_outputs(ref, ref, results)[0]["metric"] if stated else "none"
    excluded, within, runnable, judged = [], [], [], {}
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
        found = judged[v.technique] = judge(v, ref, budget, results)
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
        if not all(f["passed"] for f in found):
            excluded.append({"technique": v.technique, "why": _failing(found, several)})
            continue
        within.append((v, found))
    budgets = {"max_ram_kb": max_ram_kb, "max_flash_kb": max_flash_kb}
    held = "; ".join(f"{c['output'] + ': ' if several else ''}{c['criterion']}" for c in criteria)
    if not within:
        hint = (" Quantization-aware training (`quantbench qat`, or --qat-epochs) is the way to recover int8 "
                "accuracy for integer-only hardware." if target == "int-only" else "")
        words = f"No variant meets the budget ({held}) for --target {target}.{hint}"
        if b.tflite_micro:
            words = f"No variant meets every budget for --target {target}. " + \
                _unmet(runnable, judged, max_ram_kb, max_flash_kb)
        return Recommendation(None, target, optimize, max_drop_pp, metric, excluded=excluded, summary=words,
                              criteria=criteria, **budgets)
    within.sort(key=lambda item: (_cost(item[0], optimize),
                                  b.prefer.index(item[0].technique) if item[0].technique in b.prefer else len(b.prefer)))
    best, found = within[0]
    uncertain = [f for f in found if f["uncertain"]]

    def figures(items):
        return "; ".join(f"{f['output'] + ' ' if several else ''}{f['figure']}" for f in items)

    runners = [{"technique": v.technique, "why": f"{_versus(v, best, optimize)}, {figures(f)}"}
               for v, f in within[1:4]]
    least = "smallest in RAM plus flash" if b.tflite_micro else \
        ("smallest" if optimize == "size" else "fastest here")
    limits = "".join(f" and {o} {kb:g} KB" for o, kb in (("--max-ram", max_ram_kb), ("--max-flash", max_flash_kb))
                     if kb is not None)
    words = (f"Ship {best.technique}: the {least} of {len(within)} variant(s) within the budget ({held}){limits} "
             f"for --target {target} ({_fmt(best, optimize)}; {figures(found)} against the float model).")
    if results.degenerate_outputs:
        words += (" The float model's outputs are degenerate on these samples (" + results.degenerate_outputs[0]["why"]
                  + "), so top-1 agreement cannot measure a drop there: SQNR decided; evaluate on data where the "
                  "model's outputs vary before shipping.")
    if uncertain:
        words += (" Uncertain: " + "; ".join(
            f"{(f['output'] + ': ') if several else ''}{f.get('reach', 'its interval crosses the budget')}"
            for f in uncertain) + ", past the budget; measure on more data before relying on it.")
    if runners:
        words += " Runners-up: " + "; ".join(f"{r['technique']} ({r['why']})" for r in runners) + "."
    return Recommendation(best.technique, target, optimize, max_drop_pp, metric, bool(uncertain), **budgets,
                          excluded=excluded, runners_up=runners, summary=words, criteria=criteria, verdicts=found)


def needs_rescue(metrics: dict, reference: str, goal: Goal) -> bool:
    """True when no integer variant met the budget and the target allows float layers, so selective
    quantization should be tried. `metrics` maps technique -> measured fields (evaluate.measure)."""
    if not goal.branch.float_ops_allowed:
        return False
    measured = [n for n in metrics if n in names() and get(n).compute == "int8"]
    return bool(measured) and all(
        not all(f["passed"] for f in judge(metrics[n], metrics[reference], goal.budget)) for n in measured)


def worst_loss(scored: list[dict]) -> float:
    """The largest loss against the float model over the scored outputs (points, or % for regression); for
    outputs judged by SQNR alone, minus the lowest SQNR. What the selective search minimises."""
    losses = [o["loss"] for o in scored if o.get("scored", True) and o.get("loss") is not None]
    if losses:
        return max(losses)
    sqnr = [o["value"] for o in scored if o.get("scored", True) and o["metric"] == "sqnr_db" and o["value"] is not None]
    return -min(sqnr) if sqnr else 0.0
