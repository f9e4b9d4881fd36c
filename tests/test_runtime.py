import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import quantbench
from quantbench.core.errors import InputError
from quantbench.engines import techniques
from quantbench.runtime.litert import dequantize, quantize

EXPECTED_IO = {
    "float32": ("float32", "float32"),
    "dynamic": ("float32", "float32"),
    "int8-fallback": ("float32", "float32"),
    "int8-only": ("int8", "int8"),
    "uint8-only": ("uint8", "uint8"),
    "float16": ("float32", "float32"),
    "int16x8": ("float32", "float32"),  # the converter keeps float I/O for 16x8 unless asked
}


def test_runtime_imports_without_tensorflow():
    code = "import sys, quantbench, quantbench.runtime.litert; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", techniques.CONVERTER_TECHNIQUES)
def test_every_technique_converts_and_predicts(name, tiny_variants, tiny_model, digits):
    m = quantbench.load(tiny_variants[name])
    assert (m.inputs[0].dtype, m.outputs[0].dtype) == EXPECTED_IO[name]
    x = digits.x_test[:64]
    probs = m.predict(x)
    assert probs.shape == (64, 10) and probs.dtype == np.float32
    reference = tiny_model.predict(x, verbose=0).argmax(1)
    assert np.mean(probs.argmax(1) == reference) >= 0.9


@pytest.mark.parametrize("name", ["int8-only", "uint8-only"])
def test_predict_quantizes_like_by_hand(name, tiny_variants, digits):
    m = quantbench.load(tiny_variants[name])
    inp, out = m.inputs[0], m.outputs[0]
    assert inp.quantized and out.quantized
    x = digits.x_test[:32]
    info = np.iinfo(inp.dtype)
    by_hand = np.clip(np.round(x / inp.scale) + inp.zero_point, info.min, info.max).astype(inp.dtype)
    raw = m.predict(by_hand, raw=True)
    assert raw.dtype == np.dtype(out.dtype)
    expected = (raw.astype(np.float32) - out.zero_point) * out.scale
    np.testing.assert_array_equal(m.predict(x), expected)


def test_quantize_rounds_and_clips():
    from quantbench.runtime.litert import TensorInfo

    t = TensorInfo("x", 0, (-1, 3), "int8", scale=0.5, zero_point=-10)
    q = quantize(np.array([[0.0, 0.74, 1000.0]]), t)
    np.testing.assert_array_equal(q, [[-10, -9, 127]])
    np.testing.assert_allclose(dequantize(q, t), [[0.0, 0.5, 68.5]])


