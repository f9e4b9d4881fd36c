"""How long `Workers.close()` takes after its workers imported TensorFlow: what the end of a study, each worker
let go mid-study (a memory budget's recycling), and a Ctrl-C wait for. Two trees, alternating, each repetition in
a fresh process: a worker that returns from its loop runs the interpreter's teardown (TensorFlow's atexit work);
one that ends with os._exit does not.

Usage:
  .venv/bin/python bench/worker_exit.py --base /tmp/qb-before --reps 3   # base: a checkout of the commit before
  .venv/bin/python bench/worker_exit.py --base . --smoke                 # workers that import nothing: runs at all
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

CHILD = '''
import json, sys, time
from quantbench.executors import local


def task(heavy):
    if heavy:
        import tensorflow as tf
        return float(tf.constant(1.0).numpy())
    return 1.0


if __name__ == "__main__":
    run = local.Workers(2)
    run.run([local.Task(f"t{i}", task, (sys.argv[1] == "tf",)) for i in range(2)])
    start = time.perf_counter()
    run.close()
    print(json.dumps({"close_s": round(time.perf_counter() - start, 3), "workers": run.ran}))
'''


def once(tree: Path, heavy: bool, script: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, str(script), "tf" if heavy else "plain"], capture_output=True, text=True,
                         env=env, cwd=script.parent, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import tempfile

    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True, help="a checkout of the base commit (its PYTHONPATH)")
    p.add_argument("--tree", default=str(HERE), help="this branch's checkout")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--smoke", action="store_true", help="one repetition, workers that import nothing")
    a = p.parse_args()
    script = Path(tempfile.mkdtemp(prefix="qb-worker-exit-")) / "close_child.py"
    script.write_text(CHILD)
    for rep in range(1 if a.smoke else a.reps):
        for label, tree in (("base", a.base), ("branch", a.tree)):  # alternating: the machine's drift hits both
            row = {"rep": rep, "tree": label, **once(Path(tree).resolve(), not a.smoke, script)}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
