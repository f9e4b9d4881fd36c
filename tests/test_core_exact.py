"""recommend.py and evaluate.py to the letter: whole recommendations, exact messages, the boundaries of every check,
and the streamed metrics by hand. Pure numpy and hand-built rows: no model, no study."""
from __future__ import annotations

import math

import numpy as np
import pytest

from quantbench.core.errors import InputError
from quantbench.engines.techniques import get
from quantbench.measure import evaluate
from quantbench.measure.outputs import RAW_LIMIT, Budget, TaskSpec, Truth
from quantbench.record.results import Results, Variant
from quantbench.study import recommend


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def row(name, acc, kb, ms, io="float32", **kw):
    return Variant(name, "converter", "ok", path=f"{name}.tflite", bytes=int(kb * 1024), input_dtype=io,
                   output_dtype=io, accuracy=acc, agreement=1.0, latency_ms={"median": ms}, **kw)


def results(*rows, **kw):
    return Results("0", {}, {}, {}, {}, list(rows), **kw)


@pytest.fixture
def study():
    return results(row("keras", 0.980, 400, 0.70), row("float32", 0.980, 130, 0.040), row("dynamic", 0.978, 41, 0.030),
                   row("int8-only", 0.960, 40, 0.020, io="int8"), row("float16", 0.980, 70, 0.035),
                   row("weight-only-int4", 0.975, 24, 0.050),
                   Variant("int16x8", "converter", "failed", error="int16x8: refused"))


PASS = [{"criterion": "accuracy drop ≤ 0.4 pp", "figure": "accuracy -0.20 pp", "output": "output_0", "passed": True,
         "task": "classes", "uncertain": False}]
EXCLUDED = [{"technique": "int8-only", "why": "accuracy -2.00 pp is past the budget (accuracy drop ≤ 0.4 pp)"},
            {"technique": "weight-only-int4", "why": "accuracy -0.50 pp is past the budget (accuracy drop ≤ 0.4 pp)"},
            {"technique": "int16x8", "why": "failed: int16x8: refused"}]


# ---- recommend.choose, whole ------------------------------------------------------------------------------------

def test_choose_by_size_whole(study):
    assert recommend.choose(study, 0.4, "cpu", "size").to_dict() == {
        "technique": "dynamic", "target": "cpu", "optimize": "size", "max_drop_pp": 0.4, "metric": "accuracy",
        "uncertain": False, "max_ram_kb": None, "max_flash_kb": None, "excluded": EXCLUDED,
        "runners_up": [{"technique": "float16", "why": "70.0 KB against 41.0 KB, accuracy +0.00 pp"},
                       {"technique": "float32", "why": "130.0 KB against 41.0 KB, accuracy +0.00 pp"}],
        "summary": "Ship dynamic: the smallest of 3 variant(s) within the budget (accuracy drop ≤ 0.4 pp) for --target "
                   "cpu (41.0 KB; accuracy -0.20 pp against the float model). Runners-up: float16 (70.0 KB against 41.0 "
                   "KB, accuracy +0.00 pp); float32 (130.0 KB against 41.0 KB, accuracy +0.00 pp).",
        "criteria": [{"output": "output_0", "task": "classes", "criterion": "accuracy drop ≤ 0.4 pp"}],
        "verdicts": PASS}


def test_choose_by_latency_whole(study):
    rec = recommend.choose(study, 0.4, "cpu", "latency")
    assert rec.runners_up == [{"technique": "float16", "why": "0.035 ms/img against 0.030 ms/img, accuracy +0.00 pp"},
                              {"technique": "float32", "why": "0.040 ms/img against 0.030 ms/img, accuracy +0.00 pp"}]
    assert rec.summary == (
        "Ship dynamic: the fastest here of 3 variant(s) within the budget (accuracy drop ≤ 0.4 pp) for --target cpu "
        "(0.030 ms/img; accuracy -0.20 pp against the float model). Runners-up: float16 (0.035 ms/img against 0.030 "
        "ms/img, accuracy +0.00 pp); float32 (0.040 ms/img against 0.030 ms/img, accuracy +0.00 pp).")
    assert rec.optimize == "latency" and rec.excluded == EXCLUDED and rec.verdicts == PASS


def test_runners_up_that_round_alike_are_told_apart_exactly():
    # 8,800 and 8,810 bytes both read "8.6 KB": the runner-up's reason gives the bytes, never "8.6 KB against 8.6 KB"
    tie = results(row("keras", 0.9, 400, 1.0), row("float32", 0.9, 8810 / 1024, 0.0301),
                  row("dynamic", 0.9, 8800 / 1024, 0.0302), row("float16", 0.9, 8800 / 1024, 0.0302))
    assert recommend.choose(tie, 1.0, "cpu", "size").runners_up == [
        {"technique": "float16", "why": "8,800 bytes, the same as dynamic, accuracy +0.00 pp"},
        {"technique": "float32", "why": "8,810 bytes against 8,800 bytes, accuracy +0.00 pp"}]
    assert recommend.choose(tie, 1.0, "cpu", "latency").runners_up == [
        {"technique": "dynamic", "why": "0.0302 ms/img against 0.0301 ms/img, accuracy +0.00 pp"},
        {"technique": "float16", "why": "0.0302 ms/img against 0.0301 ms/img, accuracy +0.00 pp"}]


def test_runners_up_are_the_next_three_at_most():
    rows = [row("keras", 0.9, 400, 1.0), row("float32", 0.9, 100, 1.0)] + [
        row(n, 0.9, kb, 1.0) for n, kb in (("dynamic", 10), ("float16", 20), ("int8-fallback", 30), ("int16x8", 40),
                                          ("weight-only-int4", 50))]
    rec = recommend.choose(results(*rows), 1.0)
    assert [r["technique"] for r in rec.runners_up] == ["float16", "int8-fallback", "int16x8"]
    assert "of 6 variant(s)" in rec.summary


def test_runners_up_that_print_alike_are_told_apart_in_bytes():
    """Issue 24: '8.8 KB against 8.8 KB' said nothing; bytes (or 4 digits of ms) where the short forms match."""
    rows = [row("keras", 0.9, 400, 1.0), row("float32", 0.9, 100, 0.0081), row("dynamic", 0.9, 8.8, 0.0080),
            Variant(**{**row("float16", 0.9, 8.8, 0.0080).__dict__, "bytes": int(8.8 * 1024) + 3}),
            row("int8-fallback", 0.9, 8.8, 0.0080)]
    rec = recommend.choose(results(*rows), 1.0)
    assert [r["why"] for r in rec.runners_up] == ["9,011 bytes, the same as dynamic, accuracy +0.00 pp",
                                                  "9,014 bytes against 9,011 bytes, accuracy +0.00 pp",
                                                  "100.0 KB against 8.8 KB, accuracy +0.00 pp"]
    rec = recommend.choose(results(*rows), 1.0, "cpu", "latency")
    assert rec.runners_up[0]["why"] == "0.008 ms/img, the same as dynamic, accuracy +0.00 pp"
    assert rec.runners_up[-1]["why"] == "0.0081 ms/img against 0.008 ms/img, accuracy +0.00 pp"
    mcu = [row("float32", 0.98, 100, 1.0), mcu_row("int8-only", 3000, 30000), mcu_row("uint8-only", 3001, 29999)]
    rec = recommend.choose(results(*mcu), 1.0, "mcu", "size")
    assert rec.technique == "int8-only"  # the same 33,000 bytes in all, with less RAM
    assert rec.runners_up[0]["why"] == ("3,001 bytes of RAM + 29,999 of flash against 3,000 bytes of RAM + 30,000 of "
                                        "flash, accuracy +0.00 pp")


