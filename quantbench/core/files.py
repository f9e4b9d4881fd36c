"""Writing artifacts safely: a temporary name first, then a rename; nothing of the user's overwritten or deleted.

A study folder carries a marker, `.quantbench`, listing the files quantbench wrote there (with their sizes and
times). `--force` replaces only such a folder, and only while it holds nothing else; an empty folder may be
written into. Folders that hold someone's work (the current folder, its parents, the home folder, the root)
are never a study folder.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from . import errors
from .errors import InputError

MARKER = ".quantbench"
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM for a few file operations that must not stop half-way; delivered after.

    The handlers only note the signal meanwhile, then the one that was in place runs. (Blocking the signals
    with pthread_sigmask held them for this thread only: the kernel gave a Ctrl-C to one of TensorFlow's
    threads, Python ran the handler here all the same, inside Keras's zip writer.) Off the main thread,
    where no handler can be set, nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if caught:
            handler = old[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(caught[0])


def protected(out: Path) -> str | None:
    """Why `out` can never be a study folder, or None."""
    real, cwd, home = out.resolve(), Path.cwd().resolve(), Path.home().resolve()
    if real == Path(real.anchor):
        return "is the root folder"
    if real == home:
        return "is your home folder"
    if real == cwd:
        return "is the current folder"
    if real in cwd.parents:
        return "is a parent of the current folder"
    return None


def _files(folder: Path) -> dict[str, list[int]]:
    """Relative path -> [size, mtime_ns] of every file under `folder` (the marker itself excluded)."""
    found = {}
    for p in sorted(folder.rglob("*")):
        if p.name == MARKER and p.parent == folder:
            continue
        if p.is_symlink() or not p.is_dir():
            st = p.lstat()
            found[p.relative_to(folder).as_posix()] = [st.st_size, st.st_mtime_ns]
    return found


def _foreign(out: Path) -> list[str]:
    """Files in `out` that quantbench did not write, or changed since it wrote them."""
    present = _files(out)
    try:
        written = json.loads((out / MARKER).read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return sorted(present) or [MARKER]
    if not isinstance(written, dict):
        return sorted(present)
    return sorted(name for name, stat in present.items() if written.get(name) != stat)


def check_new_dir(out: str | Path, force: bool) -> Path:
    """Refuse an output folder quantbench may not write: see the module's docstring."""
    out = Path(out)
    fix = "Fix: pass --out with a new folder, e.g. --out runs/mine."
    why = protected(out)
    if why:
        raise InputError(f"Output folder {out} {why}; a study is written into a folder of its own, and --force "
                         f"never replaces a folder that holds other work. {fix}")
    if out.is_symlink():
        raise InputError(f"Output folder {out} is a symbolic link. Expected a real folder path. {fix}")
    if out.exists() and not out.is_dir():
        raise InputError(f"Output folder {out} exists and is a file. Expected a folder path. {fix}")
    if not out.is_dir() or not any(out.iterdir()):
        return out
    if not force:
        raise InputError(f"Output folder {out} already exists and is not empty. Expected a new or empty folder. "
                         "Fix: choose another --out, or pass --force to replace a study folder quantbench wrote.")
    foreign = _foreign(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise InputError(f"Output folder {out} holds files quantbench did not write ({shown}), so --force will not "
                         f"replace it: --force replaces only a study folder quantbench wrote. {fix}")
    return out


def _mark(folder: Path) -> None:
    from .version import __version__

    (folder / MARKER).write_text(json.dumps({"written_by": "quantbench", "version": __version__,
                                             "files": _files(folder)}, indent=1) + "\n")


def note_written(folder: Path, names: list[str]) -> None:
    """Record files quantbench (re)wrote in a study folder, so --force still knows them as its own."""
    marker = Path(folder) / MARKER
    try:
        raw = json.loads(marker.read_text())
    except (OSError, ValueError):
        return  # not a study folder: nothing to record
    if isinstance(raw, dict) and isinstance(raw.get("files"), dict):
        present = _files(Path(folder))
        raw["files"].update({n: present[n] for n in names if n in present})
        marker.write_text(json.dumps(raw, indent=1) + "\n")


@contextlib.contextmanager
def staged_dir(out: str | Path, force: bool):
    """Yield a temporary folder beside `out`; on success it replaces `out`, on error or interrupt it is removed
    and `out` is left as it was."""
    out = check_new_dir(out, force)
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with signals_held():
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    earlier = errors.pending
    try:
        yield tmp
        if errors.pending is not None and errors.pending is not earlier:
            raise errors.pending  # a signal whose exception something swallowed (a __del__) stops the commit
        with signals_held():
            check_new_dir(out, force)  # again: someone may have put work there while the study ran
            _mark(tmp)
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; a study folder gets the usual mode
            _replace_dir(tmp, out)
    finally:
        with signals_held():
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(new: Path, out: Path) -> None:
    """Move `new` to `out`; an existing (checked) `out` is moved aside first and removed only afterwards."""
    if not out.exists():
        os.replace(new, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=".tmp", dir=out.resolve().parent))
    os.replace(out, old / "previous")
    try:
        os.replace(new, out)
    except OSError:
        os.replace(old / "previous", out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_new_file(path: str | Path, force: bool, option: str = "-o") -> Path:
    """Refuse to write over a folder, ever, or over an existing file without `force`."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"Output path {path} is a folder. Expected a file path; a folder is never replaced. "
                         f"Fix: pass {option} with a file name, e.g. {option} {path / 'out'}.")
    if path.exists() and not force:
        raise InputError(f"Output file {path} already exists. Expected a new path. "
                         f"Fix: choose another {option}, or pass --force to replace it.")
    return path


def write_file(path: str | Path, content: bytes, force: bool = False) -> Path:
    """Write bytes to a temporary file beside `path`, then rename it into place."""
    path = check_new_file(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    with signals_held():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a written file gets the usual permissions
        with signals_held():
            check_new_file(path, force)
            os.replace(tmp, path)
    finally:
        with signals_held():
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def wrote(paths: list) -> str:
    """The line a command ends with: "Wrote DIR/ (a.md, b.html)" for files in one folder, else each path."""
    paths = [Path(p) for p in paths]
    folders = {p.parent for p in paths}
    if len(folders) == 1:
        return f"Wrote {folders.pop()}/ ({', '.join(p.name for p in paths)})"
    return "Wrote " + ", ".join(map(str, paths))
