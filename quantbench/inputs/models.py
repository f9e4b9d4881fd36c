"""Models: the reference CNN of the article, and its seeded training."""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import reraise_interrupt
from ..core.quiet import silenced
from ..runtime.litert import natural_key
from ..runtime.tf import import_tensorflow


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and TF (Keras's `set_random_seed`); see `deterministic` for identical runs."""
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)


@contextlib.contextmanager
def deterministic(seed: int):
    """Same seed, same weights, same accuracy figures: seeded, with TF's deterministic ops for the block
    only; op determinism is switched off again afterwards unless the caller had switched it on."""
    seed_everything(seed)
    from tensorflow.python.framework import config

    was = config.is_op_determinism_enabled()
    config.enable_op_determinism()
    try:
        yield
    finally:
        if not was:
            config.disable_op_determinism()


def reference_cnn(input_shape=(8, 8, 1), classes: int = 10):
    """The article's CNN: Conv2D 64/32/32 (3x3, ReLU), Flatten, Dense 32 ReLU, Dense softmax."""
    import_tensorflow()
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, name="image")
    h = layers.Conv2D(64, 3, activation="relu")(inputs)
    h = layers.Conv2D(32, 3, activation="relu")(h)
    h = layers.Conv2D(32, 3, activation="relu")(h)
    h = layers.Flatten()(h)
    h = layers.Dense(32, activation="relu")(h)
    outputs = layers.Dense(classes, activation="softmax", name="digit")(h)
    return keras.Model(inputs, outputs, name="reference_cnn")


def train(model, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int = 32, on_epoch=None):
    """Fit with Adam and sparse categorical cross-entropy; `on_epoch(epoch, logs)` reports progress."""
    import keras

    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=on_epoch)] if on_epoch else []
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True, callbacks=callbacks)
    return model


# ---- Loading a user's model -------------------------------------------------------------------

MODEL_KINDS = "a Keras .keras or .h5 file, a SavedModel folder, or a float .tflite file"
KERAS_KINDS = ("keras", "h5")  # Source.kind of a Keras 3 model (an .h5 read by tf_keras is "h5 (tf_keras)")


