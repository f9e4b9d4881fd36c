"""A fork server for tests/test_bench_smoke.py: runs `bench/X.py ARGS` in a child forked from this process.

This process imports TensorFlow, Keras and quantbench once (import only: no op runs here, so no thread pool exists
yet, as in bench/fuzz.py's fork server); each script then runs as `__main__` in a forked child, as `python
bench/X.py ARGS` would run it, without paying TensorFlow's import (seconds) again. A child's own subprocesses
(`python -m quantbench ...`) are fresh interpreters as usual.

Protocol: one JSON request per line on stdin, {"script", "args", "stdout", "stderr", "tmp", "timeout"}; one JSON
reply per line on stdout, {"exit", "timed_out", "seconds", "cpu_seconds"}: `exit` is the script's exit code (1 for
an uncaught exception, whose traceback goes to its stderr file); `cpu_seconds` counts the child and the processes
it waited for; its temporary files go to `tmp`. A script past its timeout gets SIGTERM (its `finally` blocks run:
a server it started is stopped), then SIGKILL to its process group 30 s later. EOF on stdin ends the server.
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


def warm() -> None:
    """Import what the scripts import, once."""
    from quantbench import quiet

    quiet.configure()
    quiet.import_tensorflow()
    import keras  # noqa: F401
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import psutil  # noqa: F401
    import sklearn.datasets  # noqa: F401

    from quantbench import (bench, cli, conversion, data, evaluate, lq, mcu, models, report,  # noqa: F401
                            runtime, selective, study)


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


def wait(pid: int, timeout: float) -> tuple[int, bool, float]:
    """The child's exit status, whether it timed out, and the CPU seconds it and the children it waited for used;
    past `timeout` seconds SIGTERM, then SIGKILL to what is left of its process group 30 s later."""
    fd = os.pidfd_open(pid)
    try:
        timed_out = not select.select([fd], [], [], timeout)[0]
        if timed_out:
            os.kill(pid, signal.SIGTERM)
            select.select([fd], [], [], 30)
            try:
                os.killpg(pid, signal.SIGKILL)  # the group the child made: it and the processes it started
            except ProcessLookupError:
                pass
        _, status, usage = os.wait4(pid, 0)
        return status, timed_out, usage.ru_utime + usage.ru_stime
    finally:
        os.close(fd)


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything this process prints goes to stderr, never into the replies
    warm()
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            child(request["script"], request["args"], request["stdout"], request["stderr"], request["tmp"])
        status, timed_out, cpu = wait(pid, request["timeout"])
        replies.write(json.dumps({"exit": os.waitstatus_to_exitcode(status), "timed_out": timed_out,
                                  "seconds": round(time.perf_counter() - start, 2), "cpu_seconds": round(cpu, 2)})
                      + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
