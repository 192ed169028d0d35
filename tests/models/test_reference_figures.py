"""The reference figures file (keras_cnns/models/reference_figures.csv): one row per registered
model, a source for every figure, and the registry reading its figures from there only. The
figures themselves are compared with built models in test_models_generic.py."""

import pytest

import keras_cnns
from keras_cnns.models import _figures
from keras_cnns.models._figures import Quoted, reference_figures
from keras_cnns.models._registry import register_model


def test_every_registered_model_has_a_row_and_every_row_a_model():
    assert set(reference_figures()) == set(keras_cnns.list_models())


@pytest.mark.parametrize("name", sorted(reference_figures()))
def test_row_is_complete_and_reaches_model_info(name):
    row = reference_figures()[name]
    info = keras_cnns.model_info(name)
    assert info.figures is row
    assert row.params is not None or row.paper_params is not None, "a row without any figure"
    assert info.reference_params == row.params and info.reference_params_kind == row.params_kind
    if row.params is not None:
        assert row.params_source and row.params_source in info.reference_note
    if row.macs is not None:
        assert row.macs_source and info.reference_macs == row.macs.value
    if row.paper_params is not None:
        assert row.paper_source and info.paper_params == row.paper_params.value


@pytest.mark.parametrize("text, inside, outside", [
    ("0.714e9", 714.49e6, 714.51e6),      # half a unit of the last quoted digit (1e6)
    ("0.27e6", 274_999, 275_001),
    ("133e6", 133.5e6, 133.51e6),
    ("1248424", 1_248_424, 1_248_425),    # written in full: exact
])
def test_quoted_figure_tolerance_follows_its_digits(text, inside, outside):
    figure = Quoted(text)
    assert figure.matches(inside) and not figure.matches(outside)
    assert figure.matches(2 * figure.value - inside)  # symmetric


def test_relative_tolerance_overrides_the_digits():
    figure = Quoted("1170.33e6", rel_tol=0.003)
    assert figure.matches(1170.33e6 * 0.9975) and not figure.matches(1170.33e6 * 0.996)


def test_registering_figures_for_a_listed_name_is_refused(monkeypatch):
    from keras_cnns.models import _registry

    table = dict(reference_figures(), lenet5_copy=reference_figures()["lenet5"])
    monkeypatch.setattr(_registry, "reference_figures", lambda: table)
    with pytest.raises(ValueError, match="reference_figures.csv; pass none"):
        register_model("lenet5_copy", family="LeNet", paper="p", builder=lambda **kw: None,
                       reference_params=1)
    assert "lenet5_copy" not in keras_cnns.list_models()


@pytest.mark.parametrize("text, message", [
    ("name,params\nx,1\n", "columns must be"),
    (",".join(_figures._COLUMNS) + "\nx,1,trainable,,,,,,,\n", "params is given without its source"),
    (",".join(_figures._COLUMNS) + "\nx,1,both,s,,,,,,\n", "params_kind must be"),
    (",".join(_figures._COLUMNS) + "\nx,1,trainable,s,,,,,all,\n", "paper_counts must be"),
    (",".join(_figures._COLUMNS) + "\nx,1,trainable,s,,,,,,\nx,1,trainable,s,,,,,,\n", "twice"),
])
def test_malformed_file_is_refused_with_the_reason(text, message):
    with pytest.raises(ValueError, match=message):
        _figures._parse(text)
