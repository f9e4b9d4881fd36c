"""The microcontroller target: run a `.tflite` file on the real TFLite Micro interpreter, in a child process.

Three answers per file: does it run there (else TFLite Micro's own reason), the smallest tensor arena it
runs in (RAM) and its size (flash), and whether it computes what LiteRT computes. TFLite Micro kills its
process on a corrupt model or a tiny arena, so it only ever runs in `mcu_worker.py`, a child process.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import InputError, one_line
from ..record.results import Variant
from ..runtime.litert import LiteModel, TensorInfo, align, dequantize, generated_inputs, quantize
from . import evaluate
from .outputs import Budget, TaskSpec, verdicts

WORKER = Path(__file__).with_name("mcu_worker.py")
MODULE = "tflite_micro"  # the package's module: what a node of a cluster must be able to import
MAX_SAMPLES = 500         # evaluation samples run on TFLite Micro; more are a seeded draw of this many
ARENA_SHORT = re.compile(r"missing: \d+|Failed to resize buffer|Failed starting model allocation")
LIMITS = ("The arena is measured by TFLite Micro's x86-64 build; pointers on a 32-bit microcontroller are "
          "smaller, so the figure is an upper bound there. Flash is the model file alone, without the "
          "interpreter's code. TFLite Micro ran here on the host, whose speed says nothing about a "
          "microcontroller's, so no TFLite Micro timing is reported.")


@dataclass(frozen=True)
class Run:
    """What the child process reported for one model."""

    runs: bool
    reason: str | None = None
    arena_bytes: int | None = None
    recorded_arena: int | None = None       # print_allocations' total, where the search started
    probes: dict = field(default_factory=dict)  # arena bytes -> ran
    short: str | None = None                # the largest arena that failed, and TFLite Micro's reason
    outputs: list = field(default_factory=list)  # raw, in the model's own output order


@dataclass(frozen=True)
class Facts:
    """A variant on TFLite Micro, as stored under `mcu` in results.json."""

    runs: bool
    reason: str | None = None
    arena_bytes: int | None = None         # the smallest tensor arena that runs it (RAM)
    flash_bytes: int | None = None         # the model file
    samples: int | None = None             # evaluation samples run on TFLite Micro
    accuracy: float | None = None          # TFLite Micro's own top-1 accuracy on them, when labels exist
    agreement_litert: float | None = None  # top-1 agreement with LiteRT running the same file
    agreement_float: float | None = None   # top-1 agreement with the float model
    max_diff_steps: float | None = None    # largest |TFLite Micro - LiteRT built-in kernels|, in 8-bit steps
    wrong: bool = False                    # runs, but its outputs fail the study's gate against LiteRT's
    arena_probes: list = field(default_factory=list)  # [[bytes, ran], ...] of the search, checked runs
    arena_short: str | None = None         # "6,927 bytes: <TFLite Micro's reason>": one byte less, failing
    gate: list = field(default_factory=list)  # per output: TFLite Micro against LiteRT, judged (outputs.verdict)

    def to_dict(self) -> dict:
        return asdict(self)


def steps_text(x: float) -> str:
    """A difference in 8-bit steps for people: 163.5, 0.051, 0."""
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def mcu_refusal(v: Variant) -> str | None:
    """Why a variant cannot be shipped to a microcontroller, from its TFLite Micro facts; None if it can."""
    m = v.mcu
    if not m:
        return "was not run on TFLite Micro"
    if not m["runs"]:
        return f"TFLite Micro cannot run it: {m['reason']}"
    if m["wrong"]:
        failed = "; ".join(f"{g['output']}: {g['figure']}, past {g['criterion']}" for g in m.get("gate") or []
                           if not g["passed"])
        return (f"wrong on TFLite Micro: against LiteRT on the same file, {failed or 'its outputs depart'} (largest "
                f"difference {steps_text(m['max_diff_steps'])} 8-bit steps)")
    return None


def check_available() -> None:
    """Refuse early, with the fix, when the `tflite-micro` package is missing."""
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        raise InputError("--target mcu needs the TFLite Micro interpreter, and the package `tflite-micro` is not "
                         "installed. Expected it beside quantbench. Fix: pip install 'quantbench[mcu]'.") from None


def _segments(stderr: str) -> list[tuple[str, str]]:
    """The child's fd 2 cut at its step markers: [(step, text), ...]."""
    parts, step, lines = [], "start", []
    for line in stderr.splitlines():
        if line.startswith("@quantbench-mcu "):
            parts.append((step, "\n".join(lines)))
            step, lines = line.split(" ", 1)[1], []
        elif line.strip():
            lines.append(line.strip())
    parts.append((step, "\n".join(lines)))
    return parts


