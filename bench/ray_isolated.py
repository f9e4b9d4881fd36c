"""MobileNetV2 at 224 on a two-node Ray cluster whose nodes cannot see the driver's files, against in-process.

Usage (as root: it creates network and mount namespaces):
    .venv/bin/python bench/ray_isolated.py [--samples 100] [--techniques float16,dynamic,int8-fallback,int8-only]

`keras.applications.MobileNetV2(weights=None)` (no download), `--samples` evaluation images and 32 calibration
images uniform in [-1, 1] with random labels, seeded (accuracy figures are chance-level: they only have to be the
same). `quantbench compare` runs first in a process of its own (`--workers 0`), then as the driver of a Ray head
and a worker node of one CPU each on 127.0.0.1 of a private network namespace, each node in a mount namespace of
its own and the driver in a third, with the study's files on a tmpfs only it sees (tests/isolated_cluster.py).
Prints each run's wall time and peak memory (the process tree's RSS, sampled every 0.2 s: the driver's, each
node's), what each node kept in its cache, and whether every accuracy figure is identical. Every process is
stopped by its PID.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import isolated_cluster  # noqa: E402
from quantbench.core import memory  # noqa: E402

FIGURES = ("status", "error", "bytes", "accuracy", "accuracy_ci", "drop_ci_pp", "accuracy_delta_pp", "p_vs_float32",
           "top5", "agreement", "sqnr_db", "kl", "fidelity")
GIB = 2 ** 30


def figures(folder: Path) -> dict:
    raw = json.loads((folder / "results.json").read_text())
    return {v["technique"]: {k: v.get(k) for k in FIGURES} for v in raw["variants"]}


def make_files(folder: Path, samples: int, npy: bool, side: int = 224) -> None:
    from quantbench.core.quiet import configure
    from quantbench.runtime.tf import import_tensorflow

    configure()  # TensorFlow's start-up lines stay off the terminal
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV2(weights=None, input_shape=(side, side, 3), alpha=1.0 if side == 224 else 0.35,
                                   classes=1000 if side == 224 else 10).save(folder / "model.keras")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (samples, side, side, 3)).astype(np.float32)
    if npy:  # read through a memory map, a chunk at a time (an .npz is read whole); no labels
        np.save(folder / "d.npy", x)
    else:
        np.savez(folder / "d.npz", x=x, y=rng.integers(0, 1000 if side == 224 else 10, samples))
    del x
    np.savez(folder / "c.npz", x=rng.uniform(-1, 1, (32, side, side, 3)).astype(np.float32),
             y=rng.integers(0, 1000 if side == 224 else 10, 32))


class ProcessPeaks(threading.Thread):
    """Each process's own peak RSS in a tree, sampled every 0.2 s: which process a tree's peak comes from."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peaks, self.done = pid, {}, threading.Event()

    def run(self):
        while not self.done.wait(memory.SAMPLE_S):
            try:
                procs = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
            except psutil.Error:
                continue
            for p in procs:
                try:
                    key = f"{p.pid} {' '.join(p.cmdline()[:3])[-70:]}"
                    self.peaks[key] = max(self.peaks.get(key, 0), p.memory_info().rss)
                except psutil.Error:
                    pass


