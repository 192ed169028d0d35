"""Registry and argument-validation behaviour (independent of any one family)."""

import keras
import pytest

import keras_cnns
from keras_cnns import _checks as checks
from keras_cnns.models import _validation as v
from keras_cnns.models._registry import register_model


def test_list_models_pattern_and_sorting():
    names = keras_cnns.list_models()
    assert names == sorted(names)
    vgg = keras_cnns.list_models("vgg*")
    assert vgg and all(n.startswith("vgg") for n in vgg)
    assert keras_cnns.list_models("no_such_family*") == []
    with pytest.raises(ValueError, match="pattern"):
        keras_cnns.list_models(3)


def test_model_info_fields():
    for name in keras_cnns.list_models():
        info = keras_cnns.model_info(name)
        assert info.name == name
        assert info.family and info.paper
        assert len(info.default_input_shape) == 3
        assert 1 <= info.min_input_size <= min(info.default_input_shape[:2])
        assert info.reference_params_kind in ("trainable", "total")
        d = info.as_dict()
        assert "builder" not in d and d["name"] == name


def test_create_model_is_case_and_dash_insensitive_and_kwargs_override():
    name = keras_cnns.list_models()[0]
    info = keras_cnns.model_info(name.upper().replace("_", "-"))
    assert info.name == name


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError) as err:
        keras_cnns.model_info("vgg17")
    assert "vgg1" in str(err.value) and "Received: name='vgg17'" in str(err.value)


def test_register_model_rejects_duplicates_and_bad_names():
    name = keras_cnns.list_models()[0]
    with pytest.raises(ValueError, match="already registered"):
        register_model(name, family="x", paper="x", builder=lambda **k: None)
    with pytest.raises(ValueError, match="snake_case"):
        register_model("BadName", family="x", paper="x", builder=lambda **k: None)


@pytest.mark.parametrize(
    "shape, kwargs, match",
    [
        ((16, 16, 3), {}, ">= 32"),
        ((32, 32), {}, "length 3"),
        ((32, 0, 3), {}, "positive integer"),
        ((32, 32, None), {}, "channels"),
        ((None, None, 3), {"require_static": True}, "static"),
        ("abc", {}, "tuple"),
    ],
)
def test_resolve_input_shape_errors(shape, kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        v.resolve_input_shape(shape, None, default_shape=(224, 224, 3), min_size=32, **kwargs)
    assert "Received: input_shape=" in str(err.value)


def test_resolve_input_shape_sources():
    assert v.resolve_input_shape(None, None, default_shape=(224, 224, 3), min_size=32) == (224, 224, 3)
    assert v.resolve_input_shape((None, None, 3), None, default_shape=(224, 224, 3), min_size=32) == (None, None, 3)
    t = keras.Input((40, 48, 1))
    assert v.resolve_input_shape(None, t, default_shape=(224, 224, 3), min_size=32) == (40, 48, 1)
    with pytest.raises(ValueError, match="agree"):
        v.resolve_input_shape((64, 64, 1), t, default_shape=(224, 224, 3), min_size=32)


@pytest.mark.parametrize(
    "fn, args",
    [
        (checks.check_positive_float, ("alpha", 0)),
        (checks.check_positive_float, ("alpha", float("nan"))),
        (checks.check_positive_float, ("alpha", float("inf"))),
        (checks.check_positive_float, ("alpha", True)),
        (checks.check_positive_int, ("groups", 2.5)),
        (checks.check_positive_int, ("groups", 0)),
        (checks.check_probability, ("dropout", 1.0)),
        (checks.check_probability, ("dropout", -0.1)),
        (checks.check_choice, ("bypass", "fancy", ["none", "simple", "complex"])),
        (checks.check_bool, ("include_top", 1)),
    ],
)
def test_validators_name_the_argument(fn, args):
    with pytest.raises(ValueError) as err:
        fn(*args)
    assert f"`{args[0]}`" in str(err.value) and f"Received: {args[0]}=" in str(err.value)


def test_check_divisible_message():
    with pytest.raises(ValueError, match="divisible by `groups`"):
        checks.check_divisible("channels", 10, 3, "groups")
