"""Every script in bench/ runs at its --smoke size (issue 23), so an API change that breaks one fails here.

Each script runs as `python bench/X.py --smoke ...` would, in a child forked from one server process that has
imported TensorFlow, Keras and quantbench once (tests/bench_smoke_server.py): a fresh interpreter per script would
pay TensorFlow's import again each time. All are queued when the module starts and run two at a time. Scripts
that need a study folder get the session's default demo (`demo_cli`), read only. Each test checks the exit code
and reads the figures the script printed; a script whose extra is not installed says "skipped: why" and its test
is skipped with that reason.
"""
from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py"))
TIMEOUT = 180  # seconds per script: a smoke run takes a few; this only ends a hung one


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", text)]


def _lines(out: str, pattern: str) -> list[re.Match]:
    return [m for m in (re.search(pattern, ln) for ln in out.splitlines()) if m]


def _json_rows(out: str) -> list[dict]:
    return [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]


# ---- what each script is given, and what its output must show --------------------------------------------------

def check_bench_vs_study(out, demo):
    (m,) = _lines(out, r"latency intervals overlap for (\d+) of (\d+) files, throughput for (\d+) of (\d+)")
    ok = [v for v in json.loads((demo / "results.json").read_text())["variants"]
          if v["status"] == "ok" and (v.get("path") or "").endswith(".tflite")]
    assert int(m[2]) == len(ok) > 5 and int(m[1]) <= int(m[2])


def check_convergence(out, demo):
    assert _lines(out, r"^batch 1: 60 rounds of 4 files") and _lines(out, r"^batch 32: 30 rounds of 4 files")
    widths = [float(m[1]) for m in _lines(out, r"after +\d+ rounds: widest ±([\d.]+) %")]
    assert len(widths) == 3 and all(w >= 0 for w in widths)


def check_demo(out, demo):
    (run,) = _lines(out, r"^run 1: ([\d.]+) s wall, ([\d.]+) GiB peak RSS")
    (m,) = _lines(out, r"wall median ([\d.]+) s .* peak RSS max ([\d.]+) GiB over 1 runs")
    assert float(m[1]) == float(run[1]) > 0 and float(m[2]) > 0.1  # TensorFlow alone takes more


def check_faster_conversions(out, demo):
    same = _lines(out, r"^(float32|int8 family|LiteRT Quantizer.*) .* identical bytes: (True|False)$")
    assert [m[2] for m in same] == ["True"] * 3
    layers = _lines(out, r"per-layer error on +(\d+) samples: +[\d.]+ s +ten worst shared with 16: (\d+) of (\d+)")
    assert [int(m[1]) for m in layers] == [16, 8] and layers[0][2] == layers[0][3]


def check_faults(out, demo):
    (m,) = _lines(out, r"^faults whose line is in the code once: (\d+) of (\d+)$")
    assert m[1] == m[2] and _lines(out, r"^drop_ci_pp reversed: CAUGHT — 1 failed")


def check_fuzz(out, demo):
    rows = _lines(out, r"^\| (\w+) \| ([\w -]+) \| (\d+) \| (\d+) \| (\d+) \|")
    assert {m[1] for m in rows} == {"tflite", "npy", "npz", "keras", "h5"}
    assert all(int(m[3]) == 2 and int(m[4]) + int(m[5]) == 2 for m in rows)  # every run ok or refused
    assert _lines(out, r"^\d+ runs in [\d.]+ s \(fork\)")


def check_fuzz_results(out, demo):
    (m,) = _lines(out, r"^(\d+) cases \(one report each\); (\d+) not exit 0")
    assert int(m[1]) >= 5 and int(m[2]) == 0


def check_keras_neighbour(out, demo):
    without = _lines(out, r"keras in the rounds: False (.*)")
    with_keras = _lines(out, r"keras in the rounds: True (.*)")
    assert len(without) == len(with_keras) == 1
    assert re.search(r"float32 [\d.]+ us", without[0][1]) and re.search(r"keras [\d.]+ us", with_keras[0][1])


def check_lq(out, demo):
    rows = _lines(out, r"^(\S+) +(\d+) +([\d.]+) +([\d.]+) +(-?[\d.]+) +([\d.]+) ")
    assert [r[1] for r in rows][0] == "float32" and len(rows) == 3
    assert all(0 <= float(r[4]) <= 1 and int(r[2]) > 0 for r in rows)


def check_machine_swings(out, demo):
    (m,) = _lines(out, r"^(\d+) windows of 100 calls")
    assert int(m[1]) > 0 and len(_numbers(_lines(out, r"percentiles: (.*)")[0][1])) == 5


