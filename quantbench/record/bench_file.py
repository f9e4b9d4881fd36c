"""What `quantbench bench --json` writes: the timings of .tflite files side by side, with one JSON round trip."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.errors import InputError
from . import schema


@dataclass(frozen=True)
class BenchResult:
    """`quantbench bench`: per file its inputs, batch-1 latency and throughput; the machine; the settings."""

    files: list[dict]
    machine: dict
    settings: dict

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False)

    @classmethod
    def checked(cls, raw: dict, path: Path) -> "BenchResult":
        """A parsed `--json` file read back (`results.load_saved`); a damaged one is an InputError."""
        found = schema.bench_problem(raw)
        if found:
            raise InputError(f"{path} is not a `quantbench bench` JSON quantbench can read: {found}. Fix: restore the "
                             "file as quantbench wrote it, or time the files again with quantbench bench --json.")
        return cls(raw["files"], raw["machine"], raw["settings"])
