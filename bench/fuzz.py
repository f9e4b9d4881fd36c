"""Fuzz quantbench's commands with malformed files: every case must exit 0, or exit 2 with one line.

Each case mutates a valid base file (bit flips, a truncation or a splice) and runs it through every
command that accepts it. Each run is a real child process so that a crash (a signal) is seen: by
default a fork server, where this process imports quantbench (and TensorFlow, import only: no op has
run, so no thread pool exists yet) once and forks one child per run, which calls
`quantbench.cli.main(argv)` with stdout and stderr sent to files. `--mode subprocess` starts a fresh
`python -m quantbench` for each run instead (seconds of start-up each).

    python bench/fuzz.py --seed 0 --count 2000 --kind all --json fuzz.json
    python bench/fuzz.py --smoke      # two cases per kind, without the studies (compare): checks the script runs

Outcomes: ok (exit 0), refused (exit 2, exactly one line on stderr, no traceback), internal (exit 1 or
"internal error"), traceback, crash (killed by a signal), timeout, multi-line (exit 2 with several lines),
other (any other exit code), leftover (exit 0 or 2 but a file other than the command's output left in the
working folder: a half-written file or a staging folder). Failing cases are written to --keep with the
command that reproduces them.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("tflite", "npy", "npz", "keras", "h5")  # tflite first: it alone needs no TensorFlow in the server
SUFFIX = {"tflite": ".tflite", "npy": ".npy", "npz": ".npz", "keras": ".keras", "h5": ".h5"}
OUTCOMES = ("ok", "refused", "internal", "traceback", "crash", "timeout", "multi-line", "other", "leftover")
FAILING = ("internal", "traceback", "crash", "timeout", "multi-line", "other", "leftover")
OUTPUTS = ("out.tflite", "study")  # what a run that succeeded writes into its working folder
# The base files of each kind that cases mutate; the int8 ones carry the I/O quantization XNNPACK checks.
BASES = {"tflite": ("float32.tflite", "dynamic.tflite", "int8-only.tflite", "int16x8.tflite"),
         "npy": ("x.npy",), "npz": ("data.npz",), "keras": ("model.keras",), "h5": ("model.h5",)}
AWARE_SHARE = 0.5  # of .tflite and .npz cases: format-aware mutations (FB_KINDS, NPZ_KINDS); the rest byte-level
SAMPLES = 24  # samples in the data files: enough for a split, few enough to stay cheap
# Cheap compare settings: two fast techniques, no budget rescue (which would run a selective search).
COMPARE = ["--quiet", "--max-accuracy-drop", "100", "--time-budget", "0"]  # one timing round: the inputs are on trial


# ---- Base files -----------------------------------------------------------------------------------

def make_bases(folder: Path) -> None:
    """The tiny model (untrained small CNN on 8x8x1 digits), its variants and data files, in `folder`."""
    from quantbench.core import quiet
    from quantbench.engines.converter import convert
    from quantbench.inputs import data, models
    from quantbench.runtime.tf import import_tensorflow

    quiet.configure()
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(h)
    model = keras.Model(inputs, outputs, name="fuzz_cnn")
    with quiet.silenced():
        model.save(folder / "model.keras")
        model.save(folder / "model.h5")
    split = data.digits()
    x, y = split.x_test[:SAMPLES], split.y_test[:SAMPLES]
    np.savez(folder / "data.npz", x=x, y=y)
    np.savez(folder / "calib.npz", x=split.x_train[:SAMPLES])
    np.save(folder / "x.npy", x)
    calib = split.x_train[:SAMPLES]
    for name in BASES["tflite"]:
        (folder / name).write_bytes(convert(model, name.removesuffix(".tflite"), calib).content)


def _temp_files_in(folder: Path) -> None:
    """In a forked child: temporary files go to `folder`/.tmp, removed with the folder. The child ends with
    os._exit, which skips atexit, where TensorFlow deletes the __autograph_generated_file*.py it writes."""
    (folder / ".tmp").mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(folder / ".tmp")


def bases_in_child(folder: Path) -> None:
    """Build the base files in a forked child, so that this process never runs a TensorFlow op."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _temp_files_in(folder)
            make_bases(folder)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"building the base files in {folder} failed (status {status})")


