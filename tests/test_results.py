import json
import re

import pytest

from quantbench.core.errors import InputError
from quantbench.record.results import Results, Variant


def sample_results() -> Results:
    return Results(
        quantbench_version="0.1.0", model={"name": "m"}, data={"eval_samples": 10, "labels": True},
        machine={"cpu": "x", "simd": ["avx2"], "int8_dot": False, "threads": 1}, settings={"batch": 32},
        variants=[
            Variant("float32", "converter", "ok", path="float32.tflite", bytes=100, input_dtype="float32",
                    output_dtype="float32", accuracy=0.9, accuracy_ci=[0.6, 0.98], accuracy_delta_pp=0.0,
                    p_vs_float32=1.0, agreement=1.0, sqnr_db=130.5, kl=1e-9,
                    latency_ms={"median": 0.04, "ci95": [0.039, 0.041], "p90": 0.05, "p99": 0.1, "n": 10,
                                "quantiles": {"0": 0.03, "1": 0.031, "5": 0.033, "10": 0.035, "25": 0.038, "50": 0.04,
                                              "75": 0.042, "90": 0.05, "95": 0.07, "99": 0.1, "100": 0.2}},
                    throughput={"batch": 32, "samples_per_s": 60000.0, "ci95": [59000.0, 61000.0], "n": 30},
                    convert_s=1.2),
            Variant("int16x8", "converter", "failed", error="int16x8: no kernel"),
        ])


def test_json_round_trip_is_exact():
    r = sample_results()
    assert Results.from_json(r.to_json()) == r


def test_infinite_values_are_refused_not_written():
    r = Results("0", {}, {}, {}, {}, [Variant("a", "b", "ok", sqnr_db=float("inf"))])
    with pytest.raises(ValueError):
        r.to_json()


def test_load_ignores_unknown_fields(tmp_path):
    raw = json.loads(sample_results().to_json())
    raw["variants"][0]["from_a_newer_version"] = 1
    raw["extra"] = {}
    (tmp_path / "r.json").write_text(json.dumps(raw))
    assert Results.load(tmp_path / "r.json") == sample_results()


def test_load_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"^No results file at .*nope\.json\. Expected a results\.json written "
                                         r"by quantbench\. Fix: pass the results\.json of a quantbench study"):
        Results.load(tmp_path / "nope.json")


def test_load_not_json(tmp_path):
    (tmp_path / "r.json").write_text("{not json")
    with pytest.raises(InputError, match=r"r\.json is not JSON \(Expecting property name .*line 1 column 2.*\)\. "
                                         r"Expected a results\.json written by quantbench\. Fix: "):
        Results.load(tmp_path / "r.json")


def test_load_binary_file(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"\x00\xff\xfe TFL3")
    with pytest.raises(InputError, match=r"m\.tflite is not JSON"):
        Results.load(tmp_path / "m.tflite")


@pytest.mark.parametrize("content,what", [
    ({"a": 1}, r"it lacks 'quantbench_version', 'model', 'data', 'machine', 'settings', 'variants'"),
    ([1, 2], r"it lacks 'quantbench_version'"),
    ({**json.loads(sample_results().to_json()), "variants": [{"technique": "x"}]},
     r"'variants' is not a list of rows each with 'technique', 'engine', 'status'"),
])
def test_load_json_that_is_not_results(tmp_path, content, what):
    (tmp_path / "r.json").write_text(json.dumps(content))
    with pytest.raises(InputError, match=r"r\.json is JSON but not quantbench results: " + what +
                       r".*Expected a results\.json written by quantbench, an object with .* Fix: "):
        Results.load(tmp_path / "r.json")


def _damaged(change):
    raw = json.loads(sample_results().to_json())
    change(raw)
    return raw


