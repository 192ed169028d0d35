"""Every family's exports run like Keras (random weights, small inputs, logits compared): the SavedModel in a
fresh process that cannot import keras_cnns (logits, and the probabilities a client reads),
float32 TFLite with the default delegate and in LiteRT (ai-edge-litert, no TensorFlow in its
process); and full-integer int8 TFLite allocating and running with the default (XNNPACK)
delegate, in both runtimes, for a set of families that together contain every layer kind
(``INT8_FAMILIES``).

One model per family (its smallest registered variant at its smallest practical input; NASNet-A
with one cell per stage, ``SWEEP_KNOBS``) and int8 on a covering set of families keep this
inside the suite's time budget; ``benchmarks/export_all.py`` runs every check, int8 included,
over every registered model (figures in the README).
"""

import zlib

import keras
import pytest

from keras_cnns import create_model, list_models, model_info
from keras_cnns.export._verify import verify_exports
from tests.export._litert_support import require_litert
from tests.models._family_knobs import SMALLER


def _representatives():
    """One model per family: its shallowest registered variant, then the smallest (the choice
    of tests/models/test_models_generic.py: conversion time grows with depth)."""
    best = {}
    for name in list_models():
        info = model_info(name)
        params = info.reference_params or info.paper_params or float("inf")
        key = (info.kwargs.get("depth", 0), params, name)
        if info.family not in best or key < best[info.family][0]:
            best[info.family] = (key, name)
    return {family: name for family, (_, name) in best.items()}


REPRESENTATIVES = _representatives()
#: Knobs the sweep builds a family's representative with (tests/models/_family_knobs.py): one
#: cell, block or unit per stage where the smallest variant only repeats them (a conversion's
#: time grows with the layers: 429 fewer of 4,352 over the five shallower families), two
#: columns for FractalNet (its smallest variant has no join)
SWEEP_KNOBS = SMALLER
#: Families whose int8 file XNNPACK refuses, left out of the int8 covering set (with the reason):
#: the injective i-RevNets' first block's ``F`` reads the zero padding half, its activations get
#: a degenerate int8 range (scale 7.8e-9) and XNNPACK refuses the convolutions' scale ratios
#: ("failed to prepare"); the same file allocates and runs with TFLite's reference kernels
#: (tests/models/test_irevnet.py).
INT8_EXCLUDED = {"i-RevNet": "XNNPACK refuses the zero padding half's degenerate int8 range"}


def _int8_kinds(model):
    """What int8 conversion can depend on: each layer's class, and its activation."""
    kinds = set()
    for layer in model._flatten_layers(include_self=False):
        kinds.add(type(layer).__name__)
        activation = layer.get_config().get("activation") if hasattr(layer, "get_config") else None
        if isinstance(activation, str):
            kinds.add(f"activation={activation}")
    return kinds


def covering_set(kinds_by_name, cost_by_name):
    """The names whose kinds together cover every kind of every name, chosen greedily by new
    kinds per unit of cost (the classic weighted set-cover heuristic); deterministic."""
    uncovered = set().union(*kinds_by_name.values())
    chosen = []
    while uncovered:
        best = max(sorted(kinds_by_name), key=lambda n: (
            len(kinds_by_name[n] & uncovered) / cost_by_name[n], -cost_by_name[n]))
        chosen.append(best)
        uncovered -= kinds_by_name[best]
    return chosen


def _size(name):
    info = model_info(name)
    return max(info.min_input_size, 32) if info.default_input_shape[0] > 32 else \
        info.default_input_shape[0]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    models = {}
    for family, name in sorted(REPRESENTATIVES.items()):
        info = model_info(name)
        s = _size(name)
        # each model's weights from a seed of its own name: a family's exports (and their
        # int8 rounding) do not change when another family is added to the sweep
        keras.utils.set_random_seed(zlib.crc32(name.encode()))
        models[name] = create_model(name, input_shape=(s, s, info.default_input_shape[2]),
                                    classes=10, classifier_activation=None,  # logits
                                    **SWEEP_KNOBS.get(family, {}))
    # int8 on the families that together contain every layer kind and activation (greedy,
    # cheapest first); the other families' int8 files are checked by benchmarks/export_all.py
    excluded = {REPRESENTATIVES[family] for family in INT8_EXCLUDED}
    kinds = {name: _int8_kinds(model) for name, model in models.items() if name not in excluded}
    # a conversion's time grows with the layers and with the weights: measured int8 increments
    # of 10 s for AlexNet (24 layers, 20 M weights at this size) and 16 s for Xception (134
    # layers, 21 M): a layer costs about as much as 0.1 M weights
    cost = {name: len(model._flatten_layers(include_self=False)) + model.count_params() / 1e5
            for name, model in models.items()}
    INT8_MODELS[:] = covering_set(kinds, cost)
    KINDS.update(kinds)
    return {r["name"]: r for r in verify_exports(models, tmp_path_factory.mktemp("exports"),
                                                 int8=INT8_MODELS, progress=True)}


