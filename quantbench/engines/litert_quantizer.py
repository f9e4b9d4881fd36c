"""Quantize a float32 `.tflite` with the LiteRT Quantizer, Google's recommended post-training path.

Imports no TensorFlow: the quantizer works on the flatbuffer, so a float `.tflite` alone is enough.
"""
from __future__ import annotations

import time

import numpy as np

from ..core.errors import ConversionError, InputError, one_line, reraise_interrupt
from ..core.quiet import silenced
from ..runtime.litert import LiteModel, load
from .converter import Conversion
from .techniques import LQ, Technique, get

CALIB_THREADS = 1  # single-threaded float kernels: the calibrated ranges are identical run to run
# The quantizer keeps a moving average of each step's min/max. One-sample steps average the extremes away and
# clip activations; batched steps keep them, but the calibrating interpreter holds every tensor of the batch.
CALIB_BATCH = 32
CALIB_MEMORY = 2 ** 28  # bytes of tensors one calibration step may hold; big models take smaller steps (the
# quantizer keeps more than the tensors: at 1 GiB, MobileNetV2 224 peaked 2.2 GB above the process)


def float_tflite_only(technique: str | Technique) -> bool:
    """True when the technique can be made from a float `.tflite` alone, without the Keras model."""
    return get(technique).engine == LQ


def make(float_tflite: bytes, technique: str | Technique, calib=None) -> Conversion:
    """The technique's variant from a float `.tflite`; a technique that needs the Keras model is refused.

    Raises:
        ConversionError: the technique needs the Keras model, or the quantizer refused.
    """
    technique = get(technique)
    if not float_tflite_only(technique):
        raise ConversionError(f"{technique.name}: made by TFLiteConverter from the Keras model; "
                              "a float .tflite alone cannot give it.")
    return quantize(float_tflite, technique, calib)


def quantize(float_tflite: bytes, technique: str | Technique, calib=None) -> Conversion:
    """Quantize a float32 `.tflite` with the technique's LiteRT Quantizer recipe.

    Args:
        float_tflite: the float32 model's bytes.
        technique: a LiteRT Quantizer technique, by name or object (see `techniques.LQ_TECHNIQUES`).
        calib: float calibration inputs for static recipes: an array (one input), a list of arrays in
            the runtime's input order (`quantbench.load(...).inputs`), or a dict keyed by signature input name.

    Raises:
        InputError: the file is not a float32 `.tflite`, or the calibration inputs do not fit it.
        ConversionError: the quantizer refused; the message is its reason in one line.
    """
    return quantize_family(float_tflite, [technique], calib, strict=True)[get(technique).name]


