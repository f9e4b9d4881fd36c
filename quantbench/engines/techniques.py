"""The quantization techniques quantbench knows, as frozen data in a registry keyed by name."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import InputError
from ..core.names import Name


class Compute(Name):
    """What a variant's kernels compute in."""

    FLOAT = "float"
    HYBRID = "hybrid"  # integer weights, float math (activations quantized on the fly)
    INT8 = "int8"
    INT16 = "int16"


@dataclass(frozen=True)
class Technique:
    """One way to turn a float model into a `.tflite` file.

    The fields are settings as data: `conversion.py` reads the converter's; `lq.py` reads `calibrate` and
    `recipe` (the keyword arguments of the LiteRT Quantizer's `add_<mode>_config`, as pairs).
    """

    name: str
    summary: str
    engine: str = "converter"
    optimize: bool = False          # converter.optimizations = [Optimize.DEFAULT]
    calibrate: bool = False         # needs a representative dataset
    ops: tuple[str, ...] = ()       # converter.target_spec.supported_ops, by OpsSet name
    types: tuple[str, ...] = ()     # converter.target_spec.supported_types
    io_dtype: str | None = None     # inference_input_type / inference_output_type
    integer_only: bool = False      # runs on integer-only hardware
    compute: Compute = Compute.FLOAT  # what its kernels compute in
    recipe: tuple[tuple[str, object], ...] = ()  # LiteRT Quantizer: (("mode", "static"), (arg, value), ...)

    def __post_init__(self):
        object.__setattr__(self, "compute", Compute(self.compute))  # "int8" and Compute.INT8 alike


_REGISTRY: dict[str, Technique] = {}


def register(technique: Technique) -> Technique:
    """Add a technique; a second one with the same name is refused."""
    if technique.name in _REGISTRY:
        raise ValueError(f"A technique named {technique.name!r} is already registered.")
    _REGISTRY[technique.name] = technique
    return technique


def names() -> list[str]:
    """Names of every registered technique, in registration order."""
    return list(_REGISTRY)


def get(technique: str | Technique) -> Technique:
    """Resolve a name or a Technique to the registered Technique."""
    if isinstance(technique, Technique):
        return technique
    if not isinstance(technique, str):
        raise InputError(f"A technique is a name or a Technique; got {technique!r}. Expected one of: "
                         f"{', '.join(_REGISTRY)}. Fix: pass the technique's name.")
    try:
        return _REGISTRY[technique]
    except KeyError:
        raise InputError(
            f"Unknown technique {technique!r}. Expected one of: {', '.join(_REGISTRY)}. "
            "Fix: pick a name from that list (`quantbench techniques` says what each one does)."
        ) from None


def parse_list(text: str | None, default: list[str] | None = None) -> list[Technique]:
    """Turn 'a,b,c' (or 'all') into Techniques, checking every name before anything runs."""
    if not text:
        return [get(n) for n in (default if default is not None else names())]
    if text.strip() == "all":
        return [get(n) for n in names() if get(n).engine != "selective"]
    return [get(n.strip()) for n in text.split(",") if n.strip()]


def resolve(spec, default=None) -> list[Technique]:
    """Techniques from any spelling: None (the default set), 'a,b' or 'all', a name or Technique, or an
    iterable of names and Techniques. Every name is checked before anything runs."""
    if spec is None or isinstance(spec, str):
        return parse_list(spec, list(default) if default is not None else list(DEFAULT_TECHNIQUES))
    if isinstance(spec, Technique):
        return [spec]
    try:
        items = list(spec)
    except TypeError:
        raise InputError(f"techniques={spec!r} is not a technique list. Expected a name, 'a,b', a Technique or "
                         "a list of them. Fix: pass e.g. techniques=['float32', 'int8-only'].") from None
    return [get(t) for t in items]


register(Technique("float32", "Plain float32 conversion; the baseline every variant is compared to."))
register(Technique(
    "dynamic", "Dynamic-range: int8 weights, activations quantized on the fly; float I/O.",
    optimize=True, compute="hybrid"))
register(Technique(
    "int8-fallback", "Full-integer int8 from calibration, float ops where no int8 kernel exists; float I/O.",
    optimize=True, calibrate=True, compute="int8"))
