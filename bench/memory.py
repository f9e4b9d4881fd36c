"""Issue 22: peak memory (RSS summed over the process tree every 0.2 s) and wall time of default `quantbench
compare` on a large-activation audio model and on MobileNetV2 224, for a base tree and this one, interleaved in
one run; `--max-memory 2` on MobileNetV2; and latency ratios to float32 timed in groups against all at once.

Cases:
  audio       bench/scale.py's audio50d.keras (Conv1D stack on 43,844 samples, 3 sigmoid outputs), 24 clips
  audio2d     bench/scale.py's audio2d.keras (the same input and outputs through 172x264x32 maps), 24 clips
              (-base, -branch: one tree only)
  audio2dx    the same with a 1x1 expansion to 96 channels in each block (-base, -branch: one tree only)
  audio2dw    basic-pitch's layout on audio2d's filterbank: 8-channel maps and a (3, 39) kernel (-base, -branch)
  basicpitch  basic-pitch 0.4.0's SavedModel (the installed package's saved_models/icassp_2022/nmp: the issue's
              published audio model, 43,844 samples, 3 outputs), the same 24 clips
  scratch     RSS one interpreter adds at batch 1 and 10 (allocate, one invoke; a fresh process each) for
              audio2dw's and basic-pitch's int4 variants (`quantbench convert`): im2col that no tensor shows at load
  mobilenet   MobileNetV2 224 (weights=None), 300 random images, --calib-size 200 (100 evaluated)
  mobilenet2  the same with --max-memory 2 (this tree only)
  mobilenet8  the same with --workers 8 --max-memory 3 (this tree only)
  ratios      the demo's variants timed all at once (cold calls, as main timed them before; and warm) and in
              groups of two (float32 + one, warm), in one process, alternating, --rounds times: does each
              per-round ratio to float32 agree within its interval?
  ratios-mobilenet  the same on the mobilenet case's variants (its compare runs first)

Usage:
  .venv/bin/python bench/memory.py --base /tmp/qb22-base --cases audio,mobilenet,mobilenet2,ratios
  .venv/bin/python bench/memory.py --base . --smoke   # a compare of a tiny .tflite in each tree: checks the script runs
Models and data come from bench/scale.py's cache (built once into --cache). Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # noqa: E402  (tree_rss and the model builders)

HERE = Path(__file__).resolve().parents[1]


def run(tree: Path, args: list[str], label: str, quiet: bool = True) -> dict:
    """One `quantbench` command with PYTHONPATH=tree: wall time, peak tree RSS sampled every 0.2 s."""
    out = Path(tempfile.mkdtemp(prefix="qb-mem-")) / "study"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "quantbench", *args, "--out", str(out), *(["--quiet"] if quiet else [])]
    start = time.perf_counter()
    # run from a folder of its own: `-m` puts the working directory first on sys.path, before PYTHONPATH
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=out.parent)
    ps = psutil.Process(proc.pid)
    peak, series = 0, []
    while proc.poll() is None:
        rss = scale.tree_rss(ps)
        peak = max(peak, rss)
        series.append((round(time.perf_counter() - start, 1), round(rss / 2 ** 30, 2)))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    err = proc.stderr.read()
    (out.parent / "rss.json").write_text(json.dumps(series))  # (seconds, GiB) every 0.2 s, beside the study
    row = {"case": label, "tree": str(tree), "wall_s": round(wall, 1), "peak_tree_gib": round(peak / 2 ** 30, 2),
           "exit": proc.returncode, "peak_at_s": max(series, key=lambda p: p[1])[0] if series else None}
    if proc.returncode != 0:
        row["stderr"] = err.strip()[-600:]
    else:
        res = json.loads((out / "results.json").read_text())
        row["accuracy"] = {v["technique"]: v.get("accuracy") for v in res["variants"] if v["status"] == "ok"}
        # what "the same figures" is checked on when the data has no labels: each output's fidelity to the float model
        row["fidelity"] = {v["technique"]: [[o.get("agreement"), o.get("sqnr_db")] for o in v.get("outputs") or []]
                           for v in res["variants"] if v["status"] == "ok"}
        row["study"] = str(out)
        row["settings"] = {k: res["settings"].get(k) for k in ("workers", "executor", "chunk", "throughput_batch")}
        mem = res["settings"].get("memory")
        if mem:
            row["memory"] = {"budget_gib": round(mem["budget_bytes"] / 2 ** 30, 2),
                             "peak_seen_gib": round(mem["peak_bytes"] / 2 ** 30, 2), "workers_asked":
                             mem["workers_asked"], "workers_ran": mem["workers_ran"],
                             "timing_groups": len(mem["timing_groups"])}
            row["memory_mib"] = {v["technique"]: round(v["memory_bytes"] / 2 ** 20, 1) for v in res["variants"]
                                 if v.get("memory_bytes")}
        said = [ln.strip() for ln in err.splitlines() if "worker" in ln.lower()]
        if said:
            row["said"] = said[-3:]
        elif err.strip() and quiet:
            row["stderr"] = err.strip()[-300:]
    print(json.dumps(row), flush=True)
    return row


SCRATCH = """
import sys, numpy as np, psutil
from ai_edge_litert.interpreter import Interpreter
x = np.load(sys.argv[1])["x"]
before = psutil.Process().memory_info().rss
it = Interpreter(model_path=sys.argv[2], num_threads=1)
i = it.get_input_details()[0]["index"]
it.resize_tensor_input(i, [int(sys.argv[3]), *x.shape[1:]])
it.allocate_tensors()
it.set_tensor(i, np.resize(x, (int(sys.argv[3]), *x.shape[1:])).astype(np.float32))
it.invoke()
print((psutil.Process().memory_info().rss - before) / 2 ** 20)
"""


def scratch(tree: Path, cache: Path) -> None:
    """What an interpreter of each int4 variant adds to a process's RSS at batch 1 and 10."""
    import importlib.util

    models = {"audio2dw": cache / scale.AUDIO2DW}
    if importlib.util.find_spec("basic_pitch"):  # the model, from the installed wheel; never downloaded
        models["basic-pitch"] = Path(importlib.util.find_spec("basic_pitch").origin).parent / "saved_models" / \
            "icassp_2022" / "nmp"
    folder = Path(tempfile.mkdtemp(prefix="qb-mem-scratch-"))
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name, model in models.items():
        for technique in ("weight-only-int4", "dynamic-int4", "float32"):
            f = folder / f"{name}-{technique}.tflite"
            subprocess.run([sys.executable, "-m", "quantbench", "convert", str(model), "-t", technique, "-o", str(f)],
                           check=True, env=env, cwd=folder, capture_output=True)
            mib = {b: float(subprocess.run([sys.executable, "-c", SCRATCH, str(cache / "audio24.npz"), str(f), str(b)],
                                           check=True, env=env, capture_output=True, text=True).stdout.split()[-1])
                   for b in (1, 10)}
            print(json.dumps({"model": name, "technique": technique, "rss_mib_batch_1": round(mib[1]),
                              "rss_mib_batch_10": round(mib[10])}), flush=True)


