"""SqueezeNet-specific tests: parameter counts, bypass wiring, reference shapes, ceil-mode pooling,
the conv10 initialisation that keeps every class map alive, argument validation.

Independent references (parameter counts: reference_figures.csv, checked by the generic matrix):
hand counts, layer
shapes computed by hand from torchvision's ``squeezenet.py`` (no padding on conv1,
``MaxPool2d(3, 2, ceil_mode=True)``), a NumPy ceil-mode max-pool.
"""

import numpy as np
import pytest
import keras

import keras_cnns
import keras_cnns.models._figures
from keras_cnns.layers import CeilModeMaxPooling2D, max_pool_ceil
from keras_cnns.models import squeezenet as sq
from keras_cnns.models.squeezenet import SqueezeNet

# 1.1 with complex bypass is not registered (so not in reference_figures.csv): the 1.1 count plus
# four 1x1 convs with bias, 64->128, 128->256, 256->384, 384->512, computed here by hand.
_V11_COMPLEX = 1_235_496 + sum(cin * cout + cout for cin, cout in
                               [(64, 128), (128, 256), (256, 384), (384, 512)])


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_unregistered_complex_bypass_1_1_count():
    model = SqueezeNet(version="1_1", bypass="complex")
    assert _trainable(model) == _V11_COMPLEX
    assert model.count_params() == _V11_COMPLEX  # no BN: all weights trainable


def test_registered_variants():
    expected = {
        "squeezenet1_0": ("1_0", "none"),
        "squeezenet1_1": ("1_1", "none"),
        "squeezenet1_0_simple_bypass": ("1_0", "simple"),
        "squeezenet1_0_complex_bypass": ("1_0", "complex"),
        "squeezenet1_1_simple_bypass": ("1_1", "simple"),
    }
    assert set(keras_cnns.list_models("squeezenet*")) == set(expected)
    for name, (version, bypass) in expected.items():
        info = keras_cnns.model_info(name)
        assert info.kwargs == {"version": version, "bypass": bypass}
        assert info.min_input_size == sq.MIN_INPUT_SIZE[version]
    # an identity bypass adds no parameters (the file's figures say so; the build agrees in the
    # generic matrix)
    figures = keras_cnns.models._figures.reference_figures()
    assert figures["squeezenet1_0_simple_bypass"].params == figures["squeezenet1_0"].params


def _add_layers(model):
    return {layer.name: layer for layer in model.layers if isinstance(layer, keras.layers.Add)}


def _consumers(model, tensor):
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        if any(t is tensor for t in inputs):
            names.append(layer.name)
    return names


def _fire_input(model, index):
    return model.get_layer(f"fire{index}_squeeze1x1").input


@pytest.mark.parametrize("version", ["1_0", "1_1"])
def test_simple_bypass_is_identity_around_fires_3_5_7_9(version):
    model = SqueezeNet(version=version, bypass="simple", input_shape=(64, 64, 3), classes=10)
    adds = _add_layers(model)
    assert sorted(adds) == [f"fire{i}_bypass_add" for i in (3, 5, 7, 9)]
    for i in (3, 5, 7, 9):
        shortcut, branch = adds[f"fire{i}_bypass_add"].input
        assert shortcut is _fire_input(model, i)  # identity: the Fire's own input
        assert branch is model.get_layer(f"fire{i}_concat").output
        # the sum, not the bare Fire output, is what the rest of the network reads
        assert _consumers(model, model.get_layer(f"fire{i}_concat").output) == [f"fire{i}_bypass_add"]
    assert not any("bypass_conv" in layer.name for layer in model.layers)


@pytest.mark.parametrize("version", ["1_0", "1_1"])
def test_complex_bypass_adds_1x1_convs_around_fires_2_4_6_8(version):
    model = SqueezeNet(version=version, bypass="complex", input_shape=(64, 64, 3), classes=10)
    adds = _add_layers(model)
    assert sorted(adds) == [f"fire{i}_bypass_add" for i in range(2, 10)]
    convs = {l.name: l for l in model.layers if l.name.endswith("_bypass_conv")}
    assert sorted(convs) == [f"fire{i}_bypass_conv" for i in (2, 4, 6, 8)]
    for i in (2, 4, 6, 8):
        conv = convs[f"fire{i}_bypass_conv"]
        cin = _fire_input(model, i).shape[-1]
        cout = model.get_layer(f"fire{i}_concat").output.shape[-1]
        assert cin != cout
        assert tuple(conv.kernel.shape) == (1, 1, cin, cout) and conv.use_bias
        assert conv.input is _fire_input(model, i)
        shortcut, branch = adds[f"fire{i}_bypass_add"].input
        assert shortcut is conv.output and branch is model.get_layer(f"fire{i}_concat").output
    for i in (3, 5, 7, 9):
        assert adds[f"fire{i}_bypass_add"].input[0] is _fire_input(model, i)