def quantize_family(float_tflite: bytes, techniques, calib=None, *, strict: bool = False) -> dict:
    """Several LiteRT Quantizer techniques from one float32 `.tflite`, the static recipes calibrated once.

    Calibration runs the float model and records every tensor's min/max; the recipe only decides how those
    ranges are used, so the calibrated ranges of one static recipe quantize another to the same bytes as
    calibrating it again (lq-int8 and lq-int16x8: tested, and on MobileNetV2 in BENCHMARKS.md).

    Returns:
        technique name -> its `Conversion`, or the `ConversionError` saying why the quantizer refused it (raised
        instead when `strict`); `seconds` of a calibrated technique includes an equal share of the calibration.

    Raises:
        InputError: as `quantize`.
    """
    chosen = order = list(dict.fromkeys(get(t) for t in techniques))
    for technique in chosen:
        if technique.engine != LQ:
            raise InputError(f"Technique {technique.name!r} is made by the {technique.engine} engine, "
                             "not by the LiteRT Quantizer. Fix: use quantbench.convert with the Keras model.")
    original = bytes(float_tflite)
    float_tflite = readable(original)
    signature, lite, sample_bytes = _float_model(float_tflite)
    if float_tflite is not original and isinstance(calib, (list, tuple, dict)) and len(calib) > 1:
        calib = _keyed(calib, original, lite)
    calibrated = [t for t in chosen if t.calibrate]
    out = {}
    if calibrated and signature is None:  # several signatures: each calibrated technique's refusal, not the study's
        for technique in calibrated:
            error = ConversionError(
                f"{technique.name}: the model has {len(lite_signatures(float_tflite))} signatures, and the quantizer "
                "calibrates one signature by its input names. Fix: convert the model with one signature.")
            if strict:
                raise error
            out[technique.name] = error
        chosen = [t for t in chosen if not t.calibrate]
        calibrated = []
    samples = _samples(calibrated[0], lite, calib, sample_bytes) if calibrated else None
    if samples and any(d < 0 for t in lite.inputs for d in t.shape[1:]):
        # Sizes unknown beyond the batch (a sequence's length): the quantizer's interpreter allocates the stored
        # shapes (often [1, 1, ...]), which its kernels may refuse to prepare; store the calibration's instead.
        float_tflite = _stored_shapes(float_tflite, {t.index: [1, *samples[0][t.name].shape[1:]] for t in lite.inputs})
    ranges, share = None, 0.0
    for technique in chosen:
        try:
            with silenced():  # tqdm bars, absl warnings, LiteRT's XNNPACK and preserve-all-tensors notices
                from litert_quantizer import quantizer

                qt = quantizer.Quantizer(float_tflite)
                _add_recipe(qt, technique.recipe)
                if technique.calibrate and ranges is None:  # a refused calibration is tried again by the next
                    begin = time.perf_counter()
                    ranges = qt.calibrate({signature: samples}, num_threads=CALIB_THREADS)
                    share = (time.perf_counter() - begin) / len(calibrated)
                start = time.perf_counter()
                result = qt.quantize(ranges if technique.calibrate else None, enable_progress_bar=False,
                                     enable_progress_report=False)
        except Exception as exc:  # the quantizer raises many types; each becomes a failed row
            reraise_interrupt()
            error = ConversionError(f"{technique.name}: {one_line(exc)}")
            if strict:
                raise error from exc
            out[technique.name] = error
            continue
        seconds = time.perf_counter() - start + (share if technique.calibrate else 0.0)
        out[technique.name] = Conversion(technique.name, bytes(result.quantized_model), seconds)
    return {t.name: out[t.name] for t in order}


# ---- A float .tflite from anywhere, as the quantizer must read it ------------------------------------------------
#
# The quantizer reads the flatbuffer itself, and two things common in files quantbench did not make defeat it:
# - Old-schema operator codes (schema version 3 before the int32 `builtin_code` field was used) keep the op in
#   `deprecated_builtin_code` and leave `builtin_code` at 0 (ADD). LiteRT reads the larger of the two; the quantizer
#   reads `builtin_code` only, sees every op as ADD, and quietly quantizes nothing (MediaPipe's face landmark model:
#   lq-dynamic gave the float file back, byte for byte the same size).
# - A model without a signature (converters before TF 2.5, MediaPipe) cannot be calibrated: the quantizer calibrates a
#   signature, by its input names.
# `readable` fixes both in a copy: it sets `builtin_code = max(builtin_code, deprecated_builtin_code)`, and gives a
# signature-less model one signature over its main subgraph's inputs and outputs, named by their tensor names (so
# arrays are matched to the original file's inputs and outputs by name, as `runtime.align` matches them; input_0, ...
# in the subgraph's order when those names are not distinct). The quantizer also keys tensors by name: a name used
# twice in a subgraph gets a suffix (_2, _3, ...) in the copy.

SIGNATURE_KEY = "serving_default"


def lite_signatures(content: bytes) -> list[str]:
    """The signature keys of a `.tflite`, read from the flatbuffer."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(content, 0)
    return [(model.SignatureDefs(i).SignatureKey() or b"").decode("utf-8", "replace")
            for i in range(model.SignatureDefsLength())]


def needs_rewrite(content: bytes) -> list[str]:
    """What `readable` would change in the file: "operator codes", "signature", "tensor names", or nothing."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(content, 0)
    changes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if code.DeprecatedBuiltinCode() > code.BuiltinCode():
            changes.append("operator codes")
            break
    if model.SignatureDefsLength() == 0 and model.SubgraphsLength() > 0:
        changes.append("signature")
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        names = [graph.Tensors(i).Name() for i in range(graph.TensorsLength())]
        if len(set(names)) != len(names):
            changes.append("tensor names")
            break
    return changes


