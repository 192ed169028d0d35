"""HyperNetworks (Ha, Dai & Le, ICLR 2017, arXiv:1609.09106): the Hyper Residual Networks
``hyper_wrn_40_1`` / ``hyper_wrn_40_2`` and the static-hypernetwork layers.

The parameter counts are counted by hand from the architecture (the paper's Sec. 3.1 generator,
its Appendix A.2 tiling, the WRN layout of szagoruyko/wide-residual-networks); the generated
kernel is checked against a NumPy transcription of the paper's equations, written index by index,
and the convolution against ``tf.nn.conv2d`` with that kernel.
"""

import numpy as np
import pytest
import keras
import tensorflow as tf

import keras_cnns
from keras_cnns.layers import HyperConv2D, HyperKernelGenerator, hyper_kernel
from keras_cnns.models._builder import shapes_only
from keras_cnns.models.hypernet import HyperWideResNet


# --------------------------------------------------------------------------- (a) hand counts

def _hand_count(k, depth=40, tile=16, z_dim=64, d=64, f=3, classes=10):
    """Trainable parameters of Hyper-WRN-depth-k, from the architecture alone:

    * generator (Ha et al. Sec. 3.1): ``N_in d (N_z + 1)`` (the W_i, B_i) ``+ f N_out f (d + 1)``
      (W_out, B_out);
    * embeddings: ``N_z`` per 16x16 tile, ``(C_in / 16) (C_out / 16)`` tiles per generated 3x3;
    * stem 3x3 (3 -> 16, no bias), BatchNorm gamma + beta (each block's pre-activation BN on its
      input, the BN between its convolutions, the final BN), 1x1 projections (no bias) where the
      width changes, the FC with its bias.
    """
    n = (depth - 4) // 6
    generator = tile * d * (z_dim + 1) + f * tile * f * (d + 1)
    tiles = bn = proj = 0
    c_in = 16
    for width in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            tiles += (c_in // tile) * (width // tile) + (width // tile) ** 2
            bn += 2 * (c_in + width)
            proj += c_in * width if c_in != width else 0
            c_in = width
    bn += 2 * c_in
    stem = 3 * 3 * 3 * 16
    fc = c_in * classes + classes
    return generator + tiles * z_dim + stem + bn + proj + fc, tiles


def test_hand_counts():
    # 40-1: widths 16/32/64, 6 blocks per stage. Tiles: stage 1: 12 x 1; stage 2: (1x2) + 11 x
    # (2x2) = 46; stage 3: (2x4) + 11 x (4x4) = 184; 242 tiles x 64 = 15,488.
    # BN: 6 x 2(16+16) + [2(16+32) + 5 x 2(32+32)] + [2(32+64) + 5 x 2(64+64)] + 2 x 64 = 2,720.
    # Projections 16x32 + 32x64 = 2,560; FC 64 x 10 + 10 = 650; stem 432.
    generator = 16 * 64 * 65 + 3 * 16 * 3 * 65
    assert generator == 66_560 + 9_360 == 75_920
    assert _hand_count(1) == (75_920 + 15_488 + 432 + 2_720 + 2_560 + 650, 242)
    assert _hand_count(1)[0] == 97_770
    # 40-2: widths 32/64/128. Tiles: stage 1: (1x2) + 11 x 4 = 46; stage 2: 8 + 11 x 16 = 184;
    # stage 3: (4x8) + 11 x 64 = 736; 966 tiles x 64 = 61,824. BN 5,408; projections
    # 16x32 + 32x64 + 64x128 = 10,752; FC 128 x 10 + 10 = 1,290.
    assert _hand_count(2) == (75_920 + 61_824 + 432 + 5_408 + 10_752 + 1_290, 966)
    assert _hand_count(2)[0] == 155_626


@pytest.mark.parametrize("name, k", [("hyper_wrn_40_1", 1), ("hyper_wrn_40_2", 2)])
def test_models_have_the_hand_count(name, k):
    with shapes_only():
        model = keras_cnns.create_model(name)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == _hand_count(k)[0] == keras_cnns.model_info(name).reference_params
    embeddings = [w for w in model.trainable_weights if w.path.endswith("/embeddings")]
    assert len(embeddings) == 36  # every 3x3 of the 18 blocks
    assert sum(int(np.prod(w.shape[:2])) for w in embeddings) == _hand_count(k)[1]
    generators = [layer for layer in model.layers if isinstance(layer, HyperKernelGenerator)]
    assert len(generators) == 1 and sum(int(np.prod(w.shape)) for w in generators[0].weights) \
        == 75_920


# --------------------------------------------------------------------------- (b) gradients

def test_gradients_reach_embeddings_and_generator_and_no_3x3_kernel_is_a_variable():
    model = HyperWideResNet(depth=10, k=2, input_shape=(8, 8, 3), classes=3,
                            classifier_activation=None)
    generator = model.get_layer("hypernetwork")
    convs = [layer for layer in model.layers if isinstance(layer, HyperConv2D)]
    assert len(convs) == 6
    # the trainable variables are exactly: the generator's four, one embedding per generated
    # 3x3, and the ordinary layers' (stem, projections, BatchNorm, FC)
    ordinary = [w for layer in model.layers
                if not isinstance(layer, (HyperConv2D, HyperKernelGenerator))
                for w in layer.trainable_weights]
    expected = list(generator.trainable_weights) + [c.embeddings for c in convs] + ordinary
    assert sorted(w.path for w in model.trainable_weights) == sorted(w.path for w in expected)
    assert len(model.trainable_weights) == len(expected)
    assert {w.path.split("/")[-1] for w in generator.trainable_weights} == \
        {"w_in", "b_in", "w_out", "b_out"}
    assert not [w.path for w in ordinary if w.path.endswith(("_1_conv/kernel", "_2_conv/kernel"))]
    # no variable anywhere is a 3x3 kernel of a block (only the 3-channel stem is a 3x3 variable)
    three_by_three = [w.path for w in model.weights
                      if len(w.shape) == 4 and tuple(w.shape[:2]) == (3, 3)]
    assert three_by_three == ["conv1_conv/kernel"]

    x = tf.constant(np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32"))
    target = tf.constant(np.random.default_rng(1).normal(size=(4, 3)).astype("float32"))
    watched = list(generator.trainable_weights) + [c.embeddings for c in convs]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) * target)
    grads = tape.gradient(loss, watched)
    for w, g in zip(watched, grads):
        assert g is not None, w.path
        g = np.asarray(g)
        assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0, w.path


