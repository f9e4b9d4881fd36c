"""An independent check of what users see (issue 25): the demo's files run outside quantbench.

Every variant of the default demo (the session's `demo_cli`) and its `recommended.tflite` go through a plain
`ai_edge_litert` interpreter, inputs quantized and outputs dequantized by hand in `plain_litert`, on the
`digits-test.npz` the demo wrote beside them. The accuracy counted here must equal the results.json row
exactly, and the recommended file must meet the budget the recommendation states.
"""
import json

import numpy as np
import pytest

import plain_litert


@pytest.fixture(scope="module")
def demo(demo_cli):
    out = demo_cli[0]
    with np.load(out / "digits-test.npz", allow_pickle=False) as d:
        x, y = d["x"], d["y"]
    return out, json.loads((out / "results.json").read_text()), x, y


def _rows(raw):
    return {row["technique"]: row for row in raw["variants"]}


def test_every_variant_s_accuracy_is_what_a_plain_interpreter_counts(demo):
    out, raw, x, y = demo
    assert raw["data"]["eval_samples"] == len(y) == 450
    checked = []
    for row in raw["variants"]:
        if row["status"] != "ok" or not row["path"].endswith(".tflite"):
            continue
        hits = plain_litert.hits(out / row["path"], x, y)
        assert row["accuracy"] == hits / len(y), (row["technique"], row["accuracy"], hits)
        checked.append(row["technique"])
    assert len(checked) == len(raw["variants"]) - 1 == 13  # every row but the Keras model's


def test_integer_io_variants_are_quantized_by_hand_here(demo):
    """The check above covers the integer-only files the article got wrong: their inputs are int8/uint8."""
    from ai_edge_litert.interpreter import Interpreter

    out, raw, _, _ = demo
    dtypes = {}
    for name in ("int8-only", "uint8-only"):
        interpreter = Interpreter(model_path=str(out / _rows(raw)[name]["path"]))
        dtypes[name] = interpreter.get_input_details()[0]["dtype"].__name__
    assert dtypes == {"int8-only": "int8", "uint8-only": "uint8"}


def test_the_keras_row_is_what_keras_counts(demo):
    import keras

    out, raw, x, y = demo
    model = keras.saving.load_model(out / "model.keras")
    hits = int(np.sum(model.predict(x, verbose=0, batch_size=len(x)).argmax(axis=1) == y))
    assert _rows(raw)["keras"]["accuracy"] == hits / len(y)


def test_recommended_tflite_meets_the_budget_it_states(demo):
    out, raw, x, y = demo
    rec = raw["recommendation"]
    assert rec["technique"] is not None and rec["metric"] == "accuracy" and rec["max_drop_pp"] == 0.5
    chosen = _rows(raw)[rec["technique"]]
    assert (out / "recommended.tflite").read_bytes() == (out / chosen["path"]).read_bytes()
    hits = plain_litert.hits(out / "recommended.tflite", x, y)
    assert chosen["accuracy"] == hits / len(y)
    keras_hits = round(_rows(raw)["keras"]["accuracy"] * len(y))
    # the budget in whole samples: at most 0.5 pp of 450 = 2.25 samples lost against the float model
    assert (keras_hits - hits) * 100 <= rec["max_drop_pp"] * len(y)
    assert f"Ship {rec['technique']}" in rec["summary"]
