"""One study's configuration, whatever the model and the data: what `demo`, `compare`, `run_study` and each study of
a sweep take, built once (the CLI builds it from its options; a script builds it as it likes)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import InputError
from .recommend import Goal


@dataclass(frozen=True)
class StudyConfig:
    """How a study runs. Every field has the CLI's default; `Goal` holds the budget, the target (and its branch of
    the decision tree) and what to minimise.

    techniques: names ('a,b', 'all', a list) or Techniques; None: the default set for the goal's target.
    calib_sizes: sample counts of the int8-only accuracy against calibration size side study; None: no study.
    time_budget: seconds of timing (None: 30; the demo 10). max_memory: GiB the study's process tree may hold
    (None: half the memory available when it starts, at most 3 GiB). workers: worker processes (0: this process;
    None: one per usable core for a model of 1 MB or more). ray: a Ray cluster's address, instead of workers.
    force: replace the study folder if quantbench wrote it.
    """

    techniques: object = None
    goal: Goal = field(default_factory=Goal)
    seed: int = 0
    threads: int = 1
    batch: int = 32
    qat_epochs: int = 0
    calib_sizes: tuple[int, ...] | None = None
    time_budget: float | None = None
    max_memory: float | None = None
    workers: int | None = None
    ray: str | None = None
    force: bool = False

    def __post_init__(self):
        if not isinstance(self.goal, Goal):
            raise InputError(f"goal={self.goal!r} is not a Goal. Expected quantbench.Goal(max_drop_pp=..., "
                             "target=..., optimize=...). Fix: pass goal=quantbench.Goal(1.0).")
        if isinstance(self.techniques, list):
            object.__setattr__(self, "techniques", tuple(self.techniques))
        if self.calib_sizes is not None:
            object.__setattr__(self, "calib_sizes", tuple(self.calib_sizes))
