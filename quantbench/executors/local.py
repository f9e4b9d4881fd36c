"""Executors run a study's plan of tasks: in this process, in worker processes, or on a Ray cluster.

A task is a module-level function and its (picklable) arguments, with the keys of the tasks it needs. Every
executor gives the same results for the same plan; they differ only in where the work runs. A task whose
worker dies (killed, out of memory) ends as `Died` with the reason, and the study goes on.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import NoReturn

from ..core.errors import InputError
from .plan import RECYCLE_AFTER, Died, Executor, Ran, Reply, Task

LEAK_ROOM = 0.85   # a worker is replaced after RECYCLE_AFTER (plan.py) leaky tasks, or sooner, once the main
# process plus its peak pass this share of the memory budget: the next conversion adds to what the last ones
# leaked (MobileNetV2: 1.1-1.37 GiB in a fresh process, about 1.7 GiB in a worker that had run several, which
# took `--max-memory 2` to 2.26 GiB; BENCHMARKS.md). Another worker starts only if all fit this share too.


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class InProcess(Executor):
    """Runs every task in this process, one after the other, in plan order."""

    workers = 0

    def _may_start(self, task, busy, pending):
        return not busy  # one at a time: the next is chosen once this one is done

    def _start(self, task):
        return Ran(task.fn(*task.args))

    def _finished(self, busy):
        return [(handle, handle.result) for handle in list(busy)]


def _worker_main(conn, debug: bool) -> None:
    """A worker: run tasks sent over `conn` until told to stop. Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if debug:
        os.environ["QUANTBENCH_DEBUG"] = "1"
    from ..core.quiet import configure

    configure()  # a worker is quantbench's own process: keep TensorFlow's chatter off the user's terminal
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            _end(conn)
        fn, args = message
        reply = Reply.of(fn, args)
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result or exception is a bug too
            conn.send(Reply.bug(exc))


def _end(conn) -> NoReturn:
    """End a worker whose results are all sent as its process would end (multiprocessing's finalizers: they
    release what the tasks registered with the resource tracker, e.g. tqdm's lock in the LiteRT Quantizer's
    calibration, which the main process would otherwise report as leaked), but without the interpreter's
    teardown: TensorFlow's atexit work takes 2 s on 2 cores, more under load, and the study (or its Ctrl-C) waited
    for it, worker by worker (bench/worker_exit.py)."""
    from multiprocessing import util

    conn.close()
    util._exit_function()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (the system may have run out of memory)" if -exitcode == signal.SIGKILL else ""
        return f"its worker process was killed by {name}{hint}"
    return f"its worker process exited with code {exitcode}"


@dataclass(eq=False)  # a handle in the plan loop: by identity
class _Worker:
    process: object
    conn: object
    task: Task | None = None
    leaks: int = 0


