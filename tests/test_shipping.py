"""What a task reads and writes, for a node that cannot see this machine's disk (quantbench.executors.shipping, and the
Job's side of it in quantbench.study.tasks): blobs by content, the node's cache, a task's folder, what comes back."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from quantbench.executors import shipping
from quantbench.executors.plan import Part, Placed
from quantbench.measure.outputs import Truth
from quantbench.study import tasks


def _folder(root: Path, stamp: float) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(b"a" * 10)
    (root / "sub" / "b.bin").write_bytes(b"b" * 3)
    for f in (root / "a.bin", root / "sub" / "b.bin", root / "sub", root):
        os.utime(f, (stamp, stamp))
    return root


def test_a_folder_is_one_blob_named_by_its_content_alone(tmp_path):
    one, two = _folder(tmp_path / "one", 1e9), _folder(tmp_path / "two", 2e9)  # other times, same content
    kind, sha, content = shipping.blob(str(one))
    assert kind == shipping.TREE and shipping.blob(str(two))[1:] == (sha, content)
    (two / "sub" / "b.bin").write_bytes(b"c" * 3)
    assert shipping.blob(str(two))[1] != sha
    assert shipping.blob(str(one / "a.bin")) == (shipping.BLOB, shipping.blob(str(one / "a.bin"))[1], b"a" * 10)
    assert shipping.version_of(str(one)) != shipping.version_of(str(two))


def test_a_node_fetches_each_content_once_per_name_and_links_tasks_to_it(tmp_path, monkeypatch):
    monkeypatch.setattr(shipping, "cache_root", lambda: tmp_path / "cache")
    kind, sha, content = shipping.blob(str(_folder(tmp_path / "model", 1e9)))
    np.save(tmp_path / "x.npy", np.arange(12.0).reshape(6, 2))
    fetched = []

    def fetch(holder):
        fetched.append(holder)
        return {"tree": content, "file": b"same", "rows": shipping.rows_of(str(tmp_path / "x.npy"), range(2, 4))}[
            holder]

    parts = [("model/m", kind, sha, "tree"), ("study/a.tflite", shipping.BLOB, "s1", "file"),
             ("study/b.tflite", shipping.BLOB, "s1", "file"), ("study/.work/eval_0.npy", shipping.ROWS, None, "rows")]
    folder, inputs, links = shipping.open_task(parts, fetch)
    assert (folder / "model" / "m" / "sub" / "b.bin").read_bytes() == b"b" * 3
    assert (folder / "study" / "a.tflite").read_bytes() == (folder / "study" / "b.tflite").read_bytes() == b"same"
    assert np.load(folder / "study" / ".work" / "eval_0.npy").tolist() == [[4.0, 5.0], [6.0, 7.0]]
    assert sorted(fetched) == ["file", "rows", "tree"]  # one content under two names: fetched once
    assert {Path(t).parent.name for t, _ in links} == {sha, "s1"} and inputs == {p[0] for p in parts}
    (folder / "study" / "int8.tflite").write_bytes(b"new")  # what the task wrote
    (folder / "study" / ".work" / "savedmodel").mkdir()
    (folder / "study" / ".work" / "savedmodel" / "saved_model.pb").write_bytes(b"pb")
    assert shipping.outputs(folder, inputs) == [(".work/savedmodel/saved_model.pb", b"pb"), ("int8.tflite", b"new")]
    again, *_ = shipping.open_task(parts[:1], fetch)  # a second task on this node: from the cache
    assert sorted(fetched) == ["file", "rows", "tree"] and again != folder


def test_what_nobody_used_for_an_hour_leaves_the_cache(tmp_path):
    root = tmp_path / "cache"
    old, fresh, task = root / "blobs" / "old", root / "blobs" / "fresh", root / "tasks" / "left"
    for d in (old, fresh, task):
        d.mkdir(parents=True)
    then = time.time() - shipping.IDLE_S - 60
    os.utime(old, (then, then))
    os.utime(task, (then, then))
    shipping._tidy(root)
    assert not old.exists() and not task.exists() and fresh.exists()


def test_files_come_back_into_the_study_folder_and_nowhere_else(tmp_path):
    home = tmp_path / "study"
    home.mkdir()
    shipping.write_back(str(home), [("float16.tflite", b"f"), (".work/savedmodel/saved_model.pb", b"pb")])
    assert (home / "float16.tflite").read_bytes() == b"f" and (home / ".work/savedmodel/saved_model.pb").exists()
    with pytest.raises(ValueError, match=r"^A task's file '\.\./x' would land outside the study's folder "):
        shipping.write_back(str(home), [("../x", b"x")])
    assert not (tmp_path / "x").exists()


def test_paths_of_a_task_folder_are_named_as_they_are_here():
    from quantbench.inputs.models import ModelInfo

    info = ModelInfo("/node/t1/model/m.keras", "keras", "m", ["x"], [(-1, 8)], ["float32"], ["y"], [(-1, 2)],
                     ["float32"], 10)
    exc = ValueError("No model at /node/t1/model/m.keras")
    got = shipping.swap(("ok", {"info": info, "files": ["/node/t1/study/a.tflite", 3]}, exc),
                        [("/node/t1", "/elsewhere"), ("/node/t1/model/m.keras", "/home/u/m.keras"),
                         ("/node/t1/study", "/home/u/runs/s")])
    assert got[1]["info"].path == "/home/u/m.keras" and got[1]["info"].input_shapes == [(-1, 8)]
    assert got[1]["files"] == ["/home/u/runs/s/a.tflite", 3]
    assert str(got[2]) == "No model at /home/u/m.keras" and got[2] is exc


def _job(tmp_path, n=10, labels=None) -> tasks.Job:
    folder = tmp_path / "stage"
    work = folder / ".work"
    work.mkdir(parents=True)
    np.save(work / "eval_0.npy", np.arange(n * 2.0).reshape(n, 2))
    np.save(work / "reference_0.npy", -np.arange(n * 3.0).reshape(n, 3))
    np.save(work / "calib_0.npy", np.ones((4, 2)))
    (folder / "float16.tflite").write_bytes(b"f16")
    (tmp_path / "m.keras").write_bytes(b"model")
    return tasks.Job(str(tmp_path / "m.keras"), False, str(folder), str(work), n, 1, ("x",), ("y",), chunk=2,
                     labels=labels, has_calib=True, origin=str(tmp_path / "d.npz"))


def test_a_job_travels_with_relative_paths_and_only_the_rows_it_reads(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"")
    job = _job(tmp_path, labels=Truth({"y": np.arange(10)}, {"y": "classes"}))
    away = job.away(range(4, 8))
    assert (away.model, away.folder, away.work, away.origin) == ("model/m.keras", "study", "study/.work", "d.npz")
    assert away.labels.labels["y"].tolist() == [4, 5, 6, 7]
    parts = job.parts(model=True, data=("calib", "pool"), files=("float16.tflite", "int8-only.tflite"),
                      rows=range(4, 8))
    assert [(Path(p.path).relative_to(tmp_path).as_posix(), p.name, p.rows) for p in parts] == [
        ("m.keras", "model/m.keras", None), ("stage/.work/calib_0.npy", "study/.work/calib_0.npy", None),
        ("stage/float16.tflite", "study/float16.tflite", None),  # a variant not made yet is not sent
        ("stage/.work/eval_0.npy", "study/.work/eval_0.npy", range(4, 8)),
        ("stage/.work/reference_0.npy", "study/.work/reference_0.npy", range(4, 8))]

    node = tmp_path / "node"  # as a node lays it out: rows 4 to 7 only
    (node / "study" / ".work").mkdir(parents=True)
    for p in parts:
        if p.rows is not None:
            np.save(node / p.name, shipping.rows_of(p.path, p.rows))
    there = away.there(node)
    assert there.folder == str(node / "study") and there.path("a.tflite") == node / "study" / "a.tflite"
    assert there.eval_rows(5, 7)[0].tolist() == job.eval_rows(5, 7)[0].tolist() == [[10.0, 11.0], [12.0, 13.0]]
    assert there.reference_at([4, 7])[0].tolist() == job.reference_at([4, 7])[0].tolist()
    assert there.labels_of(6, 8).labels["y"].tolist() == [6, 7]
    with pytest.raises(IndexError, match="^evaluation rows 2 to 4 were not shipped with this task$"):
        there.eval_rows(2, 5)  # never zeros, never another row
    with pytest.raises(IndexError, match="^evaluation rows 0 to 0 were not shipped with this task$"):
        job.away().there(node).eval_at([0])
    assert Placed("model/m.keras").there(tmp_path) == str(tmp_path / "model" / "m.keras")


def test_a_shard_holds_at_most_its_bytes_in_whole_chunks():
    assert tasks.shard_rows(1000, 32, 512) == 512
    mobilenet = 224 * 224 * 3 * 4 + 1000 * 4
    assert tasks.shard_rows(mobilenet, 26, 512) == 104  # 110 samples fit 64 MiB: 4 chunks of 26
    assert tasks.shard_rows(1000, 32, 50) == 32
    assert tasks.shard_rows(10 * tasks.SHARD_BYTES, 8, 512) == 8  # one chunk at least
