"""Runs a study's plan of tasks on an existing Ray cluster (`--ray ADDRESS`), with the interface of
`executor.Workers`.

Tasks travel as they do to local workers: a module-level function and its arguments, which hold paths, not
arrays. So every node must see the study's folder at the same path (one machine, or a shared filesystem) and
have the same quantbench installed. Ray's own log lines stay on the cluster (`log_to_driver=False`); what a
task raises comes back as its reply, and a task whose Ray worker dies becomes `Died` with the reason.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import traceback
from typing import Callable

from . import __version__
from .errors import InputError, QuantbenchError
from .executor import RECYCLE_AFTER, Died, Task, TaskBug, order, ready_tasks

CONNECT_S = 5.0   # seconds to open a TCP connection to the head before saying it is unreachable
FIRST_TASK_S = 120.0  # a first task starts a worker process: slow on a busy node, never endless
WAIT_S = 0.5      # ray.wait's timeout: between waits, this process handles Ctrl-C
INSTALL = "pip install 'quantbench[ray]'"
AUTH_FIX = ("Fix: export RAY_AUTH_MODE=token and the cluster's token as RAY_AUTH_TOKEN (or its file as "
            "RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token): `ray get-auth-token` prints it on the head.")


def _call(fn, args, debug: bool):
    """Runs on a Ray worker: the task, with its errors as a reply, as a local worker sends them."""
    if debug:
        os.environ["QUANTBENCH_DEBUG"] = "1"
    from .quiet import configure

    configure()  # keeps TensorFlow's chatter out of the worker's log
    try:
        return ("ok", fn(*args))
    except QuantbenchError as exc:
        return ("error", exc)
    except Exception as exc:  # a bug: raised in the caller with this traceback
        return ("bug", f"{type(exc).__name__}: {exc}", traceback.format_exc())


def _call_leaky(fn, args, debug: bool):
    """`_call` for leaky tasks (TF conversions): its own function, so Ray retires a worker after a few."""
    return _call(fn, args, debug)


def _version() -> str:
    return __version__


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError(f"--ray needs Ray, which is not installed here. Expected the optional extra "
                         f"quantbench[ray] (ray 2.60). Fix: {INSTALL}.") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """The head's host and port from `host:port` or `ray://host:port`; None for `auto` and the like."""
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        return None
    if not port.isdigit():
        raise InputError(f"--ray {address!r} has no port number. Expected host:port, e.g. 10.0.0.5:6379 (the "
                         "address `ray start --head` prints). Fix: pass --ray HOST:PORT, or set RAY_ADDRESS.")
    return host.strip("[]"), int(port)


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at the address (Ray itself retries for long)."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=CONNECT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"Cannot reach the Ray cluster at {address} ({reason}). Expected the address of a "
                         "running Ray head (host:port, as `ray start --head` prints it). Fix: start the cluster, "
                         "or check --ray / RAY_ADDRESS.") from None


@contextlib.contextmanager
def _signal_handlers_kept():
    """ray.init replaces the SIGTERM handler with sys.exit; the process's handlers (the CLI's) are put back."""
    main = threading.current_thread() is threading.main_thread()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        yield
    finally:
        for s, handler in saved.items():
            if handler is not None:
                signal.signal(s, handler)


@contextlib.contextmanager
def _interrupts_surface():
    """A signal handler's exception (the CLI's Interrupted, KeyboardInterrupt) raised while Ray's Cython code
    waits comes out as a SystemError "returned a result with an exception set": raise the original instead."""
    try:
        yield
    except SystemError as exc:
        cause = exc.__cause__ or exc.__context__
        if cause is not None and not isinstance(cause, Exception):
            raise cause from None
        raise


