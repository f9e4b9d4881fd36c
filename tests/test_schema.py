"""What a results.json or bench JSON must hold, one field at a time, with the exact first problem (issue 25:
these kill the mutants of quantbench/record/schema.py and quantbench/record/results.py that the older tests let live)."""
import copy
import json

import pytest

from quantbench.core.errors import InputError
from quantbench.record import schema
from quantbench.record.results import Results, Variant, is_bench, load_saved

LATENCY = {"median": 0.04, "ci95": [0.039, 0.041], "p90": 0.05, "p99": 0.1, "n": 10, "batch": 1,
           "stopped": "converged", "quantiles": {q: 0.04 for q in schema.QUANTILES}}
THROUGHPUT = {"batch": 32, "samples_per_s": 60000.0, "ci95": [59000.0, 61000.0], "n": 30, "batch_asked": 32,
              "stopped": "budget"}
MCU = {"runs": True, "reason": None, "arena_bytes": 4096, "flash_bytes": 9000, "samples": 50, "accuracy": 0.9,
       "agreement_litert": 1.0, "agreement_float": 0.98, "max_diff_steps": 1.0, "wrong": False, "arena_probes": [],
       "arena_short": None}
ROW = {"technique": "int8-only", "engine": "converter", "status": "ok", "error": None, "path": "int8-only.tflite",
       "bytes": 100, "input_dtype": "int8", "output_dtype": "int8", "accuracy": 0.9, "accuracy_ci": [0.8, 0.95],
       "drop_ci_pp": [-1.0, 2.0], "accuracy_delta_pp": -0.5, "p_vs_float32": 0.5, "top5": 1.0, "agreement": 0.97,
       "sqnr_db": 30.0, "kl": 0.01,
       "fidelity": [{"output": "digit", "agreement": 0.97, "sqnr_db": 30.0, "max_abs_err": 0.1}],
       "latency_ms": LATENCY, "throughput": THROUGHPUT, "convert_s": 1.0, "mcu": MCU, "xnnpack_refused": None}
RAW = {"quantbench_version": "0.1.0",
       "model": {"name": "m", "format": "keras", "inputs": [{"name": "image", "shape": [-1, 8, 8, 1]}],
                 "outputs": [{"name": "digit", "shape": [-1, 10]}]},
       "data": {"eval_samples": 450, "labels": True, "eval_from": "test", "name": "digits",
                "calibration": {"samples": 200, "from": "train", "seed": 0}},
       "machine": {"cpu": "x", "arch": "x86_64", "simd": ["avx2"], "int8_dot": False, "cores": 2, "threads": 1},
       "settings": {"batch": 32},
       "variants": [ROW],
       "recommendation": {"technique": "int8-only", "summary": "Ship int8-only.", "runners_up": [],
                          "excluded": [{"technique": "x", "why": "y"}],
                          "decision_tree": [{"target": "cpu", "question": "q", "techniques": "t", "why": "w"}]},
       "studies": {"selective": {"met": True, "float_layers": ["d"], "conversions": 3, "seconds": 1.5,
                                 "steps": [{"float_layers": [], "bytes": 10, "drop_pp": 2.0, "ok": False}]},
                   "layer_errors": {"samples": 50, "techniques": ["int8-only"],
                                    "rows": [{"name": "d", "op": "FC", "rmse_over_scale": 0.3,
                                              "mean_squared_error": 0.01, "num_elements": 32}]},
                   "calibration_sizes": {"technique": "int8-only", "samples": 256,
                                         "rows": [{"samples": 10, "accuracy": 0.9, "accuracy_ci": [0.8, 0.95],
                                                   "agreement": 0.95, "bytes": 100}]}},
       "degenerate_outputs": [{"output": "digit", "why": "w"}]}


def damaged(change, raw=RAW):
    raw = copy.deepcopy(raw)
    change(raw)
    return raw


def test_a_whole_results_file_has_no_problem():
    assert schema.results_problem(copy.deepcopy(RAW)) is None


def _set(path, value):
    """A change setting raw[a][b]... (ints index lists) to value, or deleting it when value is DELETE."""
    def change(raw):
        *head, last = path
        for key in head:
            raw = raw[key]
        if value is DELETE:
            del raw[last]
        else:
            raw[last] = value
    return change


DELETE = object()
V = ("variants", 0)
S = ("studies",)


