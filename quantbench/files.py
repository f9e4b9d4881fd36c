"""Writing artifacts safely: a temporary name first, then a rename; nothing of the user's overwritten."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import InputError


def check_new_dir(out: str | Path, force: bool) -> Path:
    """Refuse an existing non-empty folder unless `force`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"Output folder {out} exists and is a file. Expected a folder path. "
                         "Fix: choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(f"Output folder {out} already exists and is not empty. "
                         "Expected a new or empty folder. Fix: choose another --out, or pass --force to replace it.")
    return out


@contextlib.contextmanager
def staged_dir(out: str | Path, force: bool):
    """Yield a temporary folder beside `out`; on success it replaces `out`, on error it is removed."""
    out = check_new_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_new_file(path: str | Path, force: bool) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"Output file {path} already exists. Expected a new path. "
                         "Fix: choose another -o, or pass --force to replace it.")
    if path.is_dir():
        raise InputError(f"Output path {path} is a folder. Expected a file path. Fix: choose another -o.")
    return path


def write_file(path: str | Path, content: bytes, force: bool = False) -> Path:
    """Write bytes to a temporary file beside `path`, then rename it into place."""
    path = check_new_file(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a written file gets the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