def _auth_refused(exc: BaseException | None) -> bool:
    """Whether Ray's connection error comes from token authentication (it is wrapped twice, as text)."""
    while exc is not None:
        if type(exc).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RayExecutor:
    """Runs tasks as Ray tasks on the cluster at `address`: one CPU each; an exclusive task (timing) reserves
    every CPU of one node, with nothing else in flight. `n` is the cluster's CPU count."""

    def __init__(self, address: str):
        ray = _import_ray()
        self.address = address
        self._ray = ray
        self._owns = not ray.is_initialized()  # a caller's own connection is left open on close()
        if self._owns:
            _check_reachable(address)
            self._connect(address)
        else:
            self._check_same(address)
        try:
            from .quiet import debug_enabled

            self._debug = debug_enabled()
            self._plain = ray.remote(num_cpus=1, max_retries=0)(_call)
            self._leaky = ray.remote(num_cpus=1, max_retries=0, max_calls=RECYCLE_AFTER)(_call_leaky)
            self.n = int(ray.cluster_resources().get("CPU", 0))
            self._check_version()
        except BaseException:
            self.close()
            raise

    def _connect(self, address: str) -> None:
        import logging

        from .quiet import silenced

        ray = self._ray
        try:
            # configure_logging=False: the library leaves the process's loggers alone; silenced(): Ray's C++
            # core retries out loud on fd 2 while it connects (once the CLI has configured quiet output)
            with silenced(), _signal_handlers_kept(), _interrupts_surface():
                ray.init(address=address, log_to_driver=False, configure_logging=False,
                         logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError, ray.exceptions.RayError) as exc:
            if _auth_refused(exc):
                self._fail(f"The Ray cluster at {address} refused the connection: its token authentication did "
                           "not accept this client (RAY_AUTH_MODE is "
                           f"{os.environ.get('RAY_AUTH_MODE', 'unset')}). Expected RAY_AUTH_MODE=token and the "
                           f"cluster's token. {AUTH_FIX}")
            self._fail(f"Cannot connect to the Ray cluster at {address}: {_first_line(exc)}. Expected a running "
                       "Ray 2.60 head at that address, reached with the same Python and Ray versions. Fix: check "
                       "--ray / RAY_ADDRESS, and `ray --version` and `python --version` on the head.")

    def _check_same(self, address: str) -> None:
        """This process is connected to Ray already (a notebook's ray.init): only to the same cluster."""
        theirs = self._ray.get_runtime_context().gcs_address
        if _host_port(address) not in (None, _host_port(theirs)):
            raise InputError(f"This process is already connected to the Ray cluster at {theirs}, not {address}. "
                             "Expected one cluster per process. Fix: pass --ray "
                             f"{theirs}, or call ray.shutdown() first.")

    def _fail(self, message: str):
        if self._ray.is_initialized():
            self._ray.shutdown()
        raise InputError(message) from None

    def _check_version(self) -> None:
        """One task on the cluster: quantbench must import there, in the same version as here."""
        ray = self._ray
        try:
            with _interrupts_surface():
                theirs = ray.get(ray.remote(num_cpus=0, max_retries=0)(_version).remote(), timeout=FIRST_TASK_S)
        except ray.exceptions.GetTimeoutError:
            raise InputError(f"The Ray cluster at {self.address} did not run a first small task within "
                             f"{FIRST_TASK_S:.0f} s. Expected its nodes to start Python workers. Fix: check the "
                             "cluster with `ray status` and its logs (session_latest/logs on the head).") from None
        except ray.exceptions.RayError as exc:
            raise InputError(f"quantbench does not run on the Ray cluster at {self.address}: "
                             f"{_first_line(exc)}. Expected quantbench {__version__} installed on every node. "
                             f"Fix: pip install 'quantbench[ray]=={__version__}' on each node.") from None
        if theirs != __version__:
            raise InputError(f"The Ray cluster at {self.address} runs quantbench {theirs}; this is {__version__}. "
                             f"Expected the same version on every node. Fix: pip install "
                             f"'quantbench[ray]=={__version__}' on each node, or here.")

    def _whole_node(self) -> dict:
        """Ray options that reserve every CPU of the alive node with the most CPUs."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in self._ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1]
        if not nodes:
            raise InputError(f"The Ray cluster at {self.address} has no node with a CPU. Expected at least one "
                             "worker node. Fix: add a node to the cluster.")
        node = max(nodes, key=lambda n: n["Resources"]["CPU"])
        return {"num_cpus": node["Resources"]["CPU"],
                "scheduling_strategy": NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)}

    def _submit(self, task: Task):
        remote = self._leaky if task.leaky else self._plain
        if task.exclusive:
            remote = remote.options(**self._whole_node())
        return remote.remote(task.fn, task.args, self._debug)

    def _collect(self, ref, task: Task):
        ray = self._ray
        try:
            with _interrupts_surface():
                reply = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # raised outside `_call`: quantbench's own bug
            raise TaskBug(f"{_first_line(exc)} (in task {task.key} on Ray:\n{exc})") from None
        except ray.exceptions.RayError as exc:  # the worker or its node died, or ran out of memory
            return Died(task.key, f"{task.key}: its Ray worker died: {_first_line(exc)}")
        if reply[0] == "error":
            raise reply[1]
        if reply[0] == "bug":
            raise TaskBug(f"{reply[1]} (in task {task.key}; Ray worker traceback:\n{reply[2]})")
        return reply[1]

    def run(self, tasks: list[Task], on_done: Callable | None = None) -> dict:
        ray = self._ray
        results: dict = {}
        pending = list(order(tasks))
        busy: dict = {}  # ObjectRef -> Task
        try:
            while pending or busy:
                ready = ready_tasks(pending, results, on_done)
                exclusive_running = any(t.exclusive for t in busy.values())
                for task in ready:
                    if exclusive_running or (task.exclusive and busy):
                        break  # an exclusive task runs alone: it waits for the others, the others for it
                    pending.remove(task)
                    busy[self._submit(task)] = task
                    exclusive_running = task.exclusive
                if not busy:
                    continue
                with _interrupts_surface():
                    done, _ = ray.wait(list(busy), num_returns=1, timeout=WAIT_S)
                for ref in done:
                    task = busy.pop(ref)
                    results[task.key] = self._collect(ref, task)
                    if on_done:
                        on_done(task, results[task.key])
        except BaseException:  # Ctrl-C, or an error re-raised: nothing of this plan keeps running
            self._cancel(list(busy))
            raise
        return results

    def _cancel(self, refs: list) -> None:
        for ref in refs:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is gone: nothing left to stop
                pass

    def close(self) -> None:
        """Disconnect from the cluster (a connection this executor opened)."""
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