def test_latency_ties_and_missing_latency():
    """Ties in cost go to the branch's preferred techniques, in their order; no latency costs infinity."""
    rows = [row("keras", 0.9, 400, 1.0), row("float32", 0.9, 100, None), row("int8-fallback", 0.9, 50, 2.0),
            row("float16", 0.9, 50, 2.0), row("dynamic", 0.9, 50, 2.0)]
    rows[1] = Variant(**{**rows[1].__dict__, "latency_ms": None})
    rec = recommend.choose(results(*rows), 1.0, "cpu", "latency")
    assert [rec.technique] + [r["technique"] for r in rec.runners_up] == ["dynamic", "int8-fallback", "float16",
                                                                        "float32"]
    assert rec.runners_up[-1]["why"] == "no latency against 2.000 ms/img, accuracy +0.00 pp"
    rec = recommend.choose(results(*rows), 1.0, "cpu", "size")
    assert [rec.technique] + [r["technique"] for r in rec.runners_up] == ["dynamic", "int8-fallback", "float16",
                                                                        "float32"]
    rec = recommend.choose(results(*rows), 1.0, "gpu", "size")
    assert [rec.technique] + [r["technique"] for r in rec.runners_up] == ["float16", "int8-fallback", "float32"]


def test_gpu_whole(study):
    assert recommend.choose(study, 0.1, "gpu", "size").to_dict() == {
        "technique": "float16", "target": "gpu", "optimize": "size", "max_drop_pp": 0.1, "metric": "accuracy",
        "uncertain": False, "max_ram_kb": None, "max_flash_kb": None,
        "excluded": [{"technique": "dynamic", "why": "cannot serve --target gpu"},
                     {"technique": "int8-only", "why": "cannot serve --target gpu"},
                     {"technique": "weight-only-int4",
                      "why": "accuracy -0.50 pp is past the budget (accuracy drop ≤ 0.1 pp)"},
                     {"technique": "int16x8", "why": "failed: int16x8: refused"}],
        "runners_up": [{"technique": "float32", "why": "130.0 KB against 70.0 KB, accuracy +0.00 pp"}],
        "summary": "Ship float16: the smallest of 2 variant(s) within the budget (accuracy drop ≤ 0.1 pp) for --target "
                   "gpu (70.0 KB; accuracy +0.00 pp against the float model). Runners-up: float32 (130.0 KB against "
                   "70.0 KB, accuracy +0.00 pp).",
        "criteria": [{"output": "output_0", "task": "classes", "criterion": "accuracy drop ≤ 0.1 pp"}],
        "verdicts": [{"criterion": "accuracy drop ≤ 0.1 pp", "figure": "accuracy +0.00 pp", "output": "output_0",
                      "passed": True, "task": "classes", "uncertain": False}]}


def test_nothing_within_the_budget_says_what_every_output_is_held_to():
    rows = [row("float32", 0.98, 100, 1.0), row("dynamic", 0.90, 40, 1.0)]
    rec = recommend.choose(results(*rows), 1.0, "cpu", "size")
    assert rec.to_dict() == {
        "technique": None, "target": "cpu", "optimize": "size", "max_drop_pp": 1.0, "metric": "accuracy",
        "uncertain": False, "max_ram_kb": None, "max_flash_kb": None,
        "excluded": [{"technique": "dynamic", "why": "accuracy -8.00 pp is past the budget (accuracy drop ≤ 1 pp)"}],
        "runners_up": [], "summary": "No variant meets the budget (accuracy drop ≤ 1 pp) for --target cpu.",
        "criteria": [{"output": "output_0", "task": "classes", "criterion": "accuracy drop ≤ 1 pp"}], "verdicts": []}


def test_int_only_excludes_float_io_unknown_ops_and_float_ops(study):
    rows = list(study.variants) + [row("uint8-only", 0.98, 39, 1.0, io="uint8"),
                                   Variant(**{**row("qat-int8", 0.98, 38, 1.0).__dict__, "input_dtype": "int8"})]
    rec = recommend.choose(results(*rows), 5.0, "int-only", "size",
                           float_ops={"int8-only": 0, "uint8-only": 0, "qat-int8": 0})
    why = {e["technique"]: e["why"] for e in rec.excluded}
    assert why["qat-int8"] == "its input or output is not integer, which --target int-only cannot run"
    assert rec.technique == "uint8-only" and [r["technique"] for r in rec.runners_up] == ["int8-only"]
    rec = recommend.choose(results(*rows), 5.0, "int-only", "size", float_ops={"int8-only": 0})
    why = {e["technique"]: e["why"] for e in rec.excluded}
    assert why["uint8-only"] == "its input or output is not integer, which --target int-only cannot run"
    assert rec.technique == "int8-only"
    rec = recommend.choose(results(*rows), 5.0, "int-only", "size")
    assert {e["technique"]: e["why"] for e in rec.excluded}["int8-only"] == (
        "its input or output is not integer, which --target int-only cannot run")
    assert rec.summary == (
        "No variant meets the budget (accuracy drop ≤ 5 pp) for --target int-only. Quantization-aware training "
        "(`quantbench qat`, or --qat-epochs) is the way to recover int8 accuracy for integer-only hardware.")
    for io in (("int8", "float32"), ("float32", "uint8")):
        v = Variant(**{**row("int8-only", 0.98, 38, 1.0).__dict__, "input_dtype": io[0], "output_dtype": io[1]})
        rec = recommend.choose(results(study.variants[1], v), 5.0, "int-only", "size", float_ops={"int8-only": 0})
        assert rec.technique is None


def test_uncertain_whole():
    rows = [row("keras", 0.98, 400, 1.0), row("float32", 0.98, 100, 1.0),
            row("dynamic", 0.978, 40, 1.0, drop_ci_pp=[-0.3, 0.7])]
    rec = recommend.choose(results(*rows), 0.5, "cpu", "size")
    assert rec.uncertain is True
    assert rec.summary == (
        "Ship dynamic: the smallest of 2 variant(s) within the budget (accuracy drop ≤ 0.5 pp) for --target cpu "
        "(40.0 KB; accuracy -0.20 pp against the float model). Uncertain: the 95 % interval of its drop reaches "
        "0.70 pp, past the budget; measure on more data before relying on it. Runners-up: float32 (100.0 KB against "
        "40.0 KB, accuracy +0.00 pp).")
    assert rec.verdicts[0]["reach"] == "the 95 % interval of its drop reaches 0.70 pp"
    outs = [{"output": o, "task": "classes", "metric": "accuracy", "value": 0.978, "reference": 0.98, "loss": 0.2,
             "loss_ci": ci} for o, ci in (("a", [-0.3, 0.7]), ("b", [-0.3, 0.4]))]
    ref = Variant(**{**rows[1].__dict__, "outputs": [{**o, "loss": 0.0, "loss_ci": None} for o in outs]})
    rec = recommend.choose(results(ref, Variant(**{**rows[2].__dict__, "outputs": outs})), 0.5, "cpu", "size")
    assert rec.uncertain is True and [f["uncertain"] for f in rec.verdicts] == [True, False]
    assert rec.summary.endswith(
        "(40.0 KB; a accuracy -0.20 pp; b accuracy -0.20 pp against the float model). Uncertain: a: the 95 % interval "
        "of its drop reaches 0.70 pp, past the budget; measure on more data before relying on it.")


def test_several_outputs_name_each_output():
    def v(name, a, b):
        return Variant(name, "converter", "ok", path=f"{name}.tflite", bytes=10, latency_ms={"median": 1.0},
                       fidelity=[{"output": "a", "agreement": a}, {"output": "b", "agreement": b}])
    rec = recommend.choose(results(v("float32", 1.0, 1.0), v("dynamic", 0.995, 1.0), v("int8-only", 0.9, 0.8)))
    assert rec.metric == "agreement"
    assert rec.excluded == [{"technique": "int8-only", "why": (
        "a: top-1 agreement 90.00 % is past the budget (top-1 agreement ≥ 99 %); b: top-1 agreement 80.00 % is past "
        "the budget (top-1 agreement ≥ 99 %)")}]
    assert rec.summary == (
        "Ship dynamic: the smallest of 1 variant(s) within the budget (a: top-1 agreement ≥ 99 %; b: top-1 agreement "
        "≥ 99 %) for --target cpu (0.0 KB; a top-1 agreement 99.50 %; b top-1 agreement 100.00 % against the float "
        "model).")