@pytest.mark.parametrize("change,what", [
    (lambda r: r.update(model=[]), "model is []; expected an object"),
    (lambda r: r["variants"][0].update(accuracy=3), "variants[0].accuracy is 3; expected a number from 0 to 1"),
    (lambda r: r["variants"][0].update(technique=None),
     "variants[0].technique is missing or null; expected text"),
    (lambda r: r["variants"][0].update(status="great"),
     'variants[0].status is "great"; expected one of ok, failed, skipped'),
    (lambda r: r["variants"][0]["latency_ms"].update(ci95=[0.05, 0.06]),
     r"variants[0].latency_ms.median is 0.04, outside its interval [0.05, 0.06]; expected low <= value <= high"),
    (lambda r: r["variants"][0]["latency_ms"].update(ci95="x"),
     'variants[0].latency_ms.ci95 is "x"; expected [low, high], two numbers with low <= high'),
    (lambda r: r["variants"][0]["throughput"].pop("samples_per_s"),
     "variants[0].throughput.samples_per_s is missing or null; expected a finite number"),
    (lambda r: r["variants"][0]["latency_ms"].update(median=float("inf")),
     "variants[0].latency_ms.median is Infinity; expected a finite number"),
    (lambda r: r["variants"][0].update(sqnr_db=float("nan")), "variants[0].sqnr_db is NaN; expected a finite number"),
    (lambda r: r["variants"][0].update(mcu={"runs": True, "flash_bytes": 10}),
     "variants[0].mcu.arena_bytes is missing or null; expected a whole number (the variant runs on TFLite Micro)"),
    (lambda r: r["machine"].update(int8_dot="x"), 'machine.int8_dot is "x"; expected true or false'),
    (lambda r: r["variants"][0].update(xnnpack_refused=3), "variants[0].xnnpack_refused is 3; expected text"),
    (lambda r: r["machine"].update(simd=[1, 2]), "machine.simd[0] is 1; expected text"),
    (lambda r: r.update(recommendation={"a": 1}), "recommendation.summary is missing or null; expected text"),
    (lambda r: r.update(degenerate_outputs="x"), 'degenerate_outputs is "x"; expected a list'),
    (lambda r: r.update(quantbench_version=3), "quantbench_version is 3; expected text"),
])
def test_load_names_the_first_damaged_field(tmp_path, change, what):
    (tmp_path / "r.json").write_text(json.dumps(_damaged(change)))
    with pytest.raises(InputError) as err:
        Results.load(tmp_path / "r.json")
    assert str(err.value) == (f"{tmp_path / 'r.json'} is not a results.json quantbench can read: {what}. Fix: "
                              "restore the file as quantbench wrote it, or run the study again.")


def test_load_says_a_bench_file_is_not_a_study(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps({"files": [], "machine": {}, "settings": {}}))
    with pytest.raises(InputError) as err:
        Results.load(tmp_path / "b.json")
    assert str(err.value) == (f"{tmp_path / 'b.json'} is a `quantbench bench` file, not a study's results.json. "
                              "Expected a results.json written by quantbench. Fix: pass a study's results.json; "
                              f"`quantbench report {tmp_path / 'b.json'}` alone prints the bench's table.")


def test_report_of_a_damaged_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    from quantbench.cli import main

    path = tmp_path / "study" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_damaged(lambda r: r["variants"][0].update(bytes="big"))))
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"quantbench: error: {path} is not a results.json quantbench can read: variants[0].bytes is "
                   '"big"; expected a whole number. Fix: restore the file as quantbench wrote it, or run the study '
                   "again."]
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]


@pytest.mark.parametrize("studies,what", [
    ({"calibration_sizes": {"rows": [{"samples": 10, "accuracy": 0.9, "accuracy_ci": [0.8, 0.95]}]}},
     "studies.calibration_sizes.rows[0].bytes is missing or null; expected a whole number"),
    ({"calibration_sizes": {"rows": [{"samples": 0, "bytes": 5, "agreement": 1.0}]}},
     "studies.calibration_sizes.rows[0].samples is 0; expected a whole number of at least 1"),
    ({"selective": {"float_layers": [], "met": "yes"}}, 'studies.selective.met is "yes"; expected true or false'),
    ({"layer_errors": {"techniques": ["int8-only"], "rows": [{"name": "d", "op": "FC", "num_elements": 3}]}},
     "studies.layer_errors.rows[0].mean_squared_error is missing or null; expected a finite number"),
])
def test_load_checks_the_side_studies(tmp_path, studies, what):
    (tmp_path / "r.json").write_text(json.dumps(_damaged(lambda r: r.update(studies=studies))))
    with pytest.raises(InputError, match="can read: " + re.escape(what) + r"\. Fix: "):
        Results.load(tmp_path / "r.json")
    ok = {"calibration_sizes": {"rows": [{"samples": 10, "error": "refused"},
                                         {"samples": 20, "accuracy": None, "agreement": None, "bytes": 5}]}}
    (tmp_path / "ok.json").write_text(json.dumps(_damaged(lambda r: r.update(studies=ok))))
    assert Results.load(tmp_path / "ok.json").studies == ok


def test_load_allows_rounding_at_an_interval_end_but_not_more(tmp_path):
    raw = json.loads(sample_results().to_json())
    raw["variants"][0]["accuracy_ci"] = [0.6, 0.9 - 1e-12]
    (tmp_path / "r.json").write_text(json.dumps(raw))
    assert Results.load(tmp_path / "r.json").variants[0].accuracy == 0.9
    raw["variants"][0]["accuracy_ci"] = [0.6, 0.89]
    (tmp_path / "r.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"variants\[0\]\.accuracy is 0\.9, outside its interval \[0\.6, 0\.89\]"):
        Results.load(tmp_path / "r.json")
