"""CSPNet / Darknet (keras_cnns/models/cspnet.py): the hand count of CSPDenseNet-201 (no public
implementation to compare with), the stem max-pool against NumPy, the family's knobs and their
errors. The timm-layout models are compared with timm itself in test_timm_bridge.py."""

import keras
import numpy as np
import pytest

import keras_cnns
from keras_cnns.layers import StochasticDepth
from keras_cnns.models import cspnet
from keras_cnns.models._builder import shapes_only
from keras_cnns.models.cspnet import CSPDenseNet, CSPNet, Darknet, stage_plan, timm_names


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# ----------------------------------------------------------------------------------------------
# CSPDenseNet-201, counted by hand
# ----------------------------------------------------------------------------------------------

def test_cspdensenet201_hand_count():
    """CSPDenseNet-201 (module docstring): trainable parameters, BN = gamma + beta = 2 C.

    Stem: conv 7x7x3x64 = 9408, BN 128                                  ->       9,536
    A dense layer on c channels (k = 32, bottleneck 4k = 128):
        BN 2c + 1x1 c x 128 + BN 256 + 3x3x128x32 = 36864              -> 130 c + 37,120
    A stage on a base of C channels with L layers: the dense path starts at C/2, layer j sees
    C/2 + 32 j, and the block gives d = C/2 + 32 L channels:
        dense layers = 130 (L C/2 + 32 L (L - 1) / 2) + 37,120 L
        transition_b (BN-ReLU-1x1 d -> d/2)        = 2 d + d x d/2
        transition   (BN-ReLU-1x1 w -> w', w = C/2 + d/2 after the concatenation,
                      w' = (C + 32 L) / 2, or C + 32 L in the last stage) = 2 w + w x w'
    Stage 1: C = 64, L = 6:   dense 130 (192 + 480) + 222,720 = 310,080;
             d = 224: 448 + 224 x 112 = 25,536;  w = 144, w' = 128: 288 + 18,432 = 18,720
    Stage 2: C = 128, L = 12: dense 130 (768 + 2,112) + 445,440 = 819,840;
             d = 448: 896 + 448 x 224 = 101,248; w = 288, w' = 256: 576 + 73,728 = 74,304
    Stage 3: C = 256, L = 48: dense 130 (6,144 + 36,096) + 1,781,760 = 7,272,960;
             d = 1,664: 3,328 + 1,664 x 832 = 1,387,776; w = 960, w' = 896: 1,920 + 860,160
             = 862,080
    Stage 4: C = 896, L = 32: dense 130 (14,336 + 15,872) + 1,187,840 = 5,114,880;
             d = 1,472: 2,944 + 1,472 x 736 = 1,086,336; w = 1,184, w' = 1,920: 2,368
             + 2,273,280 = 2,275,648
    Final BN 2 x 1,920 = 3,840; classifier 1,920 x 1,000 + 1,000 = 1,921,000.
    """
    stem = 7 * 7 * 3 * 64 + 2 * 64
    assert stem == 9_536

    def dense_layer(c):
        return 2 * c + c * 128 + 2 * 128 + 3 * 3 * 128 * 32

    dense, transitions = 0, 0
    base = 64
    for i, layers_ in enumerate((6, 12, 48, 32)):
        dense += sum(dense_layer(base // 2 + 32 * j) for j in range(layers_))
        d = base // 2 + 32 * layers_
        w = base // 2 + d // 2
        out = base + 32 * layers_ if i == 3 else (base + 32 * layers_) // 2
        transitions += 2 * d + d * (d // 2) + 2 * w + w * out
        base = out
    assert base == 1_920  # DenseNet-201's final width
    assert dense == 310_080 + 819_840 + 7_272_960 + 5_114_880 == 13_517_760
    assert transitions == (25_536 + 18_720) + (101_248 + 74_304) + (1_387_776 + 862_080) \
        + (1_086_336 + 2_275_648) == 5_831_648
    head = 2 * 1_920 + 1_920 * 1_000 + 1_000
    total = stem + dense + transitions + head
    assert total == 21_283_784

    with shapes_only():
        model = keras_cnns.create_model("cspdensenet201")
    assert _trainable(model) == total
    assert keras_cnns.model_info("cspdensenet201").reference_params == total
    # DenseNet-201's stage widths and strides
    assert model.get_layer("stages_0_transition_conv").output.shape[-1] == 128
    assert model.get_layer("stages_2_transition_conv").output.shape[1:] == (14, 14, 896)
    assert model.get_layer("stages_2_pool").output.shape[1:] == (7, 7, 896)
    assert model.get_layer("final_act").output.shape[1:] == (7, 7, 1920)


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------

def _torch_max_pool(x):
    """NumPy ``torch.nn.MaxPool2d(3, 2, padding=1)``: -inf padding, floor output size."""
    n, h, w, c = x.shape
    padded = np.full((n, h + 2, w + 2, c), -np.inf, x.dtype)
    padded[:, 1:-1, 1:-1] = x
    oh, ow = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    out = np.empty((n, oh, ow, c), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("h, w", [(8, 8), (7, 9), (10, 5), (2, 3)])
def test_stem_max_pool_is_pytorchs_for_negative_maps(h, w):
    # after a LeakyReLU the map can be negative everywhere near a border: zero padding would win
    x = -np.abs(np.random.default_rng(h * w).normal(size=(2, h, w, 3))).astype("float32") - 0.1
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, cspnet._max_pool_3x3_s2(inp, "pool"))
    np.testing.assert_array_equal(np.asarray(model(x)), _torch_max_pool(x))


# ----------------------------------------------------------------------------------------------
# Structure and knobs
# ----------------------------------------------------------------------------------------------

def test_timm_stage_plans():
    # timm's CrossStage widths (exp = out x expand_ratio, halves, block_out = out x block_ratio,
    # mid = block_out x bottle_ratio), read off its cspnet.py model_cfgs
    stem, plans = stage_plan("cspresnet50")
    assert stem == 64
    assert [(p.down, p.exp, p.block_out, p.mid, p.stride) for p in plans] == [
        (0, 256, 128, 64, 1), (128, 512, 256, 128, 2), (256, 1024, 512, 256, 2),
        (512, 2048, 1024, 512, 2)]
    _, plans = stage_plan("cspresnext50")
    assert [(p.down, p.exp, p.block_out, p.mid, p.groups) for p in plans] == [
        (0, 256, 128, 128, 32), (256, 512, 256, 256, 32), (512, 1024, 512, 512, 32),
        (1024, 2048, 1024, 1024, 32)]
    stem, plans = stage_plan("cspdarknet53")
    assert stem == 32 and [(p.down, p.exp, p.block_out, p.mid) for p in plans] == [
        (64, 128, 64, 32), (128, 128, 64, 64), (256, 256, 128, 128), (512, 512, 256, 256),
        (1024, 1024, 512, 512)]
    _, plans = stage_plan("darknet53")
    assert [(p.depth, p.down, p.exp, p.block_out, p.mid) for p in plans] == [
        (1, 64, 0, 64, 32), (2, 128, 0, 128, 64), (8, 256, 0, 256, 128), (8, 512, 0, 512, 256),
        (4, 1024, 0, 1024, 512)]


def test_cspresnext_grouped_convolutions_run_on_the_custom_op():
    from keras_cnns.layers import GroupedDepthwiseConv2D

    model = CSPNet("cspresnext50", widths=(64, 128, 256, 512), depths=(1, 1, 1, 1),
                   input_shape=(32, 32, 3), classes=10)
    grouped = {layer.name for layer in model.layers if isinstance(layer, GroupedDepthwiseConv2D)}
    assert grouped == {"stages_0_blocks_0_conv2_conv", "stages_1_blocks_0_conv2_conv",
                       "stages_2_blocks_0_conv2_conv", "stages_3_blocks_0_conv2_conv",
                       "stages_1_conv_down_conv", "stages_2_conv_down_conv",
                       "stages_3_conv_down_conv"}
    assert all(model.get_layer(n).groups == 32 for n in grouped)
    # LeakyReLU(0.01) everywhere, CSPResNe(X)t's conv_exp linear
    acts = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert acts and all(layer.negative_slope == pytest.approx(0.01) for layer in acts)
    assert "stages_0_conv_exp_act" not in {layer.name for layer in model.layers}


def test_stochastic_depth_wraps_every_residual_block():
    model = CSPNet("cspdarknet53", widths=(16, 32, 64, 128, 256), depths=(1, 2, 1, 1, 2),
                   stochastic_depth=0.5, input_shape=(32, 32, 3), classes=10)
    sd = [layer for layer in model.layers if isinstance(layer, StochasticDepth)]
    assert len(sd) == 7
    # linear rule over all 7 blocks: p_l = 1 - l / 7 * 0.5
    np.testing.assert_allclose([layer.survival_prob for layer in sd],
                               [1 - l / 7 * 0.5 for l in range(1, 8)], rtol=1e-6)
    weighted = {layer.name for layer in model._flatten_layers(include_self=False)
                if not isinstance(layer, (keras.Model, StochasticDepth)) and layer.weights}
    assert {k for k, _ in timm_names(model)} == weighted  # the map enters the branches
    assert "stages_4_blocks_1_conv2_bn" in weighted


def test_custom_widths_and_depths_build_the_timm_layout():
    model = Darknet(widths=(8, 16, 32, 64, 128), input_shape=(32, 32, 3), classes=5)
    assert model.name == "darknet53"
    assert model.get_layer("stages_4_blocks_3_conv1_conv").kernel.shape == (1, 1, 128, 64)
    y = np.asarray(model(np.zeros((1, 32, 32, 3), "float32")))
    assert y.shape == (1, 5)
    model = CSPNet("cspresnet50", widths=(16, 32, 64, 128), depths=(1, 2, 1, 1),
                   include_top=False, input_shape=(64, 64, 3))
    assert model.output_shape == (None, 2, 2, 128)
    assert model.get_layer("stages_1_blocks_1_conv2_conv").kernel.shape == (3, 3, 16, 16)


@pytest.mark.parametrize("builder, kwargs, arg", [
    (CSPNet, dict(variant="cspresnet101"), "variant"),
    (CSPNet, dict(variant="darknet53"), "variant"),           # the baseline is Darknet()
    (CSPNet, dict(widths=(128, 256, 512)), "widths"),           # one per stage
    (CSPNet, dict(widths=(128, -256, 512, 1024)), "widths"),
    (CSPNet, dict(widths=(128, 256, 512, 1024.0)), "widths"),
    (CSPNet, dict(widths=(128, 256, 512, 1)), "widths"),        # a zero inner width
    (CSPNet, dict(variant="cspresnext50", widths=(256, 512, 1000, 2048)), "widths"),  # groups
    (CSPNet, dict(variant="cspdarknet53", widths=(64, 128, 255, 512, 1024)), "widths"),  # odd
    (CSPNet, dict(depths=(3, 0, 5, 2)), "depths"),
    (CSPNet, dict(depths="3352"), "depths"),
    (CSPNet, dict(dropout=1.5), "dropout"),
    (CSPNet, dict(stochastic_depth=0.0), "stochastic_depth"),
    (CSPNet, dict(stochastic_depth=0.5, stochastic_depth_rule="cubic"), "stochastic_depth_rule"),
    (Darknet, dict(depth=21), "depth"),
    (Darknet, dict(widths=(64, 128, 256, 512, -1)), "widths"),
    (CSPDenseNet, dict(depth=100), "depth"),
    (CSPDenseNet, dict(growth_rate=-32), "growth_rate"),
    (CSPDenseNet, dict(growth_rate=31), "growth_rate"),        # an odd base width to split
    (CSPDenseNet, dict(bn_size=0), "bn_size"),
    (CSPDenseNet, dict(dropout=-0.1), "dropout"),
])
def test_bad_knobs_name_the_argument(builder, kwargs, arg):
    with pytest.raises(ValueError) as err:
        builder(**kwargs)
    message = str(err.value)
    assert f"`{arg}`" in message and f"Received: {arg}=" in message, message


def test_cspdensenet_refuses_stochastic_depth_and_has_no_timm_names():
    with pytest.raises(ValueError, match="stochastic_depth"):
        CSPDenseNet(stochastic_depth=0.5)
    model = CSPDenseNet(depth=121, growth_rate=8, input_shape=(32, 32, 3), classes=10)
    with pytest.raises(ValueError, match=r"`model` must be a timm-layout"):
        timm_names(model)
