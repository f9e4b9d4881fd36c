"""What is inside a `.tflite` file: its I/O, its ops by type, and which run in float or integer."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..runtime.litert import LiteModel, not_utf8

BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


@dataclass(frozen=True)
class Inspection:
    path: str | None
    bytes: int
    inputs: list
    outputs: list
    ops: dict = field(default_factory=dict)          # op name -> count
    precision: dict = field(default_factory=dict)    # op name -> {"float": n, "int8": n, "hybrid": n, ...}

    @property
    def float_compute_ops(self) -> int:
        """Ops computing in float (hybrid included), not counting (de)quantize at the boundaries."""
        return sum(n for op, kinds in self.precision.items() if op not in BOUNDARY_OPS
                   for kind, n in kinds.items() if kind in ("float", "hybrid"))


def _kind(operands: list, results: list) -> str:
    out = np.dtype(results[0]).name if results else "none"
    if out.startswith("float"):
        return "hybrid" if any(np.dtype(t).name in ("int8", "int4", "uint8") for t in operands) else "float"
    return out


def inspect(path_or_model) -> Inspection:
    """Read a `.tflite` file's structure (no TensorFlow needed)."""
    # Without the default XNNPACK delegate, so the ops are the file's own, not DELEGATE nodes.
    # Not allocated: a kernel that would refuse to prepare (say, 16x8 depthwise without XNNPACK) is still read.
    m = LiteModel(path_or_model, delegates=False, allocate=False)
    try:
        details = m.op_details()
    except UnicodeDecodeError as exc:  # LiteRT reads every operand's name, and one of them is corrupt
        raise not_utf8(m.path or "the model bytes", exc) from None
    ops, precision = Counter(), {}
    for op in details:
        name = op["op_name"]
        ops[name] += 1
        kind = "boundary" if name in BOUNDARY_OPS else _kind(op.get("operand_types", []), op.get("result_types", []))
        precision.setdefault(name, Counter())[kind] += 1
    return Inspection(str(m.path) if m.path else None, m.size_bytes, m.inputs, m.outputs, dict(ops),
                      {k: dict(v) for k, v in precision.items()})


def render(info: Inspection) -> str:
    """A plain-text description for the terminal."""
    lines = [f"{info.path or 'model'}: {info.bytes:,} bytes ({info.bytes / 1024:.1f} KB)", "inputs:"]
    lines += [f"  {t}" for t in info.inputs]
    lines += ["outputs:"] + [f"  {t}" for t in info.outputs]
    lines += [f"ops ({sum(info.ops.values())}):"]
    for name, count in sorted(info.ops.items(), key=lambda kv: (-kv[1], kv[0])):
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(info.precision[name].items()))
        lines.append(f"  {name:<24} {count:>4}  ({kinds})")
    fc = info.float_compute_ops
    lines.append("float compute ops: none (every compute op is integer)" if fc == 0 else
                 f"float compute ops: {fc} (float or hybrid; see the ops above)")
    return "\n".join(lines)
