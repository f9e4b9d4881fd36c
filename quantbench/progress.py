"""Progress bars for long work (rich, on stderr), or nothing when quiet."""
from __future__ import annotations

import contextlib


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
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("{task.fields[note]}"),
                      console=self.console, transient=False) as bar:
            task = bar.add_task(description, total=total, note="")

            def advance(n: int = 1, note: str | None = None):
                bar.update(task, advance=n, note=note or "")
            yield advance

    def log(self, message: str) -> None:
        self.console.print(message)


def reporter(quiet: bool) -> Silent:
    return Silent() if quiet else Bars()