def check_mcu(out, demo):
    rows = _lines(out, r"^\| (float32|int8-only) \| (yes|\*\*wrong\*\*) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \|")
    assert [m[1] for m in rows] == ["float32", "int8-only"] and all(int(m[3].replace(",", "")) > 0 for m in rows)
    assert _lines(out, r"^TFLite Micro stage alone, 2 variants x 40 samples: median [\d.]+ s")


def check_memory(out, demo):
    rows = _json_rows(out)
    assert [r["case"] for r in rows] == ["smoke base", "smoke branch"]
    assert all(r["exit"] == 0 and r["wall_s"] > 0 and r["peak_tree_gib"] > 0 for r in rows)
    assert all(set(r["accuracy"]) == {"float32"} and 0 <= r["accuracy"]["float32"] <= 1 for r in rows)
    assert rows[0]["accuracy"] == rows[1]["accuracy"]  # the same tree on both sides


def check_mobilenet(out, demo):
    assert len(_lines(out, r"^  (float32|int8-only) +converted in +[\d.]+ s")) == 2
    assert len(_lines(out, r"@[12] +median +[\d.]+ ms \(95 % CI")) == 4
    assert len(_lines(out, r"2 threads are [\d.]+ \(")) == 2


def check_qat(out, demo):
    (m,) = _lines(out, r"^\| 0 \| 100× \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([-+][\d.]+) \| ([-+][\d.]+) \| "
                       r"([\d.]+) \|$")
    assert all(0 <= float(m[k]) <= 100 for k in (1, 2, 3))
    assert abs(float(m[1]) + float(m[4]) - float(m[2])) < 0.016  # int8-only's figure is keras's plus its drop


def check_ray_overhead(out, demo):
    assert _lines(out, r"^run \d ray: [\d.]+ s$") and _lines(out, r"^run \d in-process: [\d.]+ s$")
    assert _lines(out, r"^Ray overhead: [-+][\d.]+ s per compare")
    assert _lines(out, r"identical across all 2 runs: True$") and _lines(out, r"kill afterwards: \d+$")


def check_runtime_ab(out, demo):
    rows = _lines(out, r"^(float32|int8-only) (batch-1|batched) predict.*: new/old ([\d.]+) \(([\d.]+)–([\d.]+)\)")
    assert len(rows) == 4 and all(float(r[4]) <= float(r[3]) <= float(r[5]) for r in rows)


def check_runtime_overhead(out, demo):
    ratios = _lines(out, r"predict / bare += ([\d.]+) \(95 % CI ([\d.]+)–([\d.]+)\)")
    assert len(ratios) == 2 and all(float(r[2]) <= float(r[1]) <= float(r[3]) for r in ratios)
    assert len(_lines(out, r"batched [\d.]+ ms, per-image loop [\d.]+ ms; speed-up [\d.]+")) == 2


def check_scale(out, demo):
    (row,) = _json_rows(out)
    assert row["exit"] == 0 and row["wall_s"] > 0 and row["peak_tree_gib"] > 0
    assert row["rows"]["float32"][0] == "ok" and row["eval_samples"] > 0


def check_selective_memory(out, demo):
    rows = _lines(out, r"^RESULT tall (search|reconvert): 2 candidates in \d+ s; RSS before (\d+) MB, after (\d+) MB, "
                       r"peak (\d+) MB")
    assert [m[1] for m in rows] == ["search", "reconvert"] and all(int(m[4]) >= int(m[2]) > 0 for m in rows)


def check_shared_calibration(out, demo):
    paths = _lines(out, r"^  round 0 ([AB]): +([\d.]+) s, peak RSS +(\d+) MiB")
    assert [m[1] for m in paths] == ["A", "B"]
    assert len(_lines(out, r"^  (int8-fallback|int8-only|uint8-only|int16x8): (byte-identical|\d+ bytes|refused)")) >= 4


def check_speed_states(out, demo):
    assert _lines(out, r"^\d+ rounds of 4 files over \d+ s")
    rows = _lines(out, r"every file agrees at +([\d.]+)% of (\d+) starts")
    assert len(rows) == 2 and all(int(r[2]) > 0 for r in rows)


def check_sqnr_floor(out, demo):
    rows = _lines(out, r"^binary +(float32|dynamic) +high +accuracy +([\d.]+|inf) +(yes|NO)$")
    assert sorted(m[1] for m in rows) == ["dynamic", "float32"]
    (m,) = _lines(out, r"^(\d+) labelled outputs of variants; past their task budget: (\d+)$")
    assert int(m[1]) == len(rows)


