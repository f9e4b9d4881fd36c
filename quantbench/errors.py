"""The errors quantbench raises on purpose; the CLI turns them into one line and exit code 2."""


class QuantbenchError(Exception):
    """Base of every error quantbench raises knowingly."""


class InputError(QuantbenchError, ValueError):
    """Bad input from the user: a path, a file, an array or an option.

    Messages follow one pattern: what was wrong, where, what was expected, how to fix it.
    """


class ConversionError(QuantbenchError):
    """The converter refused a technique; the message is the converter's reason in one line."""


def one_line(text: str, limit: int = 400) -> str:
    """Collapse a multi-line message (a converter's, say) to its most telling single line."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    line = (errors[0] if errors else (lines[0] if lines else "unknown error"))
    return line if len(line) <= limit else line[: limit - 3] + "..."


class TrainingError(QuantbenchError):
    """Fine-tuning failed (the loss diverged); the message says in which epoch and how to fix it."""
