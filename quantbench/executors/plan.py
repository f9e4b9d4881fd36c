"""A study's plan: tasks, what each needs, and how a task that did not return is recorded. Every executor
(local.py: this process or worker processes; ray.py: a Ray cluster) runs a plan by these rules."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

RECYCLE_AFTER = 6  # leaky tasks (conversions) a worker runs before it is replaced: TF's converter leaks per call


@dataclass(frozen=True)
class Task:
    key: str
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