@pytest.mark.parametrize("path,value,what", [
    # kinds, each at its edges
    ((*V, "bytes"), True, "variants[0].bytes is true; expected a whole number"),
    ((*V, "bytes"), 1.5, "variants[0].bytes is 1.5; expected a whole number"),
    ((*V, "kl"), True, "variants[0].kl is true; expected a finite number"),
    ((*V, "kl"), "1", 'variants[0].kl is "1"; expected a finite number'),
    ((*V, "accuracy"), -0.01, "variants[0].accuracy is -0.01; expected a number from 0 to 1"),
    ((*V, "accuracy"), 1.01, "variants[0].accuracy is 1.01; expected a number from 0 to 1"),
    ((*V, "top5"), "1", 'variants[0].top5 is "1"; expected a number from 0 to 1'),
    ((*V, "path"), 3, "variants[0].path is 3; expected text"),
    (("data", "labels"), 1, "data.labels is 1; expected true or false"),
    ((*V, "drop_ci_pp"), [2.0, 1.0], "variants[0].drop_ci_pp is [2.0, 1.0]; expected [low, high], two numbers with "
                                     "low <= high"),
    ((*V, "drop_ci_pp"), [1.0], "variants[0].drop_ci_pp is [1.0]; expected [low, high], two numbers with low <= high"),
    ((*V, "drop_ci_pp"), [1.0, 2.0, 3.0], "variants[0].drop_ci_pp is [1.0, 2.0, 3.0]; expected [low, high], two "
                                          "numbers with low <= high"),
    ((*V, "drop_ci_pp"), [1.0, "2"], 'variants[0].drop_ci_pp is [1.0, "2"]; expected [low, high], two numbers with '
                                     "low <= high"),
    ((*V, "drop_ci_pp"), {"a": 1}, 'variants[0].drop_ci_pp is {"a": 1}; expected [low, high], two numbers with '
                                   "low <= high"),
    # required fields, lists and objects
    ((*V, "engine"), None, "variants[0].engine is missing or null; expected text"),
    ((*V, "engine"), DELETE, "variants[0].engine is missing or null; expected text"),
    ((*V, "latency_ms", "p90"), DELETE, "variants[0].latency_ms.p90 is missing or null; expected a finite number"),
    ((*V, "latency_ms", "quantiles", "50"), None,
     "variants[0].latency_ms.quantiles.50 is missing or null; expected a finite number"),
    ((*V, "fidelity"), {"output": "x"}, 'variants[0].fidelity is {"output": "x"}; expected a list'),
    ((*V, "fidelity", 0), ["x"], 'variants[0].fidelity[0] is ["x"]; expected an object'),
    ((*V, "fidelity", 0, "max_abs_err"), "big", 'variants[0].fidelity[0].max_abs_err is "big"; expected a finite '
                                                "number"),
    (("model",), None, "model is null; expected an object"),
    (("machine", "simd"), None, "machine.simd is null; expected a list"),
    (("data", "calibration"), "x", 'data.calibration is "x"; expected an object'),
    (("recommendation", "excluded", 0, "why"), None, "recommendation.excluded[0].why is missing or null; expected "
                                                     "text"),
    (("recommendation", "decision_tree", 0, "target"), 1, "recommendation.decision_tree[0].target is 1; expected "
                                                          "text"),
    (("degenerate_outputs", 0, "output"), None, "degenerate_outputs[0].output is missing or null; expected text"),
    (("choices",), "x", 'choices is "x"; expected a list'),
    (("choices",), [{"choice": "evaluation_split"}], "choices[0].text is missing or null; expected text"),
    (("variants",), [ROW, {**ROW, "status": "failed", "sqnr_db": "x"}],
     'variants[1].sqnr_db is "x"; expected a finite number'),
    # what the specs cannot say: the status, intervals that hold their point, the TFLite Micro facts
    ((*V, "status"), "OK", 'variants[0].status is "OK"; expected one of ok, failed, skipped'),
    ((*V, "accuracy_ci"), [0.91, 0.95], "variants[0].accuracy is 0.9, outside its interval [0.91, 0.95]; expected "
                                        "low <= value <= high"),
    ((*V, "accuracy_ci"), [0.8, 0.89], "variants[0].accuracy is 0.9, outside its interval [0.8, 0.89]; expected "
                                       "low <= value <= high"),
    ((*V, "throughput", "ci95"), [60001.0, 61000.0], "variants[0].throughput.samples_per_s is 60000.0, outside its "
                                                     "interval [60001.0, 61000.0]; expected low <= value <= high"),
    ((*V, "mcu", "max_diff_steps"), None, "variants[0].mcu.max_diff_steps is missing or null; expected a finite "
                                          "number (the variant runs on TFLite Micro)"),
    ((*V, "mcu", "wrong"), DELETE, "variants[0].mcu.wrong is missing or null; expected true or false (the variant "
                                   "runs on TFLite Micro)"),
    ((*V, "mcu", "arena_bytes"), None, "variants[0].mcu.arena_bytes is missing or null; expected a whole number (the "
                                       "variant runs on TFLite Micro)"),
    # the side studies
    ((*S, "selective", "met"), None, "studies.selective.met is missing or null; expected true or false"),
    ((*S, "selective", "conversions"), DELETE, "studies.selective.conversions is missing or null; expected a whole "
                                               "number"),
    ((*S, "selective", "seconds"), None, "studies.selective.seconds is missing or null; expected a finite number"),
    ((*S, "selective", "float_layers"), None, "studies.selective.float_layers is null; expected a list"),
    ((*S, "selective", "float_layers"), DELETE, "studies.selective.float_layers is null; expected a list"),
    ((*S, "selective", "steps", 0, "drop_pp"), None, "studies.selective.steps[0].drop_pp is missing or null; expected "
                                                     "a finite number"),
    ((*S, "layer_errors", "techniques"), DELETE, "studies.layer_errors.techniques is null; expected a list"),
    ((*S, "calibration_sizes", "rows", 0, "accuracy_ci"), None, "studies.calibration_sizes.rows[0].accuracy_ci is "
                                                                "missing or null; expected [low, high], two numbers "
                                                                "with low <= high"),
    ((*S, "calibration_sizes", "rows", 0, "bytes"), DELETE, "studies.calibration_sizes.rows[0].bytes is missing or "
                                                            "null; expected a whole number"),
    ((*S, "calibration_sizes", "rows", 0, "samples"), 0, "studies.calibration_sizes.rows[0].samples is 0; expected a "
                                                         "whole number of at least 1"),
    ((*S, "calibration_sizes", "rows", 0, "accuracy_ci"), [0.91, 0.95],
     "studies.calibration_sizes.rows[0].accuracy is 0.9, outside its interval [0.91, 0.95]"),
])
def test_results_problem_names_the_first_damaged_field(path, value, what):
    assert schema.results_problem(damaged(_set(path, value))) == what


