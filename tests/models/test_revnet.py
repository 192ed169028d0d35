"""RevNet (Gomez et al. 2017): counts and forward pass against a replica of the authors' code
(renmengye/revnet-public), gradients of the reconstructing backward pass against ordinary
autodiff, BatchNorm statistics updated once per step, the inverse, mixed precision,
tf.distribute, and the knobs' errors.

The replica below follows revnet-public's ``resnet_model.py`` / ``revnet_model.py`` with plain
TF ops on the model's weights: ``_init_conv``, ``_residual`` / ``_bottleneck_residual`` (split,
``_residual_inner``, ``_possible_downsample`` with its VALID average pool and symmetric channel
padding, ``_possible_bottleneck_downsample``), ``unit_last`` and the logit layer, with
``nnlib.batch_norm`` (``tf.nn.moments``, epsilon 1e-3).
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.blocks.reversible import RevNetBlock, ReversibleSequence, _CouplingLayer, reversible_macs
from keras_cnns.models import reference_figures
from keras_cnns.models._builder import shapes_only
from keras_cnns.models.revnet import RevNet

#: revnet-public cifar_configs.py: name -> (filters, units per stage, bottleneck)
CONFIGS = {"revnet38": ((32, 32, 64, 112), 3, False), "revnet110": ((32, 32, 64, 128), 9, False),
           "revnet164": ((32, 32, 64, 128), 9, True)}
#: renmengye/revnet-public's CIFAR configurations (the replica in this file): trainable
#: parameters at 10 / 100 classes
EXPECTED = {"revnet38": (464890, 475060), "revnet110": (1729194, 1740804),
            "revnet164": (1748778, 1794948)}
#: small networks for the numerical tests (8x8 inputs, several reversible units per stage)
BASIC = dict(depth=38, filters=(8, 8, 16, 24), bottleneck=False)  # 3 units / stage
BOTTLENECK = dict(depth=38, filters=(8, 4, 8, 12), bottleneck=True)  # 2 units / stage
SIDE = 8


def _replica_counts(filters, units, bottleneck, classes, side=32):
    """(trainable parameters, conv/dense MACs) of revnet-public's build_inference_network."""
    widths = [f * (4 if bottleneck and i else 1) for i, f in enumerate(filters)]
    params, macs, h = 9 * 3 * widths[0] + 2 * widths[0], 9 * 3 * widths[0] * side * side, side
    for s, stride in enumerate((1, 2, 2)):
        for u in range(units):
            cin = widths[s] if u == 0 else widths[s + 1]
            hi, ho = cin // 2, widths[s + 1] // 2
            st = stride if u == 0 else 1
            h_out = h // st
            for branch, (a, b_, sb) in (("f", (hi, ho, st)), ("g", (ho, ho, 1))):
                no_act = branch == "f" and s == 0 and u == 0
                if bottleneck:
                    m = b_ // 4
                    convs = [(1, a, m), (3, m, m), (1, m, b_)]
                else:
                    convs = [(3, a, b_), (3, b_, b_)]
                for i, (k, ci, co) in enumerate(convs):
                    if not (i == 0 and no_act):
                        params += 2 * ci
                    params += k * k * ci * co
                    macs += k * k * ci * co * h_out * h_out
            if bottleneck and (st > 1 or hi != ho):  # x1_bottleneck / x2_bottleneck project
                params += 2 * hi * ho
                macs += 2 * hi * ho * h_out * h_out
            h = h_out
    c = widths[3]
    return params + 2 * c + c * classes + classes, macs + c * classes


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _register_macs():
    from keras_cnns import profiler

    if profiler._rule_for(ReversibleSequence.__new__(ReversibleSequence)) is None:
        profiler.register_mac_rule(_CouplingLayer, reversible_macs)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_counts_equal_the_replica_and_the_figures(name):
    _register_macs()
    filters, units, bottleneck = CONFIGS[name]
    fig = reference_figures()[name]
    for classes, expected in zip((10, 100), EXPECTED[name]):
        params, macs = _replica_counts(filters, units, bottleneck, classes)
        with shapes_only():
            model = keras_cnns.create_model(name, classes=classes)
        assert _trainable(model) == params == expected
        if classes == 10:
            assert fig.params == params
            assert fig.macs.matches(macs) and keras_cnns.profile(model).total_macs == macs


