"""MLflow logging against real stores: a SQLite file, and a real `mlflow server` over HTTP on 127.0.0.1."""
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("mlflow")

import quantbench  # noqa: E402
from quantbench.core.errors import InputError, TrackingError  # noqa: E402
from quantbench.record.results import Results  # noqa: E402
from quantbench.report import tracking  # noqa: E402
from quantbench.study.config import StudyConfig


@pytest.fixture(scope="session")
def small_study(tmp_path_factory):
    """A finished demo with three variants (float32, dynamic, int8-only) and the keras row: folder, results."""
    folder = tmp_path_factory.mktemp("study") / "demo"
    quantbench.demo(folder, StudyConfig(techniques="float32,dynamic,int8-only", time_budget=1.0), epochs=1)
    return folder, Results.load(folder / "results.json")


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory):
    """One SQLite store for the tests that need one (creating its tables takes seconds): folder, URI."""
    folder = tmp_path_factory.mktemp("mlflow")
    return folder, f"sqlite:///{folder}/mlflow.db"


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def check_logged(client, run_id, folder):
    """Everything logged under the parent run matches the study's results.json and files."""
    raw = json.loads((folder / "results.json").read_text())
    results = Results.load(folder / "results.json")
    parent = client.get_run(run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == folder.name
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    p = parent.data.params
    assert p["model"] == raw["model"]["name"] and p["data"] == raw["data"]["name"]
    assert p["calibration_samples"] == str(raw["data"]["calibration"]["samples"])
    assert p["seed"] == str(raw["settings"]["seed"]) and p["target"] == raw["settings"]["target"]
    assert p["max_accuracy_drop_pp"] == str(raw["settings"]["max_drop_pp"])
    tags = parent.data.tags
    assert tags["quantbench.version"] == raw["quantbench_version"] and tags["machine.cpu"] == raw["machine"]["cpu"]
    recommended = raw["recommendation"]["technique"]
    assert tags[tracking.RECOMMENDED_TAG] == recommended
    files = {a.path: a.file_size for a in client.list_artifacts(run_id)}
    assert files == {name: (folder / name).stat().st_size for name in tracking.STUDY_ARTIFACTS}
    with open(client.download_artifacts(run_id, "results.json"), "rb") as f:
        assert f.read() == (folder / "results.json").read_bytes()

    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    by_name = {c.data.params["technique"]: c for c in children}
    assert sorted(by_name) == sorted(v["technique"] for v in raw["variants"])
    assert [n for n, c in by_name.items() if c.data.tags.get(tracking.RECOMMENDED_TAG) == "true"] == [recommended]
    for row in raw["variants"]:
        child = by_name[row["technique"]]
        assert child.info.status == "FINISHED" and child.data.params["engine"] == row["engine"]
        m = child.data.metrics
        assert m["accuracy"] == pytest.approx(row["accuracy"]) and m["bytes"] == row["bytes"]
        assert [m["accuracy_ci_lo"], m["accuracy_ci_hi"]] == pytest.approx(row["accuracy_ci"])
        assert m["agreement"] == pytest.approx(row["agreement"])
        assert m["latency_median_ms"] == pytest.approx(row["latency_ms"]["median"])
        assert [m["latency_ci_ms_lo"], m["latency_ci_ms_hi"]] == pytest.approx(row["latency_ms"]["ci95"])
        assert m["latency_p99_ms"] == pytest.approx(row["latency_ms"]["p99"])
        assert m["latency_rounds"] == row["latency_ms"]["n"]
        assert m["throughput_samples_per_s"] == pytest.approx(row["throughput"]["samples_per_s"])
        if row["sqnr_db"] is not None and math.isfinite(row["sqnr_db"]):
            assert m["sqnr_db"] == pytest.approx(row["sqnr_db"])
        for o in row["outputs"]:  # every output by its task: "<output>.<metric>" and its interval
            assert m[f"{o['output']}.{o['metric']}"] == pytest.approx(o["value"])
            assert [m[f"{o['output']}.ci_lo"], m[f"{o['output']}.ci_hi"]] == pytest.approx(o["ci"])
        if row["technique"] != "keras":
            assert m["accuracy_delta_pp"] == pytest.approx(row["accuracy_delta_pp"])
            assert m["p_vs_float32"] == pytest.approx(row["p_vs_float32"])
            assert m["size_ratio"] == pytest.approx(row["bytes"] / results.variant("float32").bytes)
            assert [a.path for a in client.list_artifacts(child.info.run_id)] == [row["path"]]
    assert by_name["int8-only"].data.params["io_dtype"] == "int8"
    assert by_name["int8-only"].data.params["ops"] == "TFLITE_BUILTINS_INT8"
    assert by_name["dynamic"].data.params["calibrate"] == "False"


def test_log_study_to_a_sqlite_store(small_study, sqlite_store, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(sqlite_store[0])  # MLflow puts a SQLite store's artifacts in ./mlruns
    folder, results = small_study
    before = _snapshot(folder)
    uri = sqlite_store[1]
    assert tracking.check(uri) == uri
    run_id = tracking.log_study(results, folder, uri)
    check_logged(MlflowClient(tracking_uri=uri), run_id, folder)
    assert _snapshot(folder) == before
    assert os.environ.get("MLFLOW_TRACKING_URI") is None  # the library set nothing global


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> list[int]:
    import psutil

    alive = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return alive


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 with its own stores in tmp_path; stopped by its process group."""
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path}/backend.db",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no job-runner processes
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(uri + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start within 120 s"
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # start_new_session: its group id is its PID
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for sig in (None, signal.SIGKILL):  # the workers get 30 s to leave after their parent, then are killed
            if sig and _group_alive(proc.pid):
                os.killpg(proc.pid, sig)
            deadline = time.monotonic() + 30
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
        log.close()
        assert not _group_alive(proc.pid), "mlflow server workers left running"


def test_log_study_to_a_real_server_over_http(small_study, mlflow_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder: artifacts go through the server
    folder, results = small_study
    assert tracking.check(mlflow_server) == mlflow_server
    run_id = tracking.log_study(results, folder, mlflow_server)
    client = MlflowClient(tracking_uri=mlflow_server)
    assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    check_logged(client, run_id, folder)
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


def test_an_unreachable_server_is_refused_before_any_work(tmp_path, capsys):
    from quantbench.cli import main

    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    start = time.monotonic()
    code = main(["demo", "--out", str(tmp_path / "x"), "--epochs", "1", "--mlflow", uri])
    assert code == 2 and time.monotonic() - start < 30  # not MLflow's minutes of retries
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"quantbench: error: The MLflow tracking server at {uri} cannot be reached (")
    assert "Fix: start it or correct the URI" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("uri,message", [
    ("sqlite:///{tmp}/no/such/folder/m.db", r"MLflow tracking URI sqlite:///.*/no/such/folder/m\.db: the folder "
                                            r".* does not exist or is not writable\. Expected .* Fix: "),
    ("sqlite:///{tmp}/notes.txt", r"MLflow tracking URI .*notes\.txt: .*notes\.txt exists and is not a SQLite "
                                  r"database\. Expected .* Fix: choose another file name\."),
    ("sqlite://", r"MLflow tracking URI 'sqlite://' names no database file\. Expected sqlite:///FILE\.db"),
])
def test_a_bad_sqlite_uri_is_refused(uri, message, tmp_path):
    import re

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError) as err:
        tracking.check(uri.format(tmp=tmp_path))
    assert re.match(message, str(err.value)), str(err.value)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_without_mlflow_the_cli_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['mlflow'] = None\n"  # the import fails as if MLflow were not installed
            "from quantbench.cli import main\n"
            f"sys.exit(main(['demo', '--out', {str(tmp_path / 'x')!r}, '--mlflow']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("quantbench: error: --mlflow needs MLflow, which is not installed.")
    assert "Fix: pip install 'quantbench[mlflow]'" in lines[0]
    assert not (tmp_path / "x").exists()


def test_a_failure_while_logging_marks_the_run_failed_and_keeps_the_study(small_study, sqlite_store, tmp_path):
    from mlflow.tracking import MlflowClient

    folder, results = small_study
    before = _snapshot(folder)
    uri = sqlite_store[1]
    client = MlflowClient(tracking_uri=uri)
    (tmp_path / "blocker").write_text("a file where the artifact folder should be")
    client.create_experiment("broken", artifact_location=(tmp_path / "blocker" / "artifacts").as_uri())
    with pytest.raises(TrackingError) as err:
        tracking.log_study(results, folder, uri, experiment="broken")
    message = str(err.value)
    assert message.startswith(f"Logging the study {folder} to MLflow at {uri} failed: ")
    assert f"is marked FAILED; the study is complete in {folder}. Fix: " in message and "\n" not in message
    runs = client.search_runs([client.get_experiment_by_name("broken").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert _snapshot(folder) == before


def test_cli_demo_logs_to_mlflow_tracking_uri(sqlite_store, tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from quantbench.cli import main

    monkeypatch.chdir(sqlite_store[0])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store[1])
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-the-cli")
    assert main(["demo", "--out", str(tmp_path / "cli-study"), "--epochs", "1", "--techniques", "float32",
                 "--time-budget", "0.5", "--mlflow"]) == 0
    assert "Logged to MLflow at " + sqlite_store[1] in capsys.readouterr().err
    client = MlflowClient(tracking_uri=sqlite_store[1])
    runs = client.search_runs([client.get_experiment_by_name("from-the-cli").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["cli-study", "float32", "keras"]
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.parametrize("argv,expected", [
    (["demo", "--mlflow"], ["demo", "--mlflow="]),
    (["demo", "--mlflow", "--out", "x"], ["demo", "--mlflow=", "--out", "x"]),
    (["demo", "--mlflow", "sqlite:///a.db", "--quiet"], ["demo", "--mlflow=sqlite:///a.db", "--quiet"]),
    (["compare", "--mlflow", "model.keras", "--data", "d.npz"], ["compare", "--mlflow=", "model.keras", "--data",
                                                                 "d.npz"]),
    (["compare", "m.keras", "--mlflow", "http://127.0.0.1:5000"], ["compare", "m.keras", "--mlflow=http://127.0.0.1:5000"]),
    (["demo", "--mlflow=file:///tmp/x"], ["demo", "--mlflow=file:///tmp/x"]),
])
def test_mlflow_takes_an_optional_uri(argv, expected):
    from quantbench.cli import _mlflow_argv

    assert _mlflow_argv(argv) == expected


def test_uri_resolution(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert tracking.resolve_uri() == "http://127.0.0.1:9" and tracking.resolve_uri("sqlite:///b.db") == "sqlite:///b.db"


def test_a_variant_timed_without_xnnpack_is_tagged():
    from quantbench.record.results import Results, Variant
    from quantbench.report import tracking

    results = Results("0.1.0", {}, {}, {}, {}, variants=[])
    plain = Variant("int8-only", "converter", "ok")
    refused = Variant("int8-only", "converter", "ok", xnnpack_refused="unsupported zero-point value (200)")
    assert "quantbench.xnnpack_refused" not in tracking.variant_tags(plain, results)
    assert tracking.variant_tags(refused, results)["quantbench.xnnpack_refused"] == "unsupported zero-point value (200)"