register(Technique(
    "int8-only", "Integer-only int8, int8 input and output; fails if any op lacks an int8 kernel.",
    optimize=True, calibrate=True, ops=("TFLITE_BUILTINS_INT8",), io_dtype="int8", integer_only=True,
    compute="int8"))
register(Technique(
    "uint8-only", "Integer-only int8 with uint8 input and output, for pipelines that feed raw bytes.",
    optimize=True, calibrate=True, ops=("TFLITE_BUILTINS_INT8",), io_dtype="uint8", integer_only=True,
    compute="int8"))
register(Technique(
    "float16", "float16 weights, dequantized to float32 at load on CPU; half the size.",
    optimize=True, types=("float16",)))
register(Technique(
    "int16x8", "int16 activations with int8 weights: more accurate than int8, slower kernels.",
    optimize=True, calibrate=True,
    ops=("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",), compute="int16"))

CONVERTER_TECHNIQUES = tuple(names())

# LiteRT Quantizer engine: quantizes a float32 .tflite, every op it supports (regex ".*"). Int4 weights are
# per-channel: its blockwise granularities apply only to dynamic fully-connected ops, and fail on a layer
# whose input width is not a multiple of the block size.
LQ = "litert-quantizer"
register(Technique(
    "weight-only-int8",
    "int8 weights dequantized for float compute: a quarter of the weight bytes, float accuracy and speed.",
    engine=LQ, recipe=(("mode", "weight_only"), ("num_bits", 8), ("granularity", "CHANNELWISE"))))
register(Technique(
    "weight-only-int4",
    "int4 weights dequantized for float compute: an eighth of the weight bytes; 4 bits may cost accuracy.",
    engine=LQ, recipe=(("mode", "weight_only"), ("num_bits", 4), ("granularity", "CHANNELWISE"))))
register(Technique(
    "dynamic-int4",
    "int4 weights, activations quantized on the fly for integer compute: small and fast, more accuracy risk.",
    engine=LQ, compute="hybrid", recipe=(("mode", "dynamic"), ("num_bits", 4), ("granularity", "CHANNELWISE"))))
register(Technique(
    "lq-int8",
    "Static int8 weights and activations from calibration, int8 I/O: integer kernels, coarser activations.",
    engine=LQ, calibrate=True, compute="int8", io_dtype="int8", integer_only=True,
    recipe=(("mode", "static"), ("activation_num_bits", 8), ("weight_num_bits", 8),
            ("weight_granularity", "CHANNELWISE"))))
register(Technique(
    "lq-int16x8",
    "int8 weights, int16 activations and I/O from calibration: closer to float than int8, slower kernels.",
    engine=LQ, calibrate=True, compute="int16", io_dtype="int16",
    recipe=(("mode", "static"), ("activation_num_bits", 16), ("weight_num_bits", 8),
            ("weight_granularity", "CHANNELWISE"))))
register(Technique(
    "lq-dynamic",
    "Dynamic-range int8 from a float .tflite: int8 weights, activations quantized on the fly; float I/O.",
    engine=LQ, compute="hybrid", recipe=(("mode", "dynamic"), ("num_bits", 8), ("granularity", "CHANNELWISE"))))

LQ_TECHNIQUES = tuple(n for n in names() if n not in CONVERTER_TECHNIQUES)

# What a study runs unless told otherwise: both engines side by side.
DEFAULT_TECHNIQUES = CONVERTER_TECHNIQUES + LQ_TECHNIQUES

# Registered after CONVERTER_TECHNIQUES: it fine-tunes first (quantbench.engines.qat), then converts with these
# settings. No TFLITE_BUILTINS_INT8 op set: with it the converter demands a representative dataset before
# it sees the fake-quant ops; quantbench.engines.qat checks instead that no float op is left.
register(Technique(
    "qat-int8", "Quantization-aware training, then integer-only int8 with int8 input and output.",
    engine="qat", optimize=True, io_dtype="int8", integer_only=True, compute="int8"))

# Made by the recommendation step when no integer variant meets the budget: int8 with the layers that
# lose the most kept in float (quantbench.engines.selective), float I/O.
register(Technique(
    "int8-selective", "int8 with the most sensitive layers kept float, the fewest that meet the accuracy budget.",
    engine="selective", optimize=True, calibrate=True, compute="int8"))
