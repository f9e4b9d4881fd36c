import pytest

from quantbench import techniques
from quantbench.errors import InputError
from quantbench.techniques import Technique


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