@pytest.mark.parametrize("path,value", [
    ((*V, "accuracy_ci"), [0.8, 0.9]),                   # the point at an end of its interval
    ((*V, "accuracy_ci"), [0.9, 0.95]),
    ((*V, "accuracy_ci"), [0.8, 0.9 - 5e-10]),           # rounding: within 1e-9 of the point
    ((*V, "throughput", "ci95"), [60000.00005, 61000.0]),  # ... relative to a point larger than 1
    ((*V, "latency_ms", "ci95"), None),                  # no interval: nothing to hold
    ((*V, "accuracy"), None),
    ((*V, "accuracy_ci"), [0, 1]),
    ((*V, "drop_ci_pp"), [1.0, 1.0]),
    ((*V, "mcu"), {"runs": False, "flash_bytes": 9000, "reason": "no kernel"}),  # a refusal holds no arena
    ((*V, "mcu"), None), ((*V, "latency_ms"), None), ((*V, "fidelity"), None),
    (("data", "calibration"), None),
    (("recommendation",), None),
    (("studies", "selective"), {"error": "the converter refused"}),  # a failed study holds only its error
    # what study.py writes when the layer_errors task's worker died: its error, no rows
    (("studies", "layer_errors"), {"error": "worker died", "rows": []}),
    ((*S, "calibration_sizes", "rows"), [{"samples": 10, "error": "refused"},
                                         {"samples": 20, "accuracy": None, "agreement": 0.9, "bytes": 5}]),
    (("studies",), {}),
    (("degenerate_outputs",), []),
    (("choices",), [{"choice": "evaluation_split", "text": "Evaluated 225 of the 300 samples in x.npz: ..."}]),
])
def test_results_problem_accepts_what_quantbench_writes(path, value):
    assert schema.results_problem(damaged(_set(path, value))) is None


