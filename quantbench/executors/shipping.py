"""A task's files, for a node that cannot see this machine's disk (Ray without a shared filesystem).

This machine (the driver) sends what a task reads (`plan.Part`): whole files and folders as blobs named by
their content (sha256; a folder as a tar), evaluation rows by value. A node keeps blobs in a cache of its own,
fetched once per content, and gives each task a folder of links to them; what the task writes into its study
folder there comes back by value, and only the driver writes the study's folder.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

HOME = "study"     # in a task's folder on a node: the study's folder (see tasks.Job.away)
IDLE_S = 3600.0    # a node's cached blob unused this long (or a task folder left by a killed worker) is removed
BLOB, TREE, ROWS = "file", "folder", "rows"


# ---- this machine: what a task sends --------------------------------------------------------------------------

def blob(path: str) -> tuple[str, str, bytes]:
    """A file or folder as (kind, sha256 of the bytes, bytes): a folder as a tar that depends on its content only."""
    p = Path(path)
    if p.is_dir():
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for f in sorted(x for x in p.rglob("*")):
                info = tar.gettarinfo(str(f), arcname=f.relative_to(p).as_posix())
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if info.isreg():
                    with open(f, "rb") as handle:
                        tar.addfile(info, handle)
                elif info.isdir():
                    tar.addfile(info)
        content, kind = buffer.getvalue(), TREE
    else:
        content, kind = p.read_bytes(), BLOB
    return kind, hashlib.sha256(content).hexdigest(), content


def version_of(path: str) -> tuple:
    """What tells a file or folder's content changed without reading it: sizes and modification times."""
    p = Path(path)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


def rows_of(path: str, rows) -> np.ndarray:
    """Rows of a `.npy` file (a range or sorted indices), read from its map: only those pages."""
    data = np.load(path, mmap_mode="r")
    index = slice(rows.start, rows.stop) if isinstance(rows, range) and rows.step == 1 else np.asarray(rows, int)
    return np.ascontiguousarray(data[index])


def write_back(home: str, files: list[tuple[str, bytes]]) -> None:
    """Files a task wrote into its study folder on a node, written into the study's folder here."""
    root = Path(home).resolve()
    for rel, content in files:
        dest = (root / rel).resolve()
        if root not in dest.parents:
            raise ValueError(f"A task's file {rel!r} would land outside the study's folder {root}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        partial.write_bytes(content)
        os.replace(partial, dest)


def swap(value, pairs: list[tuple[str, str]]):
    """`value` with every path prefix `old` in its strings replaced by `new` (longest first): in strings, lists,
    tuples, dicts, dataclasses and an exception's arguments. Other objects (a metric stream) are left as they are."""
    pairs = sorted(pairs, key=lambda p: -len(p[0]))

    def one(v):
        if isinstance(v, str):
            for old, new in pairs:
                v = v.replace(old, new)
            return v
        if isinstance(v, (list, tuple)) and type(v) in (list, tuple):
            return type(v)(one(x) for x in v)
        if isinstance(v, dict) and type(v) is dict:
            return {one(k): one(x) for k, x in v.items()}
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.replace(v, **{f.name: one(getattr(v, f.name)) for f in dataclasses.fields(v)
                                             if f.init})
        if isinstance(v, BaseException):
            v.args = tuple(one(a) for a in v.args)
        return v

    return one(value)


# ---- a node: a cache of blobs, a folder per task, what the task wrote -------------------------------------------

def cache_root() -> Path:
    """This node's cache: in its own temporary folder, one per user."""
    return Path(tempfile.gettempdir()) / f"quantbench-cache-{os.getuid()}"


def _tidy(root: Path) -> None:
    """Remove blobs nobody used for IDLE_S, and task folders a killed worker left behind."""
    now = time.time()
    for folder in (root / "blobs", root / "tasks"):
        for entry in folder.iterdir() if folder.is_dir() else ():
            try:
                if now - entry.lstat().st_mtime > IDLE_S:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:  # removed by another task meanwhile
                pass


def cached(root: Path, kind: str, sha: str, basename: str, fetch) -> Path:
    """The blob `sha` as `basename` in the cache, fetched by `fetch()` the first time this node needs it (a file
    of that content cached under another name is linked instead), its entry touched as used."""
    entry = root / "blobs" / sha
    entry.mkdir(parents=True, exist_ok=True)
    os.utime(entry)
    target = entry / basename
    if not target.exists():
        partial = Path(tempfile.mkdtemp(dir=entry, prefix=".partial."))
        same = [f for f in entry.iterdir() if f.is_file() and not f.name.startswith(".")]
        try:
            if kind == BLOB and same:
                os.link(same[0], partial / basename)
                content = None
            else:
                content = fetch()
            if kind == TREE:
                with tarfile.open(fileobj=io.BytesIO(content)) as tar:
                    tar.extractall(partial / basename, filter="data")
            elif content is not None:
                (partial / basename).write_bytes(content)
            del content
            try:
                os.rename(partial / basename, target)  # complete or absent
            except OSError:  # a folder another task on this node made first
                pass
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return target


def open_task(parts: list, fetch) -> tuple[Path, set[str], list[tuple[str, str]]]:
    """A folder for one task holding its parts: links into the cache, rows as small `.npy` files. `parts` are
    (name, kind, sha, holder) with the content in holder[0] (`fetch(holder)` reads it). Returns the folder, the
    names of its inputs, and (cache path, path in the folder) pairs that say where each link points."""
    root = cache_root()
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    _tidy(root)
    folder = Path(tempfile.mkdtemp(dir=root / "tasks"))
    links = []
    for name, kind, sha, holder in parts:
        dest = folder / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if kind == ROWS:
            np.save(dest, fetch(holder))
            continue
        target = cached(root, kind, sha, dest.name, lambda h=holder: fetch(h))
        dest.symlink_to(target, target_is_directory=kind == TREE)
        links.append((str(target), str(dest)))
    return folder, {name for name, *_ in parts}, links


def outputs(folder: Path, inputs: set[str]) -> list[tuple[str, bytes]]:
    """The files the task wrote into its study folder (not its inputs), as (path in the study folder, bytes)."""
    home = folder / HOME
    found = []
    for dirpath, _, files in os.walk(home):  # links (inputs) to folders are not followed
        for f in files:
            path = Path(dirpath) / f
            if path.is_symlink() or str(path.relative_to(folder)) in inputs:
                continue
            found.append((path.relative_to(home).as_posix(), path.read_bytes()))
    return sorted(found)
