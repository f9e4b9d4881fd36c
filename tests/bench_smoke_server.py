"""A fork server for tests/test_bench_smoke.py: runs `bench/X.py ARGS` in children forked from this process.

This process imports TensorFlow, Keras and quantbench once (import only: no op runs here, so no thread pool exists
yet, as in bench/fuzz.py's fork server); each script then runs as `__main__` in a forked child, as `python
bench/X.py ARGS` would run it, without paying TensorFlow's import (seconds) again. A child's own subprocesses
(`python -m quantbench ...`) are fresh interpreters as usual. Up to SLOTS children run at a time.

Protocol: one JSON request per line on stdin, {"name", "script", "args", "stdout", "stderr", "tmp", "timeout"};
one JSON reply per line on stdout as each child ends, {"name", "exit", "timed_out", "seconds", "cpu_seconds"}:
`exit` is the script's exit code (1 for an uncaught exception, whose traceback goes to its stderr file);
`cpu_seconds` counts the child and the processes it waited for; its temporary files go to `tmp`. A script past its
timeout gets SIGTERM (its `finally` blocks run: a server it started is stopped), then SIGKILL to what is left of
its process group 30 s later. EOF on stdin ends the server once its children have ended; SIGTERM ends the server
and, the same way, the children running.
"""
from __future__ import annotations

import json
import os
import runpy
import select
import signal
import sys
import tempfile
import time
import traceback

SLOTS = 2  # children at a time: the machine's cores


def warm() -> None:
    """Import what the scripts import, once."""
    from quantbench.core import quiet
    from quantbench.runtime.tf import import_tensorflow

    quiet.configure()
    import_tensorflow()
    import keras  # noqa: F401
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import psutil  # noqa: F401
    import sklearn.datasets  # noqa: F401

    # noqa: F401 (each import below): loaded before the fork, so that every child starts with them
    from quantbench import cli  # noqa: F401
    from quantbench.engines import converter as conversion, litert_quantizer as lq  # noqa: F401
    from quantbench.engines import selective  # noqa: F401
    from quantbench.inputs import data, models  # noqa: F401
    from quantbench.measure import evaluate, mcu, timing as bench  # noqa: F401
    from quantbench.report import report  # noqa: F401
    from quantbench.runtime import litert as runtime  # noqa: F401
    from quantbench.study import pipeline as study  # noqa: F401


def child(script: str, args: list[str], stdout: str, stderr: str, tmp: str) -> None:
    """In the forked child: run `script` as __main__ with `args`, output to the two files and temporary files to
    `tmp` (its own and its subprocesses'); never returns."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group: a timeout ends the script and what it started, nothing else
        os.environ["TMPDIR"] = tempfile.tempdir = tmp
        with open(os.devnull, "rb") as nothing, open(stdout, "wb") as out, open(stderr, "wb") as err:
            os.dup2(nothing.fileno(), 0)  # stdin carries the requests: never the script's to read
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout: unwind, so `finally` blocks run
        sys.argv = [script, *args]
        sys.path[0] = os.path.dirname(os.path.abspath(script))  # as `python bench/X.py` sets it
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, (int, type(None))):
                print(exc.code, file=sys.stderr)
    except BaseException:  # what the interpreter prints for an uncaught exception
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class Job:
    """One running child: its pid, a pidfd to wait on, its request, and when it started and was told to stop."""

    def __init__(self, request: dict):
        self.request, self.start, self.terminated, self.killed = request, time.perf_counter(), None, False
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            child(request["script"], request["args"], request["stdout"], request["stderr"], request["tmp"])
        self.fd = os.pidfd_open(self.pid)

    def deadline(self) -> float:
        if self.killed:
            return float("inf")
        return self.start + self.request["timeout"] if self.terminated is None else self.terminated + 30

    def overdue(self) -> None:
        """Past its timeout: SIGTERM; 30 s after that, SIGKILL to the group the child made."""
        if self.terminated is None:
            os.kill(self.pid, signal.SIGTERM)
            self.terminated = time.perf_counter()
            return
        self.killed = True
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reply(self) -> dict:
        """Reap the ended child: its reply."""
        if self.terminated is not None:  # what is left of its group: the processes it started
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status, usage = os.wait4(self.pid, 0)
        os.close(self.fd)
        return {"name": self.request["name"], "exit": os.waitstatus_to_exitcode(status),
                "timed_out": self.terminated is not None, "seconds": round(time.perf_counter() - self.start, 2),
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2)}


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything this process prints goes to stderr, never into the replies
    warm()
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    queue, running, pending, reading = [], {}, b"", True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped early: end the running scripts first
    try:
        while reading or queue or running:
            while queue and len(running) < SLOTS:
                job = Job(queue.pop(0))
                running[job.fd] = job
            now = time.perf_counter()
            wait = min([job.deadline() - now for job in running.values()] + [3600])
            ready, _, _ = select.select([*running, *([0] if reading else [])], [], [], max(wait, 0))
            for fd in ready:
                if fd == 0:
                    chunk = os.read(0, 65536)
                    reading = bool(chunk)
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    queue += [json.loads(line) for line in lines if line.strip()]
                else:
                    replies.write(json.dumps(running.pop(fd).reply()) + "\n")
                    replies.flush()
            for job in running.values():
                if time.perf_counter() >= job.deadline():
                    job.overdue()
    finally:
        for job in running.values():  # SIGTERM now, SIGKILL to what is left of each group 30 s later
            job.overdue()
        for job in running.values():
            select.select([job.fd], [], [], max(job.deadline() - time.perf_counter(), 0))
            job.overdue()
            job.reply()


if __name__ == "__main__":
    main()
