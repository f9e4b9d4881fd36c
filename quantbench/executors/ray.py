"""Runs a study's plan of tasks on an existing Ray cluster (`--ray ADDRESS`), with the interface of
`executor.Workers`.

No node needs to see this machine's disk: a task that reads files says which (`plan.ships`); they go through
Ray's object store (whole files once per content, each node keeping its own cache; evaluation rows by value, a
task's worth at a time, released when it is done), and what the task writes comes back by value, so only this
process writes the study's folder (`shipping`). Timing (the exclusive task) runs here, in a worker process of
this machine, alone: its figures are this machine's, the one `results.json` describes. Every node must have
the same quantbench installed: each is asked before any work. Ray's own log lines stay on the cluster
(`log_to_driver=False`); what a task raises comes back as its reply, and a task whose Ray worker dies becomes
`Died` with the reason.
"""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import signal
import socket
import threading
from typing import Callable

from ..core.errors import InputError
from ..core.version import __version__
from . import shipping
from .plan import RECYCLE_AFTER, Died, Executor, Ran, Reply, Task, TaskBug

CLIENT_PORT = 10001  # Ray Client's port on a head (`ray start --head --ray-client-server-port`), Ray's default
CONNECT_S = 5.0   # seconds to open a TCP connection to the head before saying it is unreachable
FIRST_TASK_S = 120.0  # a first task starts a worker process: slow on a busy node, never endless
WAIT_S = 0.5      # ray.wait's timeout: between waits, this process handles Ctrl-C
INSTALL = "pip install 'quantbench[ray]'"
AUTH_FIX = ("Fix: export RAY_AUTH_MODE=token and the cluster's token as RAY_AUTH_TOKEN (or its file as "
            "RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token): `ray get-auth-token` prints it on the head.")


