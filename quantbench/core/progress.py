"""Progress bars for long work (rich, on stderr), or nothing when quiet."""
from __future__ import annotations

import contextlib
import time


class Silent:
    """Reports nothing."""

    @contextlib.contextmanager
    def task(self, description: str, total: int):
        yield lambda n=1, note=None: None

    def log(self, message: str) -> None:
        pass


class Bars(Silent):
    """rich progress bars on stderr, one per stage."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int):
        if not self.console.is_terminal:  # a log (CI, a pipe): one line per step, with the time since the start
            yield self._lines(description, total)
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("{task.fields[note]}"),
                      console=self.console, transient=False) as bar:
            task = bar.add_task(description, total=total, note="")

            def advance(n: int = 1, note: str | None = None):
                bar.update(task, advance=n, note=note or "")
            yield advance

    def _lines(self, description: str, total: int | None):
        start, done = time.perf_counter(), [0]

        def advance(n: int = 1, note: str | None = None):
            done[0] += n
            if total is None and not (n == 0 and note):  # open-ended (timing rounds): its closing note only
                return
            count = f"{done[0]}/{total}" if total else f"{done[0]}"
            self.console.print(f"{description:<24} {count:>7} {time.perf_counter() - start:7.1f} s  {note or ''}",
                               highlight=False, soft_wrap=True)
        return advance

    def log(self, message: str) -> None:
        self.console.print(message)


def reporter(quiet: bool) -> Silent:
    return Silent() if quiet else Bars()