def _names(tensors, indices: list[int], kind: str) -> list[str]:
    """Signature names for the tensors: their own names when those are distinct and non-empty, else kind_0, ..."""
    names = []
    for i in indices:
        raw = tensors[i].name
        names.append(raw.decode("utf-8") if isinstance(raw, bytes) else (raw or ""))
    if all(names) and len(set(names)) == len(names):
        return names
    width = len(str(max(len(indices) - 1, 0)))  # natural order of kind_0 .. kind_N is the subgraph's order
    return [f"{kind}_{k:0{width}d}" for k in range(len(indices))]


def readable(content: bytes) -> bytes:
    """A copy of a float `.tflite` the LiteRT Quantizer reads as LiteRT does (see above); the bytes themselves when
    nothing needs changing.

    Raises:
        InputError: the file is not a flatbuffer the schema can read.
    """
    try:
        changes = needs_rewrite(content)
    except Exception as exc:  # a corrupt table: LiteRT's own load (in `_float_model`) says what is wrong
        reraise_interrupt()
        return content
    if not changes:
        return content
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    except Exception as exc:
        reraise_interrupt()
        raise InputError(f"The .tflite could not be read as a TFLite flatbuffer ({one_line(exc)}). Expected a "
                         ".tflite file as a converter wrote it. Fix: convert the model again, or copy the file "
                         "again.") from None
    for code in model.operatorCodes or []:
        code.builtinCode = max(code.builtinCode, code.deprecatedBuiltinCode)
    if not model.signatureDefs and model.subgraphs:
        graph = model.subgraphs[0]
        signature = fb.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = SIGNATURE_KEY, 0
        signature.inputs, signature.outputs = [], []
        for kind, indices, entries in (("input", graph.inputs, signature.inputs),
                                       ("output", graph.outputs, signature.outputs)):
            indices = [int(i) for i in (indices if indices is not None else [])]
            for name, index in zip(_names(graph.tensors, indices, kind), indices):
                entry = fb.TensorMapT()
                entry.name, entry.tensorIndex = name, index
                entries.append(entry)
        model.signatureDefs = [signature]
    for graph in model.subgraphs or []:  # the quantizer keys tensors by name: a name used twice gets a suffix
        seen = set()
        for tensor in graph.tensors or []:
            name = tensor.name.decode("utf-8", "replace") if isinstance(tensor.name, bytes) else (tensor.name or "")
            unique, k = name, 1
            while unique in seen:
                k += 1
                unique = f"{name}_{k}"
            seen.add(unique)
            tensor.name = unique
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _stored_shapes(content: bytes, shapes: dict) -> bytes:
    """A copy whose main-subgraph tensors `shapes` (index -> shape) have those stored shapes; shape_signature kept."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for index, shape in shapes.items():
        model.subgraphs[0].tensors[index].shape = [int(d) for d in shape]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _keyed(calib, original: bytes, lite: LiteModel):
    """Calibration arrays for the original file's inputs (a list in its input order, or a dict keyed by its input
    names), keyed by the readable copy's signature names; as given when they do not fit (`_samples` says why)."""
    from ..runtime.litert import natural_key

    before = [t.name for t in load(original).inputs]  # no signature: the subgraph's order
    after = [t.name for t in lite.inputs]
    if isinstance(calib, dict):
        if sorted(calib) == sorted(after) or sorted(calib) != sorted(before) or len(set(before)) != len(before):
            return calib
        calib = [calib[n] for n in before]
    if len(calib) != len(before):
        return list(calib)
    names = before if sorted(before) == sorted(after) else sorted(after, key=natural_key)  # input_0, ... in order
    return dict(zip(names, calib))


