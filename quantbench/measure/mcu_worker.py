"""Run one `.tflite` file on TFLite Micro; executed as a script in a child process by `quantbench.measure.mcu`.

TFLite Micro ends its process with a signal on a corrupt model or a tiny arena, and writes its reasons and
its arena figures to file descriptor 2 only, so it never runs inside quantbench's own process. This script
imports only numpy and tflite_micro.

Usage: python mcu_worker.py MODEL.tflite INPUTS.npz OUTPUTS.npz ARENA_BYTES
       python mcu_worker.py --serve    (one job a line on stdin: a JSON list of those four arguments)
  INPUTS.npz holds in_0, in_1, ... in the model's own input order and dtypes, one row per sample.
  The outputs of every sample are written to OUTPUTS.npz as out_0, out_1, ...; one JSON line goes to stdout.
  Before each step a marker line `@quantbench-mcu <step>` goes to fd 2, so the parent can tell which step
  TFLite Micro's messages (or its crash) belong to.
"""
from __future__ import annotations

import json
import os
import re
import sys

import numpy as np

MARK = "@quantbench-mcu"
TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
MIN_PROBE = 512  # TFLite Micro crashes (SIGSEGV) on arenas of about 400 bytes or less: never probe that low


def mark(step: str) -> None:
    sys.stderr.flush()
    os.write(2, f"\n{MARK} {step}\n".encode())


def load(content: bytes, arena: int):
    from tflite_micro import runtime

    return runtime.Interpreter.from_bytes(content, arena_size=arena)


def invoke(it, inputs: list[np.ndarray], row: int) -> list[np.ndarray]:
    for i, a in enumerate(inputs):
        it.set_input(a[row:row + 1], i)  # batch fixed at 1, the model's exact dtype
    it.invoke()
    outs, k = [], 0
    while True:
        try:
            it.get_output_details(k)
        except (IndexError, RuntimeError, ValueError):
            return outs
        outs.append(np.array(it.get_output(k)))
        k += 1


def allocations(it) -> str:
    """What print_allocations writes to fd 2, read back through a temporary file (and passed on to fd 2)."""
    import tempfile

    mark("allocations")
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            it.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    os.write(2, text.encode())
    return text


def works(content: bytes, arena: int, inputs: list[np.ndarray]) -> bool:
    """A fresh interpreter with exactly `arena` bytes allocates and runs the first sample."""
    mark(f"probe {arena}")
    try:
        invoke(load(content, arena), inputs, 0)
    except (RuntimeError, ValueError):
        return False
    return True


def smallest_arena(content: bytes, recorded: int, ceiling: int, inputs: list[np.ndarray]) -> tuple[int, dict]:
    """The smallest arena that works, searched around the recorded total: a working and a failing bound,
    then bisection to the byte (more bytes never make an arena fail)."""
    probes = {}

    def probe(size):
        probes[size] = works(content, size, inputs)
        return probes[size]

    hi, step = recorded, 16
    while not probe(hi):
        if hi >= ceiling:
            raise RuntimeError(f"no arena up to {ceiling} bytes works")
        hi, step = min(hi + step, ceiling), step * 2
    lo, step = hi - 1, 16
    while lo >= MIN_PROBE and probe(lo):
        hi, lo, step = lo, max(lo - step, MIN_PROBE - 1), step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid):
            hi = mid
        else:
            lo = mid
    if hi - 16 >= MIN_PROBE and hi - 16 not in probes:
        probe(hi - 16)
    return hi, probes


def main(argv: list[str]) -> dict:
    model, inputs_path, outputs_path, arena = argv[0], argv[1], argv[2], int(argv[3])
    content = open(model, "rb").read()  # bytes, which from_bytes needs (a bytearray is refused)
    with np.load(inputs_path, allow_pickle=False) as f:
        inputs = [f[f"in_{i}"] for i in range(len(f.files))]
    n = len(inputs[0]) if inputs else 0
    report = {"runs": False, "step": "load", "error": None}
    try:
        mark("load")
        it = load(content, arena)
        report["inputs"] = [{"dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]]}
                            for d in (it.get_input_details(i) for i in range(len(inputs)))]
        for i, (a, d) in enumerate(zip(inputs, report["inputs"])):
            if a.dtype.name != d["dtype"] or list(a.shape[1:]) != d["shape"][1:]:
                raise ValueError(f"input {i} is {a.dtype.name} {list(a.shape[1:])}, the model wants "
                                 f"{d['dtype']} {d['shape'][1:]}")
        report["step"] = "first sample"
        mark("first sample")
        invoke(it, inputs, 0)
        report["step"] = "allocations"
        text = allocations(it)
        found = TOTAL.search(text)
        if not found:
            raise RuntimeError(f"print_allocations gave no arena total: {text.strip()[:200]!r}")
        report["recorded_arena"] = int(found.group(1))
        del it
        report["step"] = "arena search"
        report["arena_bytes"], report["probes"] = smallest_arena(content, report["recorded_arena"], arena, inputs)
        # every sample on a fresh interpreter with exactly that arena: the outputs are the ones it gives
        report["step"] = "samples"
        mark("samples")
        it = load(content, report["arena_bytes"])
        rows = [invoke(it, inputs, r) for r in range(n)]
        np.savez(outputs_path, **{f"out_{k}": np.concatenate([r[k] for r in rows]) for k in range(len(rows[0]))})
        report.update(runs=True, step="done", samples=n)
    except (RuntimeError, ValueError, IndexError) as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    return report


def serve() -> None:
    """Jobs one after another in this process: the interpreter's start-up (imports) is paid once."""
    for line in sys.stdin:
        mark("job")
        print(json.dumps(main(json.loads(line))), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        print(json.dumps(main(sys.argv[1:])), flush=True)