# --------------------------------------------------------------------------- (c) the formula

def _paper_kernel(z, w_in, b_in, w_out, b_out):
    """Ha et al. 2017, Sec. 3.1, written index by index: for tile (p, q) and input channel i,
    ``a_i = W_i z + B_i`` (W_i: d x N_z, here ``w_in[:, i, :].T``), ``K_i = <W_out, a_i> + B_out``
    (the sum over the d axis), ``K_i`` the f x f x N_out slice of input channel ``p N_in + i``
    and outputs ``q N_out ..``."""
    rows, cols, _ = z.shape
    _, n_in, d = w_in.shape
    _, f1, f2, n_out = w_out.shape
    b_in = b_in.reshape(n_in, d)                 # B_1 .. B_N_in
    b_out = b_out.reshape(f1, f2, n_out)         # B_out
    kernel = np.zeros((f1, f2, rows * n_in, cols * n_out), dtype=np.float64)
    for p in range(rows):
        for q in range(cols):
            for i in range(n_in):
                w_i = w_in[:, i, :].T.astype(np.float64)            # d x N_z
                a_i = w_i @ z[p, q].astype(np.float64) + b_in[i]    # d
                k_i = np.zeros((f1, f2, n_out))
                for j in range(d):
                    k_i += w_out[j] * a_i[j]
                k_i += b_out
                kernel[:, :, p * n_in + i, q * n_out:(q + 1) * n_out] = k_i
    return kernel


def _randomize(layer, rng):
    for w in layer.weights:
        w.assign(rng.normal(size=tuple(w.shape)).astype("float32") * 0.5)


