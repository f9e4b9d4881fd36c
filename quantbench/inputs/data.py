"""Datasets: the bundled digits split, and calibration sampling kept apart from evaluation data."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError, QuantbenchWarning
from ..measure.outputs import TaskSpec, Truth, read_labels


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits() -> Split:
    """scikit-learn's bundled 8x8 digits, split as the reference article does (25 % test, random_state 42)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images[..., None].astype(np.float32)  # (1797, 8, 8, 1), values 0..16
    y = d.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=42)
    return Split(x_train, y_train, x_test, y_test)


def npz_bytes(**arrays) -> bytes:
    """An .npz archive of the arrays, in memory."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def calibration_sample(x, size: int, seed: int):
    """Up to `size` samples drawn without replacement, seeded; `x` is an array or a list of arrays."""
    if isinstance(x, Dataset):
        n = len(x)
    else:
        arrays = list(x) if isinstance(x, (list, tuple)) else [x]
        n = len(arrays[0])
    if size < 1:
        raise InputError(f"--calib-size is {size}. Expected a positive number of calibration samples. "
                         "Fix: pass --calib-size 200 (the default) or another count ≥ 1.")
    if size > n:
        raise InputError(f"--calib-size {size} is larger than the {n} samples available for calibration. "
                         f"Expected at most {n}. Fix: pass --calib-size {n} or fewer, or give more data.")
    idx = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    if isinstance(x, Dataset):
        return x.rows(idx)
    picked = [a[idx] for a in arrays]
    return picked if isinstance(x, (list, tuple)) else picked[0]


# ---- A user's data files ----------------------------------------------------------------------

DATA_KINDS = ".npz with an array 'x' (and optional 'y'), .npy with inputs only, or a folder of class sub-folders of images"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class LazyNpy:
    """An `.npy` file read through a memory map: rows are read when asked for, so files larger than memory
    stream. Pickles as its path (each process maps the file itself)."""

    def __init__(self, path, shape: tuple, dtype):
        self.path, self.shape, self.dtype = str(path), tuple(shape), np.dtype(dtype)
        self._map = None

    ndim = property(lambda self: len(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> np.ndarray:
        # Mapped for this read only: pages a long-lived map has touched count in the process's RSS, so a map
        # kept open would grow with the file while the rows read stay few.
        mapped = np.load(self.path, mmap_mode="r", allow_pickle=False)
        try:
            return np.array(mapped[idx])
        finally:
            del mapped

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype, "_map": None}


class ImageFolderArray:
    """A folder of class sub-folders of images as an array of shape (N, h, w, c): images are decoded (and
    resized) when their rows are asked for, a chunk at a time."""

    def __init__(self, files: list, shape: tuple):
        self.files, self.shape, self.dtype = list(files), tuple(shape), np.dtype(np.float32)

    ndim = property(lambda self: len(self.shape))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx) -> np.ndarray:
        from PIL import Image

        picked = self.files[idx] if isinstance(idx, slice) else [self.files[i] for i in np.atleast_1d(idx)]
        h, w, c = self.shape[1:]
        images = []
        for f in picked:
            try:
                with Image.open(f) as im:
                    images.append(np.asarray(im.convert("L" if c == 1 else "RGB").resize((w, h)),
                                             dtype=np.float32).reshape(h, w, c))
            except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for a broken image
                raise InputError(f"Image {f} cannot be read ({str(exc).splitlines()[0] if str(exc) else exc}). "
                                 "Expected an image file. Fix: remove or replace it.") from None
        return np.stack(images) if images else np.empty((0, h, w, c), np.float32)


@dataclass(frozen=True)
class Dataset:
    """Inputs (one array per model input) and optional labels: an `outputs.Truth` (labels per output) once
    validated, or one array (labels for the first output they fit) as a caller may pass it.

    `x` holds arrays or array-likes read lazily (`LazyNpy`, `ImageFolderArray`); `index` selects rows (a
    split) without reading them. Read with `chunk` or `rows`, which return float32 arrays where the model
    takes floats; `arrays()` reads everything, for the small sets (calibration, training) that need it.
    """

    x: list
    y: np.ndarray | None
    origin: str
    index: np.ndarray | None = None
    cast: tuple | None = None  # per input: the dtype rows are returned in (None: as stored)

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.x[0])

    def rows(self, idx) -> list[np.ndarray]:
        real = self.index[idx] if self.index is not None else idx
        cast = self.cast or (None,) * len(self.x)
        return [np.asarray(a[real]) if c is None else np.asarray(a[real]).astype(c, copy=False)
                for a, c in zip(self.x, cast)]

    def chunk(self, start: int, stop: int) -> list[np.ndarray]:
        return self.rows(slice(start, stop))

    def arrays(self) -> list[np.ndarray]:
        return self.rows(slice(None))

    def labels(self, start: int = 0, stop: int | None = None):
        if self.y is None:
            return None
        idx = self.index[start:stop] if self.index is not None else slice(start, stop)
        return self.y.rows(idx) if isinstance(self.y, Truth) else self.y[idx]

    def take(self, idx) -> "Dataset":
        idx = np.asarray(idx)
        index = self.index[idx] if self.index is not None else idx
        return Dataset(self.x, self.y, self.origin, index, self.cast)

    @property
    def streamed(self) -> bool:
        """True when rows are read from disk as needed, not held in memory."""
        return any(isinstance(a, (LazyNpy, ImageFolderArray)) for a in self.x)


def _flat(exc: Exception, limit: int = 200) -> str:
    """An exception's message on one line (a corrupt header may hold line breaks), cut to `limit` characters."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_array(archive, key: str, where: str) -> np.ndarray:
    try:
        a = archive[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(
                f"Array {key!r} in {where} is an object (pickled) array, which quantbench never unpickles. "
                "Expected a numeric array. Fix: save it with a numeric dtype, e.g. np.savez(f, x=x.astype('float32')).") from None
        raise _corrupt_member(key, where, exc) from None
    except Exception as exc:  # noqa: BLE001  NumPy reads each array lazily: a bad CRC or header shows only here,
        # as whatever its parser raises (BadZipFile, zlib.error, EOFError, tokenize's TokenError, SyntaxError...)
        raise _corrupt_member(key, where, exc) from None
    if a.dtype == object:
        raise InputError(f"Array {key!r} in {where} has dtype object. Expected a numeric array. "
                         "Fix: convert it with x.astype('float32') before saving.")
    return a


def _corrupt_member(key: str, where: str, exc: Exception) -> InputError:
    return InputError(f"Array {key!r} in {where} cannot be read ({_flat(exc)}): the archive is corrupt or "
                      f"truncated. Expected {DATA_KINDS}. Fix: write it again with np.savez.")


def open_numpy(path, mmap_mode=None):
    import zipfile

    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except ValueError as exc:
        if "pickle" not in str(exc) and "Python objects" not in str(exc):  # the latter: object dtype, mapped
            raise InputError(f"{path} is not a readable NumPy file ({_flat(exc)}). Expected {DATA_KINDS}. "
                             "Fix: write it with np.savez or np.save.") from None
        with open(path, "rb") as f:
            head = f.read(6)
        if head == b"\x93NUMPY":
            raise InputError(
                f"{path} holds an object (pickled) array, which quantbench never unpickles. Expected a numeric "
                "array. Fix: save it with a numeric dtype, e.g. np.save(f, x.astype('float32')).") from None
        # NumPy takes any file without its own or zip's signature for a pickle
        raise InputError(f"{path} starts with neither NumPy's signature nor zip's, so it is corrupt, truncated or a "
                         f"pickle (which quantbench never unpickles). Expected {DATA_KINDS}. "
                         "Fix: write it with np.save or np.savez.") from None
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path} is not a valid .npz archive (corrupt or truncated: {_flat(exc)}). "
                         f"Expected {DATA_KINDS}. Fix: write it again with np.savez.") from None
    except Exception as exc:  # noqa: BLE001  a corrupt header makes NumPy's parser raise OSError, EOFError,
        # tokenize's TokenError, SyntaxError, MemoryError...: all mean the file cannot be read
        raise InputError(f"{path} is not a readable NumPy file ({_flat(exc)}). "
                         f"Expected {DATA_KINDS}. Fix: write it with np.savez or np.save.") from None