class Source:
    """The user's float model, whatever its format: names and shapes of its I/O, predict, a converter.

    Inputs and outputs are named as the converted `.tflite` names them in its signature, so arrays
    can be matched to any variant by name.
    """

    def __init__(self, path, kind: str, name: str, keras_model=None, signature=None, lite=None):
        self.path, self.kind, self.name = path, kind, name
        self.keras, self._signature, self.lite = keras_model, signature, lite
        if lite is not None:
            self.input_names = [t.name for t in lite.inputs]
            self.input_shapes = [t.shape for t in lite.inputs]
            self.input_dtypes = [t.dtype for t in lite.inputs]
            self.output_names = [t.name for t in lite.outputs]
            self.output_shapes = [t.shape for t in lite.outputs]
            self.output_dtypes = [t.dtype for t in lite.outputs]
        elif keras_model is not None:
            self.input_names = [t.name for t in keras_model.inputs]
            self.input_shapes = [tuple(-1 if d is None else int(d) for d in t.shape) for t in keras_model.inputs]
            self.input_dtypes = [str(t.dtype).replace("<dtype: '", "").rstrip("'>") for t in keras_model.inputs]
            self.output_names = _keras_output_names(keras_model)
            self.output_shapes = [tuple(-1 if d is None else int(d) for d in t.shape) for t in keras_model.outputs]
            self.output_dtypes = [str(t.dtype).replace("<dtype: '", "").rstrip("'>") for t in keras_model.outputs]
        else:
            specs = signature.structured_input_signature[1]
            self.input_names = sorted(specs, key=natural_key)
            self.input_shapes = [tuple(-1 if d is None else int(d) for d in specs[n].shape) for n in self.input_names]
            self.input_dtypes = [specs[n].dtype.name for n in self.input_names]
            outs = signature.structured_outputs
            self.output_names = sorted(outs, key=natural_key)
            self.output_shapes = [tuple(-1 if d is None else int(d) for d in outs[n].shape) for n in self.output_names]
            self.output_dtypes = [outs[n].dtype.name for n in self.output_names]

    def lite_bytes(self) -> bytes:
        """The file's bytes, for a `.tflite` source."""
        return Path(self.path).read_bytes()

    @property
    def size_bytes(self) -> int:
        p = Path(self.path)
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size

    def predict(self, arrays: list[np.ndarray], batch_size: int = 256) -> list[np.ndarray]:
        """The float model's outputs, one array per output, in `output_names` order."""
        if self.lite is not None:
            out = self.lite.predict(arrays if len(arrays) > 1 else arrays[0])
            return out if isinstance(out, list) else [out]
        if self.keras is not None:
            out = self.keras.predict(arrays if len(arrays) > 1 else arrays[0], batch_size=batch_size, verbose=0)
            if isinstance(out, dict):  # a model of named heads: in output_names order
                return [np.asarray(out[n]) for n in self.output_names]
            return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]
        tf = import_tensorflow()
        chunks = []
        for start in range(0, len(arrays[0]), batch_size):
            feed = {n: tf.constant(a[start:start + batch_size]) for n, a in zip(self.input_names, arrays)}
            res = self._signature(**feed)
            chunks.append([res[n].numpy() for n in self.output_names])
        return [np.concatenate([c[k] for c in chunks]) for k in range(len(self.output_names))]

    def traced(self, batch: int = 1):
        """The float model as served: a traced function of a list of input tensors of batch `batch`."""
        tf = import_tensorflow()
        if self.keras is not None:
            # a dimension of unknown size (-1: a sequence's length) stays unknown: traced once for the data's length
            specs = [tf.TensorSpec((batch, *(None if d < 0 else d for d in s[1:])), d_)
                     for s, d_ in zip(self.input_shapes, self.input_dtypes)]
            model = self.keras
            fn = tf.function(lambda *t: model(list(t) if len(t) > 1 else t[0], training=False),
                             input_signature=specs)
            return lambda sample: fn(*sample)
        sig, names = self._signature, self.input_names
        return lambda sample: sig(**dict(zip(names, sample)))

    exported = None  # a SavedModel of the Keras model, as the converter exports it (see export_for_converter)

    def export_for_converter(self, folder) -> bool:
        """Write, once, the SavedModel that `TFLiteConverter.from_keras_model` exports to a temporary folder
        on every call, so that conversions start from it instead of tracing the model again.

        It is TF 2.21's export of a Keras 3 functional or sequential model, step for step: an `ExportArchive`
        with the endpoint `serve` calling the model with training=False on its named input specs. Files
        converted from it are byte-identical to from_keras_model's (`converter` keeps the metadata's model
        type), and each conversion of MobileNetV2 takes about half the time (BENCHMARKS.md). Returns False,
        writing nothing, for models the converter exports otherwise (tf_keras, subclassed models) and for
        models the export refuses: those are converted with from_keras_model as before.
        """
        import functools
        import shutil

        tf = import_tensorflow()
        import keras

        model, folder = self.keras, Path(folder)
        if not isinstance(model, (keras.src.models.Functional, keras.src.models.Sequential)):
            return False
        specs = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, dtype=t.dtype, name=t.name), model.inputs)
        if isinstance(specs, list) and len(specs) > 1:
            specs = [specs]
        partial = folder.with_name(folder.name + ".partial")
        try:
            with silenced():
                archive = keras.export.ExportArchive()
                archive.track(model)
                archive.add_endpoint("serve", functools.partial(model.__call__, training=False), specs)
                archive.write_out(str(partial), verbose=False)
        except Exception:  # as the converter does: a model the export refuses is converted the usual way
            reraise_interrupt()
            shutil.rmtree(partial, ignore_errors=True)
            return False
        partial.rename(folder)  # complete or absent: other processes test for the folder
        return True

    def converter(self):
        """A fresh TFLiteConverter for this model (from `exported` while that folder exists)."""
        if self.lite is not None:
            from ..core.errors import InputError

            raise InputError(f"{self.path} is a .tflite file; TFLiteConverter needs the TensorFlow model it came "
                             "from. Fix: pass the .keras/.h5/SavedModel, or a LiteRT Quantizer technique "
                             "(see `quantbench techniques`).")
        tf = import_tensorflow()
        if self.keras is not None and self.exported is not None and Path(self.exported).is_dir():  # not removed
            from tensorflow.lite.python import conversion_metadata_schema_py_generated as metadata

            converter = tf.lite.TFLiteConverter.from_saved_model(str(self.exported), signature_keys=["serving_default"])
            converter._metadata.environment.modelType = metadata.ModelType.KERAS_MODEL  # what the file came from
            return converter
        if self.keras is not None:
            return tf.lite.TFLiteConverter.from_keras_model(self.keras)
        return tf.lite.TFLiteConverter.from_saved_model(str(self.path), signature_keys=["serving_default"])

    def info(self) -> "ModelInfo":
        """What the study needs to know of the model without holding it (or TensorFlow): names, shapes, dtypes."""
        return ModelInfo(None if self.path is None else str(self.path), self.kind, self.name,
                         list(self.input_names), list(self.input_shapes), list(self.input_dtypes),
                         list(self.output_names), list(self.output_shapes), list(self.output_dtypes),
                         self.size_bytes if self.path is not None else None)

    def describe(self) -> dict:
        return {"name": self.name, "path": str(self.path) if self.path else None, "format": self.kind,
                "inputs": [{"name": n, "shape": list(s), "dtype": d}
                           for n, s, d in zip(self.input_names, self.input_shapes, self.input_dtypes)],
                "outputs": [{"name": n, "shape": list(s)} for n, s in zip(self.output_names, self.output_shapes)]}


