"""The generic test matrix: every registered model, no per-model test code.

For each name in ``keras_cnns.list_models()``: at the default input size (built once, weights
never allocated) the parameter count equals the exact figure of ``reference_figures.csv``, the
profiler's multiply-adds match the figure to the digits its source quotes, and the trainable
count rounds to the paper's printed count;
forward and backward at the minimum size (softmax outputs; every trainable weight gets a finite
gradient; at most 128 px; deep variants that only repeat a sibling's blocks, and wide ones that
only widen its layers, run as that sibling, ``REPEATS``, whose layer kinds are checked equal); feature levels (test_contract.py) at the test size (the default side
capped at 128 px, or the minimum size where that is larger); invalid arguments raise ``ValueError`` naming the argument, one test per argument.
On one model per family (the variant does not change them): ``include_top=False`` with
``pooling=None|"avg"|"max"``, ``input_tensor`` reuse, ``get_config``/``from_config``,
``.keras`` save/load reproducing outputs (and ``weights=<path>`` on a few structurally
different families, ``WEIGHTS_ARG_FAMILIES``).
"""

import numpy as np
import pytest
import keras
import tensorflow as tf

import keras_cnns
from keras_cnns.models._builder import shapes_only
from keras_cnns.models.heads import main_output

from tests.models import fingerprint
from tests.models._family_knobs import REPEATS, knobs

#: The committed fingerprint of every registered model (tests/models/fingerprint.py): a change
#: that alters a model's layer names, weight shapes or outputs on seeded weights fails here.
FINGERPRINTS = fingerprint.load()

ALL_MODELS = keras_cnns.list_models()
#: ResNet-1202 and the like take about a minute to build: built once, without weights, in
#: test_heavy_model_figures; every other model goes through each test.
HEAVY_MODELS = [n for n in ALL_MODELS if keras_cnns.model_info(n).heavy]
LIGHT_MODELS = [n for n in ALL_MODELS if n not in HEAVY_MODELS]
SMALL_CLASSES = 7


def _representatives():
    """One model per family (its shallowest registered variant, then the smallest): the
    contract tests that do not depend on the variant (headless pooling, ``input_tensor`` reuse,
    serialization) run on these, so the matrix grows with families, not with variants."""
    best = {}
    for name in ALL_MODELS:
        info = keras_cnns.model_info(name)
        # build time grows with depth, not with width: the shallowest, then the smallest
        params = info.reference_params or info.paper_params or float("inf")
        key = (info.kwargs.get("depth", 0), params, name)
        if info.family not in best or key < best[info.family][0]:
            best[info.family] = (key, name)
    return sorted(name for _, name in best.values())


FAMILY_MODELS = _representatives()


def _info(name):
    return keras_cnns.model_info(name)


def _min_shape(name):
    info = _info(name)
    return (info.min_input_size, info.min_input_size, info.default_input_shape[-1])