def test_fractions_at_0_and_1_are_fractions():
    for value in (0, 1, 0.0, 1.0):
        raw = damaged(_set((*V, "accuracy_ci"), [0, 1]))
        raw["variants"][0]["accuracy"] = value
        raw["variants"][0]["top5"] = value
        assert schema.results_problem(raw) is None, value


def test_a_status_is_checked_before_the_intervals():
    raw = damaged(_set((*V, "accuracy_ci"), [0.91, 0.95]))
    raw["variants"][0]["status"] = "bad"
    assert schema.results_problem(raw) == 'variants[0].status is "bad"; expected one of ok, failed, skipped'


def test_latency_is_checked_before_throughput():
    raw = damaged(_set((*V, "throughput", "ci95"), [60001.0, 61000.0]))
    raw["variants"][0]["latency_ms"]["ci95"] = [0.041, 0.05]
    assert schema.results_problem(raw).startswith("variants[0].latency_ms.median is 0.04, outside its interval")


@pytest.mark.parametrize("value,shown", [
    ("a" * 38, '"' + "a" * 38 + '"'),                 # 40 characters of JSON: shown whole
    ("a" * 39, '"' + "a" * 36 + "..."),              # 41: cut to 37 and an ellipsis
])
def test_a_long_value_is_cut_at_40_characters(value, shown):
    assert schema.results_problem(damaged(_set((*V, "kl"), value))) == \
        f"variants[0].kl is {shown}; expected a finite number"


def test_problem_of_each_spec_form():
    assert schema.problem(None, schema.Maybe({"a": "int"}), "x") is None
    assert schema.problem({"a": "1"}, schema.Maybe({"a": "int"}), "x") == 'x.a is "1"; expected a whole number'
    assert schema.problem(None, schema.Required(["str"]), "x") == "x is null; expected a list"
    assert schema.problem(None, schema.Required({}), "x") == "x is null; expected an object"
    assert schema.problem([1], schema.Required(["str"]), "x") == "x[0] is 1; expected text"
    assert schema.problem(None, {"a": "int"}, "x", present=False) is None   # an absent object may be left out
    assert schema.problem(None, ["int"], "x", present=False) is None
    assert schema.problem(None, ["int"], "x") == "x is null; expected a list"
    assert schema.problem("s", {"a": "int"}, "x") == 'x is "s"; expected an object'
    assert schema.problem({"a": 1, "b": 2}, {"a": "int", "b": "str"}, "x") == "x.b is 2; expected text"
    assert schema.problem([1, 2, "3"], ["int"], "x") == 'x[2] is "3"; expected a whole number'
    assert schema.problem(None, "int", "x") is None and schema.problem(None, "int!", "x") == \
        "x is missing or null; expected a whole number"
    assert schema.problem(object, "any", "x") is None and schema.problem(None, "any!", "x") == \
        "x is missing or null; expected a value"


# ---- quantbench bench --json ----------------------------------------------------------------------------

BENCH = {"files": [{"path": "a.tflite", "bytes": 100, "inputs": ["image"], "input_shapes": [[8, 8, 1]],
                    "latency_ms": LATENCY, "throughput": THROUGHPUT, "xnnpack_refused": None}],
         "machine": {"cpu": "x", "simd": ["avx2"], "threads": 1, "litert": "2.3.0"},
         "settings": {"batch": 32, "batch_used": 32, "time_budget_s": 30.0, "input": "generated"}}
F = ("files", 0)


def test_a_whole_bench_file_has_no_problem():
    assert schema.bench_problem(copy.deepcopy(BENCH)) is None
    assert schema.bench_problem(damaged(_set((*F, "latency_ms", "ci95"), None), BENCH)) is None