def test_batched_predict_equals_one_by_one(tiny_variants, digits):
    m = quantbench.load(tiny_variants["int8-only"])
    x = digits.x_test[:300]  # more than one chunk of MAX_BATCH
    batched = m.predict(x)
    singles = np.concatenate([m.predict(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(batched, singles)


def test_not_a_flatbuffer(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"this is not a model at all")
    with pytest.raises(InputError, match=r"model\.tflite is not a TFLite flatbuffer .* Fix: "):
        quantbench.load(bad)


def test_missing_tflite(tmp_path):
    with pytest.raises(InputError, match=r"No \.tflite file at .*nope\.tflite"):
        quantbench.load(tmp_path / "nope.tflite")


def test_predict_wrong_shape_names_the_expected_shape(tiny_variants):
    m = quantbench.load(tiny_variants["float32"])
    with pytest.raises(InputError, match=r"shape \(4, 9, 9, 1\), expected \(N, 8, 8, 1\)"):
        m.predict(np.zeros((4, 9, 9, 1), np.float32))


def test_inputs_and_outputs_are_readable(tiny_variants):
    m = quantbench.load(tiny_variants["int8-only"])
    text = str(m.inputs[0])
    assert "int8" in text and "scale=" in text and "zero_point=" in text
    assert m.inputs[0].shape == (-1, 8, 8, 1)


@pytest.mark.parametrize("name", ["float32", "int8-only", "uint8-only"])
def test_fast_path_equals_the_general_path(name, tiny_variants, digits):
    m = quantbench.load(tiny_variants[name])
    x = digits.x_test[:5]
    assert m._fast is not None
    np.testing.assert_array_equal(m.predict(x), m.predict([x]))         # one array vs a list of one
    np.testing.assert_array_equal(m.predict(x.astype(np.float64)), m.predict([x]))
    raw = m.prepare(x)[0]
    np.testing.assert_array_equal(m.predict(raw, raw=True), m.predict({m.inputs[0].name: raw}, raw=True))


def test_outputs_the_signature_names_but_the_subgraph_does_not_list(tmp_path):
    """The LiteRT Quantizer, on a model whose outputs also feed another op, leaves the signature naming
    tensors that get_output_details() does not hold: read them as the signature runner does."""
    import keras

    from quantbench import load
    from quantbench.engines import litert_quantizer as lq
    from quantbench.engines.converter import convert
    from quantbench.inputs import models

    models.seed_everything(0)
    inp = keras.Input((64, 1), name="audio")
    h = keras.layers.Conv1D(4, 5, strides=2, activation="relu")(inp)
    a = keras.layers.Dense(3, activation="sigmoid", name="a")(h)
    b = keras.layers.Dense(3, activation="sigmoid", name="b")(h)
    c = keras.layers.Concatenate(name="c")([a, b, keras.layers.Dense(2)(h)])
    float_bytes = convert(keras.Model(inp, [a, b, c]), "float32").content
    x = np.random.default_rng(0).normal(size=(16, 64, 1)).astype(np.float32)
    reference = load(float_bytes).predict(x)
    for technique in ("lq-int8", "lq-int16x8"):
        content = lq.make(float_bytes, technique, x).content
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_content=content)
        named = set(it._get_full_signature_list()["serving_default"]["outputs"].values())
        assert not named <= {d["index"] for d in it.get_output_details()}  # the case itself
        m = load(content)
        assert [t.name for t in m.outputs] == ["output_0", "output_1", "output_2"]
        outs = m.predict(x)
        assert [o.shape for o in outs] == [r.shape for r in reference]
        for out, ref, t in zip(outs, reference, m.outputs):
            assert np.max(np.abs(out - ref)) < 0.05, (technique, t)


# ---- Malformed files (issue 10): each class of failure the fuzz harness found, rebuilt on purpose ----------

def _edited(content: bytes, edit) -> bytes:
    """The .tflite with `edit(subgraph, model)` applied to its flatbuffer object."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(content))
    edit(model.subgraphs[0], model)
    return bytes(fu.convert_object_to_bytearray(model))


def _tensor(subgraph, ending: str):
    return next(t for t in subgraph.tensors if t.name.decode().endswith(ending))


def test_xnnpack_refusing_at_run_time_falls_back_to_builtin_kernels(tiny_variants, digits):
    # The Reshape output's zero-point out of int8's range: XNNPACK refuses at the first run, LiteRT's own
    # kernels accept it (what 6 of 150 bit-flipped int8 files did, as an internal error, before).
    def edit(sg, _):
        _tensor(sg, "flatten_1/Reshape").quantization.zeroPoint[0] = 200

    content, x = _edited(tiny_variants["int8-only"], edit), digits.x_test[:7]
    m = quantbench.load(content)
    assert m.delegate_fallback is None
    y = m.predict(x)
    assert "unsupported zero-point value (200)" in m.delegate_fallback and "XNNPACK" in m.delegate_fallback
    builtin = quantbench.runtime.litert.LiteModel(content, delegates=False)
    np.testing.assert_array_equal(y, builtin.predict(x))
    np.testing.assert_array_equal(m.predict(x[:1]), builtin.predict(x[:1]))  # and after it, other batch sizes

    timed = quantbench.load(content)  # the timing path: set_batch, then run
    timed.set_batch(7)
    builtin.set_batch(7)
    np.testing.assert_array_equal(timed.run(timed.prepare(x))[0], builtin.run(builtin.prepare(x))[0])
    assert timed.delegate_fallback


def test_xnnpack_refusing_at_load_falls_back_too(tiny_variants, digits):
    def edit(sg, _):
        sg.tensors[sg.inputs[0]].quantization.zeroPoint[0] = 200

    content = _edited(tiny_variants["int8-only"], edit)
    m = quantbench.load(content)
    assert "unsupported zero-point value (200)" in m.delegate_fallback
    np.testing.assert_array_equal(m.predict(digits.x_test[:3]),
                                  quantbench.runtime.litert.LiteModel(content, delegates=False).predict(digits.x_test[:3]))


def test_kernel_failing_at_run_time_is_a_clean_error(tiny_variants, digits):
    # The flattened width the Reshape computes at run time no longer matches: LiteRT's kernel fails at invoke.
    def edit(sg, model):
        const = next(t for t in sg.tensors if t.name.decode().endswith("Reshape/shape/1"))
        model.buffers[const.buffer].data = np.frombuffer(np.array([100], np.int32).tobytes(), np.uint8)

    m = quantbench.load(_edited(tiny_variants["float32"], edit))
    with pytest.raises(InputError, match=r"LiteRT could not run the model bytes: .*RESHAPE.* Expected a \.tflite file "
                                         r"LiteRT can run\. Fix: "):
        m.predict(digits.x_test[:4])


def _corrupt_name(content: bytes, name: str) -> bytes:
    at = content.index(name.encode())
    return content[:at] + b"\xff" + content[at + 1:]


def test_tensor_name_that_is_not_utf8_is_a_clean_error(tiny_variants, tmp_path):
    from quantbench.inputs.inspection import inspect

    m = quantbench.load(tiny_variants["float32"])
    inner = next(d["name"] for d in m.interpreter.get_tensor_details() if "Relu" in d["name"])
    path = tmp_path / "inner.tflite"
    path.write_bytes(_corrupt_name(tiny_variants["float32"], inner))
    with pytest.raises(InputError, match=r"inner\.tflite holds a tensor name that is not UTF-8 text "
                                         r"\(byte b'\\xff' at position 0 of the name\), so the file is corrupt\. "
                                         r"Expected .* Fix: "):
        inspect(path)  # LiteRT reads every op's operand names; before, a UnicodeDecodeError
    quantbench.load(path)  # an inner name does not stop the model from running

    (tmp_path / "input.tflite").write_bytes(_corrupt_name(tiny_variants["float32"], m.inputs[0].name
                                                          if ":" in m.inputs[0].name else "serving_default_"))
    with pytest.raises(InputError, match=r"input\.tflite holds a tensor name that is not UTF-8 text"):
        quantbench.load(tmp_path / "input.tflite")


def test_predict_command_says_when_xnnpack_refused(tiny_variants, digits, tmp_path):
    def edit(sg, _):
        _tensor(sg, "flatten_1/Reshape").quantization.zeroPoint[0] = 200

    (tmp_path / "m.tflite").write_bytes(_edited(tiny_variants["int8-only"], edit))
    np.save(tmp_path / "x.npy", digits.x_test[:3])
    proc = subprocess.run([sys.executable, "-m", "quantbench", "predict", str(tmp_path / "m.tflite"), "--input",
                           str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "class " in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"quantbench: note: XNNPACK refused {re.escape(str(tmp_path / 'm.tflite'))} \(unsupported zero-point value "
        r"\(200\) for INT8 tensor \d+ in XNNPACK delegate\); it ran on LiteRT's built-in kernels instead\.", lines[0])


def test_signature_naming_a_tensor_that_is_no_output_runs_and_reads_that_tensor(tiny_variants, digits):
    # A corrupt index in the signature (fuzz case tflite-690), naming tensor 0: the input. LiteRT loads it, and
    # the output is read as LiteRT's signature runner reads it, by its tensor index: the input, unchanged.
    def edit(sg, model):
        model.signatureDefs[0].outputs[0].tensorIndex = 0

    m = quantbench.load(_edited(tiny_variants["float32"], edit))
    assert m.outputs[0].index == m.inputs[0].index == 0
    x = digits.x_test[:2]
    np.testing.assert_array_equal(m.predict(x), x)


def test_signature_naming_a_tensor_that_does_not_exist_is_a_clean_error(tiny_variants):
    # The same corruption, naming a tensor index past the model's tensors: refused in one clean line.
    def edit(sg, model):
        model.signatureDefs[0].outputs[0].tensorIndex = len(sg.tensors) + 5

    with pytest.raises(InputError) as err:
        quantbench.load(_edited(tiny_variants["float32"], edit))
    message = str(err.value)
    assert "\n" not in message and re.match(r"the model bytes has a signature naming tensor \d+, which LiteRT does "
                                             r"not list among the model's inputs and outputs\.", message)
    assert message.endswith("Expected a .tflite file whose signature matches its inputs and outputs. Fix: convert the "
                            "model again.")


def test_truncated_tflite_says_it_is_corrupt(tiny_variants, tmp_path):
    path = tmp_path / "cut.tflite"
    path.write_bytes(tiny_variants["float32"][: len(tiny_variants["float32"]) // 2])
    with pytest.raises(InputError, match=r"LiteRT could not load .*cut\.tflite: The model is not a valid Flatbuffer "
                                         r"buffer Expected a \.tflite file LiteRT can run\. The file is corrupt or "
                                         r"truncated\. Fix: convert the model again, or copy the file again\."):
        quantbench.load(path)


def test_model_xnnpack_crashes_on_is_refused_by_the_builtin_checks_first(digits, tmp_path):
    # fuzz case tflite-1142 (6 bits flipped in a dynamic-range model): XNNPACK read a PACK node's corrupt
    # values_count unchecked and the process died of SIGSEGV; LiteRT's own PACK kernel checks the count.
    np.save(tmp_path / "x.npy", digits.x_test[:3])
    model = Path(__file__).parent / "data" / "xnnpack-crash.tflite"
    proc = subprocess.run([sys.executable, "-m", "quantbench", "predict", str(model), "--input",
                           str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-500:])
    assert re.fullmatch(r"quantbench: error: LiteRT could not load .*xnnpack-crash\.tflite: .*pack\.cc.*values_count "
                        r"\(2 != 2050\).*PACK.* Expected a \.tflite file LiteRT can run\. Fix: .*\n", proc.stderr)
