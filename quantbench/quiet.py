"""Keep TensorFlow's and LiteRT's own chatter (C++ logs, absl, converter prints) off the user's screen."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings


def debug_enabled() -> bool:
    return os.environ.get("QUANTBENCH_DEBUG", "") not in ("", "0")


def configure() -> None:
    """Set the log levels TensorFlow reads at import; call before importing it."""
    if debug_enabled():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # no oneDNN banner; results identical run to run
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tf_keras|absl|ai_edge_litert)")
    for name in ("tensorflow", "absl", "keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def silenced():
    """Send stdout and stderr to /dev/null for the block: file descriptors 1 and 2 (C++) and sys.stdout/err."""
    if debug_enabled():
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        # Python-level writers too (tqdm bars, prints): in a notebook sys.stderr is not file descriptor 2.
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def import_tensorflow():
    """Import TensorFlow with its start-up logs silenced; every module gets TF through here."""
    configure()
    with silenced():
        import tensorflow as tf
    if not debug_enabled():
        tf.get_logger().setLevel(logging.ERROR)
        tf.autograph.set_verbosity(0)
    return tf