def test_keras_is_the_reference_and_is_never_a_candidate():
    rows = [row("float32", 0.90, 100, 1.0), row("keras", 0.98, 400, 1.0), row("dynamic", 0.975, 40, 1.0)]
    rec = recommend.choose(results(*rows), 1.0)
    assert rec.technique == "dynamic" and rec.excluded == [
        {"technique": "float32", "why": "accuracy -8.00 pp is past the budget (accuracy drop ≤ 1 pp)"}]
    failed_keras = Variant("keras", "converter", "failed", error="x")
    rec = recommend.choose(results(failed_keras, *rows[::2]), 1.0)
    assert rec.technique == "dynamic" and rec.excluded == []
    rec = recommend.choose(results(failed_keras, rows[0], row("dynamic", 0.8, 40, 1.0)), 1.0)
    assert rec.technique is None and rec.excluded == [
        {"technique": "dynamic", "why": "accuracy -10.00 pp is past the budget (accuracy drop ≤ 1 pp)"}]
    assert _message(recommend.choose, results(failed_keras, rows[2]), 1.0) == (
        "These results have no float reference row (keras or float32) to measure drops against. Fix: include float32 "
        "in --techniques.")


def test_a_reference_without_scored_outputs_has_no_metric():
    rows = [Variant(n, "converter", "ok", path="x", bytes=10, latency_ms={"median": 1.0},
                    outputs=[{"output": "y", "task": "fidelity", "metric": "sqnr_db", "value": 40.0, "scored": False}])
            for n in ("float32", "dynamic")]
    rec = recommend.choose(results(*rows))
    assert rec.metric == "none" and rec.criteria == [] and rec.technique == "dynamic" and rec.verdicts == []


def test_degenerate_summary_whole():
    why = "the float model's top-1 class on 'output_0' is 3 for all 100 evaluation samples"
    rows = [Variant(n, "converter", "ok", path="x", bytes=kb, latency_ms={"median": 1.0}, agreement=1.0, sqnr_db=s,
                    fidelity=[{"output": "output_0", "agreement": 1.0}]) for n, kb, s in (("float32", 5, 90.0),
                                                                                       ("dynamic", 3, 40.0))]
    rec = recommend.choose(results(*rows, degenerate_outputs=[{"output": "output_0", "why": why}, {"output": "z", "why": "second"}]))
    assert rec.summary == (
        "Ship dynamic: the smallest of 1 variant(s) within the budget (SQNR ≥ 30 dB) for --target cpu (0.0 KB; SQNR "
        "40.0 dB against the float model). The float model's outputs are degenerate on these samples (" + why + "), "
        "so top-1 agreement cannot measure a drop there: SQNR decided; evaluate on data where the model's outputs "
        "vary before shipping.")


# ---- the microcontroller branch -------------------------------------------------------------------------------

def mcu_row(name, arena, flash, runs=True, wrong=False, acc=0.98, **kw):
    facts = {"runs": runs, "wrong": wrong, "arena_bytes": arena, "flash_bytes": flash, "reason": "no kernel",
             "max_diff_steps": 2.5, **kw}
    return row(name, acc, flash / 1024, 1.0, mcu=facts)


@pytest.fixture
def mcu_study():
    return results(row("float32", 0.98, 100, 1.0, mcu={"runs": True, "wrong": False, "arena_bytes": 9000,
                                                      "flash_bytes": 100000}),
                   mcu_row("int8-only", 3000, 30000), mcu_row("dynamic", 0, 0, runs=False),
                   mcu_row("float16", 5000, 50000, wrong=True, gate=[
                       {"output": "y", "figure": "SQNR 3.0 dB", "criterion": "SQNR ≥ 30 dB", "passed": False},
                       {"output": "z", "figure": "SQNR 40.0 dB", "criterion": "SQNR ≥ 30 dB", "passed": True}]),
                   mcu_row("uint8-only", 2000, 31000, acc=0.90), row("int16x8", 0.98, 1, 1.0))


MCU_EXCLUDED = [{"technique": "dynamic", "why": "TFLite Micro cannot run it: no kernel"},
                {"technique": "float16", "why": "wrong on TFLite Micro: against LiteRT on the same file, y: SQNR 3.0 "
                                                "dB, past SQNR ≥ 30 dB (largest difference 2.5 8-bit steps)"}]


def test_mcu_choice_whole(mcu_study):
    rec = recommend.choose(mcu_study, 1.0, "mcu", "size")
    assert rec.excluded == MCU_EXCLUDED + [
        {"technique": "uint8-only", "why": "accuracy -8.00 pp is past the budget (accuracy drop ≤ 1 pp)"},
        {"technique": "int16x8", "why": "was not run on TFLite Micro"}]
    assert rec.summary == (
        "Ship int8-only: the smallest in RAM plus flash of 1 variant(s) within the budget (accuracy drop ≤ 1 pp) for "
        "--target mcu (2.9 KB RAM + 29.3 KB flash; accuracy +0.00 pp against the float model).")
    rec = recommend.choose(mcu_study, 10.0, "mcu", "size", max_ram_kb=2.5, max_flash_kb=40)
    assert rec.technique == "uint8-only" and rec.max_ram_kb == 2.5 and rec.max_flash_kb == 40
    assert rec.excluded[0] == {"technique": "int8-only", "why": "needs 2.9 KB of RAM (arena), past --max-ram 2.5"}
    assert rec.summary == (
        "Ship uint8-only: the smallest in RAM plus flash of 1 variant(s) within the budget (accuracy drop ≤ 10 pp) and "
        "--max-ram 2.5 KB and --max-flash 40 KB for --target mcu (2.0 KB RAM + 30.3 KB flash; accuracy -8.00 pp "
        "against the float model).")


def test_mcu_ranks_by_ram_plus_flash_then_ram():
    rows = [row("float32", 0.98, 100, 1.0), mcu_row("int8-only", 3000, 30000), mcu_row("uint8-only", 2000, 31000),
            mcu_row("int16x8", 1000, 33000)]
    rec = recommend.choose(results(*rows), 1.0, "mcu", "size")
    assert rec.technique == "uint8-only"  # 33,000 bytes in all, as int8-only, with less RAM
    assert [r["technique"] for r in rec.runners_up] == ["int8-only", "int16x8"]
    assert rec.runners_up[0]["why"] == "2.9 KB RAM + 29.3 KB flash against 2.0 KB RAM + 30.3 KB flash, accuracy +0.00 pp"


def test_mcu_budgets_are_inclusive():
    rows = [row("float32", 0.98, 100, 1.0), mcu_row("int8-only", 2048, 4096)]
    assert recommend.choose(results(*rows), 1.0, "mcu", "size", max_ram_kb=2, max_flash_kb=4).technique == "int8-only"
    rec = recommend.choose(results(*rows), 1.0, "mcu", "size", max_ram_kb=1.999, max_flash_kb=3.999)
    assert rec.excluded == [{"technique": "int8-only", "why": "needs 2.0 KB of RAM (arena), past --max-ram 1.999; "
                                                              "needs 4.0 KB of flash, past --max-flash 3.999"}]


def test_mcu_nothing_meets_whole(mcu_study):
    rec = recommend.choose(mcu_study, 1.0, "mcu", "size", max_ram_kb=2.5, max_flash_kb=20)
    assert rec.technique is None and rec.verdicts == []
    assert rec.summary == ("No variant meets every budget for --target mcu. Nothing meets --max-flash 20: the least "
                           "flash is int8-only's 29.3 KB (30,000 bytes), 9,520 bytes more.")
    rec = recommend.choose(mcu_study, 0.0, "mcu", "size", max_ram_kb=1, max_flash_kb=20)
    assert rec.summary == (
        "No variant meets every budget for --target mcu. Nothing meets --max-ram 1: the least RAM (arena) is "
        "uint8-only's 2.0 KB (2,000 bytes), 976 bytes more; nor --max-flash 20: the least flash is int8-only's 29.3 KB "
        "(30,000 bytes), 9,520 bytes more.")