def _call(fn, args, parts, debug: bool):
    """Runs on a Ray worker: the task, with its errors as a reply, as a local worker sends them. A shipped task
    (`parts` not None) runs in a folder of its own holding its parts; its reply carries the files it wrote into
    its study folder there and that folder's path, and names cached files by their place in it."""
    if debug:
        os.environ["QUANTBENCH_DEBUG"] = "1"
    from ..core.quiet import configure

    configure()  # keeps TensorFlow's chatter out of the worker's log
    if parts is None:
        return Reply.of(fn, args)
    import ray

    folder, inputs, links = shipping.open_task(parts, ray.get)
    try:
        reply = Reply.of(fn, tuple(a.there(folder) if hasattr(a, "there") else a for a in args))
        return shipping.swap(reply, links), shipping.outputs(folder, inputs), str(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _call_leaky(fn, args, parts, debug: bool):
    """`_call` for leaky tasks (TF conversions): its own function, so Ray retires a worker after a few."""
    return _call(fn, args, parts, debug)


def _facts(modules: tuple) -> dict:
    """Runs on each node before any work: its quantbench version, and which of `modules` it has installed (a
    package's folder without its code, an uninstall's leftover, is not one)."""
    import importlib.util

    def installed(module):
        spec = importlib.util.find_spec(module)
        return spec is not None and spec.origin not in (None, "namespace")

    return {"version": __version__, "has": {m: installed(m) for m in modules}}


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


def _raylets() -> list[dict]:
    """This machine's Ray nodes, as their raylet processes' flags (Ray's own driver finds its node the same way)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "raylet" and proc.info["cmdline"]:
            found.append(dict(a[2:].split("=", 1) for a in proc.info["cmdline"] if a.startswith("--") and "=" in a))
    return found


def _check_attachable(address: str) -> None:
    """A `host:port` driver attaches to a node of that cluster on this machine, through the socket in that node's
    temp folder; without one (a laptop, a container, another mount namespace) Ray waits, then aborts the
    process. Say so at once: such a driver connects through Ray Client (`ray://`)."""
    hp = _host_port(address)
    if hp is None or address.startswith("ray://"):
        return
    mine = [r for r in _raylets() if r.get("gcs-address", "").rpartition(":")[2] == str(hp[1])]
    if mine and any(os.path.exists(r.get("raylet_socket_name", "")) for r in mine):
        return
    why = ("its node on this machine keeps its files where this process cannot see them (another container or "
           "mount namespace)") if mine else "no node of that cluster runs on this machine"
    raise InputError(f"Cannot attach to the Ray cluster at {address}: {why}, and a driver given host:port needs "
                     "one. Expected a Ray Client address for a cluster elsewhere: ray://HOST:PORT, the head's "
                     f"client port ({CLIENT_PORT} unless `ray start --head --ray-client-server-port` says "
                     f"otherwise). Fix: pass --ray ray://{hp[0]}:{CLIENT_PORT}.")


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


class RayExecutor(Executor):
    """Runs tasks as Ray tasks on the cluster at `address`: one CPU each; an exclusive task (timing) runs on this
    machine, with nothing else in flight. `n` is the cluster's CPU count."""

    timed_on = "this machine (the driver), in a worker process, alone: not a Ray node"

    def __init__(self, address: str, here: Callable | None = None):
        """`here` makes the executor on this machine that runs exclusive tasks (timing): `local.make` gives one
        worker process, so TensorFlow stays out of this one; None runs them in this process."""
        ray = _import_ray()
        self.address = address
        self._make_here = here
        self._ray = ray
        self._owns = not ray.is_initialized()  # a caller's own connection is left open on close()
        self._here = None  # the worker process on this machine that times (see `run`)
        self._blobs: dict = {}  # (path, its version) -> (kind, sha256, ObjectRef): sent once per plan
        self._sent: dict = {}  # ObjectRef of a task in flight -> its Shipment and parts (their refs held till done)
        if self._owns:
            _check_reachable(address)
            _check_attachable(address)
            self._connect(address)
        else:
            self._check_same(address)
        try:
            from ..core.quiet import debug_enabled

            self._debug = debug_enabled()
            self._plain = ray.remote(num_cpus=1, max_retries=0)(_call)
            self._leaky = ray.remote(num_cpus=1, max_retries=0, max_calls=RECYCLE_AFTER)(_call_leaky)
            self.n = int(ray.cluster_resources().get("CPU", 0))
            self._check_nodes()
        except BaseException:
            self.close()
            raise

    def _connect(self, address: str) -> None:
        import logging

        from ..core.quiet import silenced

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

    def _nodes(self) -> list[dict]:
        nodes = [n for n in self._ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1]
        if not nodes:
            raise InputError(f"The Ray cluster at {self.address} has no node with a CPU. Expected at least one "
                             "worker node. Fix: add a node to the cluster.")
        return nodes

    def _probe(self, modules: tuple = ()) -> dict:
        """`_facts` from every node with a CPU (where tasks run), by a task of no CPU pinned to each: node's
        name -> its facts, or the error that kept it from running there, or None when it did not start in time."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self._ray
        probe = ray.remote(num_cpus=0, max_retries=0)(_facts)
        asked = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                 .remote(tuple(modules)): f"{n['NodeManagerAddress']} (node {n['NodeID'][:8]})"
                 for n in self._nodes()}
        with _interrupts_surface():
            ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=FIRST_TASK_S)
        found = {}
        for ref, name in asked.items():
            try:
                found[name] = ray.get(ref) if ref in ready else None
            except ray.exceptions.RayError as exc:
                found[name] = exc
        return found

    def _check_nodes(self) -> None:
        """Every node must run this quantbench, in this version: the nodes that do not are named, before any work."""
        problems = []
        for name, facts in self._probe().items():
            if facts is None:
                problems.append(f"{name} did not run a first small task within {FIRST_TASK_S:.0f} s")
            elif isinstance(facts, BaseException):
                problems.append(f"{name} cannot run quantbench ({_first_line(facts, 160)})")
            elif facts["version"] != __version__:
                problems.append(f"{name} runs quantbench {facts['version']}")
        if problems:
            those = "that node" if len(problems) == 1 else "those nodes"
            raise InputError(f"The Ray cluster at {self.address} cannot run this study: {'; '.join(problems)}. "
                             f"Expected quantbench {__version__} (this one) on every node, starting Python "
                             f"workers. Fix: pip install 'quantbench[ray]=={__version__}' on {those}; check a "
                             "node that does not start workers with `ray status` and its logs.")

    def require(self, module: str, need: str, extra: str) -> None:
        """Refuse, before any work, a cluster where a node cannot import `module` (an optional extra's package)."""
        lacking = [name for name, facts in self._probe((module,)).items()
                   if not isinstance(facts, dict) or not facts["has"][module]]
        if lacking:
            those = "that node" if len(lacking) == 1 else "those nodes"
            raise InputError(f"{need}, and {', '.join(lacking)} of the Ray cluster at {self.address} "
                             f"{'lacks' if len(lacking) == 1 else 'lack'} it. Expected quantbench[{extra}] on "
                             f"every node. Fix: pip install 'quantbench[{extra}]=={__version__}' on {those}.")

    def _part(self, part) -> tuple:
        """A part as a task receives it: (name, kind, sha256, ObjectRef). Rows are put for this task alone; a whole
        file or folder once per plan and content (a node fetches it only when its cache lacks that content)."""
        ray = self._ray
        if part.rows is not None:
            return part.name, shipping.ROWS, None, ray.put(shipping.rows_of(part.path, part.rows))
        key = (part.path, shipping.version_of(part.path))
        if key not in self._blobs:
            kind, sha, content = shipping.blob(part.path)
            self._blobs[key] = kind, sha, ray.put(content)
        return (part.name, *self._blobs[key])

    def _submit(self, task: Task):
        remote = self._leaky if task.leaky else self._plain
        how = getattr(task.fn, "ships", None)
        if how is None:  # no files: its arguments as they are
            ref = remote.remote(task.fn, task.args, None, self._debug)
            self._sent[ref] = None
            return ref
        shipment = how(*task.args)
        parts = [self._part(p) for p in shipment.parts]
        ref = remote.remote(task.fn, shipment.args, parts, self._debug)
        self._sent[ref] = shipment, parts
        return ref

    def _collect(self, ref, task: Task):
        ray = self._ray
        sent = self._sent.pop(ref, None)  # its rows' references go with it: the object store lets go of them
        try:
            with _interrupts_surface():
                reply = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # raised outside `_call`: quantbench's own bug
            raise TaskBug(f"{_first_line(exc)} (in task {task.key} on Ray:\n{exc})") from None
        except ray.exceptions.RayError as exc:  # the worker or its node died, or ran out of memory
            return Died(task.key, f"{task.key}: its Ray worker died: {_first_line(exc)}")
        reply = copy.deepcopy(reply)  # its own arrays, as from a local worker: Ray's are read-only views of its store
        if sent is not None:
            reply = self._landed(reply, *sent)
        return reply.result(task.key, "Ray worker")

    def _landed(self, sent_back: tuple, shipment, parts) -> Reply:
        """A shipped task's reply: the files it wrote, written into the study's folder here; paths of its folder
        on the node, in its result or its error, named as they are here."""
        reply, files, there = sent_back
        if files and shipment.home:
            shipping.write_back(shipment.home, files)
        pairs = [(f"{there}/{p.name}", p.path) for p in shipment.parts]
        pairs += [(f"{there}/{shipping.HOME}", shipment.home)] if shipment.home else []
        return shipping.swap(reply, pairs)

    def _timed_here(self, task: Task):
        """An exclusive task (timing), run alone on this machine, in a worker process (TensorFlow stays out of
        this one): its figures are this machine's, not a node's."""
        import dataclasses

        if self._make_here is None:
            return task.fn(*task.args)
        if self._here is None:
            self._here = self._make_here()
        return self._here.run([dataclasses.replace(task, needs=())])[task.key]  # its needs are done (and here)

    def _may_start(self, task, busy, pending):
        # no more in flight than the cluster runs at once: their rows are in its object store
        return task.exclusive or len(busy) < max(self.n, 1)

    def _start(self, task):
        if task.exclusive:  # timing: here, alone, to its end
            return Ran(self._timed_here(task))
        return self._submit(task)

    def _finished(self, busy):
        ran = [(handle, handle.result) for handle in busy if isinstance(handle, Ran)]
        if ran or not busy:
            return ran
        with _interrupts_surface():
            done, _ = self._ray.wait(list(busy), num_returns=1, timeout=WAIT_S)
        return [(ref, self._collect(ref, busy[ref])) for ref in done]

    def _abandon(self, busy):
        """Ctrl-C, or an error re-raised: nothing of this plan keeps running."""
        for ref in busy:
            if isinstance(ref, Ran):
                continue
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is gone: nothing left to stop
                pass

    def _plan_done(self):
        self._sent.clear()
        self._blobs.clear()  # the plan's files leave the object store; a node's cache keeps them

    def close(self) -> None:
        """Stop the timing worker here; disconnect from the cluster (a connection this executor opened)."""
        if self._here is not None:
            self._here.close()
            self._here = None
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
