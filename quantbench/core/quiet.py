"""Keep TensorFlow's and LiteRT's own chatter (C++ logs, absl, converter prints) off the CLI user's screen.

The library leaves the process alone: environment variables, warning filters and loggers are set only by
`configure()`, which the CLI calls for its own process (a script may call it too). Until then `silenced()`
redirects nothing, so no output of the caller's can be lost.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings

_configured = False
_lock = threading.Lock()
_depth = 0        # nested or concurrent silenced() blocks: the first redirects, the last restores
_saved: list = []


def debug_enabled() -> bool:
    return os.environ.get("QUANTBENCH_DEBUG", "") not in ("", "0")


def configure() -> None:
    """Quiet this process: TensorFlow's log levels (read at import), its loggers, its warnings, and from now
    on `silenced()` around loads and conversions. For the CLI's process, or a script that wants the same."""
    global _configured
    if debug_enabled():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # no oneDNN banner; results identical run to run
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("AUTOGRAPH_VERBOSITY", "0")
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tf_keras|absl|ai_edge_litert)")
    for name in ("tensorflow", "absl", "keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    _configured = True


def _enter() -> None:
    global _depth
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        _saved[:] = [os.dup(1), os.dup(2), devnull]
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)


def _leave() -> None:
    global _depth
    with _lock:
        _depth = max(_depth - 1, 0)  # restore() may have ended every block already
        if _depth == 0:
            _put_back()


def _put_back() -> None:
    if not _saved:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    out, err, devnull = _saved
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in (out, err, devnull):
        os.close(fd)
    _saved.clear()


def restore() -> None:
    """End every silenced() block still in force, so that the CLI's last line reaches the terminal.

    A signal's exception can unwind the main thread after `_enter()` and before the `try` that would leave, or
    while another thread is inside a block: file descriptor 2 then stayed /dev/null and the "interrupted" line
    was lost (CI, issue 21's SIGTERM in timing). The blocks still open end quietly when they leave.
    """
    global _depth
    with _lock:
        _depth = 0
        _put_back()


@contextlib.contextmanager
def silenced():
    """File descriptors 1 and 2 (C++ logs) and sys.stdout/err to /dev/null for the block, once `configure()`
    was called and not under --debug. Safe when several threads enter it: the last one out restores."""
    if not _configured or debug_enabled():
        yield
        return
    _enter()
    try:
        # Python-level writers too (tqdm bars, prints): in a notebook sys.stderr is not file descriptor 2.
        # Only the CLI's main thread swaps them; another thread's swap would race with it.
        if threading.current_thread() is threading.main_thread():
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                yield
        else:
            yield
    finally:
        _leave()