def test_unmet_by_hand():
    ok = {"passed": True, "figure": "f", "criterion": "c"}
    bad = {"passed": False, "figure": "F", "criterion": "C", "output": "o"}
    a, b = mcu_row("int8-only", 3000, 30000), mcu_row("uint8-only", 2000, 31000)
    assert recommend._unmet([], {}, 1, 1) == "No variant runs correctly on TFLite Micro (see the excluded rows)."
    assert recommend._unmet([a, b], {"int8-only": [ok], "uint8-only": [ok]}, None, None) == (
        "Each budget is met by some variant, but no variant meets all of them at once (see the excluded rows).")
    assert recommend._unmet([a, b], {"int8-only": [ok], "uint8-only": [bad]}, 2000 / 1024, 30000 / 1024) == (
        "Each budget is met by some variant, but no variant meets all of them at once (see the excluded rows).")
    assert recommend._unmet([a, b], {"int8-only": [bad, bad], "uint8-only": [ok, bad]}, None, None) == (
        "Nothing meets the quality budget: the closest is uint8-only, where o: F is past the budget (C).")
    assert recommend._unmet([a, b], {"int8-only": [bad], "uint8-only": [bad]}, 1.5, None) == (
        "Nothing meets the quality budget: the closest is int8-only, where F is past the budget (C); nor --max-ram "
        "1.5: the least RAM (arena) is uint8-only's 2.0 KB (2,000 bytes), 464 bytes more.")


def test_mcu_refusal_by_hand():
    v = mcu_row("int8-only", 1, 1, wrong=True, max_diff_steps=163.54)
    assert recommend.mcu_refusal(v) == ("wrong on TFLite Micro: against LiteRT on the same file, its outputs depart "
                                        "(largest difference 163.5 8-bit steps)")
    v = mcu_row("int8-only", 1, 1, wrong=True, max_diff_steps=0.0512, gate=[
        {"output": "a", "figure": "F", "criterion": "C", "passed": False},
        {"output": "b", "figure": "G", "criterion": "D", "passed": False}])
    assert recommend.mcu_refusal(v) == ("wrong on TFLite Micro: against LiteRT on the same file, a: F, past C; b: G, "
                                        "past D (largest difference 0.051 8-bit steps)")
    assert recommend.mcu_refusal(mcu_row("x", 1, 1)) is None
    assert recommend.mcu_refusal(row("x", 1, 1, 1)) == "was not run on TFLite Micro"


# ---- options -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, -1, "0", float("nan"), float("inf"), "abc", [], "-inf"])
def test_budget_kb_refuses(value):
    assert _message(recommend.budget_kb, value, "--max-ram") == (
        f"--max-ram is {value!r}. Expected a positive number of KB (1 KB = 1,024 bytes). Fix: pass, for example, "
        "--max-ram 64.")


def test_budget_kb_accepts():
    assert recommend.budget_kb(None, "--max-ram") is None
    assert recommend.budget_kb("64", "--max-flash") == 64.0 and recommend.budget_kb(1e-9, "x") == 1e-9


def test_check_options_messages():
    assert _message(recommend.check_options, "tpu", "size", 1.0) == (
        "Unknown --target 'tpu'. Expected one of: cpu, gpu, int-only, mcu. Fix: pick a target from that list.")
    assert _message(recommend.check_options, "cpu", "speed", 1.0) == (
        "Unknown --optimize 'speed'. Expected one of: size, latency. Fix: pass --optimize size or --optimize latency.")
    assert _message(recommend.check_options, "cpu", "size", -0.001) == (
        "--max-accuracy-drop is -0.001. Expected a number of percentage points ≥ 0. Fix: pass, for example, "
        "--max-accuracy-drop 1.0.")
    assert "--max-accuracy-drop is nan." in _message(recommend.check_options, "cpu", "size", float("nan"))
    for ram, flash in ((64, None), (None, 64)):
        assert _message(recommend.check_options, "gpu", "size", 1.0, ram, flash) == (
            "--max-ram and --max-flash are microcontroller budgets, measured on TFLite Micro; --target is gpu. Fix: "
            "add --target mcu, or drop the budgets.")
    assert _message(recommend.check_options, "mcu", "latency", 1.0) == (
        "--optimize latency with --target mcu: latency on this host says nothing about a microcontroller, so "
        "quantbench does not rank by it. Fix: drop --optimize latency (the smallest variant in RAM plus flash is "
        "chosen).")
    assert _message(recommend.check_options, "mcu", "size", 1.0, -1).startswith("--max-ram is -1.")
    assert _message(recommend.check_options, "mcu", "size", 1.0, None, 0).startswith("--max-flash is 0.")
    assert recommend.check_options("cpu", "size", 0.0) is None
    assert recommend.check_options("mcu", "size", 0.0, 1, 1) is None
    assert recommend.Goal(0.0, "mcu", "size", 1, 2).max_ram_kb == 1
    with pytest.raises(InputError, match="Unknown --optimize 'fast'"):
        recommend.Goal(1.0, "cpu", "fast")
    with pytest.raises(InputError, match="--min-sqnr is nan"):
        recommend.Goal(min_sqnr_db=float("nan"))


def test_goal_budget():
    assert recommend.Goal(2.0, max_error_increase_pct=3.0, min_sqnr_db=20.0, min_agreement_pct=95.0,
                          max_metric_drop=0.5).budget == Budget(2.0, 3.0, 20.0, 95.0, 0.5)
    assert recommend.Goal() == recommend.Goal(1.0, "cpu", "size", None, None, 5.0, 30.0, 99.0, None)


def test_plan_by_name_and_by_technique():
    kept, skipped = recommend.plan(["float32", get("int8-only"), "dynamic"], "int-only")
    assert kept == [get("int8-only")]
    why = recommend.branch("int-only").why
    assert skipped == {"float32": f"cannot serve --target int-only: {why}",
                       "dynamic": f"cannot serve --target int-only: {why}"}
    assert recommend.plan(["float32", "dynamic"], "cpu") == (["float32", "dynamic"], {})
    kept, skipped = recommend.plan(["float32", "float16", "dynamic", "int8-fallback", "int8-only"], "gpu")
    assert kept == ["float32", "float16", "int8-fallback"] and list(skipped) == ["dynamic", "int8-only"]


def test_tree_rows_whole():
    rows = recommend.tree_rows()
    assert [r["question"] for r in rows] == [b.question for b in recommend.DECISION_TREE]
    assert rows[2]["techniques"] == ", ".join(n for n in recommend.names() if recommend.branch("gpu").allows(n))
    assert "dynamic" not in rows[2]["techniques"].split(", ") and "float16" in rows[2]["techniques"].split(", ")
    assert rows[1]["why"] == recommend.branch("int-only").why


# ---- scored outputs, judging, the rescue ------------------------------------------------------------------------

def test_scored_outputs_from_accuracy():
    v, ref = row("dynamic", 0.975, 1, 1, drop_ci_pp=[0.1, 0.9]), row("float32", 0.98, 1, 1)
    assert recommend.scored_outputs(v, ref) == [
        {"output": "output_0", "task": "classes", "metric": "accuracy", "value": 0.975, "reference": 0.98,
         "loss": 0.5, "loss_ci": [0.1, 0.9]}]
    as_dict = {"outputs": None, "accuracy": 0.975, "drop_ci_pp": None}
    assert recommend.scored_outputs(as_dict, {"accuracy": 0.98})[0]["loss"] == 0.5
    given = [{"output": "y", "metric": "sqnr_db"}]
    assert recommend.scored_outputs({"outputs": given}, {}) == given