@pytest.mark.parametrize("tile, z_dim, hidden, c_in, filters, stride, padding", [
    (16, 64, None, 32, 64, 1, "same"),   # the paper's setting: a 32 -> 64 layer, 2 x 4 tiles
    (4, 5, 3, 8, 12, 2, "valid"),        # small odd sizes, d != N_z, stride 2
])
def test_generated_kernel_and_convolution_match_numpy(tile, z_dim, hidden, c_in, filters,
                                                      stride, padding):
    rng = np.random.default_rng(7)
    x = keras.Input((9, 9, c_in))
    generator = HyperKernelGenerator(z_dim=z_dim, hidden_dim=hidden, in_size=tile,
                                     out_size=tile, kernel_size=3, name="gen")
    params = generator(x)
    conv = HyperConv2D(filters, strides=stride, padding=padding, name="hconv")
    model = keras.Model(x, conv([x, *params]))
    _randomize(generator, rng)
    _randomize(conv, rng)
    assert tuple(conv.embeddings.shape) == (c_in // tile, filters // tile, z_dim)

    numpy_kernel = _paper_kernel(*(np.asarray(w) for w in (conv.embeddings, generator.w_in,
                                                           generator.b_in, generator.w_out,
                                                           generator.b_out)))
    assert numpy_kernel.shape == (3, 3, c_in, filters)
    got = np.asarray(generator.generate(conv.embeddings))
    np.testing.assert_allclose(got, numpy_kernel, rtol=1e-4, atol=1e-4 * np.abs(numpy_kernel).max())
    np.testing.assert_allclose(np.asarray(hyper_kernel(conv.embeddings, *generator.weights)),
                               got, rtol=0, atol=0)

    images = rng.normal(size=(2, 9, 9, c_in)).astype("float32")
    expected = tf.nn.conv2d(images, numpy_kernel.astype("float32"), strides=stride,
                            padding=padding.upper())
    out = np.asarray(model(images))
    np.testing.assert_allclose(out, np.asarray(expected), rtol=1e-4,
                               atol=1e-4 * float(np.abs(expected).max()))


def test_one_generator_survives_from_config_and_keras_files(tmp_path):
    x = keras.Input((6, 6, 16))
    generator = HyperKernelGenerator(z_dim=8, in_size=16, out_size=16, name="gen")
    params = generator(x)
    y = HyperConv2D(32, name="a")([x, *params])
    y = HyperConv2D(16, name="b")([y, *params])
    model = keras.Model(x, y)
    _randomize(generator, np.random.default_rng(3))
    images = np.random.default_rng(4).normal(size=(2, 6, 6, 16)).astype("float32")
    expected = np.asarray(model(images))

    def check(other):
        gens = [l for l in other.layers if isinstance(l, HyperKernelGenerator)]
        assert len(gens) == 1
        assert len(other.weights) == len(model.weights) == 4 + 2
        np.testing.assert_allclose(np.asarray(other(images)), expected, rtol=1e-5, atol=1e-5)

    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    check(clone)
    path = tmp_path / "hyper.keras"
    model.save(path)
    check(keras.saving.load_model(path))


# --------------------------------------------------------------------------- (d) bad knobs

@pytest.mark.parametrize("kwargs, arg", [
    ({"z_dim": 0}, "z_dim"),
    ({"z_dim": -3}, "z_dim"),
    ({"z_dim": 6.5}, "z_dim"),
    ({"tile_size": 32}, "tile_size"),    # the 16-channel stem is not a multiple of 32
    ({"tile_size": 0}, "tile_size"),
    ({"tile_size": 12}, "tile_size"),
    ({"depth": 38}, "depth"),            # not 6n + 4
    ({"depth": 4}, "depth"),
    ({"depth": True}, "depth"),
    ({"k": 0}, "k"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_knobs_name_the_argument(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`.*Received: {arg}="):
        HyperWideResNet(**kwargs)


@pytest.mark.parametrize("make, arg", [
    (lambda: HyperKernelGenerator(z_dim=0), "z_dim"),
    (lambda: HyperKernelGenerator(in_size=0), "in_size"),
    (lambda: HyperKernelGenerator(kernel_size=(3, 0)), "kernel_size"),
    (lambda: HyperConv2D(0), "filters"),
    (lambda: HyperConv2D(16, padding="causal"), "padding"),
])
def test_bad_layer_arguments_name_the_argument(make, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        make()


@pytest.mark.parametrize("channels, filters, arg", [(24, 16, "inputs"), (16, 24, "filters")])
def test_channels_not_a_multiple_of_the_tile(channels, filters, arg):
    x = keras.Input((8, 8, channels))
    params = HyperKernelGenerator(z_dim=8, in_size=16, out_size=16)(x)
    with pytest.raises(ValueError, match=f"`{arg}` must .*multiple of the generator's"):
        HyperConv2D(filters)([x, *params])


def test_tfmot_path_refuses_the_hyper_layers_by_name():
    from keras_cnns.export._tfmot import graph_spec

    model = HyperWideResNet(depth=10, k=1, input_shape=(8, 8, 3))
    with pytest.raises(ValueError, match="HyperKernelGenerator|HyperConv2D"):
        graph_spec(model)


def test_default_initialisation_generates_he_scaled_kernels():
    # embeddings of variance N_in / C_in, w_in of variance 1 / N_z, w_out of variance
    # 2 / (d f^2 N_in), zero biases: kernel variance 2 / (f^2 C_in) (He et al. 2015) at any width
    # (over 80 unseeded draws the ratio stayed within 0.82 .. 1.25)
    keras.utils.set_random_seed(0)
    for channels in (16, 64):
        x = keras.Input((4, 4, channels))
        generator = HyperKernelGenerator(z_dim=64, in_size=16, out_size=16)
        conv = HyperConv2D(64)
        conv([x, *generator(x)])
        kernel = np.asarray(generator.generate(conv.embeddings))
        assert kernel.shape == (3, 3, channels, 64)
        assert abs(kernel.var() / (2.0 / (9 * channels)) - 1.0) < 0.35


@pytest.mark.parametrize("k, tiles", [(1, 242), (2, 966)])
def test_profiler_counts_the_wrn_convolutions_plus_kernel_generation(k, tiles):
    # The convolutions are WRN-40-k's (the profiler's count of the plain network, itself checked
    # against the reference figures) and each 16x16 tile costs z W_in (64 x 16*64) and 16 slices
    # of a W_out (64 x 3*3*16) once per forward pass: 65,536 + 147,456 = 212,992 MACs.
    with shapes_only():
        hyper = keras_cnns.create_model(f"hyper_wrn_40_{k}")
        plain = keras_cnns.create_model(f"wrn_40_{k}")
    got = keras_cnns.profile(hyper)
    assert got.unknown_mac_layers == []
    assert got.total_macs == keras_cnns.profile(plain).total_macs + tiles * (64 * 16 * 64
                                                                             + 16 * 64 * 9 * 16)
