"""A study's plan: tasks, what each needs, and how a task that did not return is recorded. Every executor
(local.py: this process or worker processes; ray.py: a Ray cluster) runs a plan by these rules."""
from __future__ import annotations

import enum
import os
import traceback
from dataclasses import dataclass
from typing import Callable, NamedTuple

from ..core.errors import QuantbenchError

RECYCLE_AFTER = 6  # leaky tasks (conversions) a worker runs before it is replaced: TF's converter leaks per call


class Key(NamedTuple):
    """A task's key in a study's plan, typed: what it does (`kind`), to which technique or engine (`name`), at
    which number (`at`: an evaluation shard's first row, a calibration size). Read by its fields, never parsed;
    printed as the progress bar shows it, "evaluate:int8-only:64"."""

    kind: str
    name: str = ""
    at: int | None = None

    def __str__(self) -> str:
        return ":".join([self.kind, *([self.name] if self.name else []), *([str(self.at)] if self.at is not None
                                                                           else [])])


@dataclass(frozen=True)
class Task:
    key: str | Key
    fn: Callable
    args: tuple = ()
    needs: tuple[str, ...] = ()
    leaky: bool = False       # grows the process (a TF conversion): counts towards recycling the worker
    exclusive: bool = False   # runs alone on the machine (timing): nothing else is in flight


@dataclass(frozen=True)
class Part:
    """A file or folder on this machine that a task reads, for an executor whose workers cannot see this machine's
    disk (Ray): `name` is where the task finds it, relative to its own folder there; `rows`, for a `.npy` file,
    ships only those rows (a range or sorted indices), in that order."""

    path: str
    name: str
    rows: range | tuple | None = None


class Placed(str):
    """An argument naming a part (`Part.name`): a path relative to the folder the task runs in there."""

    def there(self, root) -> str:
        return os.path.realpath(os.path.join(root, self))  # a part is a link into the node's cache: its target


@dataclass(frozen=True)
class Shipment:
    """A task as sent to a node that cannot see this machine's files: its arguments there, the `Part`s it reads,
    and `home`, the study folder here that receives what it writes into its study folder there."""

    args: tuple
    parts: list
    home: str | None = None


def ships(how: Callable):
    """Declare how a task function travels to a worker that cannot see this machine's files: `how(*args)` returns
    its `Shipment`, whose arguments have `there(folder)` where they name files (`Placed`, `tasks.Job`). Executors on
    this machine ignore it and pass the arguments as they are."""
    def mark(fn):
        fn.ships = how
        return fn
    return mark


@dataclass(frozen=True)
class Died:
    """A task that did not return: its worker died, or a task it needed did."""

    key: str
    reason: str


class TaskBug(RuntimeError):
    """An exception in quantbench's own code inside a task: a bug, surfaced with the task's traceback."""


def order(tasks: list[Task]) -> list[Task]:
    keys = {t.key for t in tasks}
    for t in tasks:
        missing = [k for k in t.needs if k not in keys]
        if missing:
            raise ValueError(f"Task {t.key!r} needs {missing}, which are not in the plan.")
    return tasks


def blocked(task: Task, results: dict) -> Died | None:
    for k in task.needs:
        if isinstance(results.get(k), Died):
            return Died(task.key, f"not run: {k} did not finish ({results[k].reason})")
    return None


def ready_tasks(pending: list[Task], results: dict, on_done: Callable | None) -> list[Task]:
    """The pending tasks whose needs are all done, in plan order. A task that needs one that did not finish is
    taken off `pending` and recorded as `Died` (reported to `on_done`) instead."""
    ready = []
    for task in [t for t in pending if all(k in results for k in t.needs)]:
        stopped = blocked(task, results)
        if stopped is None:
            ready.append(task)
            continue
        pending.remove(task)
        results[task.key] = stopped
        if on_done:
            on_done(task, stopped)
    return ready


class Outcome(enum.Enum):
    OK = "ok"
    ERROR = "error"  # a QuantbenchError: the user's to read
    BUG = "bug"      # any other exception: quantbench's own bug


@dataclass(frozen=True)
class Reply:
    """A task's answer from wherever it ran (a worker process, a Ray worker): its value, the QuantbenchError it
    raised, or a bug with the worker's traceback. Every executor sends and reads this one type."""

    outcome: Outcome
    value: object = None  # the return value, the QuantbenchError, or the bug's one line
    trace: str = ""       # a bug's traceback, as the worker printed it

    @classmethod
    def of(cls, fn: Callable, args: tuple) -> "Reply":
        try:
            return cls(Outcome.OK, fn(*args))
        except QuantbenchError as exc:
            return cls(Outcome.ERROR, exc)
        except Exception as exc:  # a bug: raised in the caller with this traceback
            return cls.bug(exc)

    @classmethod
    def bug(cls, exc: BaseException) -> "Reply":
        """Inside an `except`: the exception as a bug, with the traceback being handled."""
        return cls(Outcome.BUG, f"{type(exc).__name__}: {exc}", traceback.format_exc())

    def result(self, key: str, where: str = "worker"):
        """The value; the QuantbenchError raised again here; a bug raised as TaskBug naming the task."""
        if self.outcome is Outcome.ERROR:
            raise self.value
        if self.outcome is Outcome.BUG:
            raise TaskBug(f"{self.value} (in task {key}; {where} traceback:\n{self.trace})")
        return self.value


class Executor:
    """Runs a plan by its rules: a task starts once its needs are done (one that needs a task that did not finish
    is recorded `Died`), in plan order, as many at once as the executor allows; an exclusive task runs alone.
    This loop is every executor's; each says only whether one more task may start now (`_may_start`), how it
    starts (`_start`: a handle), which started ones have finished (`_finished`), and what to stop when the plan
    is abandoned (`_abandon`: Ctrl-C, or a task's error raised here)."""

    timed_on = "this process"  # where the timing ran (results.json settings.timed_on)

    def run(self, tasks: list[Task], on_done: Callable | None = None) -> dict:
        """Every task's result by key: its value, or `Died`. A task's QuantbenchError or bug is raised here."""
        results: dict = {}
        pending = list(order(tasks))
        busy: dict = {}  # handle -> Task
        try:
            while pending or busy:
                for task in ready_tasks(pending, results, on_done):
                    if (task.exclusive and busy) or any(t.exclusive for t in busy.values()) or \
                            not self._may_start(task, busy, pending):
                        break  # an exclusive task waits for the others, and the others for it
                    pending.remove(task)
                    busy[self._start(task)] = task
                for handle, result in self._finished(busy):
                    task = busy.pop(handle)
                    results[task.key] = result
                    if on_done:
                        on_done(task, result)
        except BaseException:
            self._abandon(busy)
            raise
        finally:
            self._plan_done()
        return results

    def _may_start(self, task: Task, busy: dict, pending: list) -> bool:
        raise NotImplementedError

    def _start(self, task: Task):
        raise NotImplementedError

    def _finished(self, busy: dict) -> list:
        """(handle, result) of the started tasks that have finished; waits for at least one when any runs."""
        raise NotImplementedError

    def _abandon(self, busy: dict) -> None:
        """The plan stops with these tasks started (they are not waited for)."""

    def _plan_done(self) -> None:
        """After a plan, finished or not."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Ran:
    """The handle of a task that ran to its end when it started (in this process): its result."""

    def __init__(self, result):
        self.result = result