def test_scored_outputs_from_agreement_and_sqnr():
    fid = [{"output": "a", "agreement": 0.9}, {"output": "b", "agreement": None}, {"output": "c", "agreement": 0.5}]
    v = Variant("dynamic", "c", "ok", agreement=0.7, fidelity=fid, sqnr_db=12.0)
    ref = Variant("float32", "c", "ok")
    assert recommend.scored_outputs(v, ref) == [
        {"output": "a", "task": "classes", "metric": "agreement", "value": 0.9, "reference": 1.0, "loss": 10.0},
        {"output": "c", "task": "classes", "metric": "agreement", "value": 0.5, "reference": 1.0, "loss": 50.0}]
    res = results(degenerate_outputs=[{"output": "a", "why": "w"}])
    assert [o["output"] for o in recommend.scored_outputs(v, ref, res)] == ["c"]
    res = results(degenerate_outputs=[{"output": "a", "why": "w"}, {"output": "c", "why": "w"}])
    assert recommend.scored_outputs(v, ref, res) == [
        {"output": "output_0", "task": "fidelity", "metric": "sqnr_db", "value": 12.0}]
    only = Variant("dynamic", "c", "ok", agreement=0.7, sqnr_db=12.0)
    assert recommend.scored_outputs(only, ref) == [
        {"output": "output_0", "task": "classes", "metric": "agreement", "value": 0.7, "reference": 1.0, "loss": 30.0}]
    assert recommend.scored_outputs(only, ref, res)[0]["metric"] == "sqnr_db"
    assert recommend.scored_outputs(only, row("float32", None, 1, 1))[0]["metric"] == "agreement"
    assert recommend.scored_outputs(Variant("dynamic", "c", "ok", accuracy=0.9, agreement=0.7), ref)[0][
        "metric"] == "agreement"


def test_judge_and_failing():
    v, ref = row("dynamic", 0.975, 1, 1), row("float32", 0.98, 1, 1)
    found = recommend.judge(v, ref, Budget(0.4))
    assert found == [{"output": "output_0", "task": "classes", "criterion": "accuracy drop ≤ 0.4 pp", "passed": False,
                      "uncertain": False, "figure": "accuracy -0.50 pp"}]
    assert recommend._failing(found, False) == "accuracy -0.50 pp is past the budget (accuracy drop ≤ 0.4 pp)"
    assert recommend._failing(found + [{**found[0], "output": "b"}, {**found[0], "passed": True}], True) == (
        "output_0: accuracy -0.50 pp is past the budget (accuracy drop ≤ 0.4 pp); b: accuracy -0.50 pp is past the "
        "budget (accuracy drop ≤ 0.4 pp)")


def test_worst_loss():
    assert recommend.worst_loss([]) == 0.0
    assert recommend.worst_loss([{"loss": 1.5, "metric": "accuracy"}, {"loss": 3.0, "metric": "agreement"},
                                 {"loss": 9.0, "scored": False, "metric": "accuracy"},
                                 {"loss": None, "metric": "mae", "value": 1.0}]) == 3.0
    assert recommend.worst_loss([{"metric": "sqnr_db", "value": 40.0}, {"metric": "sqnr_db", "value": 25.0},
                                 {"metric": "sqnr_db", "value": 5.0, "scored": False},
                                 {"metric": "sqnr_db", "value": None}, {"metric": "cosine", "value": 1.0}]) == -25.0
    assert recommend.worst_loss([{"metric": "sqnr_db", "value": None, "loss": None}]) == 0.0
    assert recommend.worst_loss([{"loss": -2.0, "metric": "accuracy"}]) == -2.0


def _metrics(**acc):
    return {n: {"accuracy": a, "agreement": None, "fidelity": None} for n, a in acc.items()}


def test_needs_rescue():
    goal = recommend.Goal(1.0)
    m = _metrics(keras=0.98, float32=0.98, dynamic=0.90, **{"int8-only": 0.90, "int8-fallback": 0.90})
    assert recommend.needs_rescue(m, "keras", goal) is True
    assert recommend.needs_rescue(m, "keras", recommend.Goal(9.0)) is False
    assert recommend.needs_rescue(m, "keras", recommend.Goal(1.0, "int-only")) is False
    assert recommend.needs_rescue(m, "keras", recommend.Goal(1.0, "gpu")) is True
    m["int8-fallback"]["accuracy"] = 0.98
    assert recommend.needs_rescue(m, "keras", goal) is False
    assert recommend.needs_rescue(_metrics(keras=0.98, float32=0.9, dynamic=0.9, own=0.1), "keras", goal) is False


# ---- evaluate: the stream ---------------------------------------------------------------------------------------

def test_non_finite_and_messages():
    assert evaluate.non_finite(np.float32(np.nan)) == 0
    assert evaluate.non_finite(np.array([[1.0, np.inf], [0.0, 1.0], [np.nan, np.nan]])) == 2
    assert evaluate.non_finite(np.zeros((3, 0))) == 0
    assert evaluate.non_finite_error([np.ones(2), np.array([np.nan, 1.0, -np.inf])], ["a", "b"]) == (
        "its output 'b' is NaN or Inf for 2 of 3 samples, where the float model's is finite")
    assert evaluate.non_finite_error([np.ones(2)], ["a"]) is None
    assert evaluate.check_counts({"a": 0, "b": 0}, 5, "x") is None
    assert _message(evaluate.check_counts, {"a": 0, "b": 3, "c": 1}, 5, "d.npz") == (
        "The float model's output 'b' is NaN or Inf for 3 of 5 samples of d.npz, so no figure can be measured against "
        "it. Expected finite outputs. Fix: check the data's values and preprocessing, and the model's weights (a "
        "corrupt file gives NaN).")


def test_cosines_and_db():
    a = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    b = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [4.0, 3.0], [-2.0, -2.0]])
    assert evaluate.cosines(a, b).tolist() == pytest.approx([1.0, 0.0, 0.0, 0.96, -1.0], rel=0, abs=1e-15)
    assert evaluate._db(1.0, 0.0) is None and evaluate._db(0.0, 1.0) is None
    assert evaluate._db(100.0, 1.0) == 20.0 and evaluate._db(1.0, 3.0) == -4.771
    assert evaluate._finite(-np.inf) is None and evaluate._finite(np.inf) is None and evaluate._finite(1.23456) == 1.235


def probs(rows):
    return np.array(rows, dtype=np.float64)


