"""FBNet A / B / C: the layer tables recounted in plain Python, the g2 block against NumPy,
errors.

The generic matrix checks the built models against ``reference_figures.csv``; here the figures
themselves are recomputed from the architecture strings with arithmetic only (no Keras layer is
involved), so a wrong layer in the builder, or a wrong figure in the file, fails.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.blocks import inverted_residual_block
from keras_cnns.layers import GroupedDepthwiseConv2D
from keras_cnns.models import shapes_only
from keras_cnns.models._notation import decode_stage
from keras_cnns.models.fbnet import ARCH, FBNet


def _hand_count(model, side=224, classes=1000):
    """(trainable parameters, the same without BatchNorm's gamma and beta, multiply-adds)."""
    params = weights = macs = 0

    def conv(cin, cout, k, h, groups=1, bias=False, bn=True):
        nonlocal params, weights, macs
        w = k * k * cin // groups * cout
        weights += w + (cout if bias else 0)
        params += w + (cout if bias else 0) + (2 * cout if bn else 0)
        macs += h * h * w

    h = math.ceil(side / 2)
    conv(3, 16, 3, h)
    cin = 16
    for text in ARCH[model][0]:
        if text.startswith("skip"):
            continue
        spec = decode_stage(text)
        opts = spec.kwargs
        hidden, g = cin * opts["expansion"], opts.get("pw_groups", 1)
        if hidden != cin:
            conv(cin, hidden, 1, h, groups=g, bias=True)
        h = math.ceil(h / spec.stride)
        conv(hidden, hidden, opts["kernel_size"], h, groups=hidden, bias=True)
        conv(hidden, spec.filters, 1, h, groups=g, bias=True)
        cin = spec.filters
    last = ARCH[model][1]
    conv(cin, last, 1, h)
    weights += last * classes + classes
    params += last * classes + classes
    macs += last * classes
    return params, weights, macs


@pytest.mark.parametrize("model", list(ARCH))
def test_counts_equal_the_hand_count_of_the_table(model):
    params, weights, macs = _hand_count(model)
    info = keras_cnns.model_info(f"fbnet_{model}")
    assert info.reference_params == params          # the figure file holds the hand count
    with shapes_only():
        built = keras_cnns.create_model(f"fbnet_{model}")
    assert sum(int(np.prod(w.shape)) for w in built.trainable_weights) == params
    assert keras_cnns.profile(built).total_macs == macs
    paper = {"a": 4.3e6, "b": 4.5e6, "c": 5.5e6}[model]
    if model != "b":  # the released B has 6% more weights than the paper prints (docstring)
        assert abs(weights - paper) <= 0.01 * paper


def test_fbnet_c_weights_within_one_percent_of_the_paper():
    _, weights, _ = _hand_count("c")
    assert weights == 5_546_544 and abs(weights / 5.5e6 - 1) < 0.01


def test_g2_block_is_shuffle_depthwise_grouped_projection():
    inp = keras.Input((6, 6, 8))
    out = inverted_residual_block(inp, 8, expansion=1, kernel_size=3, pw_groups=2,
                                  use_bias=True, padding="torch", activation="relu",
                                  bn_epsilon=1e-5, bn_momentum=0.9, name="b")
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in w.path
                 else rng.normal(0, 0.3, w.shape).astype("float32"))
    x = rng.normal(size=(2, 6, 6, 8)).astype("float32")
    get = lambda n: model.get_layer(n).get_weights()  # noqa: E731

    def bn(t, name):
        g, b, m, v = get(name)
        return (t - m) / np.sqrt(v + 1e-5) * g + b

    shuffled = x.reshape(2, 6, 6, 2, 4).transpose(0, 1, 2, 4, 3).reshape(2, 6, 6, 8)
    k, bias = get("b_dw")
    t = tf.nn.depthwise_conv2d(shuffled, k.reshape(3, 3, 8, 1), (1, 1, 1, 1), "SAME").numpy()
    t = np.maximum(bn(t + bias, "b_dw_bn"), 0)
    k, bias = get("b_project_conv")                     # [1, 1, 4, 8]: two groups of 4 -> 4
    y = np.concatenate([t[..., :4] @ k[0, 0, :, :4], t[..., 4:] @ k[0, 0, :, 4:]], -1) + bias
    expected = bn(y, "b_project_bn") + x
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)), expected,
                               atol=1e-4)
    assert isinstance(model.get_layer("b_project_conv"), GroupedDepthwiseConv2D)
    assert model.get_layer("b_dw").shuffle_groups == 2


def test_fbnet_a_uses_three_g2_blocks_and_skips_have_no_layers():
    model = FBNet("a", input_shape=(32, 32, 3), include_top=False)
    shuffled = [l for l in model.layers if getattr(l, "shuffle_groups", 1) == 2]
    assert len(shuffled) == 3
    blocks = {l.name.split("_")[0] for l in model.layers if l.name.startswith("block")}
    assert len(blocks) == 22 - 3  # 22 searched layers, three of them identity skips


@pytest.mark.parametrize("kwargs, arg", [({"model": "d"}, "model"), ({"dropout": 1.5}, "dropout")])
def test_invalid_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        FBNet(input_shape=(32, 32, 3), **kwargs)


def test_pw_groups_must_divide_the_widths():
    with pytest.raises(ValueError, match="pw_groups"):
        inverted_residual_block(keras.Input((6, 6, 8)), 12, expansion=1, pw_groups=3)
