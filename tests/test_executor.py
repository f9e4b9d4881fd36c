"""Executors: the same plan in this process and in worker processes; dead workers, recycling, Ctrl-C."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from quantbench.core.errors import InputError
from quantbench.executors import local as executor
from quantbench.executors.local import InProcess, Workers
from quantbench.executors.plan import Died, Task, TaskBug
from quantbench.study.config import StudyConfig


def square(x):
    return x * x


def pid():
    return os.getpid()


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def refuse():
    raise InputError("bad input, said in a worker")


def bug():
    return {}["missing"]


def plan():
    return [Task("a", square, (3,)), Task("b", square, (4,), needs=("a",)), Task("c", die),
            Task("d", square, (5,), needs=("c",)), Task("e", square, (6,))]


def check(results):
    assert results["a"] == 9 and results["b"] == 16 and results["e"] == 36
    assert isinstance(results["d"], Died) and "not run: c did not finish" in results["d"].reason


def test_workers_survive_a_dead_worker_and_skip_what_needed_it():
    with Workers(2) as run:
        results = run.run(plan())
        check(results)
        assert isinstance(results["c"], Died)
        assert results["c"].reason == "c: its worker process was killed by SIGKILL (the system may have run out of memory)"
        assert run.run([Task("again", square, (7,))])["again"] == 49  # a fresh worker took the dead one's place


def test_workers_are_recycled_after_leaky_tasks():
    with Workers(1, recycle_after=2) as run:
        pids = [run.run([Task(f"p{i}", pid, leaky=True)])[f"p{i}"] for i in range(4)]
    assert pids[0] == pids[1] != pids[2] == pids[3]


def test_errors_and_bugs_in_a_worker_surface_in_the_caller():
    with Workers(1) as run:
        with pytest.raises(InputError, match="bad input, said in a worker"):
            run.run([Task("r", refuse)])
        with pytest.raises(TaskBug, match=r"KeyError: 'missing' \(in task b; worker traceback"):
            run.run([Task("b", bug)])


ENDING = """
import multiprocessing, os, sys, time
from quantbench.executors.local import Task, Workers


LOCKS = []


def lock_like_tqdm():  # tqdm's write lock, made in a worker by the LiteRT Quantizer's calibration bar, kept
    LOCKS.append(multiprocessing.RLock())  # for the process's life (on tqdm's class)
    return os.getpid()


if __name__ == "__main__":
    run = Workers(1)
    run.run([Task("t", lock_like_tqdm)])
    start = time.perf_counter()
    run.close()
    print(f"{time.perf_counter() - start:.3f}")
"""


def test_a_stopped_worker_ends_at_once_and_releases_what_its_tasks_registered(tmp_path):
    """A worker ends without the interpreter's teardown (TensorFlow's takes seconds), but as its process would
    end: what its tasks registered with multiprocessing's resource tracker is released, so no "leaked
    semaphore" warning reaches the user's terminal at the end of a study."""
    script = tmp_path / "ending.py"
    script.write_text(ENDING)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert float(proc.stdout) < 2.0


def test_in_process_runs_the_same_plan_in_order():
    done = []
    results = InProcess().run([Task("a", square, (3,)), Task("b", square, (4,), needs=("a",))],
                              on_done=lambda t, r: done.append(t.key))
    assert results == {"a": 9, "b": 16} and done == ["a", "b"]


def test_bad_worker_counts_are_refused():
    with pytest.raises(InputError, match=r"--workers is -1. Expected 0 \(in this process\) or more"):
        executor.make(-1)
    assert isinstance(executor.make(0), InProcess)


class Notes:
    """A reporter that keeps the note of every finished step (task keys, in a study)."""

    def __init__(self):
        self.notes = []

    @contextlib.contextmanager
    def task(self, description, total):
        yield lambda n=1, note=None: self.notes.append(note)


