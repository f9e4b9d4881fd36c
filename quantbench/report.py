"""Human-readable views of a Results object: the terminal table."""
from __future__ import annotations

from .results import Results


def _pct(v):
    return "—" if v is None else f"{v * 100:.2f}"


def table_rows(results: Results) -> list[list[str]]:
    """The study table as strings: one row per variant, the article's columns and more."""
    base = next((v.bytes for v in results.variants if v.technique == "float32" and v.ok), None)
    rows = []
    for v in results.variants:
        if not v.ok:
            rows.append([v.technique, v.engine, v.status, "", "", "", "", "", "", ""])
            continue
        delta = "—" if v.accuracy_delta_pp is None else f"{v.accuracy_delta_pp:+.2f}"
        ratio = f"{v.bytes / base:.2f}×" if base else ""
        rows.append([
            v.technique, v.engine, _pct(v.accuracy), delta, _pct(v.agreement),
            f"{v.bytes / 1024:.1f}", ratio, f"{v.latency_ms['median']:.3f}",
            f"{v.input_dtype}→{v.output_dtype}",
            "" if v.convert_s is None else f"{v.convert_s:.2f}",
        ])
    return rows


HEADERS = ["technique", "engine", "accuracy %", "Δ pp", "agree %", "KB", "size", "ms/img", "I/O", "convert s"]


def rich_table(results: Results):
    from rich.table import Table

    table = Table(title=f"quantbench — {results.model.get('name', 'model')}"
                        f" on {results.data.get('name', 'data')} ({results.data.get('eval_samples')} samples)")
    for i, h in enumerate(HEADERS):
        table.add_column(h, justify="left" if i in (0, 1, 8) else "right")
    for row in table_rows(results):
        table.add_row(*row)
    notes = [f"{v.technique} {v.status}: {v.error}" for v in results.variants if not v.ok]
    if not notes:
        return table
    from rich.console import Group
    from rich.text import Text

    return Group(table, *(Text(n) for n in notes))
