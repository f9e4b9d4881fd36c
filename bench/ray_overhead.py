"""`quantbench compare` in this process (--workers 0) against the same on a local Ray head (--ray), interleaved.

Usage: .venv/bin/python bench/ray_overhead.py [--runs 3] [--techniques float16,dynamic,int8-fallback,int8-only]
       .venv/bin/python bench/ray_overhead.py --smoke [--cache /tmp/qb-scale]

Starts a Ray head on 127.0.0.1 only (own temp dir, token authentication, 2 CPUs, no dashboard), trains the
digits demo model once (`quantbench demo --techniques float32`), then runs `compare` on it alternately in
process and on Ray, each a fresh CLI process, in a seeded shuffled order. Prints every run's wall time, the
medians, Ray's overhead in seconds, and whether every accuracy figure is identical across all runs. The head
is stopped by its PID at the end (never `ray stop`). --smoke: one run of each mode on the untrained digits CNN as
a float .tflite (bench/scale.py's smoke_files, kept in --cache: no TensorFlow in the studies), 0.2 s of timing.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("status", "accuracy", "accuracy_ci", "drop_ci_pp", "top5", "agreement", "sqnr_db", "kl", "fidelity")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_head(temp: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(temp / "head.log", "w")
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false", "--num-cpus=2",
         "--disable-usage-stats", f"--ray-client-server-port={free_port()}",
         f"--dashboard-agent-listen-port={free_port()}", "--object-store-memory=200000000"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)  # a terminal's Ctrl-C reaches it only through stop, by its PID
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in (temp / "head.log").read_text():
        if head.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the Ray head did not start:\n{(temp / 'head.log').read_text()[-2000:]}")
        time.sleep(0.5)
    return head, f"127.0.0.1:{port}"


def stop_head(head: subprocess.Popen) -> int:
    """SIGTERM to the --block process; returns how many of its processes had to be killed afterwards."""
    family = psutil.Process(head.pid).children(recursive=True)
    head.send_signal(signal.SIGTERM)
    head.wait(60)
    _, alive = psutil.wait_procs(family, timeout=30)
    for p in alive:
        p.kill()
    return len(alive)


def figures(folder: Path) -> dict:
    raw = json.loads((folder / "results.json").read_text())
    return {v["technique"]: {k: v.get(k) for k in FIGURES} for v in raw["variants"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode")
    parser.add_argument("--techniques", default="float16,dynamic,int8-fallback,int8-only")
    parser.add_argument("--smoke", action="store_true", help="one run each of a tiny .tflite's study: checks the "
                        "script runs")
    parser.add_argument("--cache", default="/tmp/qb-scale", help="--smoke: where its .tflite is made once")
    args = parser.parse_args()
    if args.smoke and importlib.util.find_spec("ray") is None:
        print("skipped: ray is not installed (pip install -e '.[ray]')")
        return
    temp = Path(tempfile.mkdtemp(prefix="qbb", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    qb = [sys.executable, "-m", "quantbench"]
    if args.smoke:
        sys.path.insert(0, str(ROOT / "bench"))
        import scale

        model, data = scale.smoke_files(Path(args.cache))
        args.runs, args.techniques = 1, "float32"
        study = ["compare", str(model), "--data", str(data), *scale.SMOKE_COMPARE]
    else:
        subprocess.run([*qb, "demo", "--out", str(temp / "demo"), "--techniques", "float32", "--quiet"], env=env,
                       check=True)
        demo = temp / "demo"
        study = ["compare", str(demo / "model.keras"), "--data", str(demo / "digits-test.npz"), "--calib",
                 str(demo / "digits-train.npz"), "--techniques", args.techniques]
    head, address = start_head(temp, env)
    walls: dict[str, list[float]] = {"in-process": [], "ray": []}
    seen = []
    try:
        rng = random.Random(0)
        order = [m for _ in range(args.runs) for m in rng.sample(list(walls), 2)]  # each pair in a seeded order
        for i, mode in enumerate(order):
            out = temp / f"run{i}-{mode}"
            where = ["--workers", "0"] if mode == "in-process" else ["--ray", address]
            cmd = [*qb, *study, "--out", str(out), "--quiet", *where]
            start = time.perf_counter()
            subprocess.run(cmd, env=env, check=True)
            wall = time.perf_counter() - start
            walls[mode].append(wall)
            seen.append(figures(out))
            print(f"run {i + 1} {mode}: {wall:.1f} s", flush=True)
    finally:
        killed = stop_head(head)
        shutil.rmtree(temp, ignore_errors=True)
    same = all(f == seen[0] for f in seen)
    med = {m: statistics.median(w) for m, w in walls.items()}
    print(f"techniques {args.techniques}; {args.runs} runs each, interleaved")
    for m, w in walls.items():
        print(f"{m}: median {med[m]:.1f} s (min {min(w):.1f}, max {max(w):.1f})")
    print(f"Ray overhead: {med['ray'] - med['in-process']:+.1f} s per compare (median against median)")
    print(f"accuracy, agreement, SQNR, KL and fidelity identical across all {len(seen)} runs: {same}")
    print(f"head stopped by PID; processes left to kill afterwards: {killed}")


if __name__ == "__main__":
    main()