def check_task_metrics_cost(out, demo):
    assert len(_lines(out, r"^round 0 (base|this) +compare +[\d.]+ s, peak +[\d.]+ GiB")) == 2
    assert len(_lines(out, r"evaluate.measure on 14 variants x 20 samples x 1,000 classes: [\d.]+ ms$")) == 2
    assert _lines(out, r"^accuracy figures identical in both trees: True$")


def check_throughput_process(out, demo):
    rows = _lines(out, r"^(\S+\.tflite) +([\d ]+) \| +([\d. ]+)$")
    assert len(rows) > 5 and all(len(_numbers(r[2])) == 4 and len(_numbers(r[3])) == 4 for r in rows)


def check_ray_isolated(out, demo):
    (m,) = _lines(out, r"^in-process \(--workers 0\): ([\d.]+) s, peak ([\d.]+) GiB")
    assert float(m[1]) > 0 and float(m[2]) > 0.1
    assert _lines(out, r"^cluster: not started at --smoke size")


def check_refusal_speed(out, demo):
    rows = _lines(out, r"\s([\d.]+) s\s+([\d.]+)–([\d.]+)\s+quantbench: error: ")  # one line, exit 2, each case
    assert len(rows) >= 15 and all(0 < float(m[1]) < 60 for m in rows)


def check_report_width(out, demo):
    rows = _lines(out, r"table +(\d+) px in a +(\d+) px box: (fits|scrolls)")
    assert rows and all(int(m[1]) > 0 and int(m[2]) > 0 for m in rows)


def check_wild_files(out, demo):
    assert len(_lines(out, r"^\w+ \S+\.tflite: [\d,]+ bytes")) == 1
    rows = _lines(out, r"^  (\S+) +[\d,]+ bytes  x[\d.]+  SQNR dB per output: ([-\d., inf]+)  promise kept: True$")
    assert len(rows) >= 3


def check_xnnpack_refused(out, demo):
    assert _lines(out, r"int8-only converted in [\d.]+ s")
    assert _lines(out, r"input-zero-point-200.tflite: timed on LiteRT's built-in kernels, because XNNPACK refused it")
    assert _lines(out, r"^wall [\d.]+ s, peak RSS \d+ KiB \(exit 0\)$")


def check_worker_exit(out, demo):
    rows = _json_rows(out)
    assert [r["tree"] for r in rows] == ["base", "branch"]
    assert all(0 <= r["close_s"] < 30 and r["workers"] == 2 for r in rows)


# script -> (arguments, check). "{demo}": the session's demo folder (read only); "{tmp}": the test's own folder;
# "{cache}": one folder for the module, where bench/scale.py's smoke_files are made once; "{root}": this tree.
CASES = {
    "bench_vs_study": (["--smoke", "{demo}/results.json"], check_bench_vs_study),
    "convergence": (["{demo}", "--smoke"], check_convergence),
    "demo": (["--smoke"], check_demo),
    "faster_conversions": (["--smoke"], check_faster_conversions),
    "faults": (["--smoke"], check_faults),
    "fuzz": (["--smoke", "--keep", "{tmp}/failures"], check_fuzz),
    "fuzz_results": (["{demo}/results.json", "--smoke"], check_fuzz_results),
    "keras_neighbour": (["{demo}", "--smoke"], check_keras_neighbour),
    "lq": (["{demo}", "--smoke"], check_lq),
    "machine_swings": (["{demo}/float32.tflite", "--smoke"], check_machine_swings),
    "mcu": (["--smoke", "--out", "{tmp}/demo"], check_mcu),
    "memory": (["--smoke", "--base", "{root}", "--cache", "{cache}"], check_memory),
    "mobilenet": (["--smoke"], check_mobilenet),
    "qat": (["--smoke"], check_qat),
    "ray_isolated": (["--smoke"], check_ray_isolated),
    "ray_overhead": (["--smoke", "--cache", "{cache}"], check_ray_overhead),
    "refusal_speed": (["--smoke"], check_refusal_speed),
    "report_width": (["{demo}/results.json", "--smoke"], check_report_width),
    "runtime_ab": (["--smoke"], check_runtime_ab),
    "runtime_overhead": (["--smoke"], check_runtime_overhead),
    "scale": (["--smoke", "--cache", "{cache}"], check_scale),
    "selective_memory": (["--smoke"], check_selective_memory),
    "shared_calibration": (["--smoke"], check_shared_calibration),
    "speed_states": (["{demo}", "--smoke"], check_speed_states),
    "sqnr_floor": (["--smoke"], check_sqnr_floor),
    "task_metrics_cost": (["--smoke", "--base", "{root}", "--cache", "{cache}"], check_task_metrics_cost),
    "throughput_process": (["{demo}", "--smoke"], check_throughput_process),
    "wild_files": (["--smoke"], check_wild_files),
    "worker_exit": (["--smoke", "--base", "{root}"], check_worker_exit),
    "xnnpack_refused": (["--smoke", "--out", "{tmp}/out"], check_xnnpack_refused),
}


