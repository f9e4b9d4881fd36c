"""Run a `.tflite` file with LiteRT, quantizing inputs and dequantizing outputs for the caller.

This module imports no TensorFlow: a deployment needs only `ai-edge-litert` and `numpy`.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError, LiteRTError
from ..core.quiet import silenced

MAX_BATCH = 256  # larger inputs run in chunks of this many samples


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor, in readable form."""

    name: str
    index: int
    shape: tuple[int, ...]  # -1 marks a dimension the model lets you resize
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None

    def __str__(self) -> str:
        q = f" scale={self.scale:.6g} zero_point={self.zero_point}" if self.quantized else ""
        return f"{self.name} {list(self.shape)} {self.dtype}{q}"


def _tensor_info(detail: dict, name: str | None = None) -> TensorInfo:
    scale, zero_point = detail["quantization"]
    quantized = np.issubdtype(detail["dtype"], np.integer) and scale != 0.0
    return TensorInfo(
        name=name or detail["name"],
        index=int(detail["index"]),
        shape=tuple(int(d) for d in detail.get("shape_signature", detail["shape"])),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale) if quantized else None,
        zero_point=int(zero_point) if quantized else None,
    )


def natural_key(name: str):
    """Sort key that puts output_2 before output_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def align(names: list[str], arrays: list[np.ndarray], wanted: list[str]) -> list[np.ndarray]:
    """Reorder arrays named `names` into the order `wanted` names them; positional when names differ."""
    if len(arrays) == 1 or sorted(names) != sorted(wanted):
        return list(arrays)
    by_name = dict(zip(names, arrays))
    return [by_name[n] for n in wanted]


@functools.lru_cache(maxsize=None)
def _qparams(info: TensorInfo) -> tuple:
    """dtype, scale, zero-point and the dtype's limits as float32 0-d arrays (the cheapest ufunc operands)."""
    limits = np.iinfo(info.dtype)
    return (np.dtype(info.dtype), *(np.array(v, np.float32) for v in
                                    (info.scale, info.zero_point, limits.min, limits.max)))