# ------------------------------------------------------------------------------------------------
# The forward pass against the replica of revnet-public
# ------------------------------------------------------------------------------------------------

def _w(layer):
    """The layer's weights by their path below the layer ("f_bn1/gamma" -> "f_bn1_gamma")."""
    return {w.path.split("/", 1)[1].replace("/", "_"): tf.convert_to_tensor(w)
            for w in layer.weights}


def _bn(x, w, pre, training):
    if training:
        mean, var = tf.nn.moments(x, [0, 1, 2])
    else:
        mean, var = w[pre + "moving_mean"], w[pre + "moving_variance"]
    return tf.nn.batch_normalization(x, mean, var, w[pre + "beta"], w[pre + "gamma"], 1e-3)


def _inner(x, w, p, stride, no_activation, bottleneck, training):
    """revnet-public _residual_inner / _bottleneck_residual_inner."""
    n = 3 if bottleneck else 2
    for i in range(1, n + 1):
        if i > 1 or not no_activation:
            x = tf.nn.relu(_bn(x, w, f"{p}bn{i}_", training))
        x = tf.nn.conv2d(x, w[f"{p}conv{i}_kernel"], stride if i == 1 else 1, "SAME")
    return x


def _possible_downsample(x, cin, cout, stride):
    if stride > 1:
        x = tf.nn.avg_pool(x, stride, stride, "VALID")
    if cin < cout:
        x = tf.pad(x, [[0, 0], [0, 0], [0, 0], [(cout - cin) // 2, (cout - cin) // 2]])
    return x


def _replica_forward(model, x, filters, units, bottleneck, training):
    widths = [f * (4 if bottleneck and i else 1) for i, f in enumerate(filters)]
    w = _w(model.get_layer("init_conv"))
    h = tf.nn.conv2d(x, w["kernel"], 1, "SAME")
    h = tf.nn.relu(_bn(h, _w(model.get_layer("init_bn")), "", training))
    for s, stride in enumerate((1, 2, 2)):
        for u in range(units):
            if u == 0:
                w, p = _w(model.get_layer(f"unit_{s + 1}_0")), ""
                cin, st = widths[s], stride
            else:
                w, p = _w(model.get_layer(f"unit_{s + 1}_rev")), f"unit{u - 1}_"
                cin, st = widths[s + 1], 1
            hi, ho = cin // 2, widths[s + 1] // 2
            x1, x2 = h[..., :hi], h[..., hi:]
            f = _inner(x2, w, p + "f_", st, s == 0 and u == 0, bottleneck, training)
            if bottleneck:
                proj = (lambda v, i: tf.nn.conv2d(v, w[f"x{i}_project_kernel"], st, "SAME")
                        if (st > 1 or hi != ho) else v)
                x1_, x2_ = proj(x1, 1), proj(x2, 2)
            else:
                x1_, x2_ = (_possible_downsample(v, hi, ho, st) for v in (x1, x2))
            y1 = f + x1_
            y2 = _inner(y1, w, p + "g_", 1, False, bottleneck, training) + x2_
            h = tf.concat([y1, y2], axis=3)
    h = tf.nn.relu(_bn(h, _w(model.get_layer("final_bn")), "", training))
    w = _w(model.get_layer("predictions"))
    return tf.reduce_mean(h, [1, 2]) @ w["kernel"] + w["bias"]


def _randomise(model, seed=0):
    rng = np.random.default_rng(seed)
    weights = []
    for v in model.weights:
        shape, name = tuple(v.shape), v.name
        if "moving_variance" in name or name.endswith("gamma"):
            weights.append(rng.uniform(0.5, 1.5, shape))
        elif "moving_mean" in name or name.endswith("beta") or name == "bias":
            weights.append(rng.normal(0, 0.2, shape))
        else:
            fan_in = int(np.prod(shape[:-1]))
            weights.append(rng.normal(0, 1.0 / np.sqrt(fan_in), shape))
    model.set_weights([a.astype("float32") for a in weights])


def _x(n=4, side=SIDE, seed=1):
    return tf.constant(np.random.default_rng(seed).normal(size=(n, side, side, 3)).astype("float32"))


@pytest.mark.parametrize("kw", [BASIC, BOTTLENECK], ids=["basic", "bottleneck"])
def test_forward_equals_the_revnet_public_replica(kw):
    model = RevNet(**kw, input_shape=(SIDE, SIDE, 3), classes=5, classifier_activation=None)
    _randomise(model)
    units = (kw["depth"] - 2) // (18 if kw["bottleneck"] else 12)
    x = _x()
    for training in (False, True):
        before = [np.asarray(v) for v in model.non_trainable_weights]
        got = model(x, training=training)
        want = _replica_forward(model, x, kw["filters"], units, kw["bottleneck"], training)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)
        for v, b in zip(model.non_trainable_weights, before):  # restore the statistics
            v.assign(b)


# ------------------------------------------------------------------------------------------------
# The reconstructing backward pass against ordinary autodiff
# ------------------------------------------------------------------------------------------------

def _pair(kw, **extra):
    a = RevNet(**kw, input_shape=(SIDE, SIDE, 3), classes=5, classifier_activation=None, **extra)
    b = RevNet(**kw, input_shape=(SIDE, SIDE, 3), classes=5, classifier_activation=None,
               reversible_backprop=False, **extra)
    _randomise(a)
    b.set_weights(a.get_weights())
    return a, b


def _grads(model, x, target, scale=1.0):
    """Input and weight gradients (``scale``: a loss scale for float16, divided out)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.cast(model(x, training=True), tf.float32) * target) * scale
    return [np.asarray(tf.cast(g, tf.float32)) / scale
            for g in tape.gradient(loss, [x] + model.trainable_weights)]


def _worst(ga, gb):
    return max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30)) for a, b in zip(ga, gb))


@pytest.mark.parametrize("kw", [BASIC, BOTTLENECK], ids=["basic", "bottleneck"])
def test_gradients_equal_ordinary_backprop_eager_and_graph(kw):
    a, b = _pair(kw)
    assert any(isinstance(layer, ReversibleSequence) and layer.units >= 1 for layer in a.layers)
    x = _x()
    target = tf.constant(np.random.default_rng(2).normal(size=(4, 5)).astype("float32"))
    eager = [_grads(m, x, target) for m in (a, b)]
    assert len(eager[0]) == len(a.trainable_weights) + 1
    assert _worst(*eager) <= 1e-4, _worst(*eager)
    if kw["bottleneck"]:
        return  # the same custom gradient; tf.function is checked on the basic network
    graph = [tf.function(lambda x, m=m: [tf.convert_to_tensor(g) for g in _grads_t(m, x, target)])(x)
             for m in (a, b)]
    graph = [[np.asarray(g) for g in gs] for gs in graph]
    assert _worst(*graph) <= 1e-4, _worst(*graph)
    assert _worst(eager[0], graph[0]) <= 1e-4


def _grads_t(model, x, target):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(model(x, training=True) * target)
    return tape.gradient(loss, [x] + model.trainable_weights)


def test_fit_step_updates_bn_statistics_once_like_ordinary_backprop():
    a, b = _pair(dict(BASIC, depth=26))
    x = _x(8)
    y = np.arange(8) % 5
    before = [np.asarray(v) for v in a.non_trainable_weights]
    for m in (a, b):
        m.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)  # graph mode
    stats = [(v.path, np.asarray(v), np.asarray(w))
             for v, w in zip(a.non_trainable_weights, b.non_trainable_weights)]
    assert len(stats) == len(before) > 0
    for (path, got, want), old in zip(stats, before):
        assert not np.allclose(got, old), f"{path} not updated"
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=path)
    for v, w in zip(a.trainable_weights, b.trainable_weights):
        np.testing.assert_allclose(np.asarray(v), np.asarray(w), rtol=1e-4, atol=1e-5,
                                   err_msg=v.path)


def test_inverse_reconstructs_the_input():
    layer = ReversibleSequence(3)
    x = _x(4, seed=3)[..., :2]
    x = tf.concat([x] * 4, axis=-1)  # 8 channels
    layer.build(x.shape)
    _randomise_layer(layer)
    for training in (False, True):
        y = layer(x, training=training)
        back = layer.inverse(y, training=training)
        err = float(tf.reduce_max(tf.abs(back - x)) / tf.reduce_max(tf.abs(x)))
        assert err < 1e-5, err
        assert float(tf.reduce_max(tf.abs(y - x))) > 0.1  # the units do something


def _randomise_layer(layer, seed=0):
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        if "variance" in v.name or "gamma" in v.name:
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
        elif "kernel" in v.name:
            v.assign(rng.normal(0, 1 / np.sqrt(np.prod(v.shape[:-1])), v.shape).astype("float32"))
        else:
            v.assign(rng.normal(0, 0.2, v.shape).astype("float32"))


# ------------------------------------------------------------------------------------------------
# Mixed precision: what float16 does to the reconstruction
# ------------------------------------------------------------------------------------------------

def _stage_reconstruction_error(model, x):
    """Max relative error of each reversible run's input reconstructed from its output
    (training-mode statistics, as the backward pass uses them)."""
    errors = []
    for layer in model.layers:
        if isinstance(layer, ReversibleSequence):
            inp = keras.Model(model.inputs, layer.input)(x, training=True)
            out = layer(inp, training=True)
            back = layer.inverse(out, training=True)
            errors.append(float(tf.reduce_max(tf.abs(tf.cast(back, tf.float32) - tf.cast(inp, tf.float32)))
                                / tf.reduce_max(tf.abs(tf.cast(inp, tf.float32)))))
    return max(errors)


def _median_error(ga, gb):
    return float(np.median([np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30)
                            for a, b in zip(ga, gb)]))


def test_mixed_precision_reconstruction_and_gradients():
    """float16 (``mixed_float16``: convolutions and the coupling sums in float16, BatchNorm in
    float32): the reconstructed inputs of each run differ from the stored ones by ~1e-3 of their
    scale (5e-7 in float32); the gradients of the reconstructing backward pass are as far from
    float32's as ordinary float16 backprop's are (this deep random network amplifies float16
    rounding either way)."""
    x = _x(8, side=16)
    target = tf.constant(np.random.default_rng(2).normal(size=(8, 5)).astype("float32"))
    weights, recon, grads = None, {}, {}
    for policy in ("float32", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            a = RevNet(**BASIC, input_shape=(16, 16, 3), classes=5, classifier_activation=None)
            b = RevNet(**BASIC, input_shape=(16, 16, 3), classes=5, classifier_activation=None,
                       reversible_backprop=False)
            assert a.get_layer("unit_1_rev").compute_dtype == policy[-7:]
            if weights is None:
                _randomise(a)
                weights = a.get_weights()
            a.set_weights(weights)
            recon[policy] = _stage_reconstruction_error(a, x)
            a.set_weights(weights)
            b.set_weights(weights)
            grads[policy] = (_grads(a, x, target, 1024.0), _grads(b, x, target, 1024.0))
            assert all(np.all(np.isfinite(g)) for g in grads[policy][0])
        finally:
            keras.mixed_precision.set_global_policy("float32")
    ref = grads["float32"][1]
    rev32, rev16, ord16 = grads["float32"][0], *grads["mixed_float16"]
    figures = dict(recon32=recon["float32"], recon16=recon["mixed_float16"],
                   rev32_vs_ord32=_worst(rev32, ref), rev16_vs_ord16=_median_error(rev16, ord16),
                   rev16_vs_f32=_median_error(rev16, ref), ord16_vs_f32=_median_error(ord16, ref))
    print(f"\nRevNet float16: {figures}")
    assert figures["recon32"] < 1e-5 and figures["rev32_vs_ord32"] < 1e-4
    assert 1e-5 < figures["recon16"] < 2e-2  # float16 rounding: visible, and bounded
    assert figures["rev16_vs_f32"] <= 1.5 * figures["ord16_vs_f32"] + 0.01


# ------------------------------------------------------------------------------------------------
# tf.distribute: MirroredStrategy over two logical CPU devices (a child process: the devices must
# be configured before TensorFlow initialises)
# ------------------------------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_cnns.models.revnet import RevNet
    kw = dict(depth=26, filters=(8, 8, 16, 24), input_shape=(8, 8, 3), classes=5,
              classifier_activation=None)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    y = np.arange(8) % 5
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = RevNet(**kw)
    ref = RevNet(**kw, reversible_backprop=False)
    ref.set_weights(model.get_weights())

    @tf.function
    def replica_grads(xb, yb):
        def step(xr, yr):
            with tf.GradientTape() as tape:
                loss = loss_fn(yr, model(xr, training=True)) / 8.0
            return tape.gradient(loss, model.trainable_weights)
        per = strategy.run(step, args=(xb, yb))
        return [strategy.reduce("SUM", g, axis=None) for g in per]

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    xb, yb = next(iter(strategy.experimental_distribute_dataset(ds)))
    got = [np.asarray(g) for g in replica_grads(xb, yb)]
    # single device, ordinary autodiff: each replica's half batch (its own BN statistics)
    want = None
    for half in (slice(0, 4), slice(4, 8)):
        with tf.GradientTape() as tape:
            loss = loss_fn(y[half], ref(x[half], training=True)) / 8.0
        g = [np.asarray(v) for v in tape.gradient(loss, ref.trainable_weights)]
        want = g if want is None else [a + b for a, b in zip(want, g)]
    worst = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30)) for a, b in zip(got, want))
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    print(json.dumps(dict(replicas=strategy.num_replicas_in_sync, worst=worst,
                          loss=hist.history["loss"][0], n=len(got))))
""")


def test_mirrored_strategy_two_logical_devices(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["n"] > 0
    assert result["worst"] <= 1e-4, result
    assert np.isfinite(result["loss"])


# ------------------------------------------------------------------------------------------------
# Knobs
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arg, kwargs", [
    ("depth", dict(depth=39)),
    ("depth", dict(depth=164)),  # 164 = 18 n + 2 fits bottleneck units only
    ("depth", dict(depth=50, bottleneck=True)),
    ("depth", dict(depth=2)),
    ("filters", dict(filters=(32, 32, 64))),
    ("filters", dict(filters=(32, 31, 64, 128))),
    ("filters", dict(filters=(32, 32, 16, 128))),  # the channels of a half cannot shrink
    ("filters", dict(filters=(32, 32, 66, 128))),  # odd padding per side
    ("bottleneck", dict(bottleneck="yes")),
    ("reversible_backprop", dict(reversible_backprop=1)),
])
def test_bad_knobs_raise_value_errors(arg, kwargs):
    with pytest.raises(ValueError) as err:
        RevNet(**kwargs)
    assert f"`{arg}`" in str(err.value) and f"Received: {arg}=" in str(err.value)


@pytest.mark.parametrize("make, arg", [
    (lambda: ReversibleSequence(0), "units"),
    (lambda: ReversibleSequence(2, reversible_backprop="no"), "reversible_backprop"),
    (lambda: ReversibleSequence(2, momentum=1.5), "momentum"),
    (lambda: RevNetBlock(7), "filters"),
    (lambda: RevNetBlock(8, strides=3), "strides"),
    (lambda: RevNetBlock(12, bottleneck=True), "filters"),
])
def test_layer_knobs_raise_value_errors(make, arg):
    with pytest.raises(ValueError) as err:
        make()
    assert f"`{arg}`" in str(err.value)