@dataclass(eq=False)
class Workers(Executor):
    """Runs tasks in `n` worker processes (spawned: no state shared with this one). A worker is replaced after
    `recycle_after` leaky tasks, and when it dies, its task becomes `Died` and a new worker takes its place."""

    n: int = field(default_factory=usable_cores)
    timed_on = "a worker process on this machine"
    recycle_after: int = RECYCLE_AFTER
    budget: int | None = None  # bytes the process tree may hold: workers start only while they fit (see `_fits`)

    def __post_init__(self):
        if self.n < 1:
            raise InputError(f"--workers is {self.n}. Expected a number of worker processes ≥ 1 (0 runs in "
                             "this process). Fix: pass --workers 1 or more.")
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self.ran = 0          # the most workers alive at once
        self.per_worker = 0   # the largest peak RSS a worker reached (measured when its task ends)
        self.measured = False
        self.leaky_measured = 0  # leaky tasks whose worker's peak is known: the first is often the export, which
        # MobileNetV2's conversions outgrow (1.0 against 1.45 GiB), so a second worker waits for two

    def _fits(self, pending: list[Task] = ()) -> bool:
        """Whether one more worker fits the budget: always the first; the next ones only once a worker's peak is
        measured (over a conversion, when the plan has any: they are what grows a worker most), and while the
        main process plus every worker at that peak stays within LEAK_ROOM of the budget: a worker keeps growing
        after its peak is measured, by what each later conversion leaks (MobileNetV2: a second worker admitted
        at the full budget took the default study to 3.19 GiB of a 3.0 GiB budget; BENCHMARKS.md)."""
        if not self._all:
            return True
        if self.budget is None:
            return True
        if not self.measured or (self.leaky_measured < 2 and any(t.leaky for t in pending)):
            return False
        from ..core.memory import rss, workers_that_fit

        return len(self._all) < workers_that_fit(self.n, int(LEAK_ROOM * self.budget), rss(), self.per_worker)

    def _measure(self, worker: _Worker, task: Task) -> None:
        from ..core.memory import hwm

        self.per_worker = max(self.per_worker, hwm(worker.process.pid))
        self.measured = True
        self.leaky_measured += task.leaky

    def _new_worker(self) -> _Worker:
        from ..core.quiet import debug_enabled

        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=_worker_main, args=(child, debug_enabled()), daemon=True,
                                    name="quantbench-worker")
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._all.append(worker)
        self.ran = max(self.ran, len(self._all))
        return worker

    def _retire(self, worker: _Worker, polite: bool = True) -> None:
        """Stop a worker: asked to finish (`polite`), else terminated; killed by its PID if it lingers."""
        if polite:
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
        else:
            worker.process.terminate()
        worker.process.join(10 if polite else 5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
        self._all.remove(worker)

    def _may_start(self, task, busy, pending):
        if len(busy) >= self.n:
            return False
        if not self._idle and not self._fits(pending):
            return False  # no worker free, and another would not fit the memory budget: wait for one
        if task.exclusive and self.budget is not None:
            while len(self._idle) > 1:  # alone on the machine, and idle workers' memory freed for it
                self._retire(self._idle.pop(0))
        return True

    def _start(self, task):
        worker = self._idle.pop() if self._idle else self._new_worker()
        worker.task = task
        worker.conn.send((task.fn, task.args))
        return worker

    def _finished(self, busy):
        from multiprocessing.connection import wait

        if not busy:
            return []
        done = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
        return [(worker, self._answer(worker)) for worker in list(busy)
                if worker.conn in done or worker.process.sentinel in done]

    def _answer(self, worker: _Worker):
        """A finished worker's task's result (`Died` if the process died without answering); the worker goes back
        to the idle ones, or is retired (recycled, or let go beyond the memory budget)."""
        task, worker.task = worker.task, None
        try:
            reply = worker.conn.recv() if worker.conn.poll() else None
        except (EOFError, OSError):
            reply = None
        if reply is None:  # the process died without answering
            worker.process.join(5)
            self._all.remove(worker)
            return Died(task.key, f"{task.key}: {_death(worker.process.exitcode)}")
        worker.leaks += task.leaky
        self._measure(worker, task)
        if worker.leaks >= self.recycle_after or (len(self._all) > 1 and not self._within()) or \
                (task.leaky and not self._room(worker)):
            self._retire(worker)  # recycled; or, beyond the budget at the peaks measured, let go
        else:
            self._idle.append(worker)
        return reply.result(task.key)

    def _within(self) -> bool:
        """Whether the workers alive now fit the budget at the largest peak a worker reached."""
        if self.budget is None:
            return True
        from ..core.memory import rss

        return rss() + len(self._all) * self.per_worker <= self.budget

    def _room(self, worker: _Worker) -> bool:
        """Whether a worker that has just converted leaves room for another conversion: the main process plus its
        peak so far, or the largest peak any worker reached if larger (its next task may be that heaviest one,
        on top of what it has leaked: MobileNetV2's `--max-memory 2` reached 2.21 GiB that way), within
        LEAK_ROOM of the budget (no budget: always)."""
        if self.budget is None:
            return True
        from ..core.memory import hwm, rss

        return rss() + max(hwm(worker.process.pid), self.per_worker) <= LEAK_ROOM * self.budget

    def close(self) -> None:
        """Stop every worker: politely, then by its PID."""
        for worker in list(self._all):
            if worker.task is None:
                self._retire(worker)
        for worker in list(self._all):  # still working (an interrupt): stopped now
            self._retire(worker, polite=False)
        self._idle.clear()


def make(workers: int | None = None, ray: str | None = None, budget: int | None = None):
    """The executor a study asked for: Ray at `ray`, else `workers` processes (0: this process), started only
    while they fit the memory `budget` (bytes)."""
    if ray:
        from .ray import RayExecutor

        return RayExecutor(ray, here=lambda: Workers(1))
    workers = usable_cores() if workers is None else workers
    if workers < 0:
        raise InputError(f"--workers is {workers}. Expected 0 (in this process) or more worker processes. "
                         "Fix: pass --workers 2, or leave it out for one per usable core.")
    return InProcess() if workers == 0 else Workers(workers, budget=budget)