class Server:
    """tests/bench_smoke_server.py, started once: `submit` queues a script there, `result` waits for its end."""

    def __init__(self, demo: Path, cache: Path):
        self.demo, self.cache, self.log = demo, cache, cache / "server.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("bench_smoke_server.py"))],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                                         cwd=ROOT, text=True)
        assert json.loads(self._reply(300)) == {"ready": True}
        self.folders: dict[str, Path] = {}
        self.replies: dict[str, dict] = {}
        self.cpu: dict[str, float] = {"(server start)": round(sum(psutil.Process(self.proc.pid).cpu_times()[:2]), 2)}

    def _reply(self, timeout: float) -> str:
        line = self.proc.stdout.readline() if select.select([self.proc.stdout], [], [], timeout)[0] else None
        if not line:
            raise RuntimeError(f"the bench smoke server {'ended' if line == '' else 'did not answer'}:\n"
                               f"{self.log.read_text(errors='replace')[-3000:]}")
        return line

    def submit(self, name: str, args: list[str], folder: Path) -> None:
        """Queue bench/<name>.py with `args` (placeholders filled); its output and temporary files go to `folder`."""
        (folder / "tmp").mkdir(parents=True)
        args = [a.format(demo=self.demo, tmp=folder / "tmp", cache=self.cache, root=ROOT) for a in args]
        self.proc.stdin.write(json.dumps({"name": name, "script": str(BENCH / f"{name}.py"), "args": args,
                                          "stdout": str(folder / "stdout.txt"), "stderr": str(folder / "stderr.txt"),
                                          "tmp": str(folder / "tmp"), "timeout": TIMEOUT}) + "\n")
        self.proc.stdin.flush()
        self.folders[name] = folder

    def result(self, name: str) -> tuple[dict, str, str]:
        """The reply for `name` once its script has ended, with its stdout and stderr."""
        while name not in self.replies:  # every script ends within TIMEOUT + 30 s of its start
            reply = json.loads(self._reply(TIMEOUT + 60))
            self.replies[reply["name"]] = reply
            self.cpu[reply["name"]] = reply["cpu_seconds"]
        folder = self.folders[name]
        return (self.replies[name], (folder / "stdout.txt").read_text(errors="replace"),
                (folder / "stderr.txt").read_text(errors="replace"))

    def stop(self) -> None:
        """EOF once every script has ended; before that (a failure with -x, an interrupt), SIGTERM, which ends the
        scripts still running the way a timeout does."""
        if set(self.replies) != set(self.folders):
            self.proc.terminate()
        self.proc.stdin.close()
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(demo_cli, tmp_path_factory, request):
    """The server, every script already queued (two run at a time)."""
    started = time.perf_counter()
    s = Server(demo_cli[0], tmp_path_factory.mktemp("bench-smoke-cache"))
    chosen = {item.callspec.params["name"] for item in request.session.items  # the tests selected (-k ...)
              if item.module is request.module and hasattr(item, "callspec")}
    for name in sorted(chosen):
        s.submit(name, CASES[name][0], tmp_path_factory.mktemp(f"smoke-{name}"))
    yield s
    s.stop()
    wall = time.perf_counter() - started
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():  # always shown
        print(f"\nbench --smoke: {wall:.1f} s wall (two at a time), {sum(s.cpu.values()):.1f} s CPU; wall by script "
              f"{json.dumps({n: r['seconds'] for n, r in s.replies.items()})}; CPU by script {json.dumps(s.cpu)}")


def test_every_bench_script_has_a_smoke_case():
    assert sorted(CASES) == SCRIPTS


@pytest.mark.parametrize("name", sorted(CASES))
def test_bench_script_runs_at_its_smoke_size(name, server):
    reply, out, err = server.result(name)
    assert not reply["timed_out"], f"bench/{name}.py --smoke ran past {TIMEOUT} s:\n{out[-2000:]}\n{err[-2000:]}"
    assert reply["exit"] == 0, f"bench/{name}.py --smoke exited {reply['exit']}:\n{out[-2000:]}\n{err[-3000:]}"
    skipped = _lines(out, r"^skipped: (.*)")  # an extra that is not installed, as the script says
    if skipped:
        pytest.skip(f"bench/{name}.py --smoke: {skipped[0][1]}")
    CASES[name][1](out, server.demo)
