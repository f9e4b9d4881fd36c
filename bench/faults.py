"""Issue 25's "Done when": each deliberate fault must make at least one test fail.

Each fault is applied to a copy of the tree (quantbench/ and tests/ in a temporary folder; the working tree is
never touched), the tests named for it run there, and the table says which failed. A fault whose line is no
longer in the code is reported as such (the code changed: update the pattern here).

    python bench/faults.py            # every fault
    python bench/faults.py merge      # the faults whose name contains "merge"
    python bench/faults.py --smoke    # every fault's line still in the code; one fault run with one of its tests
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name, file, the line as it is, the line with the fault, the tests that must catch it
FAULTS = [
    ("latency x1000", "quantbench/measure/timing.py",
     "times[name].append((time.perf_counter() - t0) * 1e3)",
     "times[name].append((time.perf_counter() - t0) * 1e6)",
     ["tests/test_numbers.py::test_a_5_ms_runner_reads_5_ms",
      "tests/test_numbers.py::test_1_ms_and_3_ms_runners_read_a_ratio_of_3",
      "tests/test_numbers.py::test_throughput_of_a_5_ms_batch_of_4_is_800_samples_per_second",
      "tests/test_numbers.py::test_wall_clock_runners_read_their_cost",
      "tests/test_paths.py::test_optimize_latency_ships_the_fastest_and_size_the_smallest"]),
    ("top-5 as top-1", "quantbench/measure/evaluate.py",
     "self.top5[i].append(np.argsort(-o.reshape(len(o), -1), axis=1)[:, :5])",
     "self.top5[i].append(np.argsort(-o.reshape(len(o), -1), axis=1)[:, :1])",
     ["tests/test_numbers.py::test_top5_counts_labels_in_the_five_best_scores_and_top1_only_the_best",
      "tests/test_compare.py::test_top5_when_more_than_5_classes"]),
    ("Stream.merge raising", "quantbench/measure/evaluate.py",
     '"""This stream followed by `later` (the next shard)."""',
     '"""This stream followed by `later` (the next shard)."""\n        raise RuntimeError("merge")',
     ["tests/test_paths.py::test_several_shards_give_the_figures_of_one",
      "tests/test_paths.py::test_several_shards_count_every_sample"]),
    ("drop_ci_pp reversed", "quantbench/core/stats.py",
     "d = (lost - gained) / n",
     "d = (gained - lost) / n",
     ["tests/test_numbers.py::test_paired_drop_ci_on_hand_counts",
      "tests/test_numbers.py::test_paired_drop_ci_against_a_textbook_example",
      "tests/test_numbers.py::test_paired_drop_ci_covers_the_true_drop_in_95_percent_of_simulated_studies",
      "tests/test_numbers.py::test_measure_reports_the_hand_counts_drop_with_its_sign",
      "tests/test_numbers.py::test_uncertain_when_the_interval_of_the_drop_crosses_the_budget"]),
    ("uncertain always true", "quantbench/measure/outputs.py",
     'uncertain = bool(gate.uncertain(o, budget))',
     'uncertain = True',
     ["tests/test_numbers.py::test_uncertain_when_the_interval_of_the_drop_crosses_the_budget",
      "tests/test_numbers.py::test_not_uncertain_when_the_whole_interval_is_within_the_budget",
      "tests/test_numbers.py::test_a_reference_choice_is_never_uncertain"]),
    ("budget <= made <", "quantbench/measure/outputs.py",
     'return (o["reference_hits"] - o["hits"]) * 100 <= _exact(budget.max_drop_pp) * o["n"]',
     'return (o["reference_hits"] - o["hits"]) * 100 < _exact(budget.max_drop_pp) * o["n"]',
     ["tests/test_tasks.py::test_a_binary_sigmoid_classifier_is_scored_by_accuracy_and_auc",
      "tests/test_outputs.py::test_a_drop_of_exactly_the_budget_in_samples_is_within_it"]),
    ("budget <= made < (fractions)", "quantbench/measure/outputs.py",
     'return (_exact(o["reference"]) - _exact(o["value"])) * 100 <= _exact(budget.max_drop_pp)',
     'return (_exact(o["reference"]) - _exact(o["value"])) * 100 < _exact(budget.max_drop_pp)',
     ["tests/test_numbers.py::test_a_drop_of_exactly_the_budget_is_within_it",
      "tests/test_numbers.py::test_one_sample_of_200_lost_is_within_a_half_point_budget"]),
]


SMOKE = "drop_ci_pp reversed"  # --smoke runs this fault with its first test only (pure arithmetic: seconds)


def run(fault, python: str) -> tuple[str, list[str]]:
    name, file, before, after, tests = fault
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        copy = Path(tmp)
        for part in ("quantbench", "tests"):
            shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
        source = (copy / file).read_text()
        if source.count(before) != 1:
            return "pattern not found once: the code changed", []
        (copy / file).write_text(source.replace(before, after))
        env = {**os.environ, "PYTHONPATH": str(copy)}
        proc = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings", "-rfE",
                               *tests], cwd=copy, env=env, capture_output=True, text=True, timeout=1800)
        # a test fails, or errors (its fixture, a study, raised): either way the suite goes red
        failed = sorted({f"{ln.split(' ')[1]} ({ln.split(' ')[0].lower()})" for ln in proc.stdout.splitlines()
                         if ln.startswith(("FAILED ", "ERROR "))})
        summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
        return summary, failed


def main(argv: list[str]) -> int:
    if "--smoke" in argv:  # checks the script runs, and that no fault's pattern went stale
        stale = [name for name, file, before, *_ in FAULTS if (ROOT / file).read_text().count(before) != 1]
        print(f"faults whose line is in the code once: {len(FAULTS) - len(stale)} of {len(FAULTS)}"
              + (f"; stale: {', '.join(stale)}" if stale else ""))
        name, file, before, after, tests = next(f for f in FAULTS if f[0] == SMOKE)
        chosen, missed = [(name, file, before, after, tests[:1])], len(stale)
    else:
        chosen, missed = [f for f in FAULTS if not argv or any(a in f[0] for a in argv)], 0
    for fault in chosen:
        summary, failed = run(fault, sys.executable)
        caught = bool(failed)
        missed += not caught
        print(f"{fault[0]}: {'CAUGHT' if caught else 'MISSED'} — {summary}")
        for test in failed:
            print(f"    fails: {test}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
