"""progress.Bars: bars on a terminal; in a log, one line per finished step."""
from __future__ import annotations

import io
import re

from rich.console import Console

from quantbench.core.progress import Bars


def bars_to(stream) -> Bars:
    bars = Bars()
    bars.console = Console(file=stream, force_terminal=False, width=100)
    return bars


def test_a_log_gets_one_line_per_step_with_the_seconds_since_the_stage_began():
    out = io.StringIO()
    with bars_to(out).task("Converting, evaluating", 2) as advance:
        advance(note="convert:float32")
        advance(note="evaluate:float32:0")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"Converting, evaluating\s+1/2\s+\d+\.\d s  convert:float32", lines[0])
    assert re.fullmatch(r"Converting, evaluating\s+2/2\s+\d+\.\d s  evaluate:float32:0", lines[1])


def test_an_open_ended_stage_logs_its_closing_note_only():
    out = io.StringIO()
    with bars_to(out).task("Timing (batch 1)", None) as advance:
        for _ in range(50):  # rounds
            advance()
        advance(0, note="50 rounds, converged")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("50 rounds, converged") and " 50 " in lines[0]