@dataclass(frozen=True)
class ModelInfo:
    """A model file described by a process that loaded it (a worker): the study's main process then needs
    neither the model nor TensorFlow, whose import alone holds about 850 MB."""

    path: str | None
    kind: str
    name: str
    input_names: list
    input_shapes: list
    input_dtypes: list
    output_names: list
    output_shapes: list
    output_dtypes: list
    size_bytes: int | None = None
    keras = None
    lite = None

    describe = Source.describe


def _keras_output_names(model) -> list[str]:
    """The model's own output names (its heads' layer names, or a dict model's keys), in its outputs' order;
    output_0, output_1, ... where it has none that tell the outputs apart."""
    found = list(getattr(model, "output_names", None) or [])
    if len(found) == len(model.outputs) and len(set(found)) == len(found) and all(isinstance(n, str) and n
                                                                                 for n in found):
        return found
    return [f"output_{i}" for i in range(len(model.outputs))]


# TensorFlow's name scopes: a model's name opens a root scope, a layer's a nested one (tensorflow ops.py)
_ROOT_SCOPE = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")
_SCOPE = re.compile(r"^[A-Za-z0-9_.\\/>-]*$")


def from_keras(model, path=None, kind: str = "keras") -> Source:
    """Wrap an in-memory Keras model; one whose name TensorFlow cannot open a scope with is refused here, where a
    prediction would fail deep inside Keras (fuzz case h5-1020: a model named 'fuzz\\udcdfcnn')."""
    from ..core.errors import InputError

    where = path if path is not None else "The model"
    bad = [("model", model.name)] if not _ROOT_SCOPE.match(str(model.name)) else []
    bad += [("layer", layer.name) for layer in _layers(model) if not _SCOPE.match(str(layer.name))]
    if bad:
        what, name = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise InputError(f"{where}: the {what} name {name!r}{more} is not one TensorFlow accepts for a name scope, so "
                         "the model cannot run. Expected letters, digits and . _ / > - (a model's name not starting "
                         f"with _ / > -). Fix: give the {what} a plain name (name='my_{what}') and save the model "
                         "again.")
    return Source(path, kind, model.name, keras_model=model)


def _layers(model):
    """Every layer, those of nested models too."""
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _layers(layer)


def _load_keras_file(path, unsafe: bool):
    import keras

    try:
        with silenced():
            return keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError... for bad files
        reraise_interrupt()
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text:
            from ..core.errors import InputError

            raise InputError(
                f"{path} contains a Lambda layer or other arbitrary Python code, which quantbench does not "
                "run by default (Keras safe_mode). Fix: pass --unsafe if you trust this file "
                "(Python API: unsafe=True).") from None
        raise


def load_model(path, unsafe: bool = False) -> Source:
    """Load a user's model file or folder for a study.

    Args:
        path: a `.keras` file, a legacy `.h5` file, or a SavedModel folder.
        unsafe: allow Lambda layers and other deserialized Python code (Keras `safe_mode=False`).

    Raises:
        InputError: the path is missing or is not a model quantbench can read, with how to fix it.
    """
    import zipfile

    from ..core.errors import InputError

    path = Path(path)
    if not path.exists():
        raise InputError(f"No model at {path}. Expected {MODEL_KINDS}. Fix: check the path.")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise InputError(f"{path} is a folder without saved_model.pb, so not a SavedModel. "
                             f"Expected {MODEL_KINDS}. Fix: pass the SavedModel folder itself or a model file.")
        return _load_saved_model(path)
    suffix = path.suffix.lower()
    if suffix in (".keras", ".h5", ".hdf5"):
        import_tensorflow()
    if suffix == ".keras":
        if not zipfile.is_zipfile(path):
            raise InputError(f"{path} is not a valid .keras archive (corrupt or truncated zip). "
                             "Expected a file written by model.save('model.keras'). Fix: save the model again.")
        try:
            model = _load_keras_file(path, unsafe)
        except InputError:
            raise
        except Exception as exc:
            reraise_interrupt()
            raise InputError(f"Keras could not load {path}: {_first_line(exc)}. Expected a complete .keras "
                             "model. Fix: save the model again with model.save('model.keras').") from None
        return from_keras(model, path, "keras")
    if suffix in (".h5", ".hdf5"):
        return _load_h5(path, unsafe)
    if suffix == ".tflite":
        from ..runtime.litert import LiteModel

        return Source(path, "tflite", path.stem, lite=LiteModel(path))
    raise InputError(f"{path} is not a model quantbench can read (suffix {suffix or 'none'!r}). "
                     f"Expected {MODEL_KINDS}. Fix: pass a saved model (model.save('model.keras')).")


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


