"""The errors quantbench raises on purpose; the CLI turns them into one line and exit code 2."""


class QuantbenchError(Exception):
    """Base of every error quantbench raises knowingly."""


class InputError(QuantbenchError, ValueError):
    """Bad input from the user: a path, a file, an array or an option.

    Messages follow one pattern: what was wrong, where, what was expected, how to fix it.
    """


class QuantbenchWarning(UserWarning):
    """Something quantbench chose or left out that the user should know (an unused array): one line on the
    terminal (the CLI shows it as `quantbench: warning: ...`)."""


class LiteRTError(InputError):
    """LiteRT refused a model (at load or at invoke); `reason` is LiteRT's own words, in one line."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # crosses process boundaries (workers) with its reason
        return type(self), (str(self), self.reason)


class ConversionError(QuantbenchError):
    """The converter refused a technique; the message is the converter's reason in one line."""


def one_line(text, limit: int = 400) -> str:
    """Collapse a multi-line message (a converter's, say) to its most telling single line.

    MLIR errors carry `loc(...)` call-site chains before the reason; only the reason is kept, plus the
    converter's "TF Select ops: ..." list when it names the ops that have no builtin kernel.
    """
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    line = next((ln.split("error:", 1)[1].strip() for ln in lines if "error:" in ln), None)
    if line is None:
        line = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "unknown error")
    elif line.startswith("loc("):
        line = line.rsplit("): ", 1)[-1]
    select = next((ln for ln in lines if ln.startswith("TF Select ops:")), None)
    if select and select not in line:
        line = f"{line} ({select})"
    return line if len(line) <= limit else line[: limit - 3] + "..."


class TrainingError(QuantbenchError):
    """Fine-tuning failed (the loss diverged); the message says in which epoch and how to fix it."""


class TrackingError(QuantbenchError):
    """MLflow could not be reached or refused the study; the message says where, and that the study folder is intact."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM (the CLI's handlers raise it): unwinds like KeyboardInterrupt, so every `finally` cleans
    up, but no `except Exception` and not click catches it on the way."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them


pending: Interrupted | None = None  # set by the CLI's signal handler before it raises


def interrupt(signum: int, frame=None) -> None:
    """The CLI's SIGINT/SIGTERM handler: remember the signal, then unwind.

    Inside a finalizer (a `__del__`, a weakref callback: TensorFlow and LiteRT objects collected mid-study) Python
    prints an exception as "Exception ignored in ..." and carries on, so the study ran on to its commit and only then
    stopped (issue 21: Ctrl-C in the side studies). There the handler raises nothing and fires again 10 ms later,
    by SIGALRM, once the finalizer has returned.
    """
    global pending
    pending = Interrupted(signum)
    if _in_finalizer(frame):
        import signal

        previous = signal.getsignal(signal.SIGALRM)

        def again(_signum, later):
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
            interrupt(signum, later)

        signal.signal(signal.SIGALRM, again)
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        return
    raise pending


def _in_finalizer(frame) -> bool:
    """True when `frame` runs inside a `__del__` or a weakref callback, where a raised exception is ignored."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or (code.co_name in ("__call__", "_exitfunc") and
                                         code.co_filename.endswith("weakref.py")):
            return True
        frame = frame.f_back
    return False


def reraise_interrupt() -> None:
    """In an `except Exception` around code that calls back into Python (TF's converter calls our calibration
    generator): a signal raised there comes back wrapped as the library's own error; raise it again."""
    if pending is not None:
        raise pending