# Shapes by hand from torchvision: conv1 has no padding, pools are 3x3/2 ceil_mode=True, so
# n -> floor((n - k) / s) + 1 for the conv and ceil((n - 3) / 2) + 1 for the pools.
SHAPES = {
    ("1_0", 224): {"conv1": (109, 109, 96), "pool1": (54, 54, 96), "fire2_concat": (54, 54, 128),
                   "fire4_concat": (54, 54, 256), "pool4": (27, 27, 256),
                   "fire8_concat": (27, 27, 512), "pool8": (13, 13, 512),
                   "fire9_concat": (13, 13, 512), "conv10": (13, 13, 1000)},
    # the Caffe release's 227 crop: conv1 111x111x96, pool1 55, pool4 27, pool8 13
    ("1_0", 227): {"conv1": (111, 111, 96), "pool1": (55, 55, 96), "pool4": (27, 27, 256),
                   "pool8": (13, 13, 512), "conv10": (13, 13, 1000)},
    ("1_1", 224): {"conv1": (111, 111, 64), "pool1": (55, 55, 64), "fire3_concat": (55, 55, 128),
                   "pool3": (27, 27, 128), "fire5_concat": (27, 27, 256), "pool5": (13, 13, 256),
                   "fire6_concat": (13, 13, 384), "fire9_concat": (13, 13, 512),
                   "conv10": (13, 13, 1000)},
}


@pytest.mark.parametrize("version,size", sorted(SHAPES))
def test_layer_output_shapes_match_torchvision(version, size):
    model = SqueezeNet(version=version, input_shape=(size, size, 3))
    for layer_name, shape in SHAPES[(version, size)].items():
        assert tuple(model.get_layer(layer_name).output.shape[1:]) == shape, layer_name
    assert tuple(model.output.shape) == (None, 1000)