def test_a_study_in_workers_gives_the_in_process_figures(tiny_model, digits, calib, tmp_path, monkeypatch):
    from quantbench.study import pipeline as study
    from quantbench.study.pipeline import run_study

    names = "float32,dynamic,int8-only,int8-fallback,lq-int8,lq-int16x8"
    x = digits.x_test[:200]
    here, seen = run_study(tiny_model, x, calib, tmp_path / "here",
                           StudyConfig(techniques=names, time_budget=1.0, workers=0)), Notes()
    monkeypatch.setattr(study, "EXPORT_FROM_BYTES", 0)  # the workers convert from the model exported once
    there = run_study(tiny_model, x, calib, tmp_path / "there",
                      StudyConfig(techniques=names, time_budget=1.0, workers=2), reporter=seen)
    assert {"export", "family:converter", "family:litert-quantizer"} <= set(seen.notes)
    assert there.settings["executor"] == "Workers" and here.settings["executor"] == "InProcess"
    for a, b in zip(here.variants, there.variants):
        assert (a.technique, a.status, a.agreement, a.sqnr_db, a.kl, a.fidelity) == \
            (b.technique, b.status, b.agreement, b.sqnr_db, b.kl, b.fidelity)
    for name in names.split(","):
        assert (tmp_path / "here" / f"{name}.tflite").read_bytes() == (tmp_path / "there" / f"{name}.tflite").read_bytes()
    assert not (tmp_path / "there" / ".work").exists()


def test_streamed_npy_gives_the_in_memory_figures(tiny_keras_path, digits, tmp_path):
    from quantbench.inputs import data, models
    from quantbench.study.pipeline import compare

    np.save(tmp_path / "x.npy", digits.x_test)
    source = models.load_model(tiny_keras_path)
    streamed = data.load_data(tmp_path / "x.npy", source)
    assert streamed.streamed and isinstance(streamed.x[0], data.LazyNpy)
    np.savez(tmp_path / "x.npz", x=digits.x_test)
    a = compare(tiny_keras_path, tmp_path / "x.npy", out=tmp_path / "a",
                config=StudyConfig(techniques="float32,int8-only", workers=0))
    b = compare(tiny_keras_path, tmp_path / "x.npz", out=tmp_path / "b",
                config=StudyConfig(techniques="float32,int8-only", workers=0))
    assert a.data["streamed"] and not b.data["streamed"]
    assert [v.agreement for v in a.variants] == [v.agreement for v in b.variants]
    assert [v.sqnr_db for v in a.variants] == [v.sqnr_db for v in b.variants]


def test_ctrl_c_stops_the_workers_and_cleans_up(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "quantbench", "demo", "--out", str(tmp_path / "s"), "--quiet",
                             "--epochs", "1", "--workers", "2", "--techniques", "float32,dynamic,int8-only,float16",
                             "--max-memory", "8"],  # room for both workers beside the trained model, on any machine
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent, workers, deadline = psutil.Process(proc.pid), [], time.monotonic() + 240
    def spawned(p):
        try:
            return "spawn_main" in " ".join(p.cmdline())
        except psutil.Error:  # gone, or a zombie, meanwhile
            return False

    while time.monotonic() < deadline and proc.poll() is None:
        workers = [p for p in parent.children() if spawned(p)]
        if len(workers) == 2:
            break
        time.sleep(0.1)
    assert len(workers) == 2, "the workers never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)
    assert list(tmp_path.iterdir()) == []


def test_with_workers_the_main_process_never_imports_tensorflow(tiny_keras_path, digits_npz, tmp_path):
    script = (f"import sys; from quantbench.study.pipeline import compare; from quantbench import StudyConfig; "
              f"r = compare({str(tiny_keras_path)!r}, {str(digits_npz[0])!r}, out={str(tmp_path / 's')!r}, "
              "config=StudyConfig(techniques='float32,int8-only', workers=1, time_budget=0.5)); "
              "print(r.settings['executor'], 'tensorflow' in sys.modules, [v.status for v in r.variants])")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[-2] == "Workers False ['ok', 'ok', 'ok']"