def _reason(text: str) -> str:
    """TFLite Micro's messages in one line: the op that failed first, then what it said, without source paths."""
    lines = [re.sub(r"^\S*tensorflow/lite/micro/\S*\s+", "", ln) for ln in text.splitlines() if ln]
    node = next((re.match(r"Node (\S+) \(number (\d+)\) failed to (\w+)", ln) for ln in lines
                 if re.match(r"Node \S+ \(number \d+\) failed", ln)), None)
    if node:
        said = [ln for ln in lines if not ln.startswith("Node ")]
        return one_line(f"{node[1]} (op {node[2]}) failed to {node[3]}" + (": " + " / ".join(said) if said else ""))
    return one_line(" / ".join(lines)) if lines else ""


def _arena_for(content: bytes) -> int:
    """A generous first arena: TFLite Micro's default of 10× the model, at least 64 KiB, a multiple of 16."""
    return -(-max(10 * len(content), 65536) // 16) * 16


class Worker:
    """A child process running TFLite Micro jobs one after another; a crash ends only the job it happened in,
    and the next job starts a new child. Use as a context manager."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="quantbench-mcu-")
        self.folder = Path(self._dir.name)
        self._log = self.folder / "stderr.txt"  # a file, not a pipe: TFLite Micro may write more than a pipe holds
        self._proc = None

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()
            self._proc.wait()
            self._proc = None
        self._dir.cleanup()

    def job(self, args: list[str]) -> tuple[dict | None, str | None, str]:
        """(the worker's JSON report or None, the signal that ended it or None, its fd 2 during the job)."""
        if self._proc is None:
            with open(self._log, "ab") as log:  # append mode: the child's writes never overwrite
                self._proc = subprocess.Popen([sys.executable, str(WORKER), "--serve"], stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, stderr=log, text=True)
        start = self._log.stat().st_size
        self._proc.stdin.write(json.dumps(args) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        ended = None
        if not line:
            code = self._proc.wait()
            self._proc = None
            ended = signal.Signals(-code).name if code < 0 else f"exit code {code}"
        with open(self._log, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        try:
            return (json.loads(line) if line else None), ended, text
        except json.JSONDecodeError:
            return None, f"unreadable report {line[:200]!r}", text


def run(content: bytes, inputs: list[np.ndarray], arena: int | None = None, worker: Worker | None = None) -> Run:
    """Run `content` on TFLite Micro in a child process over `inputs` (the model's own dtypes and input order).

    A refusal, an error or a crash of the child is a Run with runs=False and the reason; never an exception.
    """
    if worker is None:
        with Worker() as own:
            return run(content, inputs, arena, own)
    arena = arena or _arena_for(content)
    folder = worker.folder
    (folder / "model.tflite").write_bytes(bytes(content))
    np.savez(folder / "in.npz", **{f"in_{i}": np.ascontiguousarray(a) for i, a in enumerate(inputs)})
    for _ in range(4):  # an arena too small even for the first run: retry 8× larger
        report, ended, stderr = worker.job([str(folder / "model.tflite"), str(folder / "in.npz"),
                                            str(folder / "out.npz"), str(arena)])
        segments = _segments(stderr)
        if report is None:
            step, text = segments[-1]
            said = _reason(text)
            what = f"crashed ({ended})" if ended and ended.startswith("SIG") else f"worker ended ({ended})"
            return Run(False, f"TFLite Micro {what} at step '{step}'" + (f": {said}" if said else ""))
        if report["runs"]:
            with np.load(folder / "out.npz", allow_pickle=False) as f:
                outputs = [f[f"out_{k}"] for k in range(len(f.files))]
            probes = {int(k): v for k, v in report["probes"].items()}
            failed = max((k for k, ran in probes.items() if not ran), default=None)
            said = dict(segments).get(f"probe {failed}", "")
            short = None if failed is None else f"{failed:,} bytes: {_reason(said) or 'failed'}"
            return Run(True, None, report["arena_bytes"], report["recorded_arena"], probes, short=short,
                       outputs=outputs)
        text = dict(segments).get(report["step"], "")
        if report["step"] in ("load", "first sample") and ARENA_SHORT.search(text) and arena < 2 ** 30:
            arena *= 8
            continue
        said = _reason(text) or report["error"]
        return Run(False, said if report["step"] == "load" else f"at step '{report['step']}': {said}")
    return Run(False, f"no arena up to {arena:,} bytes was enough")


def _subgraph_order(m: LiteModel) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The model's inputs and outputs in the file's own order, which TFLite Micro's indices follow."""
    it, ins, outs = m.interpreter, {t.index: t for t in m.inputs}, {t.index: t for t in m.outputs}
    return ([ins[d["index"]] for d in it.get_input_details()], [outs[d["index"]] for d in it.get_output_details()])


def at_data_shapes(content: bytes, inputs: list[np.ndarray]) -> bytes:
    """A copy of `content` whose stored shapes are those LiteRT computes for one sample of `inputs`
    (`LiteModel.inputs` order), with no dimension left unknown: TFLite Micro runs a model at its stored shapes and
    resizes nothing, so a model whose inputs have unknown sizes (a batch or a time axis of -1) must be fixed at
    the data's shape first. The bytes themselves when every input's stored shape already fits one sample."""
    from ai_edge_litert.tools import flatbuffer_utils

    plain = LiteModel(content, delegates=False)
    it = plain.interpreter
    stored = {d["index"]: tuple(int(v) for v in d["shape"]) for d in it.get_input_details()}
    wanted = {t.index: (1, *np.shape(a)[1:]) for t, a in zip(plain.inputs, inputs)}
    unknown = any(int(v) < 0 for d in it.get_tensor_details() for v in d.get("shape_signature", ()))
    if not unknown and all(stored.get(i) == shape for i, shape in wanted.items()):
        return content
    plain.set_batch(1)
    plain.run([quantize(np.asarray(a[:1], np.float32), t) for t, a in zip(plain.inputs, inputs)])
    shapes = {d["index"]: [int(v) for v in d["shape"]] for d in it.get_tensor_details()}
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for index, tensor in enumerate(model.subgraphs[0].tensors or []):
        if index in shapes:
            tensor.shape, tensor.shapeSignature = shapes[index], None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _bits(dtype) -> int:
    return np.iinfo(dtype).bits


def _steps(plain: LiteModel, outputs: list[TensorInfo], reference: list[np.ndarray]) -> list[float]:
    """Each output's 8-bit step, the unit max_diff_steps counts in: its int8 scale (an int16 scale × 256),
    the same for the integer tensor a float output is dequantized from, and for float compute its range
    in LiteRT over 255."""
    tensors = {d["index"]: d for d in plain.interpreter.get_tensor_details()}
    producer = {int(o): op for op in plain.op_details() for o in op["outputs"]}
    steps = []
    for info, ref in zip(outputs, reference):
        if info.quantized:
            steps.append(info.scale * 2.0 ** (_bits(info.dtype) - 8))
            continue
        op = producer.get(info.index)
        source = tensors.get(int(op["inputs"][0])) if op is not None and len(op["inputs"]) else None
        if source is not None and np.issubdtype(source["dtype"], np.integer) and source["quantization"][0]:
            steps.append(float(source["quantization"][0]) * 2.0 ** (_bits(source["dtype"]) - 8))
            continue
        spread = float(np.max(ref) - np.min(ref)) if np.size(ref) else 0.0
        steps.append(max(spread / 255, 1e-12))
    return steps


def _top1_agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.ndim != 2 or a.shape[1] < 2:
        return None
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def sample_rows(n: int, max_samples: int = MAX_SAMPLES, seed: int = 0) -> np.ndarray:
    """The evaluation rows run on TFLite Micro: all of them, or a seeded draw of `max_samples`."""
    if n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))


def measure(model, inputs: list[np.ndarray], litert: list[np.ndarray] | None = None,
            reference: list[np.ndarray] | None = None, labels=None, output_names: list[str] | None = None,
            worker: Worker | None = None, budget=None, spec=None) -> Facts:
    """One `.tflite` file on TFLite Micro, against LiteRT and the float model on the same float inputs.

    Args:
        model: a `.tflite` path or its bytes; LiteRT must be able to load it.
        inputs: float inputs, one array per model input in `LiteModel.inputs` order.
        litert, reference: LiteRT's outputs of this file (as the study measured them) and the float model's on
            `inputs`, in the order `output_names` gives (default: `LiteModel.outputs` order).
        labels: an `outputs.Truth` (labels per output) or class labels for the first output: TFLite Micro's own
            accuracy, and what its outputs are judged on against LiteRT's.
        budget, spec: the study's gate (`outputs.Budget`, `outputs.TaskSpec`; defaults without them). TFLite
            Micro is wrong on a file when its outputs fail that gate against LiteRT's on the same file (each
            output by its task), not when a value moves a few 8-bit steps.
    """
    m = LiteModel(model)
    content = m.path.read_bytes() if m.path else bytes(model)
    ins, outs = _subgraph_order(m)
    by_index = dict(zip([t.index for t in m.inputs], inputs))
    fixed = at_data_shapes(content, inputs)  # the arena is the one at the data's shapes; flash is the file's
    result = run(fixed, [quantize(np.asarray(by_index[t.index], np.float32), t) for t in ins], worker=worker)
    n = len(inputs[0])
    if not result.runs:
        return Facts(False, result.reason, flash_bytes=len(content), samples=n)
    wanted = output_names or [t.name for t in m.outputs]
    tflm = align([t.name for t in outs], [dequantize(o, t) for o, t in zip(result.outputs, outs)], wanted)
    feed = inputs if len(inputs) > 1 else inputs[0]

    def predicted(model_):
        out = model_.predict(feed)
        return align([t.name for t in model_.outputs], out if isinstance(out, list) else [out], wanted)

    litert = predicted(m) if litert is None else litert
    plain = LiteModel(content, delegates=False)  # built-in kernels: TFLite Micro's arithmetic, the file's own ops
    kernels = predicted(plain)
    steps = _steps(plain, align([t.name for t in outs], outs, wanted), kernels)
    diffs = [float(np.max(np.abs(np.asarray(a, np.float64) - b))) / s if np.size(b) else 0.0
             for a, b, s in zip(tflm, kernels, steps)]
    worst = max(diffs) if diffs else 0.0
    first = np.asarray(tflm[0])
    scored = evaluate.measure({"litert": [np.asarray(a) for a in litert], "tflm": tflm}, "litert", labels, wanted,
                              spec or TaskSpec())["tflm"]
    gate = verdicts(scored["outputs"], budget or Budget())
    return Facts(True, None, result.arena_bytes, len(content), n, scored["accuracy"],
                 _top1_agreement(first, np.asarray(litert[0])),
                 None if reference is None else _top1_agreement(first, np.asarray(reference[0])),
                 round(worst, 3), not all(f["passed"] for f in gate), sorted([k, v] for k, v in result.probes.items()),
                 result.short, gate)


def measure_variants(paths: dict, feeds: dict, litert: dict, reference: list, labels=None,
                     output_names: list[str] | None = None, seed: int = 0, max_samples: int = MAX_SAMPLES,
                     reporter=None) -> dict[str, dict]:
    """Every variant of a study on TFLite Micro, over the same seeded rows of the evaluation samples.

    Args:
        paths: technique -> its `.tflite` file; feeds: technique -> its float inputs (`LiteModel.inputs` order);
        litert: technique -> its LiteRT outputs and `reference` the float model's, in `output_names` order.

    Returns:
        technique -> `Facts.to_dict()`, the `mcu` field of its Variant.
    """
    from ..core.progress import Silent

    check_available()
    reporter = reporter or Silent()
    rows = sample_rows(len(reference[0]), max_samples, seed)
    pick = lambda arrays: [np.asarray(a)[rows] for a in arrays]  # noqa: E731
    facts = {}
    with reporter.task("TFLite Micro", len(paths)) as advance, Worker() as worker:
        for name, path in paths.items():
            facts[name] = measure(path, pick(feeds[name]), pick(litert[name]), pick(reference),
                                  None if labels is None else np.asarray(labels)[rows], output_names,
                                  worker).to_dict()
            advance(note=name)
    return facts


INSPECT_SAMPLES = 32


def quantize_op_ranges(m: LiteModel) -> dict:
    """The float range each float input of `m` is quantized to by a QUANTIZE op reading it (an int8-fallback
    file's input, say), by (name, shape[1:]): what `runtime.generated_inputs` draws it from."""
    tensors = {d["index"]: d for d in m.interpreter.get_tensor_details()}
    quantized_by = {int(op["inputs"][0]): tensors[int(op["outputs"][0])] for op in m.op_details()
                    if op["op_name"] == "QUANTIZE" and len(op["inputs"])}
    ranges = {}
    for t in m.inputs:
        q = quantized_by.get(t.index)
        if not t.quantized and q is not None and q["quantization"][0]:
            scale, zero = q["quantization"]
            limits = np.iinfo(q["dtype"])
            ranges[(t.name, t.shape[1:])] = ((limits.min - zero) * scale, (limits.max - zero) * scale)
    return ranges


def inspect_file(model, n: int = INSPECT_SAMPLES, seed: int = 0) -> Facts:
    """The three answers for one `.tflite` file, on `n` seeded generated inputs."""
    check_available()
    m = LiteModel(model, delegates=False)
    # uniform over each input's representable range, else standard normal; unknown sizes 1
    inputs = generated_inputs([m], n, seed, ranges=quantize_op_ranges(m), fallback=None, unknown_size=1)[0]
    return measure(model, inputs)


def render(facts: Facts) -> str:
    """The TFLite Micro answers, for the terminal."""
    from tflite_micro import __version__

    lines = [f"TFLite Micro ({__version__}), on {facts.samples} generated inputs (seed 0):"]
    if not facts.runs:
        lines += ["  runs: no", f"  reason: {facts.reason}",
                  f"  flash: {facts.flash_bytes:,} bytes ({facts.flash_bytes / 1024:.1f} KB), the model file"]
        return "\n".join(lines)
    checked = f": runs with exactly that, not with {facts.arena_short}" if facts.arena_short else ""
    diff = steps_text(facts.max_diff_steps)
    failed = "; ".join(f"{g['output']}: {g['figure']}, past {g['criterion']}" for g in facts.gate if not g["passed"])
    held = "; ".join(f"{g['output']}: {g['figure']}" for g in facts.gate)
    verdict = (f"WRONG: {failed} (largest difference {diff} 8-bit steps)" if facts.wrong else
               f"same results within the gate ({held}; largest difference {diff} 8-bit steps)")
    agree = "" if facts.agreement_litert is None else f"top-1 agreement {facts.agreement_litert * 100:.2f} %; "
    lines += ["  runs: yes",
              f"  RAM: tensor arena {facts.arena_bytes:,} bytes ({facts.arena_bytes / 1024:.1f} KB){checked}",
              f"  flash: {facts.flash_bytes:,} bytes ({facts.flash_bytes / 1024:.1f} KB), the model file",
              f"  against LiteRT: {agree}{verdict}",
              f"  limits: {LIMITS}"]
    return "\n".join(lines)
