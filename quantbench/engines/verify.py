"""Did a variant quantize? A technique promises tensor types; the file's tensors say whether it kept the promise.

An engine can return a float copy without a word (the LiteRT Quantizer on an old-schema file did: every op read as
ADD, nothing quantized, the file back at its float size). A copy like that must never be measured and recommended
as a quantized variant, so every conversion is checked here, from the flatbuffer alone (no TensorFlow, no LiteRT).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .techniques import LQ, Technique, get

_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16",
               8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64", 13: "resource",
               14: "variant", 15: "uint32", 16: "uint16", 17: "int4", 18: "bfloat16", 19: "int2", 20: "uint4"}


@dataclass(frozen=True)
class Promise:
    """The tensor types a technique's variant must hold: a weight type (constant tensors), an activation type."""

    weights: str | None = None
    activations: str | None = None

    def __str__(self) -> str:
        parts = [f"{self.weights} weights"] * bool(self.weights) + [f"{self.activations} activations"] * \
            bool(self.activations)
        return " and ".join(parts) or "nothing"


def promise(technique: str | Technique) -> Promise:
    """What the technique promises (`Technique.compute`, `types` and the LiteRT Quantizer `recipe`)."""
    t = get(technique)
    if t.engine == LQ:
        recipe = dict(t.recipe)
        bits = recipe.get("num_bits", recipe.get("weight_num_bits", 8))
        activations = {8: "int8", 16: "int16"}.get(recipe.get("activation_num_bits")) \
            if recipe.get("mode") == "static" else None
        return Promise(f"int{bits}", activations)
    if "float16" in t.types:
        return Promise(weights="float16")
    if t.compute == "hybrid":
        return Promise(weights="int8")
    if t.compute in ("int8", "int16"):
        return Promise(activations=t.compute)
    return Promise()


def tensor_types(content: bytes) -> tuple[Counter, Counter]:
    """Counts of tensor type names in every subgraph: (constant tensors, the other tensors)."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(content, 0)
    constant = []
    for b in range(model.BuffersLength()):
        buf = model.Buffers(b)
        constant.append(b > 0 and (buf.DataLength() > 0 or buf.Offset() > 1))
    weights, activations = Counter(), Counter()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            kind = _TYPE_NAMES.get(tensor.Type(), f"type {tensor.Type()}")
            b = tensor.Buffer()
            (weights if 0 <= b < len(constant) and constant[b] else activations)[kind] += 1
    return weights, activations


def _listing(counts: Counter) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.most_common()) or "none"


def unquantized(technique: str | Technique, content: bytes) -> str | None:
    """Why the variant does not hold the tensor types its technique promises, or None when it does.

    A variant keeps the promise when at least one tensor has each promised type: engines leave some tensors
    float on purpose (small weights, ops without an integer kernel), but a variant with none is a float copy.
    """
    want = promise(technique)
    if not want.weights and not want.activations:
        return None
    try:
        weights, activations = tensor_types(bytes(content))
    except Exception as exc:  # an unreadable table: the runtime's load names the fault; nothing to promise here
        return f"its tensors cannot be read ({type(exc).__name__})"
    missing = []
    if want.weights and not weights[want.weights]:
        missing.append(f"no {want.weights} weights (constant tensors: {_listing(weights)})")
    if want.activations and not activations[want.activations]:
        missing.append(f"no {want.activations} activations (other tensors: {_listing(activations)})")
    if not missing:
        return None
    return f"{get(technique).name} promises {want}, but the file has {' and '.join(missing)}"


def checked(technique: str | Technique, conv):
    """The conversion when its file keeps the technique's promise; else the `ConversionError` "not quantized: ...".

    Raises:
        ConversionError: the variant does not hold the promised tensor types.
    """
    from ..core.errors import ConversionError

    reason = unquantized(technique, conv.content)
    if reason:
        raise ConversionError(f"not quantized: {reason}")
    return conv


def refused(technique: str | Technique, conv):
    """As `checked`, for a family's result: the conversion, or the `ConversionError` it became (returned)."""
    from ..core.errors import ConversionError

    if isinstance(conv, ConversionError):
        return conv
    try:
        return checked(technique, conv)
    except ConversionError as exc:
        return exc