H5_READ_SECONDS = 30  # for the check below, plus a second per 20 MB of file
# Reads every attribute and dataset of an HDF5 file, as Keras's loader will. Run in a child process: on some
# damaged files libhdf5 loops forever or crashes, where no Python code can stop it.
_H5_READ_ALL = """import sys, h5py
def read(name, obj):
    for key in obj.attrs:
        obj.attrs[key]
    if isinstance(obj, h5py.Dataset):
        obj[()]
with h5py.File(sys.argv[1], "r") as f:
    read("/", f)
    f.visititems(read)
"""


def _check_hdf5_terminates(path) -> None:
    """Refuse an HDF5 file that libhdf5 cannot read to the end (it hangs or crashes), before reading it here."""
    import signal
    import subprocess
    import sys

    from ..core.errors import InputError

    if not sys.executable:
        return
    limit = H5_READ_SECONDS + Path(path).stat().st_size / 20e6  # reading at 20 MB/s at worst
    fix = "Expected a Keras model saved with model.save('model.h5'). Fix: save the model again."
    try:
        done = subprocess.run([sys.executable, "-c", _H5_READ_ALL, str(path)], capture_output=True, timeout=limit)
    except subprocess.TimeoutExpired:
        raise InputError(f"Reading {path} with HDF5 did not finish in {limit:.0f} s: the file is corrupt "
                         f"(libhdf5 loops on some damaged files). {fix}") from None
    if done.returncode < 0:
        raise InputError(f"HDF5 crashed reading {path} ({signal.Signals(-done.returncode).name}): the file is "
                         f"corrupt. {fix}")
    # any other failure is reported below, by h5py or Keras, with its own reason


def _load_h5(path, unsafe: bool) -> Source:
    import h5py

    from ..core.errors import InputError

    _check_hdf5_terminates(path)
    try:
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
    except OSError:
        raise InputError(f"{path} is not an HDF5 file (corrupt, truncated, or another format). "
                         "Expected a Keras model saved with model.save('model.h5'). Fix: save the model again.") from None
    except Exception as exc:  # noqa: BLE001  h5py raises KeyError, ValueError... for a damaged object header
        reraise_interrupt()
        raise InputError(f"HDF5 cannot read the model_config of {path} ({type(exc).__name__}: {_first_line(exc)}): "
                         "the file is corrupt. Expected a Keras model saved with model.save('model.h5'). "
                         "Fix: save the model again.") from None
    if config is None:
        raise InputError(f"{path} holds weights only (no model_config attribute). Expected a whole model saved "
                         "with model.save('model.h5'). Fix: build the architecture in code, call "
                         "load_weights, then save the whole model.")
    config = config.decode() if isinstance(config, bytes) else str(config)
    if '"class_name": "Lambda"' in config and not unsafe:
        # Checked here because the tf_keras fallback below would not refuse it by itself.
        raise InputError(f"{path} contains a Lambda layer (arbitrary Python code), which quantbench does not run "
                         "by default. Fix: pass --unsafe if you trust this file (Python API: unsafe=True).")
    try:
        return from_keras(_load_keras_file(path, unsafe), path, "h5")
    except InputError:
        raise
    except Exception as exc:
        reraise_interrupt()
        first = exc
    try:  # Keras 2 files Keras 3 cannot read (e.g. its DepthwiseConv2D config) load with tf_keras
        import tf_keras

        with silenced():
            model = tf_keras.models.load_model(path, compile=False)
        return from_keras(model, path, "h5 (tf_keras)")
    except Exception:
        reraise_interrupt()
        raise InputError(f"Keras could not load {path}: {_first_line(first)}. Expected a Keras 2 or 3 model "
                         "saved with model.save('model.h5'). Fix: re-save it as .keras or a SavedModel.") from None


def _load_saved_model(path) -> Source:
    from ..core.errors import InputError

    tf = import_tensorflow()
    try:
        with silenced():
            loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        reraise_interrupt()
        raise InputError(f"TensorFlow could not load the SavedModel at {path}: {_first_line(exc)}. "
                         "Expected a SavedModel folder. Fix: export it again (model.export(path)).") from None
    sig = loaded.signatures.get("serving_default")
    if sig is None:
        raise InputError(f"The SavedModel at {path} has no 'serving_default' signature "
                         f"(has {sorted(loaded.signatures)}). Expected a serving signature. "
                         "Fix: export with model.export(path) or tf.saved_model.save(..., signatures=...).")
    source = Source(path, "saved_model", path.name, signature=sig)
    source._loaded = loaded  # keeps the variables alive while the signature is used
    return source