def input_keys(names: list[str], x_key: str) -> list[str]:
    return [x_key] if len(names) <= 1 else [f"{x_key}_{n}" for n in names]


def _load_npz(path, input_names, x_key, y_key, labels: str = "score"):
    """Inputs, label arrays by key (`y_key`, `y_key`_<output>) and a warning for every array left unread."""
    archive = open_numpy(path)
    if isinstance(archive, np.ndarray):
        raise InputError(f"{path} holds a single array, not an .npz archive. Expected {DATA_KINDS}. "
                         "Fix: rename it to .npy, or save with np.savez(f, x=..., y=...).")
    with archive:
        keys = input_keys(input_names, x_key)
        if len(keys) > 1 and all(k not in archive.files for k in keys) and x_key in archive.files:
            keys = [x_key]  # a single stacked array is refused below with the expected shapes
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise InputError(
                f"{path} has no array {missing[0]!r} (it has {sorted(archive.files)}). Expected the inputs under "
                f"{keys} and optional labels under {y_key!r}. Fix: save with np.savez(f, {keys[0]}=..., {y_key}=...) "
                "or pass --x-key/--y-key.")
        x = [load_array(archive, k, f"{path}") for k in keys]
        label_keys = [k for k in archive.files if k == y_key or k.startswith(f"{y_key}_")]
        y = {k: load_array(archive, k, f"{path}") for k in label_keys} if labels != "ignore" else {}
        for k in archive.files:
            if k not in keys and k not in label_keys:
                _warn(_unread(path, k, keys, y_key, labels))
    return x, y or None


