"""--ray on a cluster whose nodes cannot see the driver's files, nor each other's: a head and a worker node on
127.0.0.1 of a network namespace of their own, each in its own mount namespace, and the quantbench CLI as the
driver in a third, with the study's files on a tmpfs only it sees (tests/isolated_cluster.py). A study and a
sweep give the figures of an in-process run; a driver that cannot attach, nodes without quantbench or in
another version, and a node without an extra a study needs, are each one line naming what and where.

Needs root (network and mount namespaces); elsewhere every test here is skipped, saying why.
"""
from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import isolated_cluster
from quantbench import __version__
from quantbench.study import pipeline as study, sweep
from quantbench.study.config import StudyConfig

ROOT = Path(__file__).resolve().parent.parent
QB = f"{shlex.quote(sys.executable)} -m quantbench"
FIGURES = ("status", "error", "bytes", "accuracy", "accuracy_ci", "drop_ci_pp", "accuracy_delta_pp", "p_vs_float32",
           "top5", "agreement", "sqnr_db", "kl", "fidelity")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = isolated_cluster.unavailable()
    if why:
        pytest.skip(why)
    with isolated_cluster.Cluster(tmp_path_factory.mktemp("cluster")) as c:
        c.start_head(cpus=1)
        c.add_node(cpus=1)
        yield c
    assert not c.nodes


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_keras_path, digits):
    """The user's files, on the driver's side: the model and a data set, a calibration set, a sweep file."""
    folder = tmp_path_factory.mktemp("user")
    shutil.copy(tiny_keras_path, folder / "tiny.keras")
    np.savez(folder / "d.npz", x=digits.x_test[:120], y=digits.y_test[:120])
    np.savez(folder / "c.npz", x=digits.x_train[:64], y=digits.y_train[:64])
    np.savez(folder / "e.npz", x=digits.x_test[120:200], y=digits.y_test[120:200])
    (folder / "s.toml").write_text('techniques = ["float16"]\ntime_budget = 0.5\n'
                                   '[models]\ntiny = "tiny.keras"\n[data]\nd = "d.npz"\ne = "e.npz"\n')
    return folder


def _figures(results: dict) -> dict:
    return {v["technique"]: {f: v.get(f) for f in FIGURES} for v in results["variants"]}


def _copy_in(files: Path) -> str:
    return f"cp {shlex.quote(str(files))}/* \"$PRIVATE\"/"


def test_a_study_on_nodes_that_cannot_see_its_files_has_the_in_process_figures(cluster, files, tmp_path):
    here = study.compare(files / "tiny.keras", files / "d.npz", files / "c.npz", tmp_path / "here",
                         StudyConfig(techniques=["float16", "int8-only"], time_budget=0.5, workers=0))
    private, export = tmp_path / "driver", tmp_path / "export"
    done = cluster.driver(private, f"{_copy_in(files)} && {QB} compare tiny.keras --data d.npz --calib c.npz "
                                   f"--techniques float16,int8-only --out study --time-budget 0.5 --quiet "
                                   f"--ray {isolated_cluster.ADDRESS} && cp -r study {shlex.quote(str(export))}")
    assert done.returncode == 0, done.stderr[-3000:] + cluster.client_log()
    there = json.loads((export / "results.json").read_text())
    assert _figures(there) == _figures(json.loads((tmp_path / "here" / "results.json").read_text()))
    assert there["settings"]["executor"] == "RayExecutor" and there["settings"]["workers"] == 2  # both nodes
    assert there["settings"]["timed_on"].startswith("this machine (the driver)")
    assert there["recommendation"]["technique"] == here.recommendation["technique"]
    for name in ("float16", "int8-only"):  # the variants came back into the driver's folder, byte for byte
        assert (export / f"{name}.tflite").read_bytes() == (tmp_path / "here" / f"{name}.tflite").read_bytes()
    # neither node saw the driver's folder nor the user's; a node kept the files it was sent in its own cache
    assert not any(cluster.sees(pid, files) or cluster.sees(pid, private / "study") for pid in cluster.nodes)
    caches = [Path(f"/proc/{pid}/root/tmp/quantbench-cache-{0}/blobs") for pid in cluster.nodes]
    assert any(c.is_dir() and any(c.iterdir()) for c in caches)


def test_a_sweep_on_the_isolated_cluster_has_the_in_process_figures(cluster, files, tmp_path):
    sweep.run_sweep(files / "s.toml", tmp_path / "here", StudyConfig(workers=0))
    private, export = tmp_path / "driver", tmp_path / "export"
    done = cluster.driver(private, f"{_copy_in(files)} && {QB} sweep s.toml --out sw --quiet "
                                   f"--ray {isolated_cluster.ADDRESS} && cp -r sw {shlex.quote(str(export))}")
    assert done.returncode == 0, done.stderr[-3000:] + cluster.client_log()
    names = sorted(p.parent.name for p in (tmp_path / "here").glob("*/results.json"))
    assert len(names) == 2
    for name in names:
        there = json.loads((export / name / "results.json").read_text())
        assert there["settings"]["executor"] == "RayExecutor"
        assert _figures(there) == _figures(json.loads((tmp_path / "here" / name / "results.json").read_text()))


