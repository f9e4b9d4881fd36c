"""The microcontroller target: variants on the real TFLite Micro interpreter, budgets, and what users see."""
import json
import subprocess
import sys

import numpy as np
import pytest

from quantbench.cli import main
from quantbench.core.errors import InputError
from quantbench.engines import litert_quantizer as lq
from quantbench.measure import mcu
from quantbench.record.results import Results, Variant
from quantbench.study import recommend

pytest.importorskip("tflite_micro")

# A fresh TFLite Micro interpreter in its own process, independent of quantbench's worker: does the model
# allocate and run one zero input with exactly this arena?
FRESH = """
import sys
import numpy as np
from tflite_micro import runtime
it = runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=int(sys.argv[2]))
d = it.get_input_details(0)
it.set_input(np.zeros(d["shape"], d["dtype"]), 0)
it.invoke()
print("ran")
"""


def runs_fresh(path, arena: int) -> bool:
    proc = subprocess.run([sys.executable, "-c", FRESH, str(path), str(arena)], capture_output=True, text=True,
                          timeout=120)
    return proc.returncode == 0 and proc.stdout.strip() == "ran"


@pytest.fixture(scope="module")
def files(tiny_variants, tmp_path_factory):
    """The tiny model's int8-only, dynamic and float32 files, and a LiteRT Quantizer weight-only-int8."""
    folder = tmp_path_factory.mktemp("mcu")
    made = {name: tiny_variants[name] for name in ("int8-only", "dynamic", "float32")}
    made["weight-only-int8"] = lq.make(tiny_variants["float32"], "weight-only-int8").content
    for name, content in made.items():
        (folder / f"{name}.tflite").write_bytes(content)
    return {name: folder / f"{name}.tflite" for name in made}


@pytest.fixture(scope="module")
def x(digits):
    return [digits.x_test[:40]]


def test_int8_only_runs_at_its_arena_and_not_16_bytes_less(files, x, tiny_model):
    facts = mcu.measure(files["int8-only"], x, reference=[tiny_model.predict(x[0], verbose=0)])
    assert facts.runs and not facts.wrong and facts.reason is None
    assert facts.flash_bytes == files["int8-only"].stat().st_size and facts.samples == 40
    assert facts.agreement_litert == 1.0 and facts.max_diff_steps <= 2
    assert facts.gate == [{"output": facts.gate[0]["output"], "task": "fidelity", "criterion": "SQNR ≥ 30 dB",
                           "passed": True, "uncertain": False, "figure": facts.gate[0]["figure"]}]
    assert facts.agreement_float is not None and facts.agreement_float > 0.9
    assert [facts.arena_bytes, True] in facts.arena_probes and [facts.arena_bytes - 1, False] in facts.arena_probes
    # one byte less, with TFLite Micro's words from fd 2 (here its memory planner: "Too many buffers (max is 7)")
    prefix = f"{facts.arena_bytes - 1:,} bytes: "
    assert facts.arena_short.startswith(prefix) and len(facts.arena_short) > len(prefix) + 10
    assert runs_fresh(files["int8-only"], facts.arena_bytes)
    assert not runs_fresh(files["int8-only"], facts.arena_bytes - 16)


def test_weight_only_int8_is_flagged_wrong(files, x):
    # TFLite Micro's DEQUANTIZE applies the first channel's scale to every channel of per-channel weights
    facts = mcu.measure(files["weight-only-int8"], x)
    assert facts.runs and facts.wrong
    assert facts.max_diff_steps > 20
    assert [g["passed"] for g in facts.gate] == [False]


def test_float32_computes_what_litert_computes(files, x):
    facts = mcu.measure(files["float32"], x)
    assert facts.runs and not facts.wrong and facts.max_diff_steps < 0.1 and facts.agreement_litert == 1.0


def test_hybrid_model_is_refused_with_tflite_micros_reason(files, x):
    facts = mcu.measure(files["dynamic"], x)
    assert not facts.runs and facts.arena_bytes is None
    # the tiny model's convolution is too small for the converter to quantize; its dense layer is hybrid
    assert facts.reason == "FULLY_CONNECTED (op 5) failed to prepare: Input type: FLOAT32 with filter type: INT8 " \
                           "not supported."
    assert facts.flash_bytes == files["dynamic"].stat().st_size


