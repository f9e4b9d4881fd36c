import pytest

from quantbench.core.errors import InputError
from quantbench.engines import techniques
from quantbench.engines.techniques import Technique, get, resolve


def test_registry_lists_the_converter_techniques_in_order():
    assert list(techniques.CONVERTER_TECHNIQUES) == [
        "float32", "dynamic", "int8-fallback", "int8-only", "uint8-only", "float16", "int16x8"]


def test_name_and_object_are_interchangeable():
    t = techniques.get("int8-only")
    assert techniques.get(t) is t
    assert t.io_dtype == "int8" and t.integer_only and t.calibrate


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        techniques.register(Technique("float32", "again"))


def test_unknown_technique_lists_the_known_ones():
    with pytest.raises(InputError, match=r"Unknown technique 'int7'\. Expected one of: float32, dynamic, "):
        techniques.get("int7")


def test_parse_list_checks_every_name_before_running():
    assert [t.name for t in techniques.parse_list("float16, dynamic")] == ["float16", "dynamic"]
    every = [t.name for t in techniques.parse_list("all")]
    assert every == [n for n in techniques.names() if n != "int8-selective"]  # the recommendation makes that one
    with pytest.raises(InputError, match="'bogus'"):
        techniques.parse_list("float16,bogus")


@pytest.mark.parametrize("spec, expected", [
    (("float32",), ["float32"]), (["float32", "dynamic"], ["float32", "dynamic"]), ("lq-dynamic", ["lq-dynamic"]),
    ("float32, int8-only", ["float32", "int8-only"]), (get("float16"), ["float16"])])
def test_resolve_takes_every_spelling(spec, expected):
    assert [t.name for t in resolve(spec)] == expected


@pytest.mark.parametrize("spec, message", [
    (5, "is not a technique list"), ([5], "A technique is a name or a Technique; got 5"),
    ("int7", "Unknown technique 'int7'")])
def test_resolve_refuses_with_a_clear_message(spec, message):
    with pytest.raises(InputError, match=message):
        resolve(spec)