#: filled by the fixture: the models converted to int8, and every model's kinds
INT8_MODELS = []
KINDS = {}


def test_every_family_is_covered():
    families = {model_info(n).family for n in list_models()}
    assert set(REPRESENTATIVES) == families and len(families) >= 18


def test_covering_set_covers():
    kinds = {"a": {1, 2}, "b": {2, 3}, "c": {3}, "d": {1, 2, 3, 4}}
    assert covering_set(kinds, {"a": 1, "b": 1, "c": 1, "d": 10}) == ["a", "b", "d"]
    assert covering_set(kinds, {"a": 1, "b": 1, "c": 1, "d": 1}) == ["d"]


def test_int8_families_contain_every_layer_kind(rows):
    chosen = set().union(*(KINDS[n] for n in INT8_MODELS))
    assert chosen == set().union(*KINDS.values()) and len(INT8_MODELS) < len(KINDS)
    assert set(INT8_EXCLUDED) <= set(REPRESENTATIVES)
    assert not {REPRESENTATIVES[f] for f in INT8_EXCLUDED} & set(INT8_MODELS)
    for name in INT8_MODELS:
        assert rows[name]["int8_runs"], rows[name].get("int8_error")
    for name in set(rows) - set(INT8_MODELS):
        assert "int8_runs" not in rows[name], rows[name]  # float32 only: not converted


@pytest.mark.parametrize("name", sorted(REPRESENTATIVES.values()))
def test_exports_equal_keras(rows, name):
    row = rows[name]
    assert "error" not in row and "saved_model_error" not in row, row
    assert row["keras_cnns_loaded_in_child"] is False
    assert row["custom_op_loaded_in_child"] is False
    assert row["keras_output_std"] > 1e-7, row  # outputs that vary: a comparison that can fail
    # logits: the max abs difference over max(1, max |logit|). Measured worst cases (random
    # weights, BatchNorm calibrated where the outputs were degenerate): SavedModel 2.1e-5
    # (EfficientNet-B0, graph-mode fusions), TFLite 3.6e-4 (MobileNetV3-small minimalistic).
    assert row["saved_model_rel_diff"] <= 1e-4, row
    assert row["tflite_rel_diff"] <= 1e-3, row
    if name in INT8_MODELS:
        assert row["int8_runs"], row.get("int8_error")
    # what a TF Serving client reads (``probabilities``): 1e-5 absolute (README, "Export and
    # serving"), per unit of logit scale. Random weights with calibrated BatchNorm give some
    # models logits in the hundreds (EfficientNet-B0 at 32x32: 213), where float32 rounding alone
    # is 1.5e-5 per value and close top logits turn a 1.5e-3 logit difference (7e-6 relative)
    # into 2.1e-4 in the probabilities; models with O(1) logits are held to 1e-5.
    assert row["saved_model_prob_abs_diff"] <= 1e-5 * row["output_scale"], row
    # 1e-4 for float32 TFLite (README, "Export and serving"), on the probabilities an app
    # computes from its logits, per unit of logit scale like the SavedModel's
    assert row["tflite_prob_abs_diff"] <= 1e-4 * row["output_scale"], row


@pytest.mark.parametrize("name", sorted(REPRESENTATIVES.values()))
def test_litert_runs_the_tflite_files(rows, name):
    """The same float32 and int8 files in LiteRT (ai-edge-litert, no TensorFlow in its process,
    default delegate): float32 like Keras, int8 like tf.lite.Interpreter within one step."""
    require_litert()
    row = rows[name]
    assert "litert_error" not in row, row["litert_error"]
    assert row["litert_rel_diff"] <= 1e-3, row
    if name in INT8_MODELS:
        assert row["litert_int8_runs"], row
        assert row["litert_int8_max_abs_diff"] <= row["int8_output_step"] * 1.001, row
    else:
        assert "litert_int8_runs" not in row, row