@pytest.mark.parametrize("path,value,what", [
    (("files",), [], "files is []; expected a list of at least one timed file"),
    (("files",), {"a": 1}, 'files is {"a": 1}; expected a list of at least one timed file'),
    ((*F, "path"), None, "files[0].path is missing or null; expected text"),
    ((*F, "bytes"), "1", 'files[0].bytes is "1"; expected a whole number'),
    ((*F, "input_shapes"), [[8, "8"]], 'files[0].input_shapes[0][1] is "8"; expected a whole number'),
    ((*F, "latency_ms"), None, "files[0].latency_ms is null; expected an object"),
    ((*F, "latency_ms", "n"), None, "files[0].latency_ms.n is missing or null; expected a whole number"),
    ((*F, "latency_ms", "stopped"), DELETE, "files[0].latency_ms.stopped is missing or null; expected text"),
    ((*F, "throughput"), DELETE, "files[0].throughput is null; expected an object"),
    ((*F, "throughput", "n"), None, "files[0].throughput.n is missing or null; expected a whole number"),
    ((*F, "throughput", "stopped"), None, "files[0].throughput.stopped is missing or null; expected text"),
    ((*F, "xnnpack_refused"), 1, "files[0].xnnpack_refused is 1; expected text"),
    (("machine",), None, "machine is null; expected an object"),
    (("machine", "simd"), None, "machine.simd is null; expected a list"),
    (("machine", "cpu"), None, "machine.cpu is missing or null; expected text"),
    (("machine", "threads"), None, "machine.threads is missing or null; expected a whole number"),
    (("machine", "litert"), DELETE, "machine.litert is missing or null; expected text"),
    (("settings",), DELETE, "settings is null; expected an object"),
    (("settings", "batch"), None, "settings.batch is missing or null; expected a whole number"),
    (("settings", "time_budget_s"), "30", 'settings.time_budget_s is "30"; expected a finite number'),
    (("settings", "input"), None, "settings.input is missing or null; expected text"),
    ((*F, "latency_ms", "ci95"), [0.041, 0.05], "files[0].latency_ms.median is 0.04, outside its interval "
                                                "[0.041, 0.05]; expected low <= value <= high"),
    ((*F, "throughput", "ci95"), [50000.0, 59999.0], "files[0].throughput.samples_per_s is 60000.0, outside its "
                                                     "interval [50000.0, 59999.0]; expected low <= value <= high"),
])
def test_bench_problem_names_the_first_damaged_field(path, value, what):
    assert schema.bench_problem(damaged(_set(path, value), BENCH)) == what


def test_bench_intervals_of_a_later_file_are_checked_too():
    second = copy.deepcopy(BENCH["files"][0])
    second["throughput"]["ci95"] = [1.0, 2.0]
    raw = damaged(lambda r: r["files"].append(second), BENCH)
    assert schema.bench_problem(raw).startswith("files[1].throughput.samples_per_s is 60000.0, outside")


# ---- results.py: the JSON round trip and what load refuses ----------------------------------------------

def _results():
    return Results("0.1.0", {"name": "m"}, {"eval_samples": 1}, {"cpu": "x"}, {},
                   [Variant("float32", "converter", "ok", bytes=10, accuracy=0.5)])


def test_to_json_is_indented_by_two_and_save_ends_with_a_newline(tmp_path):
    text = _results().to_json()
    assert text.splitlines()[:3] == ["{", '  "quantbench_version": "0.1.0",', '  "model": {']
    _results().save(tmp_path / "r.json")
    assert (tmp_path / "r.json").read_text() == text + "\n"
    with pytest.raises(ValueError):  # strict JSON: NaN is refused, not written
        Results("0", {}, {}, {}, {}, [Variant("a", "b", "ok", kl=float("nan"))]).to_json()


def test_variant_by_name_and_the_error_naming_the_ones_there():
    assert _results().variant("float32").bytes == 10
    with pytest.raises(KeyError) as err:
        _results().variant("int8-only")
    assert err.value.args[0] == "No variant 'int8-only' in these results; have ['float32']."


def test_load_names_every_top_level_field_it_lacks(tmp_path):
    path = tmp_path / "r.json"
    raw = json.loads(_results().to_json())
    for optional in ("recommendation", "studies", "degenerate_outputs", "choices"):
        del raw[optional]
    path.write_text(json.dumps(raw))
    loaded = Results.load(path)
    assert loaded.variants[0].accuracy == 0.5  # the optional fields may be absent (files written before them)
    assert loaded.choices == [] and loaded.degenerate_outputs == []
    del raw["machine"], raw["data"]
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError) as err:
        Results.load(path)
    assert str(err.value) == (
        f"{path} is JSON but not quantbench results: it lacks 'data', 'machine'. Expected a results.json written by "
        "quantbench, an object with 'quantbench_version', 'model', 'data', 'machine', 'settings', 'variants'. Fix: "
        "pass the results.json of a quantbench study (e.g. runs/demo/results.json).")