# These run on every predict call: one float32 buffer updated in place, with constants made once, since on
# a small model each numpy call costs about as much as a layer (np.round and np.clip are slower than ufuncs).
def quantize(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Float values to the tensor's integer dtype with its scale and zero-point (round half to even, clip)."""
    if not info.quantized:
        return np.asarray(x, dtype=info.dtype)
    dtype, scale, zero_point, lo, hi = _qparams(info)
    q = np.divide(x, scale, dtype=np.float32)
    np.rint(q, out=q)
    q += zero_point
    np.minimum(q, hi, out=q)
    np.maximum(q, lo, out=q)
    return q.astype(dtype)


def dequantize(q: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Integer tensor values back to float32 with the tensor's scale and zero-point."""
    if not info.quantized:
        return q
    _, scale, zero_point, _, _ = _qparams(info)
    out = q.astype(np.float32)
    out -= zero_point
    out *= scale
    return out


def _reason(exc: Exception) -> str:
    """LiteRT's message on one line."""
    return " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip()) or type(exc).__name__


def _first_xnnpack_message(exc: Exception) -> str:
    """XNNPACK runs its messages together ("...in XNNPACK delegateunsupported datatype..."): the first."""
    return re.match(r".*?XNNPACK delegate(?=\S)|.*", _reason(exc)).group(0)


def _xnnpack(exc: Exception) -> bool:
    """True when the XNNPACK delegate, not the model's own kernels, refused the model."""
    return "XNNPACK" in str(exc).upper()


def _unknown_sizes(interpreter) -> bool:
    """True when an input has a dimension of unknown size (-1) beyond the batch dimension."""
    try:
        details = interpreter.get_input_details()
    except UnicodeDecodeError:  # a corrupt name: `LiteModel._describe` says so
        return False
    return any(int(d) < 0 for detail in details for d in list(detail.get("shape_signature", detail["shape"]))[1:])


# Ops whose operands may be resource or variant tensors (handles) by design.
_HANDLE_OPS = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "WHILE", "IF", "CALL", "CUSTOM",
               "DELEGATE", "STABLEHLO_WHILE", "STABLEHLO_CASE", "STABLEHLO_COMPOSITE"}


def not_utf8(where, exc: UnicodeDecodeError) -> InputError:
    """The error for a tensor or op name in the file that is not UTF-8 text: the file is corrupt."""
    return InputError(f"{where} holds a tensor name that is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} "
                      f"at position {exc.start} of the name), so the file is corrupt. Expected a .tflite file as a "
                      "TFLite converter wrote it. Fix: convert the model again, or copy the file again.")


class LiteModel:
    """A loaded `.tflite` model: `.inputs`, `.outputs` and `.predict(x)`."""

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int = 1, delegates: bool = True,
                 allocate: bool = True):
        if isinstance(model, (bytes, bytearray)):
            content, self.path = bytes(model), None
        else:
            self.path = Path(model)
            if not self.path.is_file():
                raise InputError(
                    f"No .tflite file at {self.path}. Expected a path to a TFLite model file. "
                    "Fix: check the path.")
            content = self.path.read_bytes()
        self._where = where = self.path or "the model bytes"
        if len(content) < 8 or content[4:8] != b"TFL3":
            raise InputError(
                f"{where} is not a TFLite flatbuffer (no 'TFL3' identifier in its header). "
                "Expected a .tflite file written by a TFLite converter. "
                "Fix: pass a .tflite file, or convert your model first with `quantbench convert`.")
        self._content, self.num_threads, self._allocate, self._preserve = content, num_threads, allocate, False
        # XNNPACK's reason when it refused this model and LiteRT's built-in kernels run it instead; None otherwise
        self.delegate_fallback: str | None = None
        try:
            # LiteRT's built-in kernels check every node first: XNNPACK reads some node fields unchecked and
            # crashes the process on a corrupt file (fuzz case tflite-1142, a PACK node's values_count)
            self._interpreter = self._open(delegates=False)
        except (ValueError, RuntimeError) as exc:
            raise self._refused("load", exc) from None
        self._check_handles()
        if allocate and not self._signature_outputs_are_outputs():
            # A signature output that is not a subgraph output (the LiteRT Quantizer makes these when an output
            # also feeds another op) is read the way LiteRT's signature runner reads it: by its tensor index. The
            # arena may reuse an intermediate tensor's memory, so every tensor is kept for it to be read safely.
            self._preserve = True
            self._interpreter = self._open(delegates=False)
        if delegates and allocate:
            try:
                self._interpreter = self._open(delegates=True)
            except (ValueError, RuntimeError) as exc:
                if not _xnnpack(exc):
                    raise self._refused("load", exc) from None
                self.delegate_fallback = _first_xnnpack_message(exc)  # and the built-in kernels run it
        self.size_bytes = len(content)
        try:
            self.inputs, self.outputs = self._describe()
        except UnicodeDecodeError as exc:  # a flipped bit in a tensor's name: LiteRT cannot even report it
            raise not_utf8(where, exc) from None
        except (KeyError, ValueError) as exc:  # a signature naming a tensor that does not exist (a corrupt index)
            named = f"tensor {exc.args[0]}" if isinstance(exc, KeyError) else \
                f"a tensor LiteRT cannot read ({' '.join(str(exc).split())})"
            raise InputError(f"{where} has a signature naming {named}, which LiteRT does not list among "
                             "the model's inputs and outputs. Expected a .tflite file whose signature matches its "
                             "inputs and outputs. Fix: convert the model again.") from None
        self._batch = None
        self._dynamic = any(d < 0 for t in self.inputs for d in t.shape[1:])  # resized to the data's shapes
        self._shapes: list[tuple] | None = None  # the input shapes a dynamic model is allocated at
        # per-call constants, looked up once: tensor indices and the per-sample shapes inputs must have
        self._in_index = [t.index for t in self.inputs]
        self._out_index = [t.index for t in self.outputs]
        self._sample_shapes = [t.shape[1:] for t in self.inputs]
        # one array in, one out, any batch: predict's fast path (see there) unpacks this in one step
        self._fast = None
        if len(self.inputs) == 1 and len(self.outputs) == 1 and self.resizable:
            inp, out = self.inputs[0], self.outputs[0]
            self._fast = (inp.shape[1:], np.dtype(inp.dtype), inp.index, inp if inp.quantized else None,
                          out.index, out if out.quantized else None)

    def _check_handles(self) -> None:
        """Refuse an op that reads or writes a resource or variant tensor (a handle, not data) unless handles are its
        business: LiteRT prepares SOFTMAX with a RESOURCE output and then crashes the process at invoke (fuzz: one
        tensor's type byte changed)."""
        try:
            details = self.op_details()
        except UnicodeDecodeError:  # a corrupt name: `_describe` reports it
            return
        except ValueError as exc:  # a tensor type NumPy has no dtype for (bfloat16, a corrupt type byte)
            raise InputError(f"{self._where} holds a tensor whose type LiteRT cannot describe to NumPy "
                             f"({_reason(exc)}), so its ops cannot be read or fed. Expected a .tflite file with float, integer or bool "
                             "tensors. Fix: convert the model again, or copy the file again.") from None
        for op in details:
            name = op["op_name"]
            if name in _HANDLE_OPS or name.startswith(("LIST_", "HASHTABLE")):
                continue
            types = [*op.get("operand_types", []), *op.get("result_types", [])]
            if any(t is not None and np.dtype(t) == np.dtype(object) for t in types):
                raise InputError(f"{self._where} has a {name} op (node {op['index']}) whose operands include a "
                                 "resource or variant tensor, a handle no such op reads or writes, so the file is "
                                 "corrupt. Expected a .tflite file as a converter wrote it. Fix: convert the model "
                                 "again, or copy the file again.")

    def _open(self, delegates: bool):
        """A LiteRT interpreter for the file, tensors allocated (unless only its structure is read); with the
        default XNNPACK delegate or without."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        with silenced():  # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" on stderr
            resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            interpreter = Interpreter(model_content=self._content, num_threads=self.num_threads,
                                      experimental_op_resolver_type=resolver,
                                      experimental_preserve_all_tensors=self._preserve)
            # Reading the file's structure needs no kernel prepared; a model with inputs of unknown size beyond the
            # batch dimension (an audio front end's [-1, -1]) is allocated at the data's shapes, in `run`: its stored
            # shapes (often 1) may be too small for its kernels to prepare.
            if self._allocate and not _unknown_sizes(interpreter):
                interpreter.allocate_tensors()
        return interpreter

    def _refused(self, when: str, exc: Exception) -> LiteRTError:
        """The error for a file LiteRT refuses to load or to run, with LiteRT's reason (also as `.reason`)."""
        reason = _reason(exc)
        fix = ("The file is corrupt or truncated. Fix: convert the model again, or copy the file again."
               if "not a valid Flatbuffer" in reason else "Fix: re-create it with another technique.")
        return LiteRTError(f"LiteRT could not {when} {self._where}: {reason} Expected a .tflite file LiteRT can run. "
                           f"{fix}", reason)

    def _signature(self) -> dict | None:
        """The model's only signature ({"inputs": name -> index, "outputs": ...}), or None."""
        it = self._interpreter
        signatures = it._get_full_signature_list() if hasattr(it, "_get_full_signature_list") else {}
        return next(iter(signatures.values())) if len(signatures) == 1 else None

    def _signature_outputs_are_outputs(self) -> bool:
        sig = self._signature()
        outputs = {int(i) for i in self._interpreter._interpreter.OutputIndices()}
        return sig is None or all(int(i) in outputs for i in sig["outputs"].values())

    def _fall_back(self, exc: Exception) -> None:
        """XNNPACK refused the model: run it on LiteRT's built-in kernels, keeping XNNPACK's reason."""
        self._shapes = None
        try:
            self._interpreter = self._open(delegates=False)
        except (ValueError, RuntimeError) as again:
            raise self._refused("load", again) from None
        self.delegate_fallback = _first_xnnpack_message(exc)

    def _recover(self, exc: RuntimeError) -> None:
        """After LiteRT failed at run time: fall back to built-in kernels once if XNNPACK refused, else refuse."""
        if self.delegate_fallback is not None or not _xnnpack(exc):
            raise self._refused("run", exc) from None
        batch, self._batch = self._batch, None
        self._fall_back(exc)
        if batch is not None:
            self.set_batch(batch)

    def _describe(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        """Inputs and outputs as LiteRT's signature runner sees them: by signature name and tensor index."""
        it = self._interpreter
        sig = self._signature()
        if sig is not None:
            # Ordered by signature name: stable and meaningful across converters. Details by tensor index, as
            # the signature runner reads them: a signature output need not be in get_output_details().
            count = int(it._interpreter.NumTensors(0))
            def details(i):  # an index out of range: LiteRT's wrapper raises TypeError past int32 (fuzz seed 61206)
                if not 0 <= int(i) < count:
                    raise KeyError(int(i))
                return it._get_tensor_details(int(i), 0)
            return ([_tensor_info(details(i), n) for n, i in sorted(sig["inputs"].items(),
                                                                     key=lambda kv: natural_key(kv[0]))],
                    [_tensor_info(details(i), n) for n, i in sorted(sig["outputs"].items(),
                                                                     key=lambda kv: natural_key(kv[0]))])
        return ([_tensor_info(d) for d in it.get_input_details()],
                [_tensor_info(d) for d in it.get_output_details()])

    @property
    def interpreter(self):
        """The LiteRT interpreter that runs the model (with XNNPACK, or LiteRT's built-in kernels after a fallback;
        without delegates when the model was loaded with `delegates=False`)."""
        return self._interpreter

    def op_details(self) -> list[dict]:
        """Every op of the model as LiteRT describes it: op_name, index, inputs, outputs, operand_types and
        result_types. Read through LiteRT's private `_get_ops_details`, which only this method calls."""
        return self._interpreter._get_ops_details()

    @property
    def resizable(self) -> bool:
        """True when every input's batch dimension may be resized."""
        return all(t.shape and t.shape[0] == -1 for t in self.inputs)

    def _check_io(self) -> None:
        """Refuse to run a model that lists no input or no output (a corrupt signature or subgraph: fuzz seed 61206,
        cases tflite-107 and tflite-179); reading its structure (`inspect`) still works."""
        missing = [kind for kind, ts in (("inputs", self.inputs), ("outputs", self.outputs)) if not ts]
        if missing:
            raise InputError(f"{self._where} lists no {' and no '.join(missing)} (in its signature, or in its main "
                             "subgraph when it has none), so there is nothing to feed or to read. Expected a .tflite "
                             "file with at least one input and one output. Fix: convert the model again, or copy the "
                             "file again.")

    def as_list(self, x) -> list[np.ndarray]:
        """`x` (an array, a list, or a dict by input name) as one array per input, checked against the model's
        inputs: their number, dtypes, per-sample shapes and sample counts (an InputError otherwise)."""
        self._check_io()
        if type(x) is np.ndarray:
            arrays = [x]
        elif isinstance(x, dict):
            missing = [t.name for t in self.inputs if t.name not in x]
            if missing:
                raise InputError(
                    f"predict got inputs {sorted(x)} but the model needs {[t.name for t in self.inputs]}. "
                    f"Missing: {missing}. Fix: pass one array per model input, keyed by its name.")
            arrays = [np.asarray(x[t.name]) for t in self.inputs]
        elif isinstance(x, (list, tuple)):
            arrays = [np.asarray(a) for a in x]
        else:
            arrays = [np.asarray(x)]
        if len(arrays) != len(self.inputs):
            raise InputError(
                f"predict got {len(arrays)} input array(s) but the model has {len(self.inputs)} inputs "
                f"({', '.join(t.name for t in self.inputs)}). Fix: pass a list or dict with one array per input.")
        for a, t, want in zip(arrays, self.inputs, self._sample_shapes):
            if a.dtype.kind not in "biuf":  # text, complex, objects: no number to feed (fuzz: an .npz's x as <U3)
                raise InputError(f"Input {t.name!r} has dtype {a.dtype}, which holds no real numbers. Expected a "
                                 f"numeric array (the model takes {t.dtype}). Fix: save it as x.astype('float32').")
            got = a.shape[1:]
            if got != want and (a.ndim != len(t.shape) or any(d not in (-1, g) for d, g in zip(want, got))):
                want = "(N, " + ", ".join(str(d) for d in t.shape[1:]) + ")"
                raise InputError(
                    f"Input {t.name!r} has shape {a.shape}, expected {want} with N samples. "
                    f"Fix: reshape your data to {want}.")
        if len(arrays) > 1 and len({len(a) for a in arrays}) != 1:
            n = sorted({len(a) for a in arrays})
            raise InputError(f"Input arrays have different sample counts {n}. "
                             "Expected one count for all inputs. Fix: pass aligned arrays.")
        return arrays

    def set_batch(self, n: int) -> None:
        """Resize every input to batch `n` (a no-op when already there). A model with inputs of unknown size beyond
        the batch dimension is resized by `run`, to the shapes of the arrays it is given."""
        if self._batch == n:
            return
        if self._dynamic:
            self._batch = n
            return
        try:
            for t in self.inputs:
                self._interpreter.resize_tensor_input(t.index, [n, *t.shape[1:]], strict=True)
            self._interpreter.allocate_tensors()
        except RuntimeError as exc:  # a kernel (or XNNPACK) refusing the new shapes
            self._recover(exc)
            return self.set_batch(n)
        self._batch = n

    def _fit(self, arrays: list[np.ndarray]) -> None:
        """Resize a dynamic model's inputs to the arrays' shapes and allocate (a no-op when already there)."""
        shapes = [tuple(a.shape) for a in arrays]
        if shapes == self._shapes:
            return
        try:
            for t, shape in zip(self.inputs, shapes):
                self._interpreter.resize_tensor_input(t.index, list(shape), strict=True)
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:  # a kernel refusing the shapes, or a fixed size changed
            if isinstance(exc, ValueError) or self.delegate_fallback is not None or not _xnnpack(exc):
                raise self._refused("run", exc) from None
            self._fall_back(exc)
            return self._fit(arrays)
        self._shapes = shapes

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """One invoke on arrays already in the model's dtypes and batch size; raw outputs."""
        if self._dynamic:
            self._fit(arrays)
        it = self._interpreter
        try:
            for index, a in zip(self._in_index, arrays):
                it.set_tensor(index, a)
        except ValueError as exc:  # an input LiteRT left unallocated (a corrupt tensor list: fuzz seed 61206)
            raise self._refused("run", exc) from None
        try:
            it.invoke()
        except RuntimeError as exc:
            self._recover(exc)
            return self.run(arrays)
        try:
            return [it.get_tensor(index) for index in self._out_index]  # get_tensor returns a copy
        except ValueError as exc:  # an output with no data after invoke (the same)
            raise self._refused("run", exc) from None

    def prepare(self, x, raw: bool = False) -> list[np.ndarray]:
        """Inputs in the model's dtypes: quantized from float unless `raw`."""
        arrays = self.as_list(x)
        if raw:
            return [np.asarray(a, dtype=t.dtype) for a, t in zip(arrays, self.inputs)]
        return [quantize(a, t) for a, t in zip(arrays, self.inputs)]

    def predict(self, x, raw: bool = False):
        """Outputs for a batch of inputs.

        Args:
            x: an array of shape (N, ...) for a single-input model; a list or a dict keyed by input
               name for several inputs. Float values, whatever the model's input dtype.
            raw: pass inputs and return outputs in the model's own dtypes, without (de)quantizing.

        Returns:
            One array of shape (N, ...) per output: a single array when the model has one output.
        """
        fast = self._fast
        if fast and type(x) is np.ndarray and x.shape[1:] == fast[0] and 0 < (n := len(x)) <= MAX_BATCH:
            # The common call, checked and run in as few Python steps as possible: on a small model the
            # general path below costs as much as the invoke itself (bench/runtime_overhead.py).
            _, dtype, in_index, in_q, out_index, out_q = fast
            if self._batch != n:
                self.set_batch(n)
            it = self._interpreter
            try:  # free in Python 3.11 unless it raises
                if raw or in_q is None:
                    it.set_tensor(in_index, x if x.dtype is dtype else x.astype(dtype))
                else:
                    it.set_tensor(in_index, quantize(x, in_q))
                it.invoke()
                y = it.get_tensor(out_index)
            except RuntimeError as exc:
                self._recover(exc)
                return self.predict(x, raw)
            except ValueError as exc:  # a tensor LiteRT left unallocated (a corrupt tensor list: fuzz seed 61206)
                raise self._refused("run", exc) from None
            return y if raw or out_q is None else dequantize(y, out_q)
        arrays = self.prepare(x, raw)
        n = len(arrays[0])
        # A model with a fixed batch dimension B runs B samples at a time, the last chunk padded.
        step = MAX_BATCH if self.resizable else max(self.inputs[0].shape[0], 1)
        if 0 < n == step or (0 < n < step and self.resizable):  # one invoke: the common, hot case
            if self._batch != n and self.resizable:
                self.set_batch(n)
            outs = self.run(arrays)
        else:
            chunks = []
            for start in range(0, n, step):
                part = [a[start:start + step] for a in arrays]
                m = len(part[0])
                if self.resizable:
                    self.set_batch(m)
                elif m < step:
                    part = [np.concatenate([p, np.repeat(p[-1:], step - m, axis=0)]) for p in part]
                chunks.append([o[:m] for o in self.run(part)])
            outs = [np.concatenate([c[k] for c in chunks]) if chunks else
                    np.empty((0, *self.outputs[k].shape[1:]), self.outputs[k].dtype)
                    for k in range(len(self.outputs))]
        if not raw:
            outs = [dequantize(o, t) for o, t in zip(outs, self.outputs)]
        return outs[0] if len(outs) == 1 else outs

    def memory_bytes(self) -> int:
        """What this interpreter holds at its current batch, read from LiteRT's tensor details (deterministic,
        unlike RSS growth, which the allocator's reuse and other threads blur): the file's bytes (the buffer
        the interpreter keeps) plus every tensor's bytes at its allocated shape (weights, counted once more for
        XNNPACK's packed copy of them, and activations without the arena's reuse: an upper bound of the arena)."""
        total = 0
        for d in self._interpreter.get_tensor_details():
            try:
                total += int(np.prod(d["shape"], dtype=np.int64)) * np.dtype(d["dtype"]).itemsize
            except TypeError:  # a dtype numpy cannot size (e.g. a resource): holds no data of its own here
                continue
        return self.size_bytes + total

    def __repr__(self) -> str:
        ins = "; ".join(map(str, self.inputs))
        outs = "; ".join(map(str, self.outputs))
        return f"LiteModel({self.path or 'bytes'}, {self.size_bytes} bytes, inputs: {ins}, outputs: {outs})"


def float_range(info: TensorInfo) -> tuple[float, float]:
    """The float values a quantized tensor can represent: scale × (dtype's limits − zero-point)."""
    limits = np.iinfo(info.dtype)
    return info.scale * (limits.min - info.zero_point), info.scale * (limits.max - info.zero_point)


def generated_inputs(models: list, count: int, seed: int = 0, *, ranges: dict | None = None,
                     fallback: tuple[float, float] | None = (0.0, 1.0), bound: int | None = None,
                     unknown_size: int | None = None) -> list[list[np.ndarray]]:
    """Seeded inputs for each of `models` (LiteModels), from its signature: one list of arrays per model, in
    `.inputs` order, `count` samples each (fewer when one sample's float32 bytes times `count` would pass `bound`;
    never fewer than a fixed batch dimension).

    A quantized input is uniform over the float range it represents. A float input is uniform over the range
    `ranges` gives for its (name, shape[1:]), else over the range of a quantized input of the same name and shape
    in another of `models` (its twin), else over `fallback`, or standard normal when `fallback` is None. Each
    input draws from its own stream (seed, position), so files with the same signature get the same arrays.
    Integer inputs without quantization get zeros and ones, booleans random truth values. A dimension of unknown
    size beyond the batch is `unknown_size`, or an InputError when that is None.
    """
    known = dict(ranges or {})
    for m in models:
        for t in m.inputs:
            if t.quantized:
                known.setdefault((t.name, t.shape[1:]), float_range(t))
    out = []
    for m in models:
        arrays = []
        for k, t in enumerate(m.inputs):
            if any(d < 0 for d in t.shape[1:]) and unknown_size is None:
                raise InputError(
                    f"{m.path}: input {t.name!r} has shape {list(t.shape)}, with a dimension of unknown size, "
                    "so no input can be generated for it. Expected fixed sizes beyond the batch dimension. "
                    "Fix: pass --input X.npy with real inputs.")
            sample = tuple(d if d >= 0 else unknown_size for d in t.shape[1:])
            n = count if bound is None else min(count, max(1, bound // (int(np.prod(sample, dtype=np.int64)) * 4 or 1)))
            fixed = t.shape[0] if t.shape and t.shape[0] > 0 else 1  # a batch dimension the model fixes
            shape = (max(n, fixed), *sample)
            rng = np.random.default_rng([seed, k])  # the same draw for the same input in every file
            kind = np.dtype(t.dtype).kind
            if t.quantized or kind == "f":
                lo_hi = float_range(t) if t.quantized else known.get((t.name, t.shape[1:]), fallback)
                arrays.append((rng.uniform(*lo_hi, shape) if lo_hi is not None else
                               rng.standard_normal(shape)).astype(np.float32))
            elif kind == "b":
                arrays.append(rng.random(shape) < 0.5)
            else:
                arrays.append(rng.integers(0, 2, shape).astype(t.dtype))
        out.append(arrays)
    return out


def tensor_bytes(content: bytes) -> int:
    """Bytes of every tensor of a `.tflite` at its stored shapes (batch 1 for most models): an upper bound of
    what one sample costs an interpreter, weights included."""
    from ai_edge_litert.interpreter import Interpreter

    with silenced():
        it = Interpreter(model_content=bytes(content))
    return sum(int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in it.get_tensor_details())


def load(model: str | os.PathLike | bytes, num_threads: int = 1) -> LiteModel:
    """Load a `.tflite` file (or its bytes) for inference."""
    return LiteModel(model, num_threads=num_threads)