def _add_recipe(qt, recipe: tuple) -> None:
    """Give the quantizer the recipe: one `add_<mode>_config` call over every supported op."""
    from litert_quantizer import qtyping

    args = dict(recipe)
    mode = args.pop("mode")
    for key in ("granularity", "weight_granularity"):
        if key in args:
            args[key] = qtyping.QuantGranularity(args[key])
    getattr(qt, f"add_{mode}_config")(".*", qtyping.TFLOperationName.ALL_SUPPORTED, **args)


def _float_model(content: bytes) -> tuple[str | None, LiteModel, int]:
    """The only signature's key (or None), the loaded model, its tensor bytes at batch 1; refuses quantized ones."""
    from ai_edge_litert.interpreter import Interpreter

    lite = load(content)  # a readable InputError for anything LiteRT cannot load
    with silenced():
        it = Interpreter(model_content=content)
    details = it.get_tensor_details()
    kinds = sorted({np.dtype(d["dtype"]).name for d in details
                    if d["quantization_parameters"]["scales"].size or np.dtype(d["dtype"]) == np.float16})
    if kinds:
        # The quantizer would keep those tensors as they are and quietly return a mixed model.
        raise InputError(
            f"The .tflite is already quantized (it holds {', '.join(kinds)} tensors). "
            "Expected a float32 .tflite, the LiteRT Quantizer's starting point. "
            "Fix: pass the float32 variant (`quantbench convert MODEL --technique float32`).")
    signatures = it.get_signature_list()
    sample_bytes = sum(int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in details)
    return (next(iter(signatures)) if len(signatures) == 1 else None), lite, sample_bytes


def _samples(technique: Technique, lite: LiteModel, calib, sample_bytes: int) -> list[dict[str, np.ndarray]]:
    """Calibration steps, each `{signature input name: batch}`, checked against the model's inputs."""
    inputs = lite.inputs
    names = [t.name for t in inputs]
    if calib is None:
        raise InputError(
            f"Technique {technique.name!r} needs calibration samples and got none. Expected a few hundred "
            "representative inputs. Fix: pass --calib FILE or data to draw them from.")
    if isinstance(calib, dict):
        if sorted(calib) != sorted(names):
            raise InputError(
                f"Calibration inputs are keyed {sorted(calib)} but the model's signature inputs are {names}. "
                "Expected one array per input, keyed by its name. Fix: rename the keys to the model's.")
        arrays = [np.asarray(calib[n]) for n in names]
    else:
        arrays = [np.asarray(a) for a in calib] if isinstance(calib, (list, tuple)) else [np.asarray(calib)]
        if len(arrays) != len(names):
            raise InputError(
                f"Got {len(arrays)} calibration array(s) but the model has {len(names)} inputs "
                f"({', '.join(names)}). Expected one array per input, in that order. "
                "Fix: pass a list in that order, or a dict keyed by those names.")
    for a, t in zip(arrays, inputs):
        if a.ndim != len(t.shape) or any(d not in (-1, g) for d, g in zip(t.shape[1:], a.shape[1:])):
            want = "(N, " + ", ".join(str(d) for d in t.shape[1:]) + ")"
            raise InputError(f"Calibration input {t.name!r} has shape {a.shape}, expected {want} with N samples. "
                             f"Fix: reshape it to {want}.")
    counts = sorted({len(a) for a in arrays})
    if counts == [0] or len(counts) != 1:
        raise InputError(f"Calibration inputs have sample counts {counts}. Expected one count ≥ 1 for every "
                         "input. Fix: pass aligned, non-empty arrays.")
    step = max(1, min(CALIB_BATCH, CALIB_MEMORY // max(sample_bytes, 1))) if lite.resizable else \
        max(inputs[0].shape[0], 1)
    steps = []
    for start in range(0, counts[0], step):
        part = [a[start:start + step] for a in arrays]
        if not lite.resizable and len(part[0]) < step:  # a fixed batch: pad with repeats, ranges unchanged
            part = [np.concatenate([p, np.repeat(p[-1:], step - len(p), axis=0)]) for p in part]
        steps.append({t.name: p.astype(t.dtype) for p, t in zip(part, inputs)})
    return steps
