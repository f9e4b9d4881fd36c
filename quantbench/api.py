"""Running a deployed `.tflite` file on a user's input file (no TensorFlow needed)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core.errors import InputError
from .core.files import check_new_file, write_file
from .inputs.data import input_keys, load_array, open_numpy
from .measure.evaluate import is_classifier
from .runtime.litert import LiteModel

SHOWN = 10  # samples listed on the terminal


@dataclass(frozen=True)
class Prediction:
    names: list
    outputs: list
    delegate_fallback: str | None = None  # XNNPACK's reason when the model ran on LiteRT's built-in kernels


def read_inputs(path: Path, model: LiteModel) -> list[np.ndarray]:
    if not path.is_file():
        raise InputError(f"No input file at {path} (--input). Expected a .npy or .npz file. Fix: check the path.")
    if path.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"{path} (--input) is not a .npy or .npz file. Expected inputs saved with np.save or "
                         "np.savez. Fix: save your inputs with np.save('x.npy', x).")
    loaded = open_numpy(path)
    if isinstance(loaded, np.ndarray):
        return [_numeric(loaded, str(path))]
    with loaded:
        keys = input_keys([t.name for t in model.inputs], "x")
        missing = [k for k in keys if k not in loaded.files]
        if missing:
            raise InputError(f"{path} has no array {missing[0]!r} (it has {sorted(loaded.files)}). Expected the "
                             f"inputs under {keys}. Fix: np.savez(f, {keys[0]}=...).")
        return [_numeric(load_array(loaded, k, str(path)), f"{path} array {k!r}") for k in keys]


def _numeric(a: np.ndarray, where: str) -> np.ndarray:
    """The array when it holds real numbers (bool, integers, floats); text, complex or objects are refused."""
    if a.dtype.kind not in "biuf":  # fuzz seeds 61206 and 7301: an .npz's x as <U3 or complex64 reached the runtime
        raise InputError(f"{where} has dtype {a.dtype}, which holds no real numbers. Expected a numeric array. "
                         "Fix: save it as x.astype('float32').")
    return a


def predict_file(model_path, input_path, output_path=None, force: bool = False) -> Prediction:
    """Dequantized outputs of a `.tflite` file on the inputs in `input_path`; saved when `output_path` is given."""
    if output_path is not None:
        check_new_file(output_path, force)  # before the work, not after
    model = LiteModel(model_path)
    arrays = read_inputs(Path(input_path), model)
    outs = model.predict(arrays if len(arrays) > 1 else arrays[0])
    outs = outs if isinstance(outs, list) else [outs]
    result = Prediction([t.name for t in model.outputs], outs, model.delegate_fallback)
    if output_path is not None:
        output_path = Path(output_path)
        buf = io.BytesIO()
        if output_path.suffix.lower() == ".npz":
            np.savez(buf, **dict(zip(result.names, outs)))
        elif len(outs) == 1 and output_path.suffix.lower() == ".npy":
            np.save(buf, outs[0])
        else:
            raise InputError(f"-o {output_path}: the model has {len(outs)} outputs. Expected a .npz path for several "
                             "outputs or .npy for one. Fix: use -o out.npz.")
        write_file(output_path, buf.getvalue(), force=force)
    return result


def render(result: Prediction, top: int = 3, saved=None) -> str:
    lines = []
    for name, out in zip(result.names, result.outputs):
        lines.append(f"{name}: shape {out.shape}, {out.dtype}")
        if is_classifier(out.shape):
            k = min(top, out.shape[1])
            for i, row in enumerate(out[:SHOWN]):
                best = np.argsort(-row)[:k]
                lines.append(f"  [{i}] " + "  ".join(f"class {c}: {row[c]:.4f}" for c in best))
            if len(out) > SHOWN:
                lines.append(f"  ... {len(out) - SHOWN} more samples")
        else:
            with np.printoptions(precision=4, suppress=True, threshold=50):
                lines.append("  " + str(out[:SHOWN]).replace("\n", "\n  "))
    if saved is not None:
        lines.append(f"Wrote {saved}")
    return "\n".join(lines)