def _numpy_ceil_maxpool(x, k=3, s=2):
    n, h, w, c = x.shape
    oh, ow = -(-(h - k) // s) + 1, -(-(w - k) // s) + 1
    out = np.empty((n, oh, ow, c), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, i * s:i * s + k, j * s:j * s + k].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("size", [2, 3, 7, 8, 13, 14])
@pytest.mark.parametrize("low", [0.0, -5.0])  # complex-bypass sums can be negative
def test_ceil_mode_max_pool_matches_numpy(size, low, rng):
    x = rng.uniform(low, low + 3.0, size=(2, size, size + 1, 4)).astype("float32")
    inp = keras.Input(shape=x.shape[1:])
    pool = keras.Model(inp, max_pool_ceil(inp, 3, 2, name="p"))
    assert tuple(pool.output.shape[1:3]) == _numpy_ceil_maxpool(x).shape[1:3]
    np.testing.assert_array_equal(pool.predict(x, verbose=0), _numpy_ceil_maxpool(x))
    dynamic = keras.Model(*(lambda i: (i, max_pool_ceil(i, 3, 2, name="q")))(
        keras.Input(shape=(None, None, 4))))
    np.testing.assert_array_equal(dynamic.predict(x, verbose=0), _numpy_ceil_maxpool(x))
    if low >= 0:  # ZFNet's two-layer form (zero padding + "valid" pool) for non-negative inputs
        free = keras.Input(shape=(None, None, 4))
        padded = keras.Model(free, max_pool_ceil(free, 3, 2, name="z", nonnegative=True))
        assert [layer.name for layer in padded.layers[1:]] == ["z_pad", "z"]
        np.testing.assert_array_equal(padded.predict(x, verbose=0), _numpy_ceil_maxpool(x))


def test_ceil_mode_pool_gradient_and_config():
    layer = CeilModeMaxPooling2D(3, 2, name="p")
    clone = CeilModeMaxPooling2D.from_config(layer.get_config())
    assert (clone.pool_size, clone.strides, clone.name) == (3, 2, "p")
    import tensorflow as tf

    x = tf.constant(-np.arange(16, dtype="float32").reshape(1, 4, 4, 1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        total = tf.reduce_sum(y)
    g = tape.gradient(total, x).numpy()
    assert np.isfinite(g).all() and g.sum() == y.shape[1] * y.shape[2]  # one argmax per window


@pytest.mark.parametrize("version", ["1_0", "1_1"])
def test_min_input_size_is_tight(version, monkeypatch):
    m = sq.MIN_INPUT_SIZE[version]
    model = SqueezeNet(version=version, input_shape=(m, m, 3), classes=3)
    assert tuple(model.get_layer("fire9_concat").output.shape[1:3]) == (1, 1)
    with pytest.raises(ValueError, match="input_shape"):
        SqueezeNet(version=version, input_shape=(m - 1, m - 1, 3))
    # without the check, one pixel less really cannot be built
    monkeypatch.setitem(sq.MIN_INPUT_SIZE, version, 1)
    with pytest.raises(Exception):
        SqueezeNet(version=version, input_shape=(m - 1, m - 1, 3), classes=3)


def test_dynamic_input_size_and_headless_features():
    model = SqueezeNet(version="1_1", bypass="simple", include_top=False, input_shape=(None, None, 3))
    y = model.predict(np.zeros((1, 40, 40, 3), "float32"), verbose=0)
    assert y.shape == (1, 2, 2, 512)  # 40 -> 19 -> 10 -> 5 -> 2


@pytest.mark.parametrize("kwargs,arg", [
    ({"bypass": "residual"}, "bypass"),
    ({"bypass": None}, "bypass"),
    ({"version": "1.0"}, "version"),
    ({"version": 1}, "version"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": -0.1}, "dropout"),
])
def test_invalid_family_arguments_name_the_argument(kwargs, arg):
    with pytest.raises(ValueError) as err:
        SqueezeNet(**kwargs)
    assert f"`{arg}`" in str(err.value) and f"Received: {arg}=" in str(err.value)


def test_default_names():
    assert SqueezeNet().name == "squeezenet1_0"
    assert SqueezeNet(version="1_1", bypass="simple").name == "squeezenet1_1_simple_bypass"
    assert keras_cnns.create_model("squeezenet1_1").name == "squeezenet1_1"


def test_initialisation():
    model = SqueezeNet(version="1_1", bypass="simple", input_shape=(32, 32, 3), classes=10)
    conv10 = model.get_layer("conv10")
    np.testing.assert_array_equal(conv10.kernel.numpy(), 0.0)
    np.testing.assert_array_equal(conv10.bias.numpy(), 1.0)
    # every other convolution: torchvision's kaiming_uniform_ = U(+-sqrt(6 / fan_in)), bias 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.name != "conv10":
            k = layer.kernel.numpy()
            bound = np.sqrt(6.0 / np.prod(k.shape[:3]))
            assert np.abs(k).max() <= bound + 1e-6, layer.name
            if k.size >= 1000:
                assert abs(k.std() - bound / np.sqrt(3)) < 0.1 * bound, layer.name
            np.testing.assert_array_equal(layer.bias.numpy(), 0.0)
    # the first prediction is exactly uniform
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), 0.1, rtol=1e-6)


def _digits(n=96, size=32):
    from sklearn.datasets import load_digits
    import tensorflow as tf

    x = load_digits().images[:n].astype("float32") / 16.0
    x = tf.image.resize(x[..., None], (size, size)).numpy()
    x = (x - x.mean()) / x.std()
    return np.repeat(x, 3, axis=-1)


def test_class_maps_alive_at_init_unlike_the_reference_init():
    """The root cause of dying class maps, and the fix: with fire9's non-negative features, the
    reference Normal(0, 0.01) conv10 leaves a large share of class maps negative at every position
    of every image (zero gradient through ReLU + GAP); the library's init leaves none."""
    classes = 200
    x = _digits()
    model = SqueezeNet(version="1_1", bypass="simple", input_shape=x.shape[1:], classes=classes)
    maps = keras.Model(model.input, model.get_layer("conv10").output)
    alive = maps.predict(x, verbose=0).max(axis=(0, 1, 2)) > 0
    assert alive.all()

    conv10 = model.get_layer("conv10")
    conv10.kernel.assign(keras.initializers.RandomNormal(0.0, sq.REFERENCE_CONV10_STDDEV, seed=3)(
        conv10.kernel.shape))
    conv10.bias.assign(np.zeros(classes, "float32"))
    dead = 1.0 - (maps.predict(x, verbose=0).max(axis=(0, 1, 2)) > 0).mean()
    assert dead > 0.05, dead  # measured ~0.19


@pytest.mark.parametrize("name,shape", [
    ("squeezenet1_1_simple_bypass", (64, 64, 3)),   # every ceil-mode pool input is odd: "valid"
    ("squeezenet1_1_simple_bypass", (66, 64, 3)),   # 32x31 into pool1: the last row repeated
    ("squeezenet1_0_complex_bypass", (48, 48, 3)),  # even sides: "same"
])
def test_int8_tflite_runs_with_the_default_xnnpack_delegate(name, shape, tmp_path):
    """The ceil-mode pools were -inf PADV2 + MAX_POOL_2D, which XNNPACK failed to prepare in
    int8 ("Node number 47 (TfLiteXNNPackDelegate) failed to prepare")."""
    from keras_cnns.export import export_tflite, run_tflite

    keras.utils.set_random_seed(0)
    model = keras_cnns.create_model(name, input_shape=shape, classes=10)
    x = np.random.default_rng(0).normal(size=(16,) + shape).astype("float32")
    expected = model.predict(x, verbose=0)
    f32 = export_tflite(model, tmp_path / "f32.tflite")
    np.testing.assert_allclose(run_tflite(f32, x), expected, atol=1e-4)
    int8 = export_tflite(model, tmp_path / "int8.tflite", quantization="int8",
                         representative_dataset=x)
    y = run_tflite(int8, x)  # tf.lite.Interpreter applies XNNPACK by default
    assert y.shape == expected.shape and np.all(np.isfinite(y))
    assert np.mean(y.argmax(1) == expected.argmax(1)) >= 0.75
