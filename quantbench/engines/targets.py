"""Deployment targets (phone or server CPU, GPU, integer-only accelerator, microcontroller) and which techniques
can serve each: the decision tree the recommendation follows, the default techniques per target, and the tree as
the report shows it. Below the study and the report, which both read it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core.errors import InputError
from ..core.names import Name
from .techniques import DEFAULT_TECHNIQUES, Technique, get, names



class Target(Name):
    """Where the variant will run (--target); its value is what the CLI and results.json say."""

    CPU = "cpu"
    GPU = "gpu"
    INT_ONLY = "int-only"
    MCU = "mcu"


class Optimize(Name):
    """What the recommendation minimises among the variants within budget (--optimize)."""

    SIZE = "size"
    LATENCY = "latency"


TARGETS = tuple(Target)
OPTIMIZE = tuple(Optimize)


@dataclass(frozen=True)
class Branch:
    """One branch of the decision tree: a deployment target, what can serve it (a test of the technique's
    fields, not a list of names), and why."""

    target: Target
    question: str
    accepts: Callable[[Technique], bool]
    prefer: tuple[str, ...]          # tried first when measurements tie
    why: str
    float_ops_allowed: bool = True
    tflite_micro: bool = False       # candidates are the variants the TFLite Micro interpreter runs, measured

    def allows(self, technique) -> bool:
        return self.accepts(get(technique))


DECISION_TREE = (
    Branch(Target.MCU, "Will it run on a microcontroller (TensorFlow Lite Micro)?", lambda t: True,
           ("int8-only", "uint8-only"),
           "every variant is run on the real TFLite Micro interpreter: the candidates are those it runs and "
           "computes as LiteRT does, within the RAM (tensor arena) and flash (file) budgets; it has no hybrid "
           "kernels and dequantizes only int8 and int16 weights", tflite_micro=True),
    Branch(Target.INT_ONLY, "Must it run on integer-only hardware (Edge TPU, NPU, a microcontroller without FPU)?",
           lambda t: t.integer_only, ("int8-only", "qat-int8"),
           "integer-only accelerators execute no float op, so only full-integer variants with integer "
           "input and output can run there", float_ops_allowed=False),
    Branch(Target.GPU, "Will it run on a mobile GPU delegate?",
           lambda t: t.io_dtype is None and t.compute in ("float", "int8"), ("float16",),
           "GPU delegates compute in float (float16 natively): float16 weights halve the file at no accuracy "
           "cost, and hybrid dynamic-range kernels do not run there"),
    Branch(Target.CPU, "Otherwise: a CPU (phone, edge box, server).", lambda t: True, ("dynamic", "int8-fallback"),
           "every technique runs on CPU; which is smallest or fastest is a matter of measurement, not rule"),
)


def branch(target: str) -> Branch:
    for b in DECISION_TREE:
        if b.target == target:
            return b
    raise InputError(f"Unknown --target {target!r}. Expected one of: {', '.join(TARGETS)}. "
                     "Fix: pick a target from that list.")


def defaults(target: str) -> list[str]:
    """The techniques `compare` and `demo` run for --target `target` when --techniques is not given."""
    return [n for n in DEFAULT_TECHNIQUES if branch(target).allows(n)]


# techniques in no default set, by engine: how a study comes to make them
NOT_BY_DEFAULT = {"qat": "added by --qat-epochs N (fine-tunes first)",
                  "selective": "made by the recommendation when no integer variant meets the budget; never asked for"}


def tree_rows() -> list[dict]:
    """The decision tree, for the report."""
    return [{"target": b.target, "question": b.question,
             "techniques": ", ".join(n for n in names() if b.allows(n)), "why": b.why}
            for b in DECISION_TREE]