def test_a_model_that_kills_tflite_micro_is_a_failed_run(files):
    """An operator reading tensor 5000 of 24: TFLite Micro dies by SIGSEGV, the caller gets a reason."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    content = files["int8-only"].read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    op = model.subgraphs[0].operators[0]
    op.inputs = np.array(op.inputs).copy()
    op.inputs[0] = 5000
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with mcu.Worker() as worker:  # as in a study: the crash ends that model's job, the next one runs
        result = mcu.run(bytes(builder.Output()), [np.zeros((1, 8, 8, 1), np.int8)], worker=worker)
        assert not result.runs and result.arena_bytes is None
        assert result.reason.startswith("TFLite Micro crashed (SIGSEGV) at step 'load'")
        assert mcu.run(content, [np.zeros((1, 8, 8, 1), np.int8)], worker=worker).runs


def test_inputs_of_the_wrong_dtype_are_a_failed_run_with_the_reason(files):
    result = mcu.run(files["int8-only"].read_bytes(), [np.zeros((2, 8, 8, 1), np.float32)])
    assert not result.runs and "input 0 is float32 [8, 8, 1], the model wants int8 [8, 8, 1]" in result.reason


def test_inspect_mcu_answers_the_three_questions(files, capsys):
    assert main(["inspect", str(files["int8-only"]), "--mcu"]) == 0
    out = capsys.readouterr().out
    facts = mcu.inspect_file(files["int8-only"])
    assert "  runs: yes" in out and f"tensor arena {facts.arena_bytes:,} bytes" in out
    assert f"not with {facts.arena_bytes - 1:,}" in out
    assert f"flash: {files['int8-only'].stat().st_size:,} bytes" in out
    assert "same results within the gate" in out and "upper bound" in out
    assert main(["inspect", str(files["weight-only-int8"]), "--mcu"]) == 0
    assert "; WRONG: output_0: top-1 agreement 96.88 %, past top-1 agreement ≥ 99 %" in capsys.readouterr().out


# ---- budgets and the choice, on measured facts as results.json holds them ------------------------------

def facts(arena, flash, runs=True, wrong=False, reason=None):
    return {"runs": runs, "reason": reason, "arena_bytes": arena if runs else None, "flash_bytes": flash,
            "samples": 100, "accuracy": 0.95, "agreement_litert": 1.0, "agreement_float": 1.0,
            "max_diff_steps": 150.0 if wrong else 0.0, "wrong": wrong, "arena_probes": [],
            "gate": [{"output": "probs", "task": "classes", "criterion": "accuracy drop ≤ 1 pp", "passed": not wrong,
                      "uncertain": False, "figure": "accuracy -12.00 pp" if wrong else "accuracy +0.00 pp"}]}


def row(name, acc, kb, mcu_facts):
    return Variant(name, "converter", "ok", path=f"{name}.tflite", bytes=kb * 1024, input_dtype="float32",
                   output_dtype="float32", accuracy=acc, agreement=1.0, mcu=mcu_facts)


@pytest.fixture
def measured():
    return Results("0", {}, {}, {}, {}, [
        row("keras", 0.98, 400, None),
        row("float32", 0.98, 130, facts(15_000, 133_000)),
        row("int8-only", 0.975, 42, facts(6_928, 42_552)),
        row("int16x8", 0.98, 45, facts(12_000, 45_240)),
        row("weight-only-int8", 0.98, 40, facts(89_288, 40_648, wrong=True)),
        row("dynamic", 0.98, 41, facts(None, 41_928, runs=False, reason="CONV_2D (op 1) failed to prepare: "
                                                                        "Hybrid models are not supported")),
    ])


def test_mcu_choice_is_the_smallest_that_runs_right(measured):
    rec = recommend.choose(measured, 1.0, "mcu")
    assert rec.technique == "int8-only" and "6.8 KB RAM + 41.6 KB flash" in rec.summary
    why = {e["technique"]: e["why"] for e in rec.excluded}
    assert why["weight-only-int8"] == ("wrong on TFLite Micro: against LiteRT on the same file, probs: accuracy "
                                       "-12.00 pp, past accuracy drop ≤ 1 pp (largest difference 150.0 8-bit steps)")
    assert why["dynamic"] == "TFLite Micro cannot run it: CONV_2D (op 1) failed to prepare: Hybrid models are " \
                             "not supported"


def test_ram_and_flash_budgets(measured):
    rec = recommend.choose(measured, 0.1, "mcu", max_ram_kb=13)  # int8-only is 0.5 pp down: int16x8 it is
    assert rec.technique == "int16x8" and "within the budget (accuracy drop ≤ 0.1 pp) and --max-ram 13 KB for --target mcu" in rec.summary
    why = {e["technique"]: e["why"] for e in rec.excluded}
    assert why["float32"] == "needs 14.6 KB of RAM (arena), past --max-ram 13"
    rec = recommend.choose(measured, 1.0, "mcu", max_ram_kb=6)
    assert rec.technique is None
    assert ("Nothing meets --max-ram 6: the least RAM (arena) is int8-only's 6.8 KB (6,928 bytes), 784 bytes "
            "more." in rec.summary)
    rec = recommend.choose(measured, 1.0, "mcu", max_flash_kb=40)
    assert rec.technique is None and "--max-flash 40: the least flash is int8-only's 41.6 KB (42,552 bytes), " \
        "1,592 bytes more" in rec.summary
    rec = recommend.choose(measured, 0.1, "mcu", max_ram_kb=8)
    assert rec.technique is None and "Each budget is met by some variant, but no variant meets all" in rec.summary


def test_nothing_accurate_enough_says_by_how_much(measured):
    only = Results("0", {}, {}, {}, {}, [v for v in measured.variants if v.technique in ("keras", "int8-only")])
    rec = recommend.choose(only, 0.2, "mcu", max_ram_kb=64)
    assert rec.technique is None
    assert rec.summary == ("No variant meets every budget for --target mcu. Nothing meets the quality budget: "
                           "the closest is int8-only, where accuracy -0.50 pp is past the budget (accuracy drop "
                           "≤ 0.2 pp).")


@pytest.mark.parametrize("value", ["abc", "0", "-4", "nan", "inf", ""])
def test_a_budget_that_is_not_a_positive_number_is_refused(value):
    with pytest.raises(InputError, match=r"--max-ram is .*\. Expected a positive number of KB \(1 KB = 1,024 "
                                         r"bytes\)\. Fix: pass, for example, --max-ram 64\."):
        recommend.Goal(target="mcu", max_ram_kb=recommend.budget_kb(value, "--max-ram"))


def test_target_mcu_without_tflite_micro_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tflite_micro", None)  # what `import` sees when the package is absent
    with pytest.raises(InputError, match=r"--target mcu needs the TFLite Micro interpreter, and the package "
                                         r"`tflite-micro` is not installed\..*Fix: pip install 'quantbench\[mcu\]'"):
        recommend.Goal(target="mcu")


def test_budgets_and_latency_need_the_mcu_target():
    with pytest.raises(InputError, match="--max-ram and --max-flash are microcontroller budgets.*Fix: add --target "
                                         "mcu"):
        recommend.Goal(target="cpu", max_flash_kb=64)
    with pytest.raises(InputError, match="latency on this host says nothing about a microcontroller"):
        recommend.Goal(target="mcu", optimize="latency")


def test_cli_bad_max_ram_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "quantbench", "demo", "--out", str(tmp_path / "x"), "--target",
                           "mcu", "--max-ram", "lots"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("quantbench: error: --max-ram is 'lots'. Expected a positive number of KB "
                                   "(1 KB = 1,024 bytes). Fix: pass, for example, --max-ram 64.")
    assert not (tmp_path / "x").exists()


# ---- the whole study ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mcu_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("mcu-demo") / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--quiet", "--target", "mcu",
                 "--techniques", "int8-only,dynamic,weight-only-int8,float16"]) == 0
    return out


def test_demo_target_mcu_recommends_what_tflite_micro_runs_at_the_reported_arena(mcu_demo):
    results = Results.load(mcu_demo / "results.json")
    rec = results.recommendation
    assert rec["technique"] == "int8-only" and rec["target"] == "mcu"
    chosen = results.variant(rec["technique"]).mcu
    arena = chosen["arena_bytes"]
    assert runs_fresh(mcu_demo / "recommended.tflite", arena)
    assert not runs_fresh(mcu_demo / "recommended.tflite", arena - 16)
    assert chosen["flash_bytes"] == (mcu_demo / "recommended.tflite").stat().st_size
    why = {e["technique"]: e["why"] for e in rec["excluded"]}
    assert why["weight-only-int8"].startswith("wrong on TFLite Micro")
    assert "Hybrid models are not supported" in why["dynamic"]
    assert "DEQUANTIZE (op 0) failed to prepare" in why["float16"]
    assert results.variant("keras").mcu is None and results.settings["max_ram_kb"] is None
    report = (mcu_demo / "report.md").read_text()
    assert "MCU RAM KB" in report and "## TFLite Micro" in report and "upper bound" in report
    assert f"| int8-only | yes | {arena:,} |" in report
    assert (f"On TFLite Micro, 1 of 4 variants run and compute what LiteRT computes; the least RAM is int8-only's, "
            f"a {arena:,}-byte tensor arena; weight-only-int8 runs there but wrong.") in report
    assert (mcu_demo / "accuracy_vs_arena.png").stat().st_size > 10_000
    assert "<h2>Accuracy on TFLite Micro vs RAM</h2>" in (mcu_demo / "report.html").read_text()
    assert "max_ram_kb" not in report  # a budget not given is no row of the report


def _compare_mcu(mcu_demo, out, capsys, max_ram_kb: int) -> dict:
    assert main(["compare", str(mcu_demo / "model.keras"), "--data", str(mcu_demo / "digits-test.npz"),
                 "--calib", str(mcu_demo / "digits-train.npz"), "--out", str(out), "--techniques",
                 "int8-only,int16x8", "--target", "mcu", "--max-ram", str(max_ram_kb), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["recommendation"]["max_ram_kb"] == float(max_ram_kb)
    return printed


def _demo_arena(mcu_demo) -> int:
    """int8-only's tensor arena in the demo: the compare below makes the same file (same model, same
    calibration draw of 200 training samples, seed 0)."""
    return Results.load(mcu_demo / "results.json").variant("int8-only").mcu["arena_bytes"]


def test_compare_target_mcu_ships_int8_only_when_its_arena_fits_max_ram(mcu_demo, tmp_path, capsys):
    arena = _demo_arena(mcu_demo)
    kb = -(-arena // 1024)  # the arena rounded up to whole KB: int8-only fits, int16x8 (16-bit activations) not
    printed = _compare_mcu(mcu_demo, tmp_path / "cmp", capsys, kb)
    rec = printed["recommendation"]
    facts = {v["technique"]: v["mcu"] for v in printed["variants"] if v["mcu"]}
    assert facts["int8-only"]["arena_bytes"] == arena <= kb * 1024 < facts["int16x8"]["arena_bytes"]
    assert rec["technique"] == "int8-only"
    why = {e["technique"]: e["why"] for e in rec["excluded"]}
    assert why["int16x8"].startswith("needs ") and f"past --max-ram {kb}" in why["int16x8"]
    assert (tmp_path / "cmp" / "recommended.tflite").read_bytes() == (tmp_path / "cmp" / "int8-only.tflite").read_bytes()


def test_compare_target_mcu_says_what_is_missing_when_no_arena_fits_max_ram(mcu_demo, tmp_path, capsys):
    arena = _demo_arena(mcu_demo)
    kb = (arena - 1) // 1024  # whole KB short of int8-only's arena, the least of the two
    printed = _compare_mcu(mcu_demo, tmp_path / "cmp", capsys, kb)
    rec = printed["recommendation"]
    assert rec["technique"] is None and not (tmp_path / "cmp" / "recommended.tflite").exists()
    assert (f"No variant meets every budget for --target mcu. Nothing meets --max-ram {kb}: the least RAM (arena) is "
            f"int8-only's {arena / 1024:.1f} KB ({arena:,} bytes), {arena - kb * 1024:,} bytes more.") == rec["summary"]
    why = {e["technique"]: e["why"] for e in rec["excluded"]}
    assert set(why) == {"int8-only", "int16x8"} and all(f"past --max-ram {kb}" in w for w in why.values())