def test_a_driver_given_host_and_port_is_told_to_connect_through_ray_client(cluster, files, tmp_path):
    done = cluster.driver(tmp_path / "driver", f"{_copy_in(files)} && {QB} compare tiny.keras --data d.npz "
                                               f"--out study --ray 127.0.0.1:{isolated_cluster.GCS_PORT}",
                          timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1, err + cluster.client_log()
    assert err == (f"quantbench: error: Cannot attach to the Ray cluster at 127.0.0.1:{isolated_cluster.GCS_PORT}: "
                   "its node on this machine keeps its files where this process cannot see them (another container "
                   "or mount namespace), and a driver given host:port needs one. Expected a Ray Client address for "
                   "a cluster elsewhere: ray://HOST:PORT, the head's client port (10001 unless `ray start --head "
                   "--ray-client-server-port` says otherwise). Fix: pass --ray ray://127.0.0.1:10001.")


def test_nodes_without_quantbench_or_with_another_version_are_named_before_any_work(cluster, files, tmp_path):
    other = tmp_path / "version.py"  # this quantbench, saying another version
    said = (ROOT / "quantbench" / "core" / "version.py").read_text()
    assert f'__version__ = "{__version__}"' in said
    other.write_text(said.replace(f'__version__ = "{__version__}"', '__version__ = "0.0.1"'))
    bare = {**cluster.env, "PYTHONPATH": ""}  # its Python finds quantbench only where the venv's install points
    lacking = cluster.add_node(hide=(Path(study.__file__).resolve().parents[1], *_installed()), env=bare)
    older = cluster.add_node(hide=((ROOT / "quantbench" / "core" / "version.py", other),))
    try:
        done = cluster.driver(tmp_path / "driver", f"{_copy_in(files)} && {QB} compare tiny.keras --data d.npz "
                                                   f"--out study --ray {isolated_cluster.ADDRESS}", timeout=300)
    finally:
        cluster.stop(lacking)
        cluster.stop(older)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1, err + cluster.client_log()
    assert err.startswith(f"quantbench: error: The Ray cluster at {isolated_cluster.ADDRESS} cannot run this study: ")
    assert err.count("127.0.0.1 (node ") == 2 and "cannot run quantbench (" in err and "runs quantbench 0.0.1" in err
    assert err.endswith(f"Expected quantbench {__version__} (this one) on every node, starting Python workers. Fix: "
                        f"pip install 'quantbench[ray]=={__version__}' on those nodes; check a node that does not "
                        "start workers with `ray status` and its logs.")
    assert "No model" not in err


def test_a_node_without_an_extra_the_study_needs_is_named_before_any_work(cluster, files, tmp_path):
    tflite_micro = pytest.importorskip("tflite_micro", reason="the extra quantbench[mcu] is not installed here")

    node = cluster.add_node(hide=(Path(tflite_micro.__file__).parent,))
    try:
        done = cluster.driver(tmp_path / "driver", f"{_copy_in(files)} && {QB} compare tiny.keras --data d.npz "
                                                   f"--target mcu --out study --ray {isolated_cluster.ADDRESS}",
                              timeout=300)
    finally:
        cluster.stop(node)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1, err + cluster.client_log()
    assert err.startswith("quantbench: error: --target mcu runs the TFLite Micro interpreter (the package "
                          "tflite-micro) on the nodes, and 127.0.0.1 (node ")
    assert err.endswith(f" of the Ray cluster at {isolated_cluster.ADDRESS} lacks it. Expected quantbench[mcu] on "
                        f"every node. Fix: pip install 'quantbench[mcu]=={__version__}' on that node.")
    assert err.count("(node ") == 1  # the other two nodes have it


def _installed() -> list[Path]:
    """Where the venv's own install of quantbench points (an editable install's source folder), if anywhere."""
    import importlib.metadata

    try:
        files = importlib.metadata.files("quantbench") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    found = []
    for f in files:
        if f.name.endswith("_finder.py"):
            text = Path(f.locate()).read_text()
            found += [Path(p) for p in _mapping(text) if Path(p).is_dir()]
    return found


def _mapping(text: str) -> list[str]:
    import ast

    for line in text.splitlines():
        if line.startswith("MAPPING"):
            return list(ast.literal_eval(line.split("=", 1)[1].strip()).values())
    return []