def test_stream_update_by_hand():
    ref = [probs([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]), np.array([[1.0, -2.0], [3.0, 0.5]]),
           np.arange(14, dtype=float).reshape(2, 7) / 100]
    out = [probs([[0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]), np.array([[1.0, -1.0], [3.0, 0.5]]), ref[2] * 0]
    s = evaluate.Stream().update(out, ref)
    assert s.n == 2 and s.shapes == [(3,), (2,), (7,)]
    assert [t if t is None else [x.tolist() for x in t] for t in s.top1] == [[[1, 2]], [[0, 0]], [[0, 0]]]
    assert s.top5[:2] == [None, None] and s.top5[2][0].tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert s.raw[0] is None and s.raw[1][0].dtype == np.float32 and s.raw[1][0].tolist() == [[1.0, -1.0], [3.0, 0.5]]
    assert s.raw[2] is not None
    assert s.signal.tolist() == [0.49 + 0.04 + 0.01 + 0.01 + 0.01 + 0.64, 1 + 4 + 9 + 0.25,
                                 float(np.sum(ref[2] ** 2))]
    assert s.noise.tolist() == pytest.approx([0.25 + 0.25, 1.0, float(np.sum(ref[2] ** 2))], rel=1e-15)
    assert s.max_err.tolist() == pytest.approx([0.5, 1.0, 0.13], rel=1e-15)
    assert s.max_abs.tolist() == [0.8, 3.0, 0.13]
    assert s.max_dev.tolist() == pytest.approx([0.7, 2.5, 0.07], rel=1e-15)
    assert s.unit == [True, False, True] and s.distribution == [True, False, False]
    assert s.cosine[1] == pytest.approx(float(np.dot([1, -1], [1, -2]) / (np.sqrt(2) * np.sqrt(5))) + 1.0)
    assert s.cosine[2] == 0.0
    assert s.kl_sum == pytest.approx(2 * evaluate.stats.mean_kl(ref[0], out[0]))
    s2 = evaluate.Stream().update([np.array([[0.5, 0.5], [0.2, 0.8]])], [np.array([[0.5, 0.5], [-0.2, 0.8]])])
    assert s2.unit == [False] and s2.distribution == [False] and s2.raw[0] is not None
    s3 = evaluate.Stream().update([np.array([[0.5, 1.5]])], [np.array([[0.5, 1.5]])])
    assert s3.unit == [False]
    assert evaluate.Stream().update([np.array([[1.0]])], [np.array([[1.0]])]).top1 == [None]


def test_stream_keeps_raw_values_up_to_the_limit():
    big = np.zeros((1, RAW_LIMIT + 1))
    at = np.zeros((1, RAW_LIMIT))
    s = evaluate.Stream().update([at, big], [at, big])
    assert s.raw[0] is not None and s.raw[1] is None
    assert evaluate.Stream(keep_all=True).update([big], [big]).raw[0] is not None
    p = np.full((2, 4), 0.25)
    assert evaluate.Stream().update([p], [p]).raw == [None]
    assert evaluate.Stream(keep_all=True).update([p], [p]).raw[0] is not None
    six = np.full((1, 6), 1 / 6)
    five = np.full((1, 5), 0.2)
    s = evaluate.Stream().update([six, five], [six, five])
    assert s.top5[0] is not None and s.top5[1] is None


def test_stream_zero_width_outputs_and_later_chunks():
    w = np.zeros((2, 0))
    s = evaluate.Stream().update([w], [w])
    assert s.n == 2 and s.max_err.tolist() == [0.0] and s.max_dev.tolist() == [0.0] and s.unit == [True]
    assert s.kept(0)["sqnr_db"] is None and s.kept(0)["cosine"] == 1.0
    ref = [np.array([[0.2, 0.8], [0.6, 0.4]])]
    s = evaluate.Stream().update([np.array([[0.3, 0.7]])], [np.array([[0.2, 0.8]])])
    s.update([np.array([[0.6, 0.4]])], [np.array([[0.6, 0.4]])])
    assert s.n == 2 and s.max_err.tolist() == [pytest.approx(0.1)] and s.max_dev.tolist() == [pytest.approx(0.4)]
    assert s.kl_sum == pytest.approx(evaluate.stats.mean_kl(ref[0][:1], np.array([[0.3, 0.7]])))
    assert s.distribution == [True] and [t.tolist() for t in s.top1[0]] == [[1], [0]]
    s.update([np.array([[0.6, 0.6]])], [np.array([[0.6, 0.6]])])
    assert s.distribution == [False] and s.max_abs.tolist() == [0.8]


def test_stream_merge_in_order():
    ref = np.array([[0.2, 0.3, 0.1, 0.1, 0.1, 0.2], [0.5, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.5]])
    out = ref[:, ::-1].copy()
    raw = np.array([[1.0], [2.0], [3.0]])
    whole = evaluate.Stream(keep_all=True).update([out, raw * 2], [ref, raw])
    a = evaluate.Stream(keep_all=True).update([out[:1], raw[:1] * 2], [ref[:1], raw[:1]])
    b = evaluate.Stream(keep_all=True).update([out[1:], raw[1:] * 2], [ref[1:], raw[1:]])
    merged = a.merge(b)
    assert merged is a and merged.n == 3
    for i in range(2):
        for key in ("top1", "top5", "raw"):
            got, want = merged.kept(i)[key], whole.kept(i)[key]
            assert (got is None and want is None) or got.tolist() == want.tolist()
        assert merged.kept(i).keys() == whole.kept(i).keys()
    assert merged.signal.tolist() == pytest.approx(whole.signal.tolist())
    assert merged.noise.tolist() == pytest.approx(whole.noise.tolist())
    assert merged.cosine.tolist() == pytest.approx(whole.cosine.tolist())
    assert merged.max_err.tolist() == whole.max_err.tolist() and merged.max_abs.tolist() == whole.max_abs.tolist()
    assert merged.kl_sum == pytest.approx(whole.kl_sum) and merged.unit == whole.unit == [True, False]
    assert merged.distribution == [True, False]
    assert merged.max_dev.tolist() == [np.inf, np.inf]   # the later shard's first row differs: its deviation is unknown
    empty = evaluate.Stream()
    assert empty.merge(b) is b and b.merge(evaluate.Stream()) is b
    same = evaluate.Stream().update([raw[:1]], [raw[:1]]).merge(evaluate.Stream().update([raw[:1] * 2], [raw[:1]]))
    assert same.max_dev.tolist() == [0.0] and same.max_err.tolist() == [1.0] and same.top1 == [None]
    c = evaluate.Stream().update([ref[:1]], [ref[:1]])
    d = evaluate.Stream().update([ref[:1]], [np.full((1, 6), 2.0)])
    c.merge(d)
    assert c.unit == [False] and c.distribution == [False] and c.max_abs.tolist() == [2.0]
    assert c.max_err.tolist() == [pytest.approx(1.9)]
    e = evaluate.Stream(keep_all=True).update([np.full((1, 6), 2.0)], [np.full((1, 6), 2.0)])
    e.merge(evaluate.Stream(keep_all=True).update([ref[:1]], [ref[:1]]))
    assert e.unit == [False] and e.max_abs.tolist() == [2.0] and e.max_err.tolist() == [0.0]
    assert e.distribution == [False]


def test_kept_by_hand():
    ref = [np.array([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]]), np.array([[2.0], [0.0], [1.0]])]
    out = [np.array([[0.1, 0.9], [0.3, 0.7], [0.5, 0.5]]), np.array([[2.0], [0.0], [0.0]])]
    s = evaluate.Stream().update(out, ref)
    k0, k1 = s.kept(0), s.kept(1)
    assert k0["top1"].tolist() == [1, 1, 0] and k0["top5"] is None and k0["raw"] is None
    assert k0["probabilities"] is True and k0["max_abs_err"] == pytest.approx(0.8)
    assert k0["sqnr_db"] == round(10 * math.log10((0.81 + 0.01 + 0.09 + 0.49 + 0.5) / 1.28), 3)
    assert k0["cosine"] == round((2 * 0.9 * 0.1 / 0.82 + 2) / 3, 6)
    assert k1 == {"top1": None, "top5": None, "raw": k1["raw"], "sqnr_db": round(10 * math.log10(5.0), 3),
                  "cosine": round(2 / 3, 6), "max_abs_err": 1.0, "probabilities": False}
    assert k1["raw"].tolist() == [[2.0], [0.0], [0.0]]
    c = evaluate.Stream()
    c.top1 = [[]]
    assert c.classes(0).tolist() == [] and c.classes(0).dtype == np.int64


def test_degenerate_from_by_hand():
    flat = np.tile([[0.1, 0.9]], (3, 1))
    one_class = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    varied = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    assert evaluate.degenerate([flat[:1]], ["p"]) == []
    assert evaluate.degenerate([flat, one_class, varied], ["a", "b", "c"]) == [
        {"output": "a", "why": "the float model's output 'a' is the same for all 3 evaluation samples (no variance), "
                               "so fidelity figures cannot tell variants apart"},
        {"output": "b", "why": "the float model's top-1 class on 'b' is 1 for all 3 evaluation samples, so top-1 "
                               "agreement is 100 % for any variant and means nothing"}]
    x = np.array([[1.0, 5.0], [1.0, 5.0 + 4e-6]])     # deviation 4e-6, below 1e-6 of the largest value 5
    assert [d["output"] for d in evaluate.degenerate([x], ["x"])] == ["x"]
    y = np.array([[1.0, 5.0], [1.0, 5.0 + 6e-6]])
    assert evaluate.degenerate([y], ["y"]) == []
    z = np.array([[1.0, 0.0], [1.0 + 1e-6, 0.0]])     # exactly 1e-6 of the largest value: inclusive
    assert [d["output"] for d in evaluate.degenerate([z], ["z"])] == ["z"]
    zeros = np.zeros((2, 2))
    assert [d["output"] for d in evaluate.degenerate([zeros], ["o"])] == ["o"]
    tiny = np.array([[0.0, 0.0], [0.0, 1e-31]])
    assert evaluate.degenerate([tiny], ["t"]) == []
    logits = np.array([[1.0, 3.0], [0.0, 2.0]])        # not probabilities: one top-1 class counts only with labels
    assert evaluate.degenerate([logits], ["l"]) == []
    assert [d["output"] for d in evaluate.degenerate([logits], ["l"], labelled=True)] == ["l"]
    assert evaluate.degenerate([np.array([[1.0], [2.0]]), logits], ["r", "l"], labelled=True) == []


