"""The study's memory budget: its default, the peak the study's process tree reached, and how many workers fit."""
from __future__ import annotations

import math
import os
import threading

from .errors import InputError

GIB = 2 ** 30
DEFAULT_SHARE = 0.5  # of the memory available when the study starts ...
DEFAULT_CAP = 3 * GIB  # ... and at most this: a real-size study fits in 3 GiB (DESIGN.md); --max-memory raises it
SAMPLE_S = 0.2       # how often the peak sampler reads the process tree's RSS


def available() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def budget(max_memory_gib: float | None = None) -> int:
    """Bytes the study's process tree may hold: `max_memory_gib` GiB, else DEFAULT_SHARE of the memory available
    now, at most DEFAULT_CAP."""
    if max_memory_gib is None:
        return int(min(DEFAULT_SHARE * available(), DEFAULT_CAP))
    check(max_memory_gib)
    return int(max_memory_gib * GIB)


def check(max_memory_gib) -> float:
    """--max-memory's value, refused in one line when it is not a positive, finite number of GiB."""
    try:
        value = float(max_memory_gib)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"--max-memory is {max_memory_gib!r}. Expected a positive number of GiB, e.g. 2 or 0.5. "
                         "Fix: pass --max-memory 3, or leave it out for half the available memory (at most 3 GiB).")
    return value


def hwm(pid: int) -> int:
    """A process's peak RSS so far (Linux VmHWM), else its current RSS; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except Exception:
        return 0


def rss(pid: int | None = None) -> int:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except Exception:
        return 0


def tree_rss(pid: int | None = None) -> int:
    """RSS summed over a process (default: this one) and its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def workers_that_fit(asked: int, budget_bytes: int | None, main_bytes: int, per_worker: int) -> int:
    """How many of `asked` workers fit the budget beside the main process, each estimated at `per_worker` bytes
    (measured: the largest peak a worker of this study reached); at least 1, so a study always runs."""
    if asked <= 1 or budget_bytes is None or per_worker <= 0:
        return max(asked, 1) if asked > 0 else 0
    return int(max(1, min(asked, (budget_bytes - main_bytes) // per_worker)))


class PeakSampler:
    """Samples the RSS of this process's tree every SAMPLE_S seconds in a thread, keeping the peak."""

    def __init__(self, pid: int | None = None):
        self.pid = pid or os.getpid()
        self.peak = tree_rss(self.pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quantbench-memory", daemon=True)

    def _run(self):
        while not self._stop.wait(SAMPLE_S):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)
        self.peak = max(self.peak, tree_rss(self.pid))