def test_is_bench_and_load_saved_tell_the_two_files_apart(tmp_path):
    from quantbench.record.bench_file import BenchResult

    assert is_bench({"files": []}) and not is_bench({"files": [], "variants": []}) and not is_bench([1])
    assert not is_bench({"variants": []})
    (tmp_path / "b.json").write_text(json.dumps(BENCH))
    loaded = load_saved(tmp_path / "b.json")
    assert isinstance(loaded, BenchResult) and loaded.files == BENCH["files"]
    (tmp_path / "bad.json").write_text(json.dumps(damaged(_set((*F, "bytes"), "1"), BENCH)))
    with pytest.raises(InputError) as err:
        load_saved(tmp_path / "bad.json")
    assert str(err.value).startswith(f"{tmp_path / 'bad.json'} is not a `quantbench bench` JSON quantbench can read: "
                                     'files[0].bytes is "1"; expected a whole number.')
    _results().save(tmp_path / "r.json")
    assert load_saved(tmp_path / "r.json") == _results()


# ---- edges the mutation run found untested (BENCHMARKS.md, "Mutation testing") ---------------------------

def test_a_null_object_is_named_an_object():
    assert schema.problem(None, {"a": "int"}, "x") == "x is null; expected an object"
    raw = damaged(_set(("studies", "selective"), None))
    assert schema.results_problem(raw) == "studies.selective is null; expected an object"


@pytest.mark.parametrize("interval,inside", [
    ([0.8, 0.9 - 1.5e-9], False),   # past the slack of 1e-9 (the point is below 1: the slack is not scaled)
    ([0.8, 0.9 - 0.5e-9], True),
])
def test_the_slack_of_an_interval_is_1e_9_below_1(interval, inside):
    problem = schema.results_problem(damaged(_set((*V, "accuracy_ci"), interval)))
    assert (problem is None) == inside


@pytest.mark.parametrize("interval", [[1e-9, 0.5], [-1.0, -1e-9]])
def test_a_point_exactly_at_an_end_plus_its_slack_is_inside(interval):
    raw = damaged(_set((*V, "accuracy"), 0))
    raw["variants"][0]["accuracy_ci"] = interval  # 0 is exactly 1e-9 past the end: within the slack
    assert schema.results_problem(raw) is None


@pytest.mark.parametrize("key,value,what", [
    ("selective", {"met": True, "conversions": 1, "seconds": 1.0, "float_layers": "d"},
     'studies.selective.float_layers is "d"; expected a list'),
    ("layer_errors", {"techniques": "int8-only", "rows": []}, 'studies.layer_errors.techniques is "int8-only"; '
                                                              "expected a list"),
    ("calibration_sizes", {"rows": [{"samples": 10, "error": "refused"}, {"samples": 20, "bytes": "5"}]},
     'studies.calibration_sizes.rows[1].bytes is "5"; expected a whole number'),
    ("calibration_sizes", {"rows": [{"samples": 10, "error": "refused"}, {"samples": 20, "agreement": 0.9}]},
     "studies.calibration_sizes.rows[1].bytes is missing or null; expected a whole number"),
    ("calibration_sizes", {"rows": [{"samples": 20, "accuracy": None, "agreement": 0.9}]},
     "studies.calibration_sizes.rows[0].bytes is missing or null; expected a whole number"),
])
def test_side_study_problems_show_the_value_and_look_past_failed_rows(key, value, what):
    assert schema.results_problem(damaged(_set(("studies", key), value))) == what


def test_a_calibration_size_of_one_sample_is_allowed():
    raw = damaged(_set((*S, "calibration_sizes", "rows", 0, "samples"), 1))
    assert schema.results_problem(raw) is None


@pytest.mark.parametrize("content", ["5", '"quantbench_version model data machine settings variants"', "null"])
def test_load_of_json_that_is_no_object_names_every_field(tmp_path, content):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        Results.load(path)
    assert str(err.value).startswith(f"{path} is JSON but not quantbench results: it lacks 'quantbench_version', "
                                     "'model', 'data', 'machine', 'settings', 'variants'. ")
