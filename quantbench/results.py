"""The results of a study: frozen dataclasses with one JSON round trip; reports read only these."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Variant:
    """One row of the study: a technique's model and its measurements."""

    technique: str
    engine: str
    status: str                      # "ok", "failed" or "skipped"
    error: str | None = None
    path: str | None = None          # relative to the study folder
    bytes: int | None = None
    input_dtype: str | None = None
    output_dtype: str | None = None
    accuracy: float | None = None    # fraction 0..1, when labels exist
    accuracy_delta_pp: float | None = None  # percentage points against the Keras model
    top5: float | None = None        # when the model has more than 5 classes
    agreement: float | None = None   # top-1 agreement with the float model (first output)
    fidelity: list | None = None     # per output: agreement, sqnr_db, max_abs_err
    latency_ms: dict | None = None   # {"median", "p90", "p99", "n"}
    convert_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Results:
    quantbench_version: str
    model: dict
    data: dict
    machine: dict
    settings: dict
    variants: list[Variant] = field(default_factory=list)

    def variant(self, technique: str) -> Variant:
        for v in self.variants:
            if v.technique == technique:
                return v
        raise KeyError(f"No variant {technique!r} in these results; have {[v.technique for v in self.variants]}.")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Results":
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(Variant)}
        variants = [Variant(**{k: v for k, v in row.items() if k in known}) for row in raw.pop("variants")]
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in fields}, variants=variants)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        return cls.from_json(Path(path).read_text())