# ---- Mutations ------------------------------------------------------------------------------------

def _length(rng, limit: int) -> int:
    """A chunk length, log-uniform from 1 to `limit` bytes."""
    return int(min(limit, max(1, round(np.exp(rng.uniform(0, np.log(max(limit, 1) + 1)))))))


def mutate(content: bytes, donors: list[bytes], rng) -> tuple[bytes, str]:
    """One mutation of `content`: bit flips (anywhere or in the header), a truncation, or a splice."""
    b = bytearray(content)
    n = len(b)
    op = rng.choice(["flip", "flip-head", "truncate", "splice-other", "duplicate", "delete"],
                    p=[0.35, 0.2, 0.15, 0.1, 0.1, 0.1])
    if op in ("flip", "flip-head"):
        k = int(rng.integers(1, 9))
        span = n if op == "flip" else min(n, 512)
        bits = sorted(int(v) for v in rng.integers(0, span * 8, size=k))
        for bit in bits:
            b[bit // 8] ^= 1 << (bit % 8)
        return bytes(b), f"{op} bits {bits}"
    if op == "truncate":
        at = int(rng.integers(0, n))
        return bytes(b[:at]), f"truncate at {at} of {n}"
    if op == "splice-other":
        donor = donors[int(rng.integers(0, len(donors)))]
        length = _length(rng, min(4096, len(donor)))
        src, dst = int(rng.integers(0, len(donor) - length + 1)), int(rng.integers(0, n))
        b[dst:dst + length] = donor[src:src + length]
        return bytes(b), f"splice {length} bytes of another file (at {src}) over {dst}"
    length = _length(rng, min(4096, n))
    src = int(rng.integers(0, n - length + 1))
    if op == "duplicate":
        dst = int(rng.integers(0, n + 1))
        b[dst:dst] = b[src:src + length]
        return bytes(b), f"duplicate {length} bytes from {src} at {dst}"
    del b[src:src + length]
    return bytes(b), f"delete {length} bytes at {src}"


# ---- Mutations that know the formats (issue 21) ---------------------------------------------------------------
#
# Byte flips mostly break a .tflite where LiteRT's verifier looks first. These aim at what a flatbuffer reader trusts:
# an offset (a table's field that points elsewhere), a vector's length, an operator code, a tensor's shape or type,
# a signature entry. Offsets and lengths are patched in place, found through the schema's generated tables; the
# others are set through the object API and the model written again. A .npz gets arrays of the wrong dtype, NaN,
# object dtype (a pickle, which quantbench must refuse to load), zero samples, or misaligned counts.

FB_KINDS = ("offset", "vector-length", "operator-code", "tensor-shape", "tensor-type", "signature")
NPZ_KINDS = ("dtype", "nan", "object", "zero-samples", "count", "rank", "inf", "huge")


def _sites(buf: bytes) -> tuple[list[int], list[int]]:
    """Positions of offset fields (uoffset_t) and of vector lengths in a .tflite, from the schema's tables."""
    from ai_edge_litert import schema_py_generated as fb

    offsets, lengths = [0], []  # the root offset

    def fields(obj, offset_slots=(), vector_slots=()):
        tab = obj._tab
        for slot in (*offset_slots, *vector_slots):
            o = tab.Offset(slot)
            if o:
                offsets.append(tab.Pos + o)
                if slot in vector_slots:
                    lengths.append(tab.Vector(o) - 4)

    model = fb.Model.GetRootAs(buf, 0)
    fields(model, (10,), (6, 8, 12, 14, 16, 18))
    for i in range(model.OperatorCodesLength()):
        fields(model.OperatorCodes(i), (6,))
    for i in range(model.BuffersLength()):
        fields(model.Buffers(i), (), (4,))
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        fields(graph, (12,), (4, 6, 8, 10))
        for i in range(graph.TensorsLength()):
            fields(graph.Tensors(i), (10, 12, 16), (4, 18))
        for i in range(graph.OperatorsLength()):
            fields(graph.Operators(i), (12,), (6, 8, 14, 16))
    for s in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(s)
        fields(sig, (8,), (4, 6))
        for entries, count in ((sig.Inputs, sig.InputsLength()), (sig.Outputs, sig.OutputsLength())):
            for i in range(count):
                fields(entries(i), (4,))
    return offsets, lengths


def _patch_u32(b: bytearray, at: int, value: int) -> None:
    b[at:at + 4] = int(value % 2 ** 32).to_bytes(4, "little")


def _odd_int(rng, old: int, limit: int) -> int:
    """A value a reader may trust: 0, one off, out of range, negative, or huge."""
    return int(rng.choice([0, old + 1, old - 1, limit, limit + int(rng.integers(1, 1000)), -1,
                           -int(rng.integers(2, 2 ** 31)), 2 ** 31 - 1, int(rng.integers(0, max(limit, 1) + 1))]))


def mutate_tflite(content: bytes, rng) -> tuple[bytes, str]:
    """One flatbuffer-aware mutation (FB_KINDS) of a .tflite."""
    op = str(rng.choice(FB_KINDS))
    b = bytearray(content)
    if op in ("offset", "vector-length"):
        offsets, lengths = _sites(content)
        sites = offsets if op == "offset" else lengths
        at = sites[int(rng.integers(0, len(sites)))]
        old = int.from_bytes(b[at:at + 4], "little")
        new = _odd_int(rng, old, len(b)) if op == "offset" else _odd_int(rng, old, 2 * old + 8)
        _patch_u32(b, at, new)
        return bytes(b), f"{op}: byte {at}, {old} -> {new % 2 ** 32}"
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(b)
    graph = model.subgraphs[0]
    if op == "operator-code":
        k = int(rng.integers(0, len(model.operatorCodes)))
        code = model.operatorCodes[k]
        field = str(rng.choice(["builtinCode", "deprecatedBuiltinCode", "version", "both"]))
        value = int(rng.choice([0, 32, 127, 150, 209, 255, 1000, -1, int(rng.integers(0, 210))]))
        if field == "both":
            code.builtinCode, code.deprecatedBuiltinCode = value, min(max(value, -128), 127)
        elif field == "deprecatedBuiltinCode":
            code.deprecatedBuiltinCode = min(max(value, -128), 127)
        else:
            setattr(code, field, value)
        how = f"operator code {k}: {field} = {value}"
    elif op in ("tensor-shape", "tensor-type"):
        k = int(rng.integers(0, len(graph.tensors)))
        tensor = graph.tensors[k]
        if op == "tensor-type":
            tensor.type = int(rng.choice([0, 1, 2, 3, 7, 9, 10, 13, 17, 18, 21, 99, 127]))
            how = f"tensor {k}: type = {tensor.type}"
        else:
            shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
            which = str(rng.choice(["dim", "drop", "add", "signature"]))
            if which == "dim" and shape:
                shape[int(rng.integers(0, len(shape)))] = int(rng.choice([0, -1, -2, 3, 1 << 20, 2 ** 31 - 1]))
            elif which == "drop" and shape:
                shape.pop(int(rng.integers(0, len(shape))))
            elif which == "signature":
                tensor.shapeSignature = [-1] * max(len(shape), 1)
            else:
                shape.append(int(rng.choice([1, 2, 7])))
            tensor.shape = shape
            how = f"tensor {k}: {which} -> shape {shape}"
    else:  # signature
        if not model.signatureDefs:
            return mutate_tflite(content, rng)
        sig = model.signatureDefs[0]
        entries = [("inputs", e) for e in sig.inputs or []] + [("outputs", e) for e in sig.outputs or []]
        what = str(rng.choice(["index", "name", "drop", "duplicate", "subgraph", "key"]))
        side, entry = entries[int(rng.integers(0, len(entries)))]
        if what == "index":
            entry.tensorIndex = _odd_int(rng, entry.tensorIndex, len(graph.tensors)) % 2 ** 32
        elif what == "name":
            entry.name = str(rng.choice(["", "x", "serving_default_image:0", "é" * 3, "a" * 300]))
        elif what == "drop":
            getattr(sig, side).remove(entry)
        elif what == "duplicate":
            getattr(sig, side).append(entry)
        elif what == "subgraph":
            sig.subgraphIndex = int(rng.choice([1, 7, 2 ** 31 - 1]))
        else:
            sig.signatureKey = str(rng.choice(["", "other"]))
            if rng.random() < 0.5:  # a second signature: the runtime then reads the subgraph's I/O
                model.signatureDefs.append(sig)
        how = f"signature {what} ({side})"
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), f"{op}: {how}"


