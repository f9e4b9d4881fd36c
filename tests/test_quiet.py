"""The library leaves the process alone: no environment, warning filter, logger or TF setting changed."""
import subprocess
import sys
import textwrap


def test_convert_and_predict_leave_the_process_globals_unchanged(tmp_path):
    script = textwrap.dedent("""
        import logging, os, sys, threading, warnings
        import numpy as np
        import tensorflow as tf, keras
        from tensorflow.python.framework import config

        def globals_():
            loggers = {n: l.level for n, l in logging.root.manager.loggerDict.items() if isinstance(l, logging.Logger)}
            return (dict(os.environ), list(warnings.filters), loggers, logging.root.level,
                    config.is_op_determinism_enabled())

        # TF's and absl's own one-time set-up (absl's logger level on first use) happens before the baseline:
        # what is checked is what quantbench changes.
        inputs = keras.Input((4,))
        tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, keras.layers.Dense(2)(inputs))).convert()
        before = globals_()
        import quantbench
        from quantbench.inputs import models
        inputs = keras.Input((8, 8, 1))
        model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))
        x = np.random.default_rng(0).uniform(0, 16, (20, 8, 8, 1)).astype("float32")
        content = quantbench.convert(model, "int8-only", x).content
        with models.deterministic(0):
            pass
        # two threads loading and predicting at once, while this thread prints
        out = []
        threads = [threading.Thread(target=lambda: out.append(quantbench.load(content).predict(x))) for _ in range(2)]
        for t in threads:
            t.start()
        print("user output during the loads", flush=True)
        for t in threads:
            t.join()
        after = globals_()
        for name, a, b in zip(("environ", "warning filters", "logger levels", "root level", "op determinism"),
                              before, after):
            if a != b:
                new = {k: b[k] for k in b if k not in a or a[k] != b[k]} if isinstance(a, dict) else b[:3]
                print("CHANGED", name, str(new)[:300])
        print("outputs", len(out), out[0].shape)
        print("user output after the loads", flush=True)
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "CHANGED" not in proc.stdout, proc.stdout
    assert "user output during the loads" in proc.stdout and "user output after the loads" in proc.stdout
    assert "outputs 2 (20, 10)" in proc.stdout


def test_silenced_is_safe_when_threads_overlap(capfd):
    """Once configured (the CLI), overlapping silenced() blocks in two threads restore fds 1 and 2 at the end."""
    import os
    import threading

    from quantbench.core import quiet

    quiet.configure()
    started, release = threading.Barrier(2), threading.Event()

    def worker():
        with quiet.silenced():
            started.wait()
            os.write(2, b"hidden C++ chatter\n")
            release.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    with quiet.silenced():
        started.wait()
    release.set()  # the main thread left first; the worker still holds the redirect, then restores it
    t.join()
    os.write(1, b"visible after both\n")
    out, err = capfd.readouterr()
    assert "visible after both" in out and "hidden C++ chatter" not in err


def test_the_last_line_reaches_stderr_when_a_signal_left_a_silenced_block_open():
    """A signal's exception raised after `_enter()` and before the `try` that leaves (or while another thread is
    inside a block) left fd 2 on /dev/null: CI saw exit 143 with no "interrupted" line. The CLI restores first."""
    script = (
        "import sys\n"
        "from quantbench import cli; from quantbench.core import errors, quiet\n"
        "def app(**kwargs):\n"
        "    quiet._enter()  # half-way into silenced(): no try, so nothing leaves it\n"
        "    raise errors.Interrupted(15)\n"
        "cli.app = app\n"
        "cli.run()\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip() == "quantbench: interrupted (SIGTERM); unfinished output removed", proc.stderr


def test_restore_ends_every_block_and_the_blocks_still_open_leave_quietly(capfd):
    import os

    from quantbench.core import quiet

    quiet.configure()
    with quiet.silenced():
        with quiet.silenced():
            quiet.restore()
            os.write(2, b"seen at once\n")
    os.write(2, b"seen after\n")
    assert quiet._depth == 0 and quiet._saved == []
    _, err = capfd.readouterr()
    assert "seen at once" in err and "seen after" in err