def test_truth_and_kinds():
    ref = evaluate.Stream().update([np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[1.0], [2.0]])],
                                   [np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[1.0], [2.0]])])
    t = Truth({"a": np.array([0, 1])}, {"a": "classes"})
    assert evaluate.truth_of(None, ref, ["a", "b"], TaskSpec()) == Truth()
    assert evaluate.truth_of(t, ref, ["a", "b"], TaskSpec()) is t
    assert evaluate.truth_of(Truth(), ref, ["a", "b"], TaskSpec()) == Truth()
    got = evaluate.truth_of([1, 0], ref, ["a", "b"], TaskSpec())
    assert got.kinds == {"a": "classes"} and got.labels["a"].tolist() == [1, 0]
    assert evaluate.kinds_of(ref, ["a", "b"], Truth(), TaskSpec()) == ["classes", "fidelity"]
    assert evaluate.kinds_of(ref, ["a", "b"], Truth({"b": np.array([[1.0], [2.0]])}, {"b": "regression"}),
                             TaskSpec()) == ["classes", "regression"]
    stuck = evaluate.Stream().update([np.array([[0.9, 0.1], [0.8, 0.2]])], [np.array([[0.9, 0.1], [0.8, 0.2]])])
    assert evaluate.kinds_of(stuck, ["a"], Truth(), TaskSpec()) == ["fidelity"]
    assert evaluate.kinds_of(stuck, ["a"], Truth({"a": np.array([0, 1])}, {"a": "classes"}), TaskSpec()) == [
        "classes"]
    assert evaluate.kinds_of(stuck, ["a"], Truth(), TaskSpec(overrides=(("a", "regression"),))) == ["regression"]
    assert evaluate.kinds_of(stuck, ["a"], Truth(), TaskSpec(overrides=(("a", "classes"),))) == ["fidelity"]


# ---- evaluate: finish, whole --------------------------------------------------------------------------------------

def test_finish_whole_labelled():
    labels = np.array([0, 1, 1, 0])
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    f32 = ref.copy()
    bad = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    streams = {n: evaluate.Stream().update([o], [ref]) for n, o in (("keras", ref), ("float32", f32), ("dyn", bad))}
    m = evaluate.finish(streams, "keras", labels, ["p"])
    d = m["dyn"]
    assert d["accuracy"] == 0.5 and d["agreement"] == 0.5 and d["top5"] is None
    assert d["accuracy_delta_pp"] == -50.0 and d["p_vs_float32"] == 0.5
    assert d["accuracy_ci"] == d["outputs"][0]["ci"] and d["drop_ci_pp"] == d["outputs"][0]["loss_ci"]
    assert d["kl"] == pytest.approx(evaluate.stats.mean_kl(ref, bad)) and m["keras"]["kl"] is None
    assert m["float32"]["kl"] == 0.0
    noise = 2 * (0.2 ** 2) + 2 * (0.4 ** 2)
    assert d["sqnr_db"] == round(10 * math.log10(float(np.sum(ref * ref)) / noise), 3)
    assert m["keras"]["sqnr_db"] is None
    assert d["fidelity"] == [{"output": "p", "agreement": 0.5, "sqnr_db": d["sqnr_db"],
                              "max_abs_err": pytest.approx(0.4)}]
    assert "_hits" not in d["outputs"][0] and d["outputs"][0]["output"] == "p" and "scored" not in d["outputs"][0]
    assert m["float32"]["accuracy_delta_pp"] == 0.0 and m["float32"]["p_vs_float32"] == 1.0
    no_base = evaluate.finish({k: v for k, v in streams.items() if k != "float32"}, "keras", labels, ["p"])
    assert no_base["dyn"]["accuracy"] == 0.5 and no_base["dyn"]["accuracy_delta_pp"] is None
    assert no_base["dyn"]["p_vs_float32"] is None
    unlabelled = evaluate.finish(streams, "keras")
    assert unlabelled["dyn"]["accuracy"] is None and unlabelled["dyn"]["agreement"] == 0.5
    assert unlabelled["dyn"]["fidelity"][0]["output"] == "output_0"
    assert unlabelled["dyn"]["accuracy_delta_pp"] is None


def test_finish_second_output_labelled_and_unscored():
    ref = [np.array([[1.0], [2.0], [3.0]]), np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])]
    out = [np.array([[1.5], [2.0], [3.0]]), np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])]
    streams = {"keras": evaluate.Stream().update(ref, ref), "float32": evaluate.Stream().update(ref, ref),
               "dyn": evaluate.Stream().update(out, ref)}
    truth = Truth({"c": np.array([0, 1, 1])}, {"c": "classes"})
    m = evaluate.finish(streams, "keras", truth, ["r", "c"], TaskSpec(only=("c",)))
    d = m["dyn"]
    assert d["accuracy"] == pytest.approx(2 / 3) and d["agreement"] is None and d["kl"] is None
    assert d["accuracy_delta_pp"] == round(-100 / 3, 6)
    assert d["outputs"][0]["scored"] is False and "scored" not in d["outputs"][1]
    assert [f["agreement"] for f in d["fidelity"]] == [None, pytest.approx(2 / 3)]
    assert d["fidelity"][0]["max_abs_err"] == 0.5


def test_finish_with_a_metric():
    ref = [np.array([[1.0], [2.0]])]
    outs = {"keras": ref, "dyn": [np.array([[1.0], [4.0]])]}
    got = evaluate.measure(outs, "keras", None, ["y"], None, (lambda labels, o: float(o["y"].sum()), "total"))
    assert got["dyn"]["outputs"][-1] == {"output": "*", "task": "metric", "metric": "metric", "name": "total",
                                         "labels": False, "value": 5.0, "reference": 3.0, "loss": -2.0}
    assert got["keras"]["outputs"][-1]["value"] == 3.0 and len(got["dyn"]["outputs"]) == 2
    plain = evaluate.measure({"keras": ref[0], "dyn": (np.array([[1.0], [4.0]]),)}, "keras")
    assert len(plain["dyn"]["outputs"]) == 1 and plain["dyn"]["agreement"] is None


def test_small_helpers():
    assert evaluate.top1(np.array([[[0.1, 0.9]], [[0.8, 0.2]]])).tolist() == [1, 0]
    assert evaluate.accuracy([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], np.array([1, 1, 1])) == pytest.approx(2 / 3)
    assert evaluate.agreement([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], [[0.4, 0.6], [0.4, 0.6], [0.4, 0.6]]) == \
        pytest.approx(2 / 3)
    assert evaluate.is_classifier((5, 2)) and not evaluate.is_classifier((5, 1))
    assert not evaluate.is_classifier((5, 2, 2)) and not evaluate.is_classifier((5,))
    evaluate.check_reference([np.ones((2, 2)), np.zeros(2)], ["a", "b"], "x")
    assert _message(evaluate.check_reference, [np.ones((2, 2)), np.array([1.0, np.nan])], ["a", "b"], "x.npz") \
        .startswith("The float model's output 'b' is NaN or Inf for 1 of 2 samples of x.npz,")