def mutate_npz(content: bytes, rng) -> tuple[bytes, str]:
    """One semantic mutation (NPZ_KINDS) of a .npz holding x and y: the arrays are valid NumPy, their content not."""
    import io

    with np.load(io.BytesIO(content)) as d:
        arrays = {k: d[k] for k in d.files}
    op = str(rng.choice(NPZ_KINDS))
    key = str(rng.choice(sorted(arrays)))
    a = arrays[key]
    if op == "dtype":
        dtype = str(rng.choice(["float16", "float64", "int8", "uint8", "int64", "bool", "complex64", "<U3", "S2"]))
        arrays[key] = a.astype(dtype)
        how = f"{key} as {dtype}"
    elif op in ("nan", "inf", "huge"):
        b = a.astype(np.float32).copy()
        flat = b.reshape(-1)
        n = int(rng.choice([1, max(1, flat.size // 10), flat.size])) if flat.size else 0
        flat[rng.choice(flat.size, size=n, replace=False) if flat.size else []] = \
            {"nan": np.nan, "inf": np.inf, "huge": 3e38}[op]
        arrays[key] = b
        how = f"{n} of {key}'s values {op}"
    elif op == "object":
        arrays[key] = np.array([None, "x", 1] + [None] * (len(a) - 3), dtype=object)
        how = f"{key} as an object array"
    elif op == "zero-samples":
        for k in (sorted(arrays) if rng.random() < 0.5 else [key]):
            arrays[k] = arrays[k][:0]
        how = f"zero samples ({key}{' and the rest' if len(arrays[key]) == 0 else ''})"
    elif op == "count":
        arrays[key] = a[:max(1, len(a) - int(rng.integers(1, 5)))]
        how = f"{key} shorter than the others"
    else:  # rank
        arrays[key] = a.reshape(len(a), -1) if a.ndim > 2 else a[..., None, None] if a.ndim < 3 else a[None]
        how = f"{key} reshaped to {arrays[key].shape}"
    out = io.BytesIO()
    np.savez(out, **arrays, allow_pickle=True) if op == "object" else np.savez(out, **arrays)
    return out.getvalue(), f"{op}: {how}"


def commands(kind: str, path: str, bases: Path, index: int, studies: bool = True) -> list[tuple[str, list[str]]]:
    """The runs case `index` of `kind` gets, as (label, argv) pairs; outputs go to the working folder.

    Every case runs the cheap command of its kind (inspect and predict; convert; predict: 0.05-2 s). A study
    (compare) costs 3-6 s in a child when the file loads, so it runs on every fourth case (never without
    `studies`): 2,000 cases per kind stay affordable on one core.
    """
    b = lambda name: str(bases / name)  # noqa: E731
    if kind == "tflite":
        return [("inspect", ["inspect", path]), ("predict", ["predict", path, "--input", b("x.npy")])]
    if kind in ("keras", "h5"):
        runs = [("convert", ["convert", path, "-t", "float32", "-o", "out.tflite"])]
        if index % 4 == 0 and studies:
            runs.append(("compare", ["compare", path, "--data", b("data.npz"), "--techniques", "float32,dynamic",
                                     "--out", "study", *COMPARE]))
        return runs
    # Data files: predict with a float or an int8 model (which quantizes the inputs itself), and on every fourth
    # case a study with the file as evaluation data (--data) or as calibration data (--calib), in turn.
    runs = [("predict", ["predict", b(("float32.tflite", "int8-only.tflite")[index % 2]), "--input", path])]
    if not studies:
        return runs
    if index % 8 == 0:
        runs.append(("compare --data", ["compare", b("model.keras"), "--data", path, "--techniques", "dynamic",
                                        "--out", "study", *COMPARE]))
    elif index % 8 == 4:
        runs.append(("compare --calib", ["compare", b("model.keras"), "--data", b("data.npz"), "--calib", path,
                                         "--calib-size", "8", "--techniques", "lq-int8", "--out", "study",
                                         *COMPARE]))
    return runs


@dataclass
class Case:
    kind: str
    index: int
    base: str
    mutation: str
    content: bytes

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index}{SUFFIX[self.kind]}"


def cases(kind: str, seed: int, count: int, bases: Path):
    """The kind's cases 0..count-1; case i depends only on (seed, kind, i), so a short run is a prefix."""
    contents = {name: (bases / name).read_bytes() for names in BASES.values() for name in names}
    donors = list(contents.values())
    for i in range(count):
        rng = np.random.default_rng([seed, KINDS.index(kind), i])
        base = BASES[kind][int(rng.integers(0, len(BASES[kind])))]
        aware = {"tflite": mutate_tflite, "npz": mutate_npz}.get(kind)
        if aware is not None and rng.random() < AWARE_SHARE:
            content, how = aware(contents[base], rng)
        else:
            content, how = mutate(contents[base], donors, rng)
        yield Case(kind, i, base, how, content)


# ---- Running one command in a child process --------------------------------------------------------

def _wait(pid: int, timeout: float) -> tuple[int | None, bool]:
    """Exit status of child `pid`, killing it (by PID) after `timeout` seconds; (status, timed_out)."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None, True
    return os.waitpid(pid, 0)[1], False


def run_forked(argv: list[str], cwd: Path, timeout: float) -> tuple[int | None, str, str]:
    """Run `quantbench.cli.main(argv)` in a forked child with its output in files; (exit code, out, err)."""
    out, err = cwd / ".stdout", cwd / ".stderr"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                os.chdir(cwd)
                _temp_files_in(cwd)
                os.dup2(fo.fileno(), 1)
                os.dup2(fe.fileno(), 2)
                from quantbench.cli import main

                code = main(argv)
            except BaseException:  # what the interpreter would print for an uncaught exception
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code if isinstance(code, int) else 1)
    status, timed_out = _wait(pid, timeout)
    code = None if timed_out else os.waitstatus_to_exitcode(status)
    return code, out.read_text(errors="replace"), err.read_text(errors="replace")


def run_subprocess(argv: list[str], cwd: Path, timeout: float) -> tuple[int | None, str, str]:
    """Run `python -m quantbench argv` as a fresh process; (exit code, out, err)."""
    try:
        p = subprocess.run([sys.executable, "-m", "quantbench", *argv], cwd=cwd, capture_output=True,
                           timeout=timeout, text=True, errors="replace")
    except subprocess.TimeoutExpired as exc:
        return None, str(exc.stdout or ""), str(exc.stderr or "")
    return p.returncode, p.stdout, p.stderr


def outcome(code: int | None, err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if code is None:
        return "timeout"
    if code < 0:
        return "crash"
    if "Traceback (most recent call last)" in err:
        return "traceback"
    if code == 1 or "internal error" in err:
        return "internal"
    if code == 0:
        return "ok"
    if code == 2:
        return "refused" if len(lines) == 1 else "multi-line"
    return "other"


# ---- The fuzz run ---------------------------------------------------------------------------------

def prepare_server(kind: str) -> None:
    """Import, in this process, what children of `kind` need, so that each child starts warm."""
    from quantbench import api as predicting, cli  # noqa: F401
    from quantbench.core import quiet  # noqa: F401
    from quantbench.inputs import inspection  # noqa: F401
    from quantbench.runtime.tf import import_tensorflow

    quiet.configure()
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        cli.main(["techniques"])  # typer's lazy imports (pydantic when installed: ~0.8 s a child otherwise)
    if kind == "tflite":
        return
    import_tensorflow()  # import only: no op runs here, so no TensorFlow thread pool is started
    import h5py  # noqa: F401
    import keras  # noqa: F401
    import tf_keras  # noqa: F401  (the .h5 fallback loader)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from quantbench.engines import litert_quantizer as lq  # noqa: F401
    from quantbench.report import report  # noqa: F401
    from quantbench.study import pipeline as study  # noqa: F401

    # matplotlib's font cache, loaded once here rather than in every child
    fig = plt.figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "0")
    fig.canvas.draw()
    plt.close(fig)


def fuzz(seed: int, count: int, kinds, mode: str = "fork", timeout: float = 120.0, keep: Path | None = None,
         workdir: Path | None = None, log=print, on_progress=None, studies: bool = True) -> dict:
    """Run `count` cases of each kind; counts by kind, command and outcome, and the failing runs."""
    run = run_forked if mode == "fork" else run_subprocess
    started = time.perf_counter()
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="quantbench-fuzz.")) if own else Path(workdir)
    bases = workdir / "bases"
    bases.mkdir(parents=True, exist_ok=True)
    try:
        bases_in_child(bases)
        counts, failures, seconds, runs = {}, [], {}, Counter()
        spent = {kind: Counter() for kind in kinds}  # seconds by kind and command
        fallbacks = {kind: Counter() for kind in kinds}  # ok runs that said XNNPACK refused the model
        refusals = {kind: Counter() for kind in kinds}  # refusal messages, numbers and paths blanked

        def summary(done: bool) -> dict:
            return {"seed": seed, "count": count, "kinds": list(kinds), "mode": mode, "timeout_s": timeout,
                    "finished": done, "cases": {k: sum(counts[k][next(iter(counts[k]))].values())
                                                for k in counts if counts[k]},
                    "runs": dict(runs), "seconds": seconds, "total_seconds": round(time.perf_counter() - started, 1),
                    "seconds_by_command": {k: {c: round(v, 1) for c, v in spent[k].items()} for k in counts},
                    "xnnpack_fallbacks": {k: dict(fallbacks[k]) for k in counts},
                    "top_refusals": {k: refusals[k].most_common(12) for k in counts},
                    "counts": {k: {c: dict(v) for c, v in cmds.items()} for k, cmds in counts.items()},
                    "failures": failures}

        for kind in kinds:
            t0 = time.perf_counter()
            if mode == "fork":
                prepare_server(kind)
            counts[kind] = {}
            for case in cases(kind, seed, count, bases):
                case_dir = workdir / "case"
                case_dir.mkdir()
                path = case_dir / case.name
                path.write_bytes(case.content)
                for label, argv in commands(kind, str(path), bases, case.index, studies):
                    t1 = time.perf_counter()
                    code, out, err = run(argv, case_dir, timeout)
                    spent[kind][label] += time.perf_counter() - t1
                    result = outcome(code, err)
                    left = sorted(f.name for f in case_dir.iterdir()
                                  if f.name not in (case.name, ".stdout", ".stderr", ".tmp", *(OUTPUTS if result == "ok" else ())))
                    if left and result in ("ok", "refused"):  # a half-written file or a staging folder left behind
                        result, err = "leftover", f"left {left} behind; " + err
                    counts[kind].setdefault(label, Counter())[result] += 1
                    if result == "ok" and "XNNPACK refused" in err:  # ran on LiteRT's built-in kernels instead
                        fallbacks[kind][label] += 1
                    if result == "refused":
                        refusals[kind][_shape_of(err, str(path), str(bases))] += 1
                    runs[kind] += 1
                    if result in FAILING:
                        failures.append(_keep(case, label, argv, str(path), code, err, result, keep, bases))
                        log(f"FAIL {result}: {failures[-1]['command']}\n    {failures[-1]['stderr']}")
                    for f in case_dir.iterdir():  # the run's outputs, so the next run starts clean
                        if f.name != case.name:
                            shutil.rmtree(f) if f.is_dir() else f.unlink()
                shutil.rmtree(case_dir)
                if (case.index + 1) % 100 == 0:
                    seconds[kind] = round(time.perf_counter() - t0, 1)
                    if on_progress:
                        on_progress(summary(False))
                    log(f"{kind}: {case.index + 1}/{count} cases, {time.perf_counter() - t0:.0f} s, "
                        f"{sum(1 for f in failures if f['kind'] == kind)} failing runs")
            seconds[kind] = round(time.perf_counter() - t0, 1)
        return summary(True)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def _shape_of(err: str, path: str, bases: str) -> str:
    """A refusal's message with its paths and numbers blanked, to count messages of the same kind."""
    import re

    text = err.strip().replace(path, "FILE").replace(bases, "BASES").removeprefix("quantbench: error: ")
    return re.sub(r"\d+", "N", text)[:110]


def _keep(case: Case, label: str, argv: list[str], path: str, code, err: str, result: str, keep, bases) -> dict:
    """A failing run: the mutated file (and the base files) copied to `keep`, and the command to repeat it."""
    row = {"kind": case.kind, "index": case.index, "base": case.base, "mutation": case.mutation, "run": label,
           "outcome": result, "exit": code, "stderr": " | ".join(ln for ln in err.splitlines() if ln.strip())[-600:]}
    if keep is not None:
        keep = Path(keep)
        if not (keep / "bases").is_dir():
            shutil.copytree(bases, keep / "bases")
        (keep / case.name).write_bytes(case.content)
        argv = [a.replace(str(bases), str(keep / "bases")).replace(path, str(keep / case.name)) for a in argv]
    row["command"] = "python -m quantbench " + shlex.join(argv) + "   # in an empty folder"
    return row


def table(result: dict) -> str:
    """Counts by kind, command and outcome, as a Markdown table, with the seconds each command took in all."""
    lines = ["| kind | command | runs | " + " | ".join(OUTCOMES) + " | seconds |",
             "|" + " --- |" * (len(OUTCOMES) + 4)]
    for kind, cmds in result["counts"].items():
        for label, c in cmds.items():
            lines.append(f"| {kind} | {label} | {sum(c.values())} | " + " | ".join(str(c.get(o, 0)) for o in OUTCOMES)
                         + f" | {result['seconds_by_command'][kind].get(label, 0):.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=100, help="Cases per kind.")
    p.add_argument("--kind", default="all", help="tflite, npy, npz, keras, h5, a comma-separated list, or all.")
    p.add_argument("--mode", choices=("fork", "subprocess"), default="fork")
    p.add_argument("--timeout", type=float, default=120.0, help="Seconds before a run is killed (a timeout).")
    p.add_argument("--keep", type=Path, default=Path("fuzz-failures"), help="Folder for failing cases.")
    p.add_argument("--json", type=Path, help="Write the counts and failures here.")
    p.add_argument("--smoke", action="store_true", help="Two cases per kind, no studies: checks the script runs.")
    args = p.parse_args(argv)
    if args.smoke:
        args.count = 2
    kinds = KINDS if args.kind == "all" else tuple(k for k in KINDS if k in args.kind.split(","))
    if not kinds or (args.kind != "all" and len(kinds) != len(args.kind.split(","))):
        p.error(f"--kind {args.kind!r}: expected one of {', '.join(KINDS)}, a comma-separated list, or all")
    os.environ.pop("QUANTBENCH_DEBUG", None)
    save = (lambda r: args.json.write_text(json.dumps(r, indent=1))) if args.json else None
    result = fuzz(args.seed, args.count, kinds, args.mode, args.timeout, args.keep,
                  log=lambda m: print(m, file=sys.stderr, flush=True), on_progress=save, studies=not args.smoke)
    print(table(result))
    print(f"\n{sum(result['runs'].values())} runs in {result['total_seconds']} s ({result['mode']}); "
          f"seconds per kind: {result['seconds']}")
    print(f"ok runs on LiteRT's built-in kernels because XNNPACK refused the model: {result['xnnpack_fallbacks']}")
    for f in result["failures"]:
        print(f"{f['outcome']}: {f['kind']} case {f['index']} ({f['base']}, {f['mutation']}), {f['run']}: "
              f"{f['stderr']}\n  {f['command']}")
    if save:
        save(result)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