def _unread(path, key: str, keys: list[str], y_key: str, labels: str) -> str:
    """The warning for an array quantbench does not read, naming what it reads and the way to use the array."""
    inputs = ", ".join(map(repr, keys))
    if labels == "ignore":  # convert --calib: labels play no part
        return (f"{path}: array {key!r} is not read (inputs: {inputs}; labels are not used here). Fix: rename it "
                "if it holds the inputs, or drop it.")
    fix = f"pass --y-key {key}" if labels == "score" else f"rename it to {y_key!r}"
    return (f"{path}: array {key!r} is not read (inputs: {inputs}; labels: {y_key!r} or '{y_key}_<output name>'). "
            f"Fix: {fix} if it holds the labels, or drop it.")


def _warn(message: str) -> None:
    import warnings

    warnings.warn(message, QuantbenchWarning, stacklevel=3)


def class_folders(path) -> list[str]:
    """The class sub-folders of an image folder in label order: natural sort, numbers as numbers (`2` before `10`),
    so label i is the i-th name."""
    from pathlib import Path

    from ..runtime.litert import natural_key

    return sorted((p.name for p in Path(path).iterdir() if p.is_dir()), key=lambda n: (natural_key(n), n))


def _load_image_folder(path, input_shape):
    classes = [path / name for name in class_folders(path)]
    files = [(f, i) for i, c in enumerate(classes) for f in sorted(c.iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InputError(f"Image folder {path} holds no images in class sub-folders. Expected {path}/<class>/*.png "
                         f"(or {', '.join(sorted(IMAGE_SUFFIXES))}). Fix: put each class's images in its own sub-folder.")
    if len(input_shape) != 4 or input_shape[1] < 1 or input_shape[2] < 1 or input_shape[3] not in (1, 3):
        raise InputError(f"Image folder {path} needs a model input of shape (N, height, width, 1 or 3); the model's "
                         f"input is {tuple(input_shape)}. Fix: pass the data as .npz instead.")
    images = ImageFolderArray([f for f, _ in files], (len(files), *input_shape[1:]))
    return [images], np.array([i for _, i in files], dtype=np.int64)


def _open_npy(path) -> LazyNpy:
    """An .npy file, memory-mapped: checked now, read later."""
    arr = open_numpy(path, mmap_mode="r")
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path} is an .npz archive, not an .npy array. Expected {DATA_KINDS}. "
                         "Fix: rename it to .npz.")
    if arr.dtype == object:
        raise InputError(f"{path} has dtype object. Expected a numeric array. Fix: x.astype('float32').")
    lazy = LazyNpy(path, arr.shape, arr.dtype)
    del arr
    return lazy