def run(proc: subprocess.Popen, watch: dict, by_process: bool = False) -> tuple[float, dict, dict]:
    """Wait for `proc`, sampling the peak RSS of each tree in `watch` (name -> root PID), and with `by_process`
    each process's own peak."""
    start = time.perf_counter()
    samplers = {name: memory.PeakSampler(pid) for name, pid in watch.items()}
    each = {name: ProcessPeaks(pid) for name, pid in watch.items()} if by_process else {}
    for s in [*samplers.values()]:
        s.__enter__()
    for t in each.values():
        t.start()
    try:
        _, err = proc.communicate()
    finally:
        for s in samplers.values():
            s.__exit__(None, None, None)
        for t in each.values():
            t.done.set()
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"the run failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, {name: s.peak for name, s in samplers.items()}, {name: t.peaks for name, t in each.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--techniques", default="float16,dynamic,int8-fallback,int8-only")
    parser.add_argument("--store", type=int, default=300, help="object store of each node, MB")
    parser.add_argument("--ray-only", action="store_true", help="skip the in-process run (memory at other sizes)")
    parser.add_argument("--npy", action="store_true", help="evaluation inputs as .npy (streamed), without labels")
    parser.add_argument("--by-process", action="store_true", help="print each process's own peak RSS")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds, not minutes: a MobileNetV2 of width 0.35 at 32x32, 8 images, float16 only")
    args = parser.parse_args()
    side = 224
    if args.smoke:
        args.samples, args.techniques, side = 8, "float16", 32
    why = isolated_cluster.unavailable()
    if why:
        if args.smoke:
            print(f"skipped: {why}")
            return
        sys.exit(why)
    work = Path(tempfile.mkdtemp(prefix="qbiso", dir="/tmp"))
    files, private = work / "files", work / "driver"
    files.mkdir()
    try:
        make_files(files, args.samples, args.npy, side)
        qb = f"{shlex.quote(sys.executable)} -m quantbench"
        data = "d.npy" if args.npy else "d.npz"
        study = f"compare model.keras --data {data} --calib c.npz --techniques {args.techniques} --quiet --out"
        if not args.ray_only:
            here = subprocess.Popen(["sh", "-ec", f"cd {shlex.quote(str(files))} && {qb} {study} "
                                                  f"{shlex.quote(str(work / 'here'))} --workers 0"],
                                    env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            wall_here, peak_here, _ = run(here, {"in-process": here.pid}, args.by_process)
        if args.smoke:  # the isolated cluster itself is started by tests/test_ray_isolated.py in every test run
            print(f"in-process (--workers 0): {wall_here:.1f} s, peak {peak_here['in-process'] / GIB:.2f} GiB")
            print("cluster: not started at --smoke size (tests/test_ray_isolated.py starts one on every test run)")
            return
        with isolated_cluster.Cluster(work, object_store_bytes=args.store * 10 ** 6) as cluster:
            head = cluster.start_head(cpus=1)
            node = cluster.add_node(cpus=1)
            drv = cluster.start_driver(private, f"cp {shlex.quote(str(files))}/* \"$PRIVATE\"/ && {qb} {study} study "
                                                f"--ray {isolated_cluster.ADDRESS} && cp -r study "
                                                f"{shlex.quote(str(work / 'ray-study'))}")
            wall_ray, peaks, each = run(drv, {"driver": drv.pid, "head node": head, "worker node": node},
                                        args.by_process)
            cached = {name: subprocess.run(["du", "-sb", f"/proc/{pid}/root/tmp/quantbench-cache-0"],
                                           capture_output=True, text=True).stdout.split("\t")[0]
                      for name, pid in (("head node", head), ("worker node", node))}
            unseen = not any(cluster.sees(pid, files) for pid in (head, node))
            killed = cluster.close()
        settings = json.loads((work / "ray-study" / "results.json").read_text())["settings"]
        print(f"MobileNetV2 {side}, {args.samples} evaluation images, techniques {args.techniques}")
        if not args.ray_only:
            print(f"in-process (--workers 0): {wall_here:.1f} s, peak {peak_here['in-process'] / GIB:.2f} GiB")
        print(f"Ray, 2 isolated nodes of 1 CPU ({settings['executor']}, {settings['workers']} CPUs, timed on "
              f"{settings['timed_on']!r}): {wall_ray:.1f} s; peak driver {peaks['driver'] / GIB:.2f} GiB, head node "
              f"{peaks['head node'] / GIB:.2f} GiB, worker node {peaks['worker node'] / GIB:.2f} GiB")
        print(f"node caches at the end (bytes): {cached}; nodes saw the user's folder: {not unseen}")
        print(f"nodes stopped by PID; processes left to kill afterwards: {killed}")
        for tree, peaks_of in each.items():
            print(f"{tree}, each process's peak RSS (MiB):")
            for key, rss in sorted(peaks_of.items(), key=lambda kv: -kv[1])[:8]:
                print(f"  {rss / 2 ** 20:7.0f}  {key}")
        if not args.ray_only:
            same = figures(work / "here") == figures(work / "ray-study")
            print(f"accuracy, agreement, SQNR, KL and fidelity identical: {same}")
            if not same:
                print(json.dumps({"here": figures(work / "here"), "ray": figures(work / "ray-study")}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
