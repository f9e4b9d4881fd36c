"""--ray on a real local Ray head, on loopback only: same figures as in this process, the executor's contract
(needs, exclusive, a dead worker, errors, bugs, Ctrl-C), token authentication, and the connection errors.

One head for the module, started by `ray start --head --block` with its own temp dir and token, stopped by its
PID (never `ray stop`, which kills every Ray process of the user); afterwards no process of it survives.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from quantbench import cli
from quantbench.core import errors
from quantbench.core.errors import InputError
from quantbench.executors import local as executor
from quantbench.executors.plan import Died, Task, TaskBug
from quantbench.inputs import data
from quantbench.study import pipeline as study, recommend
from quantbench.study.config import StudyConfig

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # else Ray swaps 127.0.0.1 for the machine's address


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _resource_tracker(p: psutil.Process) -> bool:
    """multiprocessing's helper, which lives as long as this process once a worker was spawned (the timing runs
    in one, here): not a Ray process."""
    try:
        return "multiprocessing.resource_tracker" in " ".join(p.cmdline())
    except psutil.Error:
        return False


@pytest.fixture(scope="module", autouse=True)
def client_env():
    """This process as a loopback client with a token, set before anything here imports Ray: Ray reads its
    authentication mode once, when it is imported."""
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**LOOPBACK, **auth}.items():
            mp.setenv(k, v)
        if "ray._raylet" in sys.modules:  # imported by an earlier test module: make it read them again
            from ray._raylet import AuthenticationTokenLoader, Config

            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()
        yield auth


@pytest.fixture(scope="module")
def head(client_env):
    """A local head on 127.0.0.1 with token authentication set explicitly (the client's token)."""
    temp = Path(tempfile.mkdtemp(prefix="qbr", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # this quantbench
    port = _free_port()
    log = open(temp / "head.log", "w")
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false", "--num-cpus=2",
         "--disable-usage-stats", f"--ray-client-server-port={_free_port()}",
         f"--dashboard-agent-listen-port={_free_port()}", "--object-store-memory=100000000"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)  # a terminal's Ctrl-C reaches it only through stop, by its PID
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (temp / "head.log").read_text():
            assert head.poll() is None, (temp / "head.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the Ray head did not start in 90 s"
            time.sleep(0.5)
        yield {"address": f"127.0.0.1:{port}", "env": env, "pid": head.pid}
    finally:
        import ray

        ray.shutdown()
        family = psutil.Process(head.pid).children(recursive=True)
        head.send_signal(signal.SIGTERM)
        head.wait(60)
        gone, alive = psutil.wait_procs(family, timeout=30)
        for p in alive:
            p.kill()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        _, left = psutil.wait_procs([p for p in psutil.Process().children(recursive=True)
                                     if p.pid not in mine and not _resource_tracker(p)], timeout=10)
        assert not alive and not left, f"Ray processes survived the head: {alive + left}"


# ---- connection errors: one line, exit 2 (first, while this process is not connected to Ray) -----------------

@pytest.fixture
def tiny_sweep(tmp_path, tiny_keras_path, digits):
    np.savez(tmp_path / "d.npz", x=digits.x_test[:40], y=digits.y_test[:40])
    toml = tmp_path / "s.toml"
    toml.write_text(f'techniques = ["float16"]\n[models]\nm = "{tiny_keras_path}"\n[data]\nd = "d.npz"\n')
    return toml


def test_unreachable_address_is_one_line_within_seconds(tiny_keras_path, digits_npz, tmp_path, capsys):
    port = _free_port()  # closed: nothing listens there
    start = time.monotonic()
    code = cli.main(["compare", str(tiny_keras_path), "--data", str(digits_npz[0]), "--out", str(tmp_path / "o"),
                     "--ray", f"127.0.0.1:{port}", "--quiet"])
    seconds = time.monotonic() - start
    err = capsys.readouterr().err.strip()
    assert code == 2 and seconds < 30 and len(err.splitlines()) == 1
    assert f"Cannot reach the Ray cluster at 127.0.0.1:{port} (Connection refused)" in err and "Fix:" in err
    assert not (tmp_path / "o").exists()


def test_a_driver_on_a_machine_without_a_node_of_the_cluster_is_told_to_use_ray_client(tiny_keras_path, digits_npz,
                                                                                      tmp_path, capsys):
    with socket.socket() as head:  # something listens at the address, but no Ray node of it runs here
        head.bind(("127.0.0.1", 0))
        head.listen()
        port = head.getsockname()[1]
        start = time.monotonic()
        code = cli.main(["compare", str(tiny_keras_path), "--data", str(digits_npz[0]), "--out", str(tmp_path / "o"),
                         "--ray", f"127.0.0.1:{port}", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.monotonic() - start < 30 and not (tmp_path / "o").exists()
    assert err == (f"quantbench: error: Cannot attach to the Ray cluster at 127.0.0.1:{port}: no node of that cluster "
                   "runs on this machine, and a driver given host:port needs one. Expected a Ray Client address for a "
                   "cluster elsewhere: ray://HOST:PORT, the head's client port (10001 unless `ray start --head "
                   "--ray-client-server-port` says otherwise). Fix: pass --ray ray://127.0.0.1:10001.")


def test_without_ray_installed_the_line_says_what_to_install(tiny_sweep, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    assert cli.main(["sweep", str(tiny_sweep), "--ray", "127.0.0.1:1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'quantbench[ray]'" in err


# ---- the executor's contract, with small tasks shipped by value (Ray's workers cannot import tests/) ----------

def _interval(seconds: float) -> tuple:
    start = time.time()
    time.sleep(seconds)
    return (start, time.time())


def _refuse():
    raise InputError("bad input, said in a task. Fix: none.")


def _bug():
    return 1 / 0


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _pid_then_sleep(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


@pytest.fixture(scope="module")
def cluster(head):
    import ray.cloudpickle

    from quantbench.executors.ray import RayExecutor

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with RayExecutor(head["address"]) as ex:
        # Ctrl-C stays the CLI's: connecting to Ray must not replace its handlers
        assert {s: signal.getsignal(s) for s in handlers} == handlers
        yield ex


def test_needs_exclusive_death_errors_and_bugs(cluster):
    assert cluster.n == 2
    plan = [Task("a", _interval, (0.3,)), Task("b", _interval, (0.3,)),
            Task("timing", _interval, (0.3,), needs=("a",), exclusive=True), Task("c", _interval, (0.3,)),
            Task("after", _interval, (0.1,), needs=("timing",))]
    seen = []
    got = cluster.run(plan, on_done=lambda task, result: seen.append(task.key))
    assert sorted(seen) == sorted(t.key for t in plan)
    lo, hi = got["timing"]
    assert got["a"][1] <= lo and got["after"][0] >= hi
    assert all(got[k][1] <= lo or got[k][0] >= hi for k in ("a", "b", "c", "after"))  # timing ran alone

    died = cluster.run([Task("die", _die), Task("next", _interval, (0,), needs=("die",)),
                        Task("fine", _interval, (0,))])
    assert isinstance(died["die"], Died) and "die: its Ray worker died" in died["die"].reason
    assert isinstance(died["next"], Died) and died["next"].reason.startswith("not run: die did not finish")
    assert isinstance(died["fine"], tuple)  # the plan went on

    with pytest.raises(InputError, match="bad input, said in a task"):
        cluster.run([Task("refuse", _refuse)])
    with pytest.raises(TaskBug, match=r"(?s)ZeroDivisionError.*in task bug; Ray worker traceback.*_bug"):
        cluster.run([Task("bug", _bug)])


# ---- a real study -------------------------------------------------------------------------------------------

FIGURES = ("status", "error", "bytes", "accuracy", "accuracy_ci", "drop_ci_pp", "accuracy_delta_pp", "p_vs_float32",
           "top5", "agreement", "sqnr_db", "kl", "fidelity")


def test_study_on_ray_has_the_in_process_figures(head, cluster, tiny_model, digits, calib, tmp_path):
    evaluation = data.Dataset([digits.x_test[:150]], digits.y_test[:150], "digits")
    techniques = ["float16", "int8-only"]
    runs = {name: study.run_study(tiny_model, evaluation, calib, tmp_path / name,
                                  StudyConfig(techniques=techniques, time_budget=1.0, workers=workers), runner=runner)
            for name, workers, runner in [("here", 0, None), ("ray", None, cluster)]}
    assert runs["ray"].settings["executor"] == "RayExecutor" and runs["ray"].settings["workers"] == 2
    here, there = ({v.technique: {f: getattr(v, f) for f in FIGURES} for v in r.variants} for r in runs.values())
    assert list(here) == ["keras", "float16", "int8-only"] and here == there
    assert all(v.status == "ok" and v.latency_ms["median"] > 0 for v in runs["ray"].variants)
    assert runs["ray"].recommendation["technique"] == runs["here"].recommendation["technique"]
    for name in techniques:  # the same files, byte for byte
        assert (tmp_path / "ray" / f"{name}.tflite").read_bytes() == (tmp_path / "here" / f"{name}.tflite").read_bytes()


def _strings(value):
    """Every string inside a task's arguments: in tuples, lists, dicts, dataclasses, paths."""
    if isinstance(value, (str, Path)):
        yield str(value)
    elif isinstance(value, (tuple, list, set, frozenset)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _strings(getattr(value, f.name))


class _Recording:
    """A Ray remote function that records the arguments of every task submitted through it, and how many of the
    executor's tasks were in flight then."""

    def __init__(self, remote, seen: list, executor, flying: list):
        self._remote, self.seen, self._executor, self.flying = remote, seen, executor, flying

    def remote(self, *args):
        self.seen.append(args)
        self.flying.append(len(self._executor._sent))
        return self._remote.remote(*args)


def test_every_task_gets_its_files_by_value_and_the_figures_are_the_in_process_ones(cluster, spiky_model, digits,
                                                                                  tmp_path, monkeypatch):
    """Every kind of task a study sends (describe, reference, conversions one by one and as a family, evaluation
    shards, per-layer errors, calibration sizes, the selective search and its evaluation): no argument holds a
    path of this machine, the files come back into the study's folder here, and the figures are in-process's."""
    import ray.cloudpickle

    model = tmp_path / "spiky.keras"
    spiky_model.save(model)
    np.savez(tmp_path / "d.npz", x=digits.x_test[:150], y=digits.y_test[:150])
    np.savez(tmp_path / "c.npz", x=digits.x_train[:80], y=digits.y_train[:80])
    seen, flying = [], []
    monkeypatch.setattr(study, "SHARD", 32)  # five shards of the float model's outputs and of each evaluation
    monkeypatch.setattr(cluster, "_plain", _Recording(cluster._plain, seen, cluster, flying))
    monkeypatch.setattr(cluster, "_leaky", _Recording(cluster._leaky, seen, cluster, flying))
    techniques = ["float16", "int8-fallback", "int8-only"]
    runs = {name: study.compare(model, tmp_path / "d.npz", tmp_path / "c.npz", tmp_path / name,
                                StudyConfig(techniques=techniques, goal=recommend.Goal(2.0), calib_sizes=[16],
                                            time_budget=0.5, workers=workers), runner=runner)
            for name, workers, runner in [("here", 0, None), ("ray", None, cluster)]}
    sent = {fn.__name__ for fn, *_ in seen}
    assert sent >= {"describe_model", "reference", "convert", "convert_family", "evaluate_shard", "layer_errors",
                    "calibration_size", "selective_search"}, sent
    assert sum(fn.__name__ == "reference" for fn, *_ in seen) == 5
    assert max(flying) == cluster.n - 1  # never more in flight than the cluster runs: their rows wait here
    mine = [str(tmp_path), str(model), str(Path.cwd())]
    for fn, args, parts, _ in seen:
        sendable = (args, [p[:3] for p in parts or []])  # each part's name, kind and content hash; its reference
        assert not [s for s in _strings(sendable) if s.startswith("/")], (fn.__name__, sendable)
        assert not [h for h in mine if h.encode() in ray.cloudpickle.dumps(sendable)], fn.__name__
    here, there = ({v.technique: {f: getattr(v, f) for f in FIGURES} for v in r.variants} for r in runs.values())
    assert "int8-selective" in here and here == there
    assert runs["ray"].studies["selective"]["float_layers"] == runs["here"].studies["selective"]["float_layers"]
    assert runs["ray"].studies["calibration_sizes"] == runs["here"].studies["calibration_sizes"]
    assert runs["ray"].model["path"] == str(model)  # the model's path here, not where a node kept it
    assert runs["ray"].settings["timed_on"] == cluster.timed_on
    for name in ("float16", "int8-only", "int8-selective", "recommended"):
        assert (tmp_path / "ray" / f"{name}.tflite").read_bytes() == (tmp_path / "here" / f"{name}.tflite").read_bytes()


def test_tflite_micro_on_ray_has_the_in_process_facts(cluster, tiny_model, digits, calib, tmp_path, monkeypatch):
    """--target mcu: the TFLite Micro task reads a seeded draw of the evaluation rows, shipped as those rows."""
    from quantbench.measure import mcu

    monkeypatch.setattr(mcu, "MAX_SAMPLES", 40)  # a draw, not every row
    evaluation = data.Dataset([digits.x_test[:120]], digits.y_test[:120], "digits")
    runs = {name: study.run_study(tiny_model, evaluation, calib, tmp_path / name,
                                  StudyConfig(techniques=["int8-only"], goal=recommend.Goal(target="mcu"),
                                              time_budget=0.5, workers=workers), runner=runner)
            for name, workers, runner in [("here", 0, None), ("ray", None, cluster)]}
    here, there = ({v.technique: v.mcu for v in r.variants} for r in runs.values())
    assert here["int8-only"]["runs"] and here["int8-only"]["samples"] == 40 and here == there


def test_a_client_without_the_token_is_told_what_to_set(head, tiny_sweep, tmp_path):
    env = {**head["env"], "RAY_AUTH_MODE": "disabled", "RAY_gcs_server_port_wait_time_s": "2"}  # Ray's retries
    env.pop("RAY_AUTH_TOKEN")
    done = subprocess.run([sys.executable, "-m", "quantbench", "sweep", str(tiny_sweep), "--ray", head["address"],
                           "--out", str(tmp_path / "o")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "refused the connection: its token authentication did not accept this client" in done.stderr
    assert "RAY_AUTH_MODE=token" in done.stderr and "RAY_AUTH_TOKEN" in done.stderr


def test_executor_make_builds_the_ray_executor(cluster, head):
    with executor.make(None, head["address"]) as ex:
        assert type(ex).__name__ == "RayExecutor" and ex.n == 2


# last: it closes this process's connection to the head
def test_interrupt_cancels_tasks_in_flight_and_disconnects(head, cluster, tmp_path):
    import ray

    from quantbench.executors.ray import RayExecutor

    pid_file = tmp_path / "pid"

    def interrupt(task, result):
        raise errors.Interrupted(signal.SIGINT)

    def ctrl_c_once_the_sleeper_runs():
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    # The CLI's handler, and a real SIGINT: it lands while Ray's Cython code waits, which wraps the handler's
    # exception in a SystemError unless the executor unwraps it.
    previous = signal.signal(signal.SIGINT, errors.interrupt)
    try:
        with pytest.raises(errors.Interrupted):
            with RayExecutor(head["address"]) as ex:  # the process's connection is the module's: reused
                threading.Thread(target=ctrl_c_once_the_sleeper_runs, daemon=True).start()
                ex.run([Task("sleeper", _pid_then_sleep, (str(pid_file),))])
    finally:
        signal.signal(signal.SIGINT, previous)
        errors.pending = None  # as the CLI does for its next command
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the interrupted task's worker still runs"
        time.sleep(0.2)
    assert ray.is_initialized()  # an executor that found the connection open leaves it to its owner

    ray.shutdown()
    with pytest.raises(errors.Interrupted):
        with RayExecutor(head["address"]) as ex:
            ex.run([Task("quick", _interval, (0,))], on_done=interrupt)
    assert not ray.is_initialized()  # its own connection: closed