def check_path(path, role: str = "--data"):
    """The data path as a Path, once it exists and is a kind quantbench reads (a folder, .npz or .npy): checked
    before the model is loaded, so a wrong path is refused before TensorFlow is imported."""
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise InputError(f"No data at {path} ({role}). Expected {DATA_KINDS}. Fix: check the path.")
    if not path.is_dir() and path.suffix.lower() not in (".npz", ".npy"):
        raise InputError(f"{path} ({role}) is not a data file quantbench reads (suffix {path.suffix or 'none'!r}). "
                         f"Expected {DATA_KINDS}. Fix: save your arrays with np.savez(f, x=..., y=...).")
    return path


def load_data(path, source=None, x_key: str = "x", y_key: str = "y", role: str = "--data",
              spec: TaskSpec | None = None, labels: str = "score") -> Dataset:
    """Read a data file or image folder, checked against the model when `source` is given.

    Args:
        path: an `.npz` (arrays `x`, optional `y`; `x_<input name>` per input for several inputs, `y_<output
            name>` per output), an `.npy` (inputs only), or a folder of class sub-folders of images.
        source: the model (`quantbench.inputs.models.Source`) the data is for; checks shapes, dtypes and labels.
        role: how the user passed it (`--data`, `--calib`), named in error messages.
        spec: how outputs are scored (--task forces a kind on an output's labels).
        labels: "score" (labels are read, and refused when they fit no output), "optional" (read where they
            fit, else left out: calibration and training files) or "ignore" (not read).
    """
    path = check_path(path, role)
    names = source.input_names if source is not None else ["x"]
    if path.is_dir():
        if source is None:
            raise InputError(f"Image folder {path} ({role}) needs the model's input shape to resize images to.")
        x, y = _load_image_folder(path, source.input_shapes[0])
    elif path.suffix.lower() == ".npz":
        x, y = _load_npz(path, names, x_key, y_key, labels)
    else:  # .npy
        x, y = [_open_npy(path)], None
    if path.is_dir() and labels == "ignore":
        y = None
    data = Dataset(list(x), y, str(path))
    return validate(data, source, role, spec, y_key, labels) if source is not None else data


def validate(data: Dataset, source, role: str = "--data", spec: TaskSpec | None = None, y_key: str = "y",
             labels: str = "score") -> Dataset:
    """Check inputs and labels against the model; return float32 inputs and labels per output (a Truth)."""
    where = f"{data.origin} ({role})"
    if len(data.x) != len(source.input_names):
        raise InputError(f"{where} has {len(data.x)} input array(s) but the model has {len(source.input_names)} "
                         f"inputs {source.input_names}. Fix: save one array per input as x_<input name>.")
    cast = []
    for a, name, shape, dtype in zip(data.x, source.input_names, source.input_shapes, source.input_dtypes):
        want = "(N, " + ", ".join("any" if d == -1 else str(d) for d in shape[1:]) + ")"
        if a.ndim != len(shape) or any(d not in (-1, g) for d, g in zip(shape[1:], a.shape[1:])):
            raise InputError(f"Input {name!r} in {where} has shape {tuple(a.shape)}, but the model expects {want}. "
                             f"Fix: reshape the array to {want}.")
        if len(a) == 0:
            raise InputError(f"Input {name!r} in {where} has 0 samples. Expected at least one. Fix: pass a "
                             "non-empty array.")
        if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
            raise InputError(f"Input {name!r} in {where} has dtype {a.dtype}. Expected numbers. "
                             "Fix: convert with x.astype('float32').")
        if np.issubdtype(a.dtype, np.integer) and dtype.startswith("float"):
            raise InputError(f"Input {name!r} in {where} holds integers ({a.dtype}) but the model expects {dtype}. "
                             "Integer images usually need the model's preprocessing (for example x / 255). "
                             f"Fix: apply it and save x.astype('{dtype}').")
        _check_finite(a, name, where)
        cast.append(np.float32 if dtype.startswith("float") else None)
    counts = {len(a) for a in data.x}
    if len(counts) > 1:
        raise InputError(f"Inputs in {where} have different sample counts {sorted(counts)}. Expected one count. "
                         "Fix: align the arrays.")
    y = truth(data.y, source, spec, where, y_key, len(data.x[0]), labels)
    return Dataset(list(data.x), y, data.origin, data.index, tuple(cast))


