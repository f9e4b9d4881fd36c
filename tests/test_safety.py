"""Losing nothing: every command that writes, tried against folders and files that hold someone's work, and
interrupted by SIGINT and SIGTERM."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest


def qb(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "quantbench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def user_folder(root):
    """A folder holding someone's work, and a snapshot of it, byte for byte."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "keep.txt").write_bytes(b"my notes \x00\xff")
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "data.csv").write_bytes(b"1,2,3\n")
    return snapshot(root)


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


def refused(proc, *fragments):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_demo_out_dot_force_keeps_the_users_folder(tmp_path):
    before = user_folder(tmp_path)
    refused(qb("demo", "--out", ".", "--force", cwd=tmp_path), "Output folder . is the current folder",
            "--force never replaces a folder that holds other work")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["..", "HOME"])
def test_demo_out_parent_or_home_is_refused(tmp_path, where):
    before = user_folder(tmp_path / "home")
    cwd = tmp_path / "home" / "project"
    cwd.mkdir()
    env = {**os.environ, "HOME": str(tmp_path / ("home" if where == "HOME" else "elsewhere"))}
    out = ".." if where == ".." else str(tmp_path / "home")
    refused(qb("demo", "--out", out, "--force", cwd=cwd, env=env),
            "is your home folder" if where == "HOME" else "is a parent of the current folder")
    assert snapshot(tmp_path / "home") == {**before, "project": None}


def test_compare_force_refuses_a_folder_of_other_files(demo_cli, tmp_path):
    out = demo_cli[0]
    before = user_folder(tmp_path / "mine")
    refused(qb("compare", str(out / "model.keras"), "--data", str(out / "digits-test.npz"), "--out",
               str(tmp_path / "mine"), "--force"),
            "holds files quantbench did not write (keep.txt, sub/data.csv)", "--force replaces only a study folder")
    assert snapshot(tmp_path / "mine") == before


def test_report_keeps_users_files_and_never_replaces_a_folder(demo_cli, tmp_path):
    results = demo_cli[0] / "results.json"
    before = user_folder(tmp_path)
    (tmp_path / "report.md").write_text("my own report")
    refused(qb("report", str(results), "--out", str(tmp_path)), "Report files already exist", "report.md", "--force")
    assert (tmp_path / "report.md").read_text() == "my own report"
    (tmp_path / "report.md").unlink()
    (tmp_path / "report.html").mkdir()
    refused(qb("report", str(results), "--out", str(tmp_path), "--force"),
            "report.html is a folder", "a folder is never replaced")
    assert snapshot(tmp_path) == {**before, "report.html": None}  # nothing half-written beside it


@pytest.fixture(scope="module")
def inputs(demo_cli, tmp_path_factory):
    with np.load(demo_cli[0] / "digits-test.npz") as d:
        x = d["x"][:5]
    path = tmp_path_factory.mktemp("inputs") / "x.npy"
    np.save(path, x)
    return path


@pytest.mark.parametrize("command", ["convert", "predict", "qat"])
def test_file_outputs_need_force_and_never_replace_a_folder(demo_cli, inputs, tmp_path, command):
    out = demo_cli[0]
    args = {"convert": ["convert", str(out / "model.keras"), "-t", "float32"],
            "predict": ["predict", str(out / "int8-only.tflite"), "--input", str(inputs)],
            "qat": ["qat", str(out / "model.keras"), "--data", str(out / "digits-train.npz"), "--epochs", "1"]}[command]
    target = tmp_path / "out.bin"
    target.write_bytes(b"someone's file \x00")
    refused(qb(*args, "-o", str(target)), f"{target} already exists", "--force")
    assert target.read_bytes() == b"someone's file \x00"
    folder = tmp_path / "folder.npy"
    before = user_folder(folder)
    refused(qb(*args, "-o", str(folder), "--force"), "is a folder", "a folder is never replaced")
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.npy", "out.bin"]  # no temporary left


def test_convert_qat_int8_is_refused_with_the_command_to_use(demo_cli, tmp_path):
    refused(qb("convert", str(demo_cli[0] / "model.keras"), "-t", "qat-int8", "-o", str(tmp_path / "q.tflite")),
            "qat-int8 fine-tunes the model", "quantbench qat MODEL --data train.npz -o OUT.tflite")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def previous_study(tmp_path_factory):
    """A small earlier study that --force may replace."""
    out = tmp_path_factory.mktemp("previous") / "study"
    proc = qb("demo", "--out", str(out), "--epochs", "1", "--techniques", "float32", "--quiet", "--time-budget", "0.5")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("phase", ["model.keras", "dynamic.tflite"])
def test_interrupt_leaves_nothing_and_the_target_untouched(previous_study, tmp_path, sig, code, phase):
    target = tmp_path / "study"
    shutil.copytree(previous_study, target, copy_function=shutil.copy2)  # same bytes and times: still ours
    before = snapshot(target)
    proc = subprocess.Popen([sys.executable, "-m", "quantbench", "demo", "--out", str(target), "--force", "--quiet",
                             "--epochs", "1", "--techniques", "float32,dynamic,int8-only,float16",
                             "--time-budget", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(".study.") and p.name.endswith(".tmp")]
        if staging and (staging[0] / phase).exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the study ended before the phase was reached"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]  # no staging folder left
    assert snapshot(target) == before
