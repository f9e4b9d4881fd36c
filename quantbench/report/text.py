"""Plain-text figures: timings with their intervals, and the table `quantbench bench` prints (from a BenchResult,
so `quantbench report FILE.json` prints it again as it was)."""
from __future__ import annotations

import math

from ..record.bench_file import BenchResult


def ms_text(x: float, like: float | None = None) -> str:
    """Three significant digits of `like` (default x), so an interval prints like its median."""
    like = x if like is None else like
    decimals = max(0, 2 - math.floor(math.log10(like))) if like > 0 else 3
    return f"{x:.{decimals}f}"


def count_text(x: float, like: float | None = None) -> str:
    return f"{x / 1e3:.0f}k" if x >= 1e4 else (f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}")


def interval_text(figure: dict, key: str) -> str:
    """A timing figure with its 95 % interval, "0.0420 (0.0418–0.0422)"; with too few rounds for one, how many
    rounds there were instead, "512 (n = 1)". key: "median" (latency, ms) or "samples_per_s" (throughput)."""
    show = ms_text if key == "median" else count_text
    value, ci = figure[key], figure.get("ci95")
    if ci:
        return f"{show(value)} ({show(ci[0], value)}–{show(ci[1], value)})"
    return show(value) + (f" (n = {figure['n']})" if figure.get("n") is not None else "")


def render(result: BenchResult) -> str:
    """A plain-text table of a BenchResult, with the machine and how each phase stopped."""
    rows = [("file", "bytes", "ms/call (95% CI)", "p90 / p99 ms", "samples/s (95% CI)", "batch")]
    for f in result.files:
        lat, thr = f["latency_ms"], f["throughput"]
        rows.append((f["path"], f"{f['bytes']:,}", interval_text(lat, "median"),
                     f"{ms_text(lat['p90'])} / {ms_text(lat['p99'])}", interval_text(thr, "samples_per_s"),
                     str(thr["batch"])))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    first, m, s = result.files[0], result.machine, result.settings
    lat, thr = first["latency_ms"], first["throughput"]
    lowered = "" if s["batch_used"] == s["batch"] else f" (asked {s['batch']}, lowered to fit memory)"
    lines += ["",
              f"Batch 1: {_rounds(lat['n'], 'interleaved round')} ({lat['stopped']}); throughput at batch "
              f"{s['batch_used']}{lowered}: {_rounds(thr['n'])} "
              f"({thr['stopped']}); time budget {s['time_budget_s']:g} s. Inputs: {s['input']}.",
              f"{m['cpu']} ({', '.join(m['simd']) or 'no SIMD flags read'}), {m['threads']} thread"
              f"{'' if m['threads'] == 1 else 's'}, LiteRT {m['litert']}. Intervals are 95 % (order statistics "
              "of the rounds and of the medians of 10 consecutive blocks of rounds: drift during the run widens them); "
              "a shared machine can drift for longer than one run: compare files within one run."]
    lines += [f"{f['path']}: {builtin_kernels_note(f['xnnpack_refused'])}" for f in result.files
              if f.get("xnnpack_refused")]
    return "\n".join(lines)


def _rounds(n: int, word: str = "round") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def builtin_kernels_note(reason: str) -> str:
    """What a figure timed on LiteRT's built-in kernels means, given XNNPACK's reason for refusing the file."""
    return (f"timed on LiteRT's built-in kernels, because XNNPACK refused it ({reason}); a deployment that uses "
            "XNNPACK would not run it this way, so its speed here says little about one.")