def _x(shape, batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


def _run_all(model, x, training=False):
    """Every output of a forward pass, eagerly (no per-model graph tracing as predict() does):
    a list (one entry for a single-output model; a training model with auxiliary heads, e.g.
    GoogLeNet's, returns them in its declared order)."""
    y = model(x, training=training)
    return list(y) if isinstance(y, (list, tuple)) else [y]


def _run(model, x):
    """Inference-mode forward pass: the main output (the served one; auxiliary heads are
    training-only)."""
    return np.asarray(_run_all(model, x)[main_output(model)[0]])


def _count(model, kind):
    weights = model.trainable_weights if kind == "trainable" else model.weights
    return int(sum(np.prod(w.shape) for w in weights))


def test_registry_is_populated():
    assert len(ALL_MODELS) >= 20 and len(HEAVY_MODELS) <= 6
    assert ALL_MODELS == sorted(ALL_MODELS)


def test_every_model_has_a_committed_fingerprint():
    missing = sorted(set(ALL_MODELS) - set(FINGERPRINTS))
    assert not missing, (f"no fingerprint for {missing}: run "
                         f"`python tests/models/fingerprint.py --write {' '.join(missing)}`")


def _check_structure(name, model):
    problems = fingerprint.diff(name, fingerprint.structure(model), FINGERPRINTS[name])
    assert not problems, "\n".join(problems) + (
        "\nIf the change is meant to alter the model, regenerate its fingerprint "
        f"(python tests/models/fingerprint.py --write {name}) and say so in the commit.")


#: Models run at most at this side (big models are built at their native size for the figures,
#: but never run there: CI has 2 cores).
TEST_SIDE_CAP = 128


def _check_output_shapes(model, info):
    """Every output (the main one and any auxiliary classifier) gives the default classes."""
    shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    assert [tuple(s) for s in shapes] == [(None, info.default_classes)] * len(shapes)


@pytest.fixture(scope="module", params=LIGHT_MODELS)
def native(request):
    """``(name, model)``: the model built at its default input size, once per module, with its
    weights never allocated (``shapes_only``): the figures below read shapes only."""
    with shapes_only():
        model = keras_cnns.create_model(request.param)
    return request.param, model


def _check_figures(name, model):
    """The built model against its row of reference_figures.csv: the exact parameter count, the
    multiply-adds to the digits the source quotes, the paper's printed parameter count."""
    info = _info(name)
    figures = info.figures
    assert figures is not None, f"{name}: no row in reference_figures.csv"
    count = _count(model, figures.params_kind)
    if figures.params is not None:
        assert count == figures.params, (
            f"{name}: {figures.params_kind} params {count:,} != {figures.params:,} "
            f"({figures.params_source})")
    if figures.macs is not None:
        macs = keras_cnns.profile(model).total_macs
        assert figures.macs.matches(macs), (
            f"{name}: {macs:,} MACs do not match {figures.macs.text} ({figures.macs_source})")
    if figures.paper_params is not None:
        counted = _count(model, "trainable")
        if figures.paper_counts == "weights":  # the paper leaves BatchNorm's gamma, beta out
            counted -= sum(_count(layer, "trainable") for layer in model.layers
                           if isinstance(layer, keras.layers.BatchNormalization))
        assert figures.paper_params.matches(counted), (
            f"{name}: {counted:,} {figures.paper_counts} params do not round to the paper's "
            f"{figures.paper_params.text} ({figures.paper_source})")


RUN_MODELS = [n for n in LIGHT_MODELS if n not in REPEATS]
_LAYER_KINDS = {}


def _layer_kinds(model):
    return {type(layer).__name__ for layer in model._flatten_layers(include_self=False)}


def test_default_size_params_and_macs(native):
    name, model = native
    _LAYER_KINDS[name] = _layer_kinds(model)
    info = _info(name)
    assert model.name == name
    assert tuple(model.input_shape[1:]) == tuple(info.default_input_shape)
    _check_output_shapes(model, info)
    _check_figures(name, model)
    _check_structure(name, model)


@pytest.mark.parametrize("name", HEAVY_MODELS)
def test_heavy_model_figures(name):
    # Thousands of layers (ResNet-1202, pre-act ResNet-1001): built once at the native size,
    # weights never allocated, for the figures only. They run the same blocks as their
    # registered siblings (ResNet-20...110, pre-act ResNet-164), which run below.
    info = _info(name)
    with shapes_only():
        model = keras_cnns.create_model(name)
    assert model.name == name and tuple(model.input_shape[1:]) == tuple(info.default_input_shape)
    _check_output_shapes(model, info)
    _check_figures(name, model)
    _check_structure(name, model)


@pytest.mark.parametrize("name", sorted(REPEATS))
def test_repeat_variants_use_their_siblings_layers(name):
    sibling = REPEATS[name]
    assert _info(name).family == _info(sibling).family
    assert _info(name).builder is _info(sibling).builder
    kinds = []
    for n in (name, sibling):
        if n not in _LAYER_KINDS:  # run alone (-k): build it
            with shapes_only():
                _LAYER_KINDS[n] = _layer_kinds(keras_cnns.create_model(n))
        kinds.append(_LAYER_KINDS[n])
    assert kinds[0] == kinds[1]


@pytest.mark.parametrize("name", RUN_MODELS)
def test_min_size_forward_backward(name):
    # The one run of every model: at its minimum size (a real image size for most, and at most
    # 128 px for all: big models are built at their native size for the figures, never run
    # there), inference-mode forward then a training step's gradients.
    # The logits on seeded weights are the model's committed fingerprint
    # (tests/models/fingerprint.py).
    shape = _min_shape(name)
    assert shape == fingerprint.min_shape(_info(name)) and SMALL_CLASSES == fingerprint.CLASSES
    model = keras_cnns.create_model(name, input_shape=shape, classes=SMALL_CLASSES,
                                    classifier_activation=None)
    assert shape[0] <= TEST_SIDE_CAP
    fingerprint.seed_weights(model)
    x = tf.constant(_x(shape))
    logits = _run(model, x)
    assert logits.shape == (2, SMALL_CLASSES) and np.all(np.isfinite(logits))
    ok, worst = fingerprint.outputs_match(logits, FINGERPRINTS[name]["outputs"])
    assert ok, (f"{name}: logits on seeded weights moved by {worst:.3g} of their scale "
                f"(tolerance {fingerprint.RTOL}) from the committed fingerprint: now "
                f"{logits.tolist()}, committed {FINGERPRINTS[name]['outputs']}")
    target = tf.constant(np.random.default_rng(1).normal(size=(2, SMALL_CLASSES)).astype("float32"))
    with tf.GradientTape() as tape:
        ys = _run_all(model, x, training=True)  # every output (auxiliary heads too)
        loss = tf.add_n([tf.reduce_sum(y * target) for y in ys])
    for y in ys:
        assert tuple(y.shape) == (2, SMALL_CLASSES)
        assert bool(tf.reduce_all(tf.math.is_finite(y)))
    grads = tape.gradient(loss, model.trainable_weights)
    assert len(grads) == len(model.trainable_weights) > 0
    for w, g in zip(model.trainable_weights, grads):
        assert g is not None, f"{name}: no gradient reaches {w.path}"
        assert bool(tf.reduce_all(tf.math.is_finite(g))), f"{name}: non-finite gradient at {w.path}"
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0


#: The global pooling each family's headless test builds: the two alternate over the families
#: (the pooling is the shared head's, keras_cnns/models/heads.py; what each family adds is a
#: trunk whose weights match its unpooled twin's), so each kind runs on half of them.
HEADLESS_POOLING = {name: ("avg", "max")[i % 2] for i, name in enumerate(sorted(FAMILY_MODELS))}


def test_headless_pooling_runs_both_kinds():
    assert set(HEADLESS_POOLING.values()) == {"avg", "max"}


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_headless_pooling_on_an_input_tensor(name):
    # the trunk without its head (pooling=None), then its pooled twin built on an input_tensor
    # that follows a layer (as keras.applications' tests do): one pair of builds for both
    # arguments, the twin's extra 1x1 convolution set to the identity
    shape = _min_shape(name)
    x = _x(shape)
    features = keras_cnns.create_model(name, include_top=False, input_shape=shape, **knobs(name))
    fmap = _run(features, x)
    assert fmap.ndim == 4 and fmap.shape[0] == 2
    pooling = HEADLESS_POOLING[name]
    reduce = {"avg": np.mean, "max": np.max}[pooling]
    outer = keras.Input(shape=shape, name="outer_input")
    pre = keras.layers.Conv2D(shape[-1], 1, name="pre_conv")
    pooled_model = keras_cnns.create_model(name, include_top=False, input_tensor=pre(outer),
                                           pooling=pooling, **knobs(name))
    assert pooled_model.inputs[0] is outer or pooled_model.inputs[0].name == outer.name
    assert [w.path for w in pooled_model.weights[:2]] == ["pre_conv/kernel", "pre_conv/bias"]
    identity = [np.eye(shape[-1], dtype="float32")[None, None], np.zeros(shape[-1], "float32")]
    pooled_model.set_weights(identity + features.get_weights())
    pooled = _run(pooled_model, x)
    assert pooled.shape == (2, fmap.shape[-1])
    np.testing.assert_allclose(pooled, reduce(fmap, axis=(1, 2)), rtol=1e-4, atol=1e-5)


#: The families whose serialization test also rebuilds the model with ``weights=<path>`` (a
#: third build, 3-4 s of a big family's 7-17 s). ``weights=`` is the builder's generic
#: ``model.load_weights(path)`` after the build (keras_cnns/models/_builder.py, ``make_model``):
#: the same per-layer weight store the ``.keras`` round trip restores on every family, so it
#: runs on a few structurally different ones: a plain stack, several outputs (GoogLeNet's
#: auxiliary heads in training), the custom op's layers (ShuffleNet), reversible blocks (RevNet)
#: and the i-RevNet's invertible layers.
WEIGHTS_ARG_FAMILIES = ("GoogLeNet", "ShuffleNet", "RevNet", "i-RevNet", "VGG")


def test_weights_arg_families_are_registered():
    assert set(WEIGHTS_ARG_FAMILIES) <= {_info(n).family for n in FAMILY_MODELS}


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_serialization_round_trips(name, tmp_path):
    shape = _min_shape(name)
    x = _x(shape)
    model = keras_cnns.create_model(name, input_shape=shape, classes=SMALL_CLASSES, **knobs(name))
    every = [np.asarray(y) for y in _run_all(model, x)]
    expected = every[main_output(model)[0]]
    np.testing.assert_allclose(expected.sum(axis=-1), 1.0, rtol=1e-4)  # the softmax head

    # the .keras file: the config round trip (load_model rebuilds the model from its config)
    # and the weights, every output (auxiliary outputs too) equal
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for got, want in zip(_run_all(loaded, x), every, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)

    if _info(name).family in WEIGHTS_ARG_FAMILIES:
        wpath = tmp_path / f"{name}.weights.h5"
        model.save_weights(wpath)
        again = keras_cnns.create_model(name, input_shape=shape, classes=SMALL_CLASSES,
                                        weights=str(wpath), **knobs(name))
        np.testing.assert_allclose(_run(again, x), expected, rtol=1e-5, atol=1e-6)


def _bad_args(name):
    info = _info(name)
    m = info.min_input_size
    c = info.default_input_shape[-1]
    return [
        ("classes", {"classes": 0}),
        ("pooling", {"include_top": False, "pooling": "median"}),
        ("include_top", {"include_top": "yes"}),
        ("weights", {"weights": "imagenet"}),
        ("weights", {"weights": "/nonexistent/file.weights.h5"}),
        ("input_shape", {"input_shape": (m - 1, m - 1, c)}),
        ("input_shape", {"input_shape": (m, m)}),
        ("classifier_activation", {"classifier_activation": "no_such_activation"}),
        ("out_indices", {"features_only": True, "out_indices": [9]}),
    ]


# out_indices is checked against the levels of the built graph: once per family is enough.
_BAD_CASES = [(name, i) for name in LIGHT_MODELS for i, (arg, _) in enumerate(_bad_args(name))
              if arg != "out_indices" or name in FAMILY_MODELS]


@pytest.mark.parametrize("name, case", _BAD_CASES,
                         ids=[f"{n}-{_bad_args(n)[i][0]}{i}" for n, i in _BAD_CASES])
def test_invalid_argument_raises(name, case):
    arg, kwargs = _bad_args(name)[case]
    # shapes_only: a value checked against the built graph (out_indices against the levels)
    # fails without the weights ever being allocated (a quarter of the build's time)
    with pytest.raises(ValueError) as err, shapes_only():
        keras_cnns.create_model(name, **kwargs)
    message = str(err.value)
    assert f"`{arg}`" in message and f"Received: {arg}=" in message, (name, kwargs, message)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match="Did you mean"):
        keras_cnns.create_model("squeezenet11")
    with pytest.raises(ValueError, match="Unknown model"):
        keras_cnns.model_info("definitely_not_a_model")
