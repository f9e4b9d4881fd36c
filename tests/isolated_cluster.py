"""A Ray cluster on one machine whose nodes cannot see each other's files nor the driver's: what a laptop talking
to a remote cluster (KubeRay, a few VMs) looks like. Used by tests/test_ray_isolated.py and bench/ray_isolated.py.

Every process of it shares one network namespace of its own, holding only a loopback interface: the nodes listen
on 127.0.0.1 there, and nothing of the cluster is reachable from the machine's network (Ray binds 0.0.0.0 as soon
as a cluster has several nodes, and replaces 127.0.0.1 by the machine's address unless that is all it finds). Each
node also has a mount namespace of its own with fresh tmpfs on /tmp and /dev/shm, so its Ray session, object
store and quantbench's cache are its alone and the test's /tmp is out of its sight; a driver gets a mount
namespace of its own too, with a tmpfs only it sees for the study's files. Every process is started here and
stopped by its PID (never `ray stop`). Needs root (or the right to create namespaces): `unavailable()` says why
not.
"""
from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")
GCS_PORT, CLIENT_PORT = 6379, 10001  # inside the cluster's own network namespace: nothing else listens there
ADDRESS = f"ray://127.0.0.1:{CLIENT_PORT}"


def unavailable() -> str | None:
    """Why this machine cannot host the cluster (namespaces refused), or None."""
    if sys.platform != "linux":
        return f"needs Linux namespaces (unshare); this is {sys.platform}"
    import shutil

    missing = [tool for tool in ("unshare", "nsenter", "mount", "ip") if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (Debian packages util-linux, mount, iproute2), not found on PATH"
    try:
        done = subprocess.run(["unshare", "--net", "--mount", "sh", "-c",
                               "ip link set lo up && mount -t tmpfs tmpfs /tmp"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run unshare: {exc}"
    if done.returncode:
        return (f"cannot create network and mount namespaces here (unshare --net --mount: "
                f"{done.stderr.strip() or done.returncode}); run as root")
    return None


class Cluster:
    """A head and worker nodes, each in its own mount namespace, all in one network namespace (see the module)."""

    def __init__(self, folder: Path, object_store_bytes: int = 150_000_000):
        self.folder = Path(folder)
        self.store = object_store_bytes
        token = secrets.token_hex(16)
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0",
                    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.env.pop("RAY_ADDRESS", None)
        self.env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # several nodes: Ray's default on Linux
        self.nodes: dict[int, dict] = {}  # PID -> {"log": path, "family": processes seen}
        self.head: int | None = None

    # ---- nodes -------------------------------------------------------------------------------------------

    def _start(self, name: str, ray_args: list[str], hide: tuple = (), env: dict | None = None) -> int:
        """`ray start --block` in a mount namespace of its own (fresh /tmp and /dev/shm; each path of `hide`
        covered by an empty folder, or a file by the file `hide` pairs it with), in the cluster's network."""
        log = self.folder / f"{name}.log"
        # Fresh /tmp and /dev/shm. The code a node runs stays in sight when it lives under /tmp (a CI clone there:
        # its checkout and .venv): each such folder, and each file `hide` puts in place, is held open on a
        # descriptor first, then bound back from it over the fresh /tmp; the `hide` mounts come last, on top.
        keep = sorted({p for p in (ROOT, Path(sys.prefix).resolve(), Path(RAY).resolve().parent.parent)
                       if Path("/tmp") in p.parents}, key=lambda p: len(p.parts))
        keep = [p for p in keep if not any(q in p.parents for q in keep)]
        opened, after, fd = [], [], 3
        for p in keep:
            opened.append(f"exec {fd}< {shlex.quote(str(p))}")
            after.append(f"mkdir -p {shlex.quote(str(p))} && mount --no-canonicalize --bind /proc/self/fd/{fd} {shlex.quote(str(p))}")
            fd += 1
        for item in hide:
            target, source = item if isinstance(item, tuple) else (item, None)
            if source:  # a file put in place of another
                opened.append(f"exec {fd}< {shlex.quote(str(source))}")
                after.append(f"mount --no-canonicalize --bind /proc/self/fd/{fd} {shlex.quote(str(target))}")
                fd += 1
            else:  # an empty folder in its place
                after.append(f"mount -t tmpfs tmpfs {shlex.quote(str(target))}")
        assert fd <= 10, "sh has descriptors 3 to 9 for this"
        setup = opened + ["mount -t tmpfs tmpfs /tmp", "mount -t tmpfs tmpfs /dev/shm"] + after
        script = " && ".join(setup + ["exec " + shlex.join([RAY, "start", "--block", *ray_args])])
        if self.head is None:
            cmd = ["unshare", "--net", "--mount", "sh", "-c", "ip link set lo up && " + script]
        else:
            cmd = ["nsenter", f"--net=/proc/{self.head}/ns/net", "--", "unshare", "--mount", "sh", "-c", script]
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=env or self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # a terminal's Ctrl-C reaches it only through stop
        self.nodes[proc.pid] = {"log": log, "proc": proc}
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text()[-3000:]
                self.stop(proc.pid)
                raise RuntimeError(f"the Ray node {name} did not start:\n{text}")
            time.sleep(0.3)
        return proc.pid

    def start_head(self, cpus: int = 1) -> int:
        self.head = self._start("head", [
            "--head", "--node-ip-address=127.0.0.1", f"--port={GCS_PORT}", f"--ray-client-server-port={CLIENT_PORT}",
            "--include-dashboard=false", "--disable-usage-stats", f"--num-cpus={cpus}",
            f"--object-store-memory={self.store}", *self._ports(0)])
        return self.head

    def add_node(self, cpus: int = 1, hide: tuple = (), env: dict | None = None) -> int:
        """A worker node; `hide` makes files or folders of this machine absent (or different) on it alone."""
        i = len(self.nodes)
        return self._start(f"node{i}", [
            f"--address=127.0.0.1:{GCS_PORT}", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
            f"--num-cpus={cpus}", f"--object-store-memory={self.store}", *self._ports(i)], hide, env)

    @staticmethod
    def _ports(i: int) -> list[str]:
        """Ports of node i's own servers: the nodes share one address, so each gets its own."""
        base = 20000 + 100 * i
        return [f"--min-worker-port={30000 + 1000 * i}", f"--max-worker-port={30000 + 1000 * i + 999}",
                f"--dashboard-agent-listen-port={base + 1}", f"--dashboard-agent-grpc-port={base + 2}",
                f"--metrics-export-port={base + 3}", f"--runtime-env-agent-port={base + 4}",
                f"--node-manager-port={base + 5}", f"--object-manager-port={base + 6}"]

    def sees(self, pid: int, path) -> bool:
        """Whether node `pid` sees `path` (through /proc/PID/root, its own view of the filesystem)."""
        return Path(f"/proc/{pid}/root{Path(path).resolve()}").exists()

    def client_log(self, chars: int = 3000) -> str:
        """The end of the head's Ray Client server logs (in the head's own /tmp): why a driver could not connect."""
        logs = Path(f"/proc/{self.head}/root/tmp/ray/session_latest/logs")
        return "".join(f"\n--- {f.name}:\n{f.read_text()[-chars:]}" for f in sorted(logs.glob("ray_client_server*")))

    def stop(self, pid: int) -> int:
        """SIGTERM to a node's `ray start --block`, then whatever of its processes lingers is killed. Returns how
        many had to be killed."""
        node = self.nodes.pop(pid)
        try:
            family = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        node["proc"].send_signal(signal.SIGTERM)
        try:
            node["proc"].wait(60)
        except subprocess.TimeoutExpired:
            node["proc"].kill()
            node["proc"].wait()
        _, alive = psutil.wait_procs(family, timeout=30)
        for p in alive:
            p.kill()
        return len(alive)

    def close(self) -> int:
        """Stop every node, worker nodes first, the head last. Returns how many processes had to be killed."""
        killed = 0
        for pid in [p for p in self.nodes if p != self.head] + ([self.head] if self.head in self.nodes else []):
            killed += self.stop(pid)
        return killed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- drivers ------------------------------------------------------------------------------------------

    def driver(self, private: Path, script: str, timeout: float = 600, env: dict | None = None
               ) -> subprocess.CompletedProcess:
        """Run shell `script` as a driver would run on a laptop: in the cluster's network (it reaches the head
        at 127.0.0.1 only), in a mount namespace of its own whose folder `private` is a tmpfs only it sees;
        `script` runs there, `$PRIVATE` naming it."""
        proc = self.start_driver(private, script, env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def start_driver(self, private: Path, script: str, env: dict | None = None) -> subprocess.Popen:
        """`driver`, started: its process (the root of the driver's process tree) to wait for."""
        private = Path(private)
        private.mkdir(parents=True, exist_ok=True)
        cmd = ["nsenter", f"--net=/proc/{self.head}/ns/net", "--", "unshare", "--mount", "sh", "-ec",
               f"mount -t tmpfs tmpfs {shlex.quote(str(private))} && cd {shlex.quote(str(private))} && {script}"]
        return subprocess.Popen(cmd, env={**(env or self.env), "PRIVATE": str(private)}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
