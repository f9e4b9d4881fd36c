"""Real models at real scale: wall time and peak memory (RSS of the whole process tree) of `quantbench compare`.

Cases (issue 11):
  mobilenet     MobileNetV2 224x224x3 (keras.applications, weights=None), 300 random images in an .npz,
                200 calibration / 100 evaluation (--calib-size 200), default compare
  npy100/npy1000  the same model, evaluation images from an .npy (memory-mapped) and 200 calibration images
                from another: the peak must stay flat as the evaluation set grows
  audio         a Keras model with a 43,844-sample audio input and 3 outputs (172x88, 172x88, 172x264), 24 clips
  audio2d       the same input and outputs through 2-D maps of 172x264x32 (large activations), 24 clips
  workers       mobilenet at --workers 1 and --workers 2, interleaved
  conversions   30 conversions in one study (14 techniques + 16 calibration sizes): the main process's RSS

Usage:
  .venv/bin/python bench/scale.py --cases mobilenet,npy100,npy1000,audio --workers 1
  .venv/bin/python bench/scale.py --cases workers --rounds 2
  .venv/bin/python bench/scale.py --smoke   # one compare of a tiny float .tflite (smoke_files): checks the script runs
Models and data are built once into --cache (default /tmp/qb-scale). Nothing is downloaded.
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

import numpy as np
import psutil

AUDIO_SAMPLES = 43844
AUDIO = "audio50d.keras"  # Conv1D 96-224-448-512 (stride 4) and 2 x 512: about 1.8 GMAC a clip
AUDIO2D = "audio2d.keras"  # large activations: a 264-band filterbank over 172 frames, then Conv2D at 172x264x32
AUDIO2DX = "audio2dx.keras"  # the same with a 1x1 expansion to 96 channels (17 MB a clip per tensor) in each block
AUDIO2DW = "audio2dw.keras"  # basic-pitch's layout: 8-channel maps, a (3, 39) kernel (936 values per output pixel)


def build(cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    if not (cache / AUDIO).exists():  # about 50 ms a clip at 1 thread on this machine (float32, BENCHMARKS.md)
        inp = keras.Input((AUDIO_SAMPLES, 1), name="audio")
        h = inp
        for filters in (96, 224, 448, 512):  # stride 4 each: 43,844 samples -> 172 frames
            h = keras.layers.Conv1D(filters, 9, strides=4, padding="same", activation="relu")(h)
        h = keras.layers.Conv1D(512, 3, padding="same", activation="relu")(h)
        h = keras.layers.Conv1D(512, 3, padding="same", activation="relu")(h)
        onsets = keras.layers.Dense(88, activation="sigmoid", name="onsets")(h)
        notes = keras.layers.Dense(88, activation="sigmoid", name="notes")(h)
        contours = keras.layers.Dense(264, activation="sigmoid", name="contours")(h)
        keras.Model(inp, [onsets, notes, contours], name="audio3").save(cache / AUDIO)
    if not (cache / AUDIO2D).exists():  # like a transcription model's: 2-D maps of 5.8 MB a clip per tensor
        inp = keras.Input((AUDIO_SAMPLES, 1), name="audio")
        h = keras.layers.Conv1D(264, 1024, strides=256, padding="same", activation="relu")(inp)  # 172 x 264
        h = keras.layers.Reshape((172, 264, 1))(h)
        for _ in range(3):
            h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
        contours = keras.layers.Reshape((172, 264), name="contours")(
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(h))
        notes_map = keras.layers.Conv2D(32, (7, 3), strides=(1, 3), padding="same", activation="relu")(h)
        notes = keras.layers.Reshape((172, 88), name="notes")(
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(notes_map))
        onsets_map = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(notes_map)
        onsets = keras.layers.Reshape((172, 88), name="onsets")(
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(onsets_map))
        keras.Model(inp, [onsets, notes, contours], name="audio2d").save(cache / AUDIO2D)
    if not (cache / AUDIO2DX).exists():  # audio2d reached 4.1 GiB on 2380ec4, not the 7-8: wider maps
        inp = keras.Input((AUDIO_SAMPLES, 1), name="audio")
        h = keras.layers.Conv1D(264, 1024, strides=256, padding="same", activation="relu")(inp)
        h = keras.layers.Reshape((172, 264, 1))(h)
        for _ in range(3):
            h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
            h = keras.layers.Conv2D(96, 1, activation="relu")(h)  # expand: 172x264x96
            h = keras.layers.Conv2D(32, 1, activation="relu")(h)  # project back
        contours = keras.layers.Reshape((172, 264), name="contours")(
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(h))
        notes_map = keras.layers.Conv2D(32, (7, 3), strides=(1, 3), padding="same", activation="relu")(h)
        notes = keras.layers.Reshape((172, 88), name="notes")(
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(notes_map))
        onsets_map = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(notes_map)
        onsets = keras.layers.Reshape((172, 88), name="onsets")(
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(onsets_map))
        keras.Model(inp, [onsets, notes, contours], name="audio2dx").save(cache / AUDIO2DX)
    if not (cache / AUDIO2DW).exists():  # audio2d, audio2dx: 4.1, 3.2 GiB on 2380ec4; what is large is im2col
        inp = keras.Input((AUDIO_SAMPLES, 1), name="audio")  # (kernel rows x columns x channels per output pixel)
        h = keras.layers.Conv1D(264, 1024, strides=256, padding="same", activation="relu")(inp)
        h = keras.layers.Reshape((172, 264, 1))(h)
        stack = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(h)  # as a harmonic stack: 8 channels
        wide = keras.layers.Conv2D(8, (3, 39), padding="same", activation="relu")(stack)
        contour_map = keras.layers.Conv2D(1, 5, padding="same", activation="sigmoid")(wide)
        contours = keras.layers.Reshape((172, 264), name="contours")(contour_map)
        notes_map = keras.layers.Conv2D(32, 7, strides=(1, 3), padding="same", activation="relu")(contour_map)
        notes_pre = keras.layers.Conv2D(1, (7, 3), padding="same", activation="sigmoid")(notes_map)
        notes = keras.layers.Reshape((172, 88), name="notes")(notes_pre)
        onset_map = keras.layers.Conv2D(32, 5, strides=(1, 3), padding="same", activation="relu")(stack)
        onset_map = keras.layers.Concatenate()([notes_pre, onset_map])
        onsets = keras.layers.Reshape((172, 88), name="onsets")(
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(onset_map))
        keras.Model(inp, [onsets, notes, contours], name="audio2dw").save(cache / AUDIO2DW)
    if not (cache / "audio24.npz").exists():
        np.savez(cache / "audio24.npz", x=rng.normal(0, 0.1, (24, AUDIO_SAMPLES, 1)).astype(np.float32))
    if (cache / "done").exists():
        return
    keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)).save(cache / "mobilenetv2.keras")
    images = rng.uniform(-1, 1, (300, 224, 224, 3)).astype(np.float32)
    np.savez(cache / "img300.npz", x=images)
    np.save(cache / "calib200.npy", images[:200])
    np.save(cache / "eval100.npy", images[200:])
    big = np.lib.format.open_memmap(cache / "eval1000.npy", mode="w+", dtype=np.float32, shape=(1000, 224, 224, 3))
    for start in range(0, 1000, 100):
        big[start:start + 100] = rng.uniform(-1, 1, (100, 224, 224, 3)).astype(np.float32)
    big.flush()
    del big

    (cache / "done").write_text("ok")


def smoke_files(cache: Path) -> tuple[Path, Path]:
    """For --smoke (issue 23): the untrained digits CNN as a float .tflite (a study of it imports no TensorFlow) and
    60 labelled digits, into `cache`; seconds."""
    from quantbench.engines.converter import convert
    from quantbench.inputs import data, models

    cache.mkdir(parents=True, exist_ok=True)
    model, test = cache / "digits-cnn.tflite", cache / "digits60.npz"
    if not model.exists():  # written under another name, then renamed: another script may be reading it
        models.seed_everything(0)
        (cache / f"{os.getpid()}.tflite").write_bytes(convert(models.reference_cnn(), "float32").content)
        os.replace(cache / f"{os.getpid()}.tflite", model)
    if not test.exists():
        split = data.digits()
        np.savez(cache / f"{os.getpid()}.npz", x=split.x_test[:60], y=split.y_test[:60])
        os.replace(cache / f"{os.getpid()}.npz", test)
    return model, test


SMOKE_COMPARE = ["--techniques", "float32", "--time-budget", "0.2"]  # with smoke_files: the file itself, seconds


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(args: list[str], label: str) -> dict:
    """One quantbench command; wall time, peak RSS of its process tree and of its main process."""
    out = Path(tempfile.mkdtemp(prefix="qb-scale-")) / "study"
    cmd = [sys.executable, "-m", "quantbench", *args, "--out", str(out), "--quiet"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak, main_peak, main_series = 0, 0, []
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        try:
            rss = ps.memory_info().rss
            main_peak = max(main_peak, rss)
            main_series.append(rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - start
    err = proc.stderr.read()
    row = {"case": label, "wall_s": round(wall, 1), "peak_tree_gib": round(peak / 2 ** 30, 2),
           "peak_main_gib": round(main_peak / 2 ** 30, 2), "exit": proc.returncode}
    if proc.returncode != 0:
        row["stderr"] = err.strip()[-400:]
    else:
        res = json.loads((out / "results.json").read_text())
        row["rows"] = {v["technique"]: (v["status"], v.get("accuracy") or v.get("agreement")) for v in res["variants"]}
        row["settings"] = {k: res["settings"].get(k) for k in ("workers", "executor", "chunk", "throughput_batch")}
        row["eval_samples"] = res["data"]["eval_samples"]
        # does the main process grow as tasks complete? its peak in each fifth of the run (samples read while
        # it was alive only: the last read, as it exits, is 0)
        alive = [r for r in main_series if r > 0]
        fifth = max(len(alive) // 5, 1)
        row["main_rss_mib_by_fifth"] = [round(max(alive[k:k + fifth]) / 2 ** 20) for k in range(0, fifth * 5, fifth)
                                        if alive[k:k + fifth]]
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", default="mobilenet,npy100,npy1000,audio")
    p.add_argument("--workers", default="1")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--cache", default="/tmp/qb-scale")
    p.add_argument("--extra", default="", help="more arguments for every compare, space-separated")
    p.add_argument("--smoke", action="store_true", help="one compare of a tiny .tflite: checks the script runs")
    a = p.parse_args()
    if a.smoke:
        model, test = smoke_files(Path(a.cache))
        run(["compare", str(model), "--data", str(test), *SMOKE_COMPARE, "--workers", a.workers], "smoke")
        return
    cache = Path(a.cache)
    build(cache)
    extra = a.extra.split()
    m = str(cache / "mobilenetv2.keras")
    cases = {
        "mobilenet": ["compare", m, "--data", str(cache / "img300.npz"), "--calib-size", "200"],
        "npy100": ["compare", m, "--data", str(cache / "eval100.npy"), "--calib", str(cache / "calib200.npy")],
        "npy1000": ["compare", m, "--data", str(cache / "eval1000.npy"), "--calib", str(cache / "calib200.npy")],
        "audio": ["compare", str(cache / AUDIO), "--data", str(cache / "audio24.npz")],
        "audio2d": ["compare", str(cache / AUDIO2D), "--data", str(cache / "audio24.npz")],
        "conversions": ["compare", m, "--data", str(cache / "img300.npz"), "--calib-size", "200", "--calib-sizes",
                        "10,20,30,40,50,60,70,80,90,100,110,120,130,140,150,160"],
    }
    for _ in range(a.rounds):
        for name in a.cases.split(","):
            if name == "workers":  # interleaved, one run of each in turn
                for w in ("1", "2"):
                    run([*cases["mobilenet"], "--workers", w, *extra], f"mobilenet --workers {w}")
                continue
            run([*cases[name], "--workers", a.workers, *extra], f"{name} --workers {a.workers}")


if __name__ == "__main__":
    main()