def ratios(tree: Path, rounds: int, budget: float, study_args: list[str] | None = None,
           study_dir: str | None = None) -> list[dict]:
    """A study's variants (the demo's, or `study_args`' compare), timed in this process three ways, one after the
    other in each repetition: all at once as main timed them before issue 22 (cold calls), all at once with a warm
    call before each timed one (`bench.WARM_CALLS`), and in groups of float32 + one (warm). Each variant's
    per-round ratio to float32 with its 95 % interval; do the intervals of the grouped and all-at-once ways
    overlap?"""
    sys.path.insert(0, str(tree))
    import numpy as np

    from quantbench.inputs.models import load_model
    from quantbench.measure import timing as bench
    from quantbench.runtime.litert import LiteModel
    from quantbench.study import pipeline as study
    from quantbench.study.config import StudyConfig

    folder = Path(tempfile.mkdtemp(prefix="qb-mem-ratios-")) / "study"
    if study_args is None:
        study.demo(folder, StudyConfig(workers=0), epochs=3)
        x = [np.load(folder / "digits-test.npz")["x"][:64]]
        source = load_model(folder / "model.keras")
    else:
        if study_dir:  # a finished study of these arguments (--study), not made again
            folder = Path(study_dir)
        else:
            subprocess.run([sys.executable, "-m", "quantbench", *study_args, "--out", str(folder), "--quiet"],
                           check=True, env={**os.environ, "PYTHONPATH": str(tree)}, cwd=folder.parent)
        with np.load(study_args[3]) as f:
            x = [f["x"][:64]]
        source = load_model(study_args[1])
    variants = json.loads((folder / "results.json").read_text())["variants"]
    names = sorted(v["technique"] for v in variants if v["status"] == "ok" and (folder / f"{v['technique']}.tflite").exists())

    def load(name):
        return LiteModel(folder / f"{name}.tflite"), x

    others = [n for n in names if n != "float32"]
    ways = (("all at once, cold (main)", [["float32", *others]], 0), ("all at once, warm", [["float32", *others]], 1),
            ("groups of 2, warm", [["float32", n] for n in others], 1))
    out = []
    for r in range(rounds):
        for how, groups, warm in ways:
            bench.WARM_CALLS = warm
            t = bench.measure_groups(source, load, groups, x, batch=32, time_budget=budget, seed=r)
            row = {"round": r, "how": how, "vs_float32": {n: [round(t[n]["latency_ms"]["vs_float32"]["median"], 3),
                                                              [round(c, 3) for c in t[n]["latency_ms"]["vs_float32"]["ci95"] or []]]
                                                          for n in others}}
            print(json.dumps(row), flush=True)
            out.append(row)

    def overlap(a: dict, b: dict) -> dict:
        return {n: not (a[n][1] and b[n][1] and (a[n][1][1] < b[n][1][0] or b[n][1][1] < a[n][1][0])) for n in others}

    for r in range(rounds):
        cold, warm, grouped = (out[len(ways) * r + k]["vs_float32"] for k in range(len(ways)))
        for label, a in (("cold all-at-once", cold), ("warm all-at-once", warm)):
            agree = overlap(a, grouped)
            print(json.dumps({"round": r, "grouped against": label, "intervals_overlap": sum(agree.values()),
                              "of": len(agree), "apart": [n for n, ok in agree.items() if not ok]}), flush=True)
    for k, (how, _, _) in enumerate(ways):  # the same way in two repetitions: how often do its own intervals agree?
        for r in range(1, rounds):
            agree = overlap(out[k]["vs_float32"], out[len(ways) * r + k]["vs_float32"])
            print(json.dumps({"way": how, "repetition 0 against": r, "intervals_overlap": sum(agree.values()),
                              "of": len(agree), "apart": [n for n, ok in agree.items() if not ok]}), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True, help="a checkout of the base commit (its PYTHONPATH)")
    p.add_argument("--tree", default=str(HERE), help="this branch's checkout")
    p.add_argument("--cases", default="audio,mobilenet,mobilenet2,ratios")
    p.add_argument("--cache", default="/tmp/qb-scale")
    p.add_argument("--study", help="ratios-mobilenet: a finished study folder of the mobilenet case, reused")
    p.add_argument("--rounds", type=int, default=2, help="repetitions of the ratios case")
    p.add_argument("--budget", type=float, default=10.0, help="timing seconds per measure in the ratios case")
    p.add_argument("--smoke", action="store_true", help="a compare of a tiny .tflite in each tree, no ratios: checks "
                   "the script runs")
    a = p.parse_args()
    if a.smoke:
        model, test = scale.smoke_files(Path(a.cache))
        for t, label in ((Path(a.base), "smoke base"), (Path(a.tree), "smoke branch")):
            run(t, ["compare", str(model), "--data", str(test), *scale.SMOKE_COMPARE], label)
        print("ratios: not in --smoke (a study, then its variants timed three ways: minutes)")
        return
    cache = Path(a.cache)
    scale.build(cache)
    base, tree = Path(a.base), Path(a.tree)
    audio = ["compare", str(cache / scale.AUDIO), "--data", str(cache / "audio24.npz")]
    mobilenet = ["compare", str(cache / "mobilenetv2.keras"), "--data", str(cache / "img300.npz"), "--calib-size", "200"]
    for case in a.cases.split(","):
        if case == "audio":
            for t, label in ((base, "audio base"), (tree, "audio branch")):
                run(t, audio, label)
        elif case.split("-")[0] in ("audio2d", "audio2dx", "audio2dw"):  # our own large-activation models (scale.py)
            name, _, which = case.partition("-")
            for t, label in ((base, f"{name} base"), (tree, f"{name} branch")):
                if which in ("", label.split()[1]):
                    run(t, ["compare", str(cache / f"{name}.keras"), "--data", str(cache / "audio24.npz")], label)
        elif case == "mobilenet":
            for t, label in ((base, "mobilenet base"), (tree, "mobilenet branch")):
                run(t, mobilenet, label)
        elif case == "basicpitch":  # the issue's own model: basic-pitch 0.4.0's SavedModel, from its installed wheel
            import basic_pitch

            nmp = Path(basic_pitch.__file__).parent / "saved_models" / "icassp_2022" / "nmp"
            for t, label in ((base, "basic-pitch base"), (tree, "basic-pitch branch")):
                run(t, ["compare", str(nmp), "--data", str(cache / "audio24.npz")], label)
        elif case == "mobilenet-branch":  # this tree alone (after a change, when base's figure is already known)
            run(tree, mobilenet, "mobilenet branch")
        elif case == "mobilenet2":
            run(tree, [*mobilenet, "--max-memory", "2"], "mobilenet branch --max-memory 2")
        elif case == "mobilenet8":
            run(tree, [*mobilenet, "--workers", "8", "--max-memory", "3"], "mobilenet branch --workers 8 --max-memory 3",
                quiet=False)  # not --quiet: the terminal's word on how many workers ran
        elif case == "scratch":
            scratch(tree, cache)
        elif case == "ratios":
            ratios(tree, a.rounds, a.budget)
        elif case == "ratios-mobilenet":
            ratios(tree, a.rounds, a.budget, mobilenet, a.study)


if __name__ == "__main__":
    main()