def truth(y, source, spec: TaskSpec | None, where: str, y_key: str = "y", n: int | None = None,
          labels: str = "score") -> Truth | None:
    """Labels as a Truth for `source`'s outputs: a dict of arrays by key (`y`, `y_<output>`), one array (the
    first output it fits), or a Truth already. With labels="optional", labels that fit no output are left out
    (a calibration or training file's labels play no part in the study)."""
    if y is None or isinstance(y, Truth):
        return y
    arrays = y if isinstance(y, dict) else {y_key: np.asarray(y)}
    try:
        found = read_labels(arrays, source.output_names, source.output_shapes, spec or TaskSpec(), where, y_key, n)
    except InputError:
        if labels == "optional":
            return None
        raise
    return found or None


CHECK_ROWS = 64  # rows read at a time when a whole input is checked: the peak stays flat for any file size


def _check_finite(a, name: str, where: str) -> None:
    """Every value finite, read a chunk at a time (a streamed file or folder is read once, never held)."""
    if not np.issubdtype(a.dtype, np.floating) and not isinstance(a, ImageFolderArray):
        return
    bad = 0
    for start in range(0, len(a), CHECK_ROWS):
        part = a[start:start + CHECK_ROWS]
        bad += int(np.sum(~np.isfinite(part))) if np.issubdtype(part.dtype, np.floating) else 0
    if bad:
        raise InputError(f"Input {name!r} in {where} contains {bad} NaN or Inf value(s). Expected finite "
                         "numbers. Fix: clean or drop those samples.")


def training_labels(y: Truth | None, source) -> np.ndarray | None:
    """What QAT learns from: the labels of a model's only output (classes, binary or regression targets); None
    (distillation from the float model) for a model of several outputs or labels that fit none."""
    if not y or len(source.output_names) != 1 or y.kinds.get(source.output_names[0]) == "multilabel":
        return None
    return y.labels.get(source.output_names[0])


def split_for_calibration(data: Dataset, size: int | None, seed: int) -> tuple[Dataset, Dataset, dict]:
    """Seeded disjoint split: calibration samples and the rest for evaluation."""
    n = len(data)
    if size is None:
        size = min(200, max(1, n // 4))
    if n < 2:
        raise InputError(f"{data.origin} has {n} sample(s): too few to keep calibration apart from evaluation. "
                         "Expected at least 2. Fix: pass more data, or a separate --calib file.")
    if size >= n:
        raise InputError(f"--calib-size {size} is larger than the data allows: {data.origin} has {n} samples and "
                         f"at least one must stay for evaluation. Expected at most {n - 1}. Fix: pass "
                         f"--calib-size {min(200, n - 1)} or fewer, or a separate --calib file.")
    order = np.random.default_rng(seed).permutation(n)
    calib_idx, eval_idx = np.sort(order[:size]), np.sort(order[size:])
    info = {"calibration": {"samples": int(size), "from": f"{data.origin} (seeded split, seed {seed})",
                            "seed": seed},
            "eval_samples": int(len(eval_idx))}
    return data.take(calib_idx), data.take(eval_idx), info