def test_finish_top5_and_a_binary_first_output():
    ref = np.eye(6)[[0, 1, 2, 3, 4, 5]] * 0.5 + 0.5 / 6
    out = ref[:, ::-1].copy()
    labels = np.array([0, 1, 2, 3, 4, 5])
    m = evaluate.measure({"keras": ref, "float32": ref, "dyn": out}, "keras", labels)
    assert m["dyn"]["top5"] == m["dyn"]["outputs"][0]["top5"] and m["dyn"]["top5"] is not None
    assert m["keras"]["top5"] == 1.0 and m["dyn"]["accuracy"] == 0.0
    binary = np.array([[0.9], [0.2], [0.7], [0.1]])
    got = evaluate.measure({"keras": binary, "float32": binary, "dyn": 1 - binary}, "keras",
                           Truth({"output_0": np.array([1, 0, 1, 0])}, {"output_0": "binary"}))
    assert got["dyn"]["accuracy"] == 0.0 and got["dyn"]["accuracy_delta_pp"] == -100.0
    assert got["dyn"]["agreement"] == got["dyn"]["outputs"][0].get("agreement") and got["dyn"]["kl"] is None
    logits = np.array([[2.0, 1.0], [0.0, 3.0]])
    got = evaluate.measure({"keras": logits, "dyn": logits[:, ::-1].copy()}, "keras", np.array([0, 1]))
    assert got["dyn"]["kl"] is None and got["dyn"]["accuracy"] == 0.0 and got["dyn"]["agreement"] == 0.0


# ---- boundaries found by mutation testing ------------------------------------------------------------------------

def test_goal_and_choose_check_both_mcu_budgets():
    for ram, flash, option in ((-1, None, "--max-ram is -1."), (None, 0, "--max-flash is 0.")):
        assert _message(recommend.Goal, 1.0, "mcu", "size", ram, flash).startswith(option)
        assert _message(recommend.choose, results(row("float32", 0.9, 1, 1)), 1.0, "mcu", "size", None, ram,
                        flash).startswith(option)
    assert _message(recommend.Goal, 1.0, "cpu", "size", None, 64).startswith("--max-ram and --max-flash are")


def test_defaults_of_choose():
    rows = [row("float32", 0.98, 100, 1.0), row("dynamic", 0.965, 40, 1.0), row("float16", 0.975, 50, 1.0)]
    rec = recommend.choose(results(*rows))
    assert (rec.technique, rec.max_drop_pp, rec.target, rec.optimize) == ("float16", 1.0, "cpu", "size")


def test_plan_names_a_skipped_technique_object():
    assert recommend.plan([get("dynamic")], "int-only") == (
        [], {"dynamic": f"cannot serve --target int-only: {recommend.branch('int-only').why}"})


def test_losses_are_rounded_to_6_digits():
    v, ref = row("dynamic", 2 / 3, 1, 1), row("float32", 1.0, 1, 1)
    assert recommend.scored_outputs(v, ref)[0]["loss"] == 33.333333
    agree = Variant("dynamic", "c", "ok", agreement=2 / 3)
    assert recommend.scored_outputs(agree, Variant("float32", "c", "ok"))[0]["loss"] == 33.333333


def test_unmet_checks_flash_after_an_absent_ram_budget_and_the_exact_kb():
    ok = [{"passed": True, "figure": "f", "criterion": "c"}]
    a = mcu_row("int8-only", 2049, 30000)
    assert recommend._unmet([a], {"int8-only": ok}, None, 20) == (
        "Nothing meets --max-flash 20: the least flash is int8-only's 29.3 KB (30,000 bytes), 9,520 bytes more.")
    assert recommend._unmet([a], {"int8-only": ok}, 2, None) == (
        "Nothing meets --max-ram 2: the least RAM (arena) is int8-only's 2.0 KB (2,049 bytes), 1 bytes more.")


def test_one_float_op_is_refused_and_later_rows_are_still_judged():
    rows = [row("float32", 0.98, 100, 1.0), row("uint8-only", 0.98, 39, 1.0, io="uint8"),
            row("qat-int8", 0.98, 45, 1.0, io="int8"), row("int8-only", 0.98, 40, 1.0, io="int8")]
    rec = recommend.choose(results(*rows), 1.0, "int-only", "size", float_ops={"uint8-only": 1, "int8-only": 0})
    assert rec.technique == "int8-only" and rec.excluded == [
        {"technique": "uint8-only", "why": "has 1 float compute op(s), which --target int-only cannot run"},
        {"technique": "qat-int8", "why": "its input or output is not integer, which --target int-only cannot run"}]


def test_nothing_meets_keeps_the_mcu_budgets(mcu_study):
    rec = recommend.choose(mcu_study, 1.0, "mcu", "size", max_ram_kb=2.5, max_flash_kb=20)
    assert (rec.max_ram_kb, rec.max_flash_kb) == (2.5, 20)


def test_two_uncertain_outputs_are_joined():
    outs = [{"output": o, "task": "classes", "metric": "accuracy", "value": 0.978, "reference": 0.98, "loss": 0.2,
             "loss_ci": [-0.3, 0.7]} for o in ("a", "b")]
    ref = Variant("float32", "c", "ok", bytes=1, outputs=[{**o, "loss": 0.0, "loss_ci": None} for o in outs])
    rec = recommend.choose(results(ref, Variant("dynamic", "c", "ok", bytes=1, outputs=outs)), 0.5)
    assert rec.summary.endswith(
        "Uncertain: a: the 95 % interval of its drop reaches 0.70 pp; b: the 95 % interval of its drop reaches 0.70 pp, "
        "past the budget; measure on more data before relying on it.")


def test_stream_sums_over_chunks():
    ref, out = np.array([[3.0, 4.0], [1.0, 0.0]]), np.array([[3.0, 3.0], [0.0, 1.0]])
    s = evaluate.Stream().update([out[:1]], [ref[:1]]).update([out[1:]], [ref[1:]])
    assert s.signal.tolist() == [26.0] and s.noise.tolist() == [3.0]
    assert s.cosine.tolist() == [pytest.approx(21 / (5 * math.sqrt(18)))]
    assert evaluate.Stream().update([np.array([[0.0, 1.0]])], [np.array([[0.0, 1.0]])]).unit == [True]


def test_cosines_of_unit_rows():
    assert evaluate.cosines(np.array([[1.0, 0.0], [0.6, 0.8]]), np.array([[1.0, 0.0], [2.0, 0.0]])).tolist() == \
        [1.0, 0.6]
    assert evaluate.cosines(np.array([[2.0, 0.0]]), np.array([[1.0, 0.0]])).tolist() == [1.0]


def test_degenerate_from_defaults_to_unlabelled_and_its_bound_is_inclusive():
    logits = np.array([[1.0, 3.0], [0.0, 2.0]])
    assert evaluate.degenerate_from(evaluate.Stream().update([logits], [logits]), ["l"]) == []
    x = np.array([[1e6, 0.0], [1e6, 1.0]])             # deviation 1.0, exactly 1e-6 of the largest value
    assert [d["output"] for d in evaluate.degenerate([x], ["x"])] == ["x"]


def test_labels_that_fit_nothing_are_named_as_the_labels():
    p = np.array([[0.9, 0.1], [0.2, 0.8]])
    ref = evaluate.Stream().update([p], [p])
    assert "Labels 'y' in the labels (shape (2, 3)" in _message(evaluate.truth_of, np.ones((2, 3)) * 7, ref, ["p"],
                                                                  TaskSpec())


def test_a_forced_class_output_that_is_stuck_is_judged_by_fidelity_when_labels_exist():
    logits = np.array([[1.0, 3.0], [0.0, 2.0]])
    r = np.array([[1.0], [2.0]])
    ref = evaluate.Stream().update([logits, r], [logits, r])
    truth = Truth({"b": r}, {"b": "regression"})
    assert evaluate.kinds_of(ref, ["a", "b"], truth, TaskSpec(overrides=(("a", "classes"),))) == [
        "fidelity", "regression"]
    assert evaluate.kinds_of(ref, ["a", "b"], Truth(), TaskSpec(overrides=(("a", "classes"),))) == [
        "classes", "fidelity"]


def test_a_metric_sees_outputs_in_their_shape_and_probability_rows():
    p = np.array([[0.9, 0.1], [0.2, 0.8]])
    seen = []
    got = evaluate.measure({"keras": [p], "dyn": [p[:, ::-1].copy()]}, "keras", None, ["p"], None,
                           (lambda labels, o: seen.append(o["p"].shape) or float(o["p"][:, 0].sum()), "first"))
    assert seen == [(2, 2), (2, 2)] and got["dyn"]["outputs"][-1]["value"] == pytest.approx(0.9)
