"""Tests of the compiled ``KerasCnns>GroupedDepthwiseConv2D`` op and its gradients.

References: an independent naive NumPy implementation (forward and both gradients, float64)
below, and the stock-TF reference ``reference_grouped_depthwise_conv2d`` (the export lowering and
the no-compiler fallback), which is itself checked against NumPy here. The reference uses only
kernels that TensorFlow has with oneDNN on and off (CI runs this file under both settings), so
nothing here depends on which CPU kernels a machine has.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from keras_cnns import ops
from keras_cnns.ops import _loader
from keras_cnns.ops._reference import reference_grouped_depthwise_conv2d


# ------------------------------------------------------------------------------------------------
# Naive NumPy reference (float64).

def np_shuffle(x, g):
    n, h, w, c = x.shape
    return x.reshape(n, h, w, g, c // g).transpose(0, 1, 2, 4, 3).reshape(n, h, w, c)


def np_unshuffle(x, g):
    n, h, w, c = x.shape
    return x.reshape(n, h, w, c // g, g).transpose(0, 1, 2, 4, 3).reshape(n, h, w, c)


def _geometry(size, k, s, d, padding):
    eff = (k - 1) * d + 1
    if padding == "SAME":
        out = -(-size // s)
        total = max((out - 1) * s + eff - size, 0)
        return out, total // 2, total - total // 2
    out = (size - eff) // s + 1 if size >= eff else 0
    return out, 0, 0


def np_conv(x, f, strides, padding, dilations, groups, shuffle_groups, dy=None):
    """Forward output, and (dx, df) for output gradient ``dy`` when given."""
    x, f = x.astype(np.float64), f.astype(np.float64)
    n, h, w, c = x.shape
    kh, kw, cpg, cout = f.shape
    opg = cout // groups
    (sh, sw), (dh, dw) = strides, dilations
    oh, pt, pb = _geometry(h, kh, sh, dh, padding)
    ow, pl, pr = _geometry(w, kw, sw, dw, padding)
    xp = np.zeros((n, h + pt + pb, w + pl + pr, c))
    xp[:, pt:pt + h, pl:pl + w] = np_shuffle(x, shuffle_groups)
    y = np.zeros((n, oh, ow, cout))
    dxp, df = np.zeros_like(xp), np.zeros_like(f)
    for i, j in itertools.product(range(kh), range(kw)):
        rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
        cols = slice(j * dw, j * dw + (ow - 1) * sw + 1, sw)
        if oh == 0 or ow == 0:
            continue
        patch = xp[:, rows, cols, :]
        for g in range(groups):
            ci, co = slice(g * cpg, (g + 1) * cpg), slice(g * opg, (g + 1) * opg)
            y[..., co] += patch[..., ci] @ f[i, j, :, co]
            if dy is not None:
                df[i, j, :, co] += np.einsum("nhwc,nhwo->co", patch[..., ci], dy[..., co])
                dxp[:, rows, cols, ci] += dy[..., co] @ f[i, j, :, co].T
    if dy is None:
        return y
    dx = np_unshuffle(dxp[:, pt:pt + h, pl:pl + w], shuffle_groups)
    return y, dx, df


# ------------------------------------------------------------------------------------------------
# Configurations.

def _make_configs():
    """Hand-picked edge cases plus seeded random ones covering the op's argument grid (strides,
    padding, dilation, groups, channel multiplier, shuffle groups)."""
    base = [
        # (n, h, w, c, k, strides, padding, dilations, groups, mult, shuffle)
        (2, 9, 7, 8, 3, (1, 1), "SAME", (1, 1), 8, 1, 1),     # depthwise
        (2, 9, 7, 8, 3, (1, 1), "SAME", (1, 1), 8, 1, 2),     # depthwise + shuffle
        (2, 9, 7, 8, 3, (2, 2), "SAME", (1, 1), 8, 1, 4),     # strided depthwise + shuffle
        (2, 8, 8, 6, 3, (1, 1), "VALID", (1, 1), 6, 2, 3),    # multiplier 2
        (1, 10, 9, 6, 5, (2, 1), "SAME", (1, 1), 6, 3, 2),    # 5x5, non-square stride, mult 3
        (2, 11, 10, 12, 3, (1, 1), "SAME", (2, 2), 12, 1, 3),  # dilation
        (1, 11, 12, 8, 3, (2, 2), "SAME", (2, 2), 8, 1, 2),   # stride AND dilation
        (1, 11, 12, 8, 3, (2, 2), "VALID", (2, 1), 4, 1, 1),  # stride AND dilation, grouped
        (2, 8, 8, 12, 1, (1, 1), "SAME", (1, 1), 3, 1, 3),    # ShuffleNet grouped 1x1
        (2, 8, 8, 16, 1, (1, 1), "VALID", (1, 1), 8, 1, 1),   # grouped 1x1, 2 ch / group
        (2, 7, 7, 12, 1, (2, 2), "SAME", (1, 1), 4, 2, 2),    # strided grouped 1x1
        (2, 9, 9, 8, 3, (2, 2), "SAME", (1, 1), 2, 1, 4),     # ResNeXt-like grouped 3x3
        (2, 6, 7, 6, 3, (1, 1), "SAME", (1, 1), 1, 2, 1),     # plain convolution
        (1, 6, 6, 4, 3, (1, 1), "SAME", (1, 1), 1, 1, 2),     # plain + shuffle
        (2, 5, 5, 20, 3, (1, 1), "SAME", (1, 1), 20, 1, 5),   # channels not a vector multiple
        (1, 4, 4, 40, 3, (1, 1), "SAME", (1, 1), 40, 1, 8),   # C=40 (2.5 AVX-512 vectors)
        (2, 3, 4, 8, 5, (1, 1), "SAME", (1, 1), 8, 1, 1),     # kernel larger than the input
        (1, 4, 5, 6, 5, (1, 1), "VALID", (1, 1), 6, 1, 1),    # VALID with empty output
    ]
    rng = np.random.default_rng(20240607)
    random = []
    while len(random) < 14:
        c = int(rng.choice([4, 6, 8, 12, 16, 24]))
        divisors = [d for d in range(1, c + 1) if c % d == 0]
        groups = int(rng.choice(divisors))
        shuffle = int(rng.choice([1] + [d for d in divisors if 1 < d < c]))
        k = int(rng.choice([1, 3, 5]))
        s = int(rng.choice([1, 2]))
        d = int(rng.choice([1, 1, 2])) if k > 1 else 1
        random.append((int(rng.integers(1, 3)), int(rng.integers(4, 11)), int(rng.integers(4, 11)),
                       c, k, (s, s), str(rng.choice(["SAME", "VALID"])), (d, d), groups,
                       int(rng.choice([1, 2])), shuffle))
    return base + random


CONFIGS = _make_configs()


def _ids(cfg):
    n, h, w, c, k, s, pad, d, g, m, sg = cfg
    return f"n{n}_{h}x{w}x{c}_k{k}_s{s[0]}{s[1]}_{pad}_d{d[0]}{d[1]}_g{g}_m{m}_sh{sg}"


def _tensors(cfg, dtype=np.float32, seed=0):
    n, h, w, c, k, _, _, _, groups, mult, _ = cfg
    rng = np.random.default_rng(seed)
    cout = (c // groups) * groups * mult if groups != c else c * mult
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    f = (rng.standard_normal((k, k, c // groups, cout)) / np.sqrt(k * k * c // groups)).astype(dtype)
    return x, f


def _kwargs(cfg):
    _, _, _, _, _, strides, padding, dilations, groups, _, shuffle = cfg
    return dict(strides=strides, padding=padding, dilations=dilations, groups=groups,
                shuffle_groups=shuffle)


def _nonempty(cfg):
    """Whether the output is non-empty: an empty output (VALID, kernel larger than the input) has
    no gradient path through the reference's ``tf.zeros`` (checked against NumPy only)."""
    _, h, w, _, k, s, pad, d, _, _, _ = cfg
    return _geometry(h, k, s[0], d[0], pad)[0] > 0 and _geometry(w, k, s[1], d[1], pad)[0] > 0


# ------------------------------------------------------------------------------------------------
# Forward and gradients.

def test_op_is_compiled_and_used(op_lib):
    assert ops.custom_op_available()
    x, f = _tensors(CONFIGS[1])

    @tf.function
    def fn(x, f):
        return ops.grouped_depthwise_conv2d(x, f, **_kwargs(CONFIGS[1]))

    graph = fn.get_concrete_function(tf.constant(x), tf.constant(f)).graph
    assert "KerasCnns>GroupedDepthwiseConv2D" in {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_forward_matches_numpy_and_tf(op_lib, cfg):
    x, f = _tensors(cfg)
    y = ops.grouped_depthwise_conv2d(x, f, **_kwargs(cfg)).numpy()
    expected = np_conv(x, f, cfg[5], cfg[6], cfg[7], cfg[8], cfg[10])
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    y_tf = reference_grouped_depthwise_conv2d(x, f, **_kwargs(cfg)).numpy()
    assert y_tf.shape == expected.shape
    np.testing.assert_allclose(y_tf, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_gradients_match_numpy_and_tf(op_lib, cfg):
    x, f = _tensors(cfg, seed=1)
    kwargs = _kwargs(cfg)
    y_shape = np_conv(x, f, cfg[5], cfg[6], cfg[7], cfg[8], cfg[10]).shape
    dy = np.random.default_rng(2).standard_normal(y_shape).astype(np.float32)
    xt, ft = tf.constant(x), tf.constant(f)
    with tf.GradientTape() as tape:
        tape.watch([xt, ft])
        y = ops.grouped_depthwise_conv2d(xt, ft, **kwargs)
    dx, df = tape.gradient(y, [xt, ft], output_gradients=tf.constant(dy))
    _, dx_np, df_np = np_conv(x, f, cfg[5], cfg[6], cfg[7], cfg[8], cfg[10], dy=dy)
    np.testing.assert_allclose(dx.numpy(), dx_np, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(df.numpy(), df_np, rtol=1e-4, atol=2e-4)
    if _nonempty(cfg):
        # The stock-TF reference (export lowering, fallback for training without a compiler)
        # against NumPy too: it must train every configuration on every machine.
        with tf.GradientTape() as tape:
            tape.watch([xt, ft])
            y_ref = reference_grouped_depthwise_conv2d(xt, ft, **kwargs)
        dx_tf, df_tf = tape.gradient(y_ref, [xt, ft], output_gradients=tf.constant(dy))
        np.testing.assert_allclose(dx_tf.numpy(), dx_np, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(df_tf.numpy(), df_np, rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("cfg", [CONFIGS[i] for i in (2, 3, 6, 8, 11, 12)], ids=_ids)
def test_compute_gradient_float64(op_lib, cfg):
    x, f = _tensors(cfg, dtype=np.float64, seed=3)
    kwargs = _kwargs(cfg)

    def fn(x, f):
        return ops.grouped_depthwise_conv2d(x, f, **kwargs)

    theoretical, numerical = tf.test.compute_gradient(fn, [tf.constant(x), tf.constant(f)])
    for t, nmr in zip(theoretical, numerical):
        assert t.shape == nmr.shape and t.size > 0
        np.testing.assert_allclose(t, nmr, rtol=1e-6, atol=1e-6)


def test_second_order_gradients_match_reference(op_lib):
    cfg = CONFIGS[2]
    x, f = _tensors(cfg, dtype=np.float64, seed=4)
    kwargs = _kwargs(cfg)

    def second(conv):
        xt, ft = tf.constant(x), tf.constant(f)
        with tf.GradientTape(persistent=True) as outer:
            outer.watch([xt, ft])
            with tf.GradientTape() as inner:
                inner.watch([xt, ft])
                y = conv(xt, ft, **kwargs)
                loss = tf.reduce_sum(tf.sin(y))
            dx, df = inner.gradient(loss, [xt, ft])
            total = tf.reduce_sum(dx * dx) + tf.reduce_sum(df * tf.cos(df))
        return outer.gradient(total, [xt, ft])

    ours = second(ops.grouped_depthwise_conv2d)
    ref = second(reference_grouped_depthwise_conv2d)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-8, atol=1e-8)


def test_float16_runs_in_float32_and_casts_back(op_lib):
    x, f = _tensors(CONFIGS[1])
    y = ops.grouped_depthwise_conv2d(x.astype(np.float16), f.astype(np.float16),
                                     **_kwargs(CONFIGS[1]))
    assert y.dtype == tf.float16
    expected = np_conv(x.astype(np.float16), f.astype(np.float16), *[CONFIGS[1][i] for i in (5, 6, 7, 8, 10)])
    np.testing.assert_allclose(y.numpy().astype(np.float64), expected, rtol=1e-2, atol=1e-2)


def test_fallback_path_equals_compiled_path(op_lib):
    for cfg in CONFIGS[:14]:
        x, f = _tensors(cfg, seed=5)
        compiled = ops.grouped_depthwise_conv2d(x, f, **_kwargs(cfg))
        with ops.stock_ops_only():
            fallback = ops.grouped_depthwise_conv2d(x, f, **_kwargs(cfg))
        np.testing.assert_allclose(compiled.numpy(), fallback.numpy(), rtol=1e-4, atol=1e-4)


def test_stock_ops_only_traces_no_custom_op(op_lib):
    x, f = _tensors(CONFIGS[2])

    @tf.function
    def fn(x, f):
        return ops.grouped_depthwise_conv2d(x, f, **_kwargs(CONFIGS[2]))

    with ops.stock_ops_only():
        graph = fn.get_concrete_function(tf.constant(x), tf.constant(f)).graph
    types = {op.type for op in graph.get_operations()}
    assert not any(t.startswith("KerasCnns") for t in types), types
    assert "DepthwiseConv2dNative" in types


def _portable_conv_nodes(graph):
    """The convolution nodes of a graph that TF's Eigen CPU kernels (oneDNN off) cannot run
    forward and backward: grouped ``Conv2D``, dilated ``Conv2D``, depthwise with unequal strides
    or with strides and dilation together. Returns the offending ones."""
    bad = []
    for op in graph.get_operations():
        if op.type not in ("Conv2D", "DepthwiseConv2dNative"):
            continue
        strides = list(op.get_attr("strides"))[1:3]
        dilations = list(op.get_attr("dilations"))[1:3]
        if op.type == "Conv2D":
            if op.inputs[0].shape[-1] != op.inputs[1].shape[2] or dilations != [1, 1]:
                bad.append((op.name, op.inputs[0].shape, op.inputs[1].shape, dilations))
        elif strides[0] != strides[1] or (strides != [1, 1] and dilations != [1, 1]):
            bad.append((op.name, strides, dilations))
    return bad


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_reference_uses_only_kernels_every_cpu_build_has(cfg):
    # Whatever machine this runs on (oneDNN on or off), the reference's forward and backward
    # graphs must avoid the kernel combinations only oneDNN accepts, and stay 4-D.
    x, f = _tensors(cfg)

    @tf.function
    def fn(x, f):
        with tf.GradientTape() as tape:
            tape.watch([x, f])
            y = reference_grouped_depthwise_conv2d(x, f, **_kwargs(cfg))
        return y, tape.gradient(y, [x, f])

    graph = fn.get_concrete_function(tf.constant(x), tf.constant(f)).graph
    assert _portable_conv_nodes(graph) == []
    ranks = {t.shape.rank for op in graph.get_operations() for t in op.outputs}
    assert max(r for r in ranks if r is not None) <= 4


def test_portability_check_catches_oneDNN_only_nodes():
    # The check above can fail: stock calls that only oneDNN runs are flagged.
    x = tf.zeros((1, 8, 8, 12))

    @tf.function
    def fn(x):
        return (tf.nn.conv2d(x, tf.zeros((1, 1, 4, 12)), 1, "SAME"),
                tf.nn.depthwise_conv2d(x, tf.zeros((3, 3, 12, 1)), [1, 2, 1, 1], "SAME"),
                tf.nn.conv2d(x, tf.zeros((3, 3, 12, 4)), 1, "SAME", dilations=2))

    assert len(_portable_conv_nodes(fn.get_concrete_function(x).graph)) == 3


def test_jit_compile_is_not_supported_by_the_custom_op(op_lib):
    # The op has no XLA kernel, which is why the layer sets supports_jit = False.
    x, f = _tensors(CONFIGS[0])
    fn = tf.function(lambda x, f: ops.grouped_depthwise_conv2d(x, f, groups=8), jit_compile=True)
    with pytest.raises((tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
                        tf.errors.UnimplementedError)):
        fn(tf.constant(x), tf.constant(f))


@pytest.mark.parametrize("groups, shuffle, k", [(240, 3, 3), (3, 1, 1)])
def test_large_tensors_match_reference(op_lib, groups, shuffle, k):
    # The benchmark's layer shape (18 MB tensors): many row blocks per worker, the ring buffer of
    # the shuffled depthwise kernels and the GEMM chunking all wrap around several times.
    # (The non-temporal-store path, used from 1 GiB on, is covered by the C++ self-test.)
    rng = np.random.default_rng(7)
    x = tf.constant(rng.standard_normal((24, 28, 28, 240)).astype(np.float32))
    f = tf.constant((rng.standard_normal((k, k, 240 // groups, 240)) / 9).astype(np.float32))
    dy = tf.constant(rng.standard_normal((24, 28, 28, 240)).astype(np.float32))
    kwargs = dict(groups=groups, shuffle_groups=shuffle)
    results = []
    for conv in (ops.grouped_depthwise_conv2d, reference_grouped_depthwise_conv2d):
        with tf.GradientTape() as tape:
            tape.watch([x, f])
            y = conv(x, f, **kwargs)
        results.append([y, *tape.gradient(y, [x, f], output_gradients=dy)])
    for ours, ref, tol in zip(*results, (1e-4, 1e-4, 2e-3)):
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=tol, atol=tol)


def test_concurrent_calls_from_many_threads(op_lib):
    # Several Python threads run the op (forward and both gradients) at once, so the intra-op
    # pool is busy and the kernels' helper tasks often start late or after the caller has taken
    # every unit: results must still be exact and no call may hang or touch a finished call.
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    cases = []
    for i in range(6):
        groups, shuffle = [(16, 2), (4, 1), (16, 1)][i % 3]
        x = rng.standard_normal((2 + i % 3, 9, 7, 16)).astype(np.float32)
        f = rng.standard_normal((3, 3, 16 // groups, 16)).astype(np.float32)
        dy = rng.standard_normal((x.shape[0], 9, 7, 16)).astype(np.float32)
        cfg = dict(strides=(1, 1), padding="SAME", dilations=(1, 1), groups=groups,
                   shuffle_groups=shuffle)
        cases.append((x, f, dy, cfg, np_conv(x, f, dy=dy, **cfg)))

    def run(case):
        x, f, dy, cfg, _ = case
        out = []
        for _ in range(15):
            xt, ft = tf.constant(x), tf.constant(f)
            with tf.GradientTape() as tape:
                tape.watch([xt, ft])
                y = ops.grouped_depthwise_conv2d(xt, ft, **cfg)
            dx, df = tape.gradient(y, [xt, ft], output_gradients=tf.constant(dy))
            out.append((y.numpy(), dx.numpy(), df.numpy()))
        return out

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(run, cases * 2))
    for case, runs in zip(cases * 2, results):
        y_ref, dx_ref, df_ref = case[4]
        for y, dx, df in runs:
            np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(df, df_ref, rtol=1e-4, atol=1e-4)


def test_filter_gradient_is_bit_identical_from_call_to_call(op_lib):
    # The filter gradient sums per-unit partials; they are added in a fixed order, so repeated
    # calls agree bit for bit however the pool's threads took the units (a resumed training run
    # then equals the uninterrupted one exactly). Another thread keeps the pool busy meanwhile,
    # so the calls are scheduled differently.
    import threading

    rng = np.random.default_rng(5)
    shapes = [((16, 14, 14, 48), (3, 3, 1, 48), 48),    # depthwise: row blocks
              ((16, 14, 14, 48), (1, 1, 16, 48), 3),    # grouped 1x1: pixel chunks
              ((8, 9, 9, 64), (3, 3, 64, 128), 1)]      # a partial over 256 KiB: long chunks
    busy = tf.constant(rng.standard_normal((8, 28, 28, 64)).astype(np.float32))
    stop = threading.Event()

    def keep_busy():
        while not stop.is_set():
            tf.nn.relu(busy * 1.5).numpy()

    noise = threading.Thread(target=keep_busy)
    noise.start()
    try:
        for x_shape, f_shape, groups in shapes:
            x = tf.constant(rng.standard_normal(x_shape).astype(np.float32))
            f = tf.constant(rng.standard_normal(f_shape).astype(np.float32))
            dy = tf.constant(rng.standard_normal(x_shape[:3] + f_shape[3:]).astype(np.float32))
            grads = []
            for _ in range(8):
                with tf.GradientTape() as tape:
                    tape.watch(f)
                    y = ops.grouped_depthwise_conv2d(x, f, groups=groups, padding="SAME")
                grads.append(tape.gradient(y, f, output_gradients=dy).numpy())
            df_ref = np_conv(x.numpy(), f.numpy(), (1, 1), "SAME", (1, 1), groups, 1,
                             dy=dy.numpy())[2]
            np.testing.assert_allclose(grads[0], df_ref, rtol=1e-4, atol=1e-3)
            for g in grads[1:]:
                assert np.array_equal(g.view(np.uint32), grads[0].view(np.uint32)), (
                    f"filter gradient of {x_shape} * {f_shape} differs between calls")
    finally:
        stop.set()
        noise.join()


# ------------------------------------------------------------------------------------------------
# Empty tensors.

def test_empty_batch(op_lib):
    x = np.zeros((0, 6, 6, 8), np.float32)
    f = np.ones((3, 3, 1, 16), np.float32)
    xt, ft = tf.constant(x), tf.constant(f)
    with tf.GradientTape() as tape:
        tape.watch([xt, ft])
        y = ops.grouped_depthwise_conv2d(xt, ft, strides=2, groups=8, shuffle_groups=2)
    assert y.shape == (0, 3, 3, 16)
    dx, df = tape.gradient(y, [xt, ft], output_gradients=tf.zeros_like(y))
    assert dx.shape == (0, 6, 6, 8)
    np.testing.assert_array_equal(df.numpy(), np.zeros_like(f))


def test_empty_output_spatial(op_lib):
    # VALID with a kernel larger than the input: empty output, zero gradients (not garbage).
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 4)).astype(np.float32)
    f = np.ones((3, 3, 2, 4), np.float32)
    xt, ft = tf.constant(x), tf.constant(f)
    with tf.GradientTape() as tape:
        tape.watch([xt, ft])
        y = ops.grouped_depthwise_conv2d(xt, ft, padding="VALID", groups=2)
    assert y.shape == (2, 0, 1, 4)
    dx, df = tape.gradient(y, [xt, ft], output_gradients=tf.zeros_like(y))
    np.testing.assert_array_equal(dx.numpy(), np.zeros_like(x))
    np.testing.assert_array_equal(df.numpy(), np.zeros_like(f))


# ------------------------------------------------------------------------------------------------
# Errors.

ATTRS = dict(strides=[1, 1], padding="SAME", dilations=[1, 1])


@pytest.mark.parametrize("x_shape, f_shape, attrs, message", [
    ((1, 5, 5, 6), (3, 3, 1, 6), dict(groups=4), "divisible by groups"),
    ((1, 5, 5, 6), (3, 3, 2, 6), dict(groups=6), "filter input depth"),
    ((1, 5, 5, 6), (3, 3, 2, 4), dict(groups=3), r"output channels \(4\) must be .*divisible by groups"),
    ((1, 5, 5, 6), (3, 3, 1, 6), dict(groups=6, shuffle_groups=4), "shuffle_groups"),
    ((5, 5, 6), (3, 3, 1, 6), dict(groups=6), "4-D|rank 4"),
    ((1, 5, 5, 6), (3, 3, 1, 6, 1), dict(groups=6), "4-D|rank 4"),
    ((1, 5, 5, 0), (3, 3, 0, 6), dict(groups=1), "channels must be positive"),
])
def test_bad_shapes_raise_invalid_argument(op_lib, x_shape, f_shape, attrs, message):
    kwargs = {**ATTRS, **attrs}
    x, f = tf.zeros(x_shape), tf.zeros(f_shape)
    # Eager: the kernel's OP_REQUIRES.
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        op_lib.keras_cnns_grouped_depthwise_conv2d(x, f, **kwargs)
    # Graph with unknown shapes: the shape function cannot see it, the kernel reports it at run time.
    fn = tf.function(lambda a, b: op_lib.keras_cnns_grouped_depthwise_conv2d(a, b, **kwargs),
                     input_signature=[tf.TensorSpec(None, tf.float32),
                                      tf.TensorSpec(None, tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        fn(x, f)


@pytest.mark.parametrize("attrs, message", [
    (dict(strides=[0, 1]), "strides"),
    (dict(strides=[1, 1, 1]), "strides"),
    (dict(dilations=[1, -1]), "dilations"),
])
def test_bad_attributes_raise(op_lib, attrs, message):
    kwargs = {**ATTRS, "groups": 6, **attrs}
    x, f = tf.zeros((1, 5, 5, 6)), tf.zeros((3, 3, 1, 6))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        op_lib.keras_cnns_grouped_depthwise_conv2d(x, f, **kwargs)
    # In a graph the shape function rejects the attribute when the node is built (ValueError).
    fn = tf.function(lambda a, b: op_lib.keras_cnns_grouped_depthwise_conv2d(a, b, **kwargs),
                     input_signature=[tf.TensorSpec(None), tf.TensorSpec(None)])
    with pytest.raises(ValueError, match=message):
        fn.get_concrete_function()


def test_shape_function_rejects_static_bad_shapes(op_lib):
    # With static shapes the registered shape function rejects the graph at construction (TF
    # surfaces shape-function errors as ValueError when building a graph).
    fn = tf.function(lambda a, b: op_lib.keras_cnns_grouped_depthwise_conv2d(a, b, groups=4, **ATTRS))
    with pytest.raises(ValueError, match="divisible by groups"):
        fn.get_concrete_function(tf.TensorSpec((1, 5, 5, 6)), tf.TensorSpec((3, 3, 1, 6)))
    fn = tf.function(lambda a, b: op_lib.keras_cnns_grouped_depthwise_conv2d(a, b, groups=2, **ATTRS))
    with pytest.raises(ValueError, match="rank"):
        fn.get_concrete_function(tf.TensorSpec((5, 5, 6)), tf.TensorSpec((3, 3, 3, 6)))
    # ... and infers the output shape when it is fine.
    fn = tf.function(lambda a, b: op_lib.keras_cnns_grouped_depthwise_conv2d(
        a, b, groups=3, strides=[2, 1], padding="VALID", dilations=[1, 2]))
    out = fn.get_concrete_function(tf.TensorSpec((None, 9, 10, 6)),
                                   tf.TensorSpec((3, 3, 2, 12))).structured_outputs
    assert out.shape.as_list() == [None, 4, 6, 12]


def test_backprop_ops_validate_shapes(op_lib):
    f, dy = tf.zeros((3, 3, 1, 6)), tf.zeros((1, 5, 5, 6))
    with pytest.raises(tf.errors.InvalidArgumentError, match="out_backprop"):
        op_lib.keras_cnns_grouped_depthwise_conv2d_backprop_input(
            tf.constant([1, 7, 5, 6]), f, dy, groups=6, **ATTRS)
    with pytest.raises(tf.errors.InvalidArgumentError, match="vector of 4"):
        op_lib.keras_cnns_grouped_depthwise_conv2d_backprop_input(
            tf.constant([1, 5, 5]), f, dy, groups=6, **ATTRS)
    with pytest.raises(tf.errors.InvalidArgumentError, match="out_backprop"):
        op_lib.keras_cnns_grouped_depthwise_conv2d_backprop_filter(
            tf.zeros((2, 5, 5, 6)), tf.constant([3, 3, 1, 6]), dy, groups=6, **ATTRS)
    with pytest.raises(tf.errors.InvalidArgumentError, match="filter input depth"):
        op_lib.keras_cnns_grouped_depthwise_conv2d_backprop_filter(
            tf.zeros((1, 5, 5, 6)), tf.constant([3, 3, 2, 6]), dy, groups=6, **ATTRS)


def test_runtime_shape_errors_through_public_function(op_lib):
    # Filter depth that does not match C / groups, seen only at run time.
    fn = tf.function(lambda a, b: ops.grouped_depthwise_conv2d(a, b, groups=2),
                     input_signature=[tf.TensorSpec((None, None, None, 6)),
                                      tf.TensorSpec(None)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="filter input depth"):
        fn(tf.zeros((1, 4, 4, 6)), tf.zeros((3, 3, 2, 6)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(padding="FULL"), r"`padding`.*Received: padding='FULL'"),
    (dict(strides=0), r"`strides`.*Received: strides=0"),
    (dict(strides=(1, 2, 1)), r"`strides`.*Received: strides=\(1, 2, 1\)"),
    (dict(dilations=(1, 0)), r"`dilations`.*Received: dilations=\(1, 0\)"),
    (dict(strides=1.5), r"`strides`.*Received: strides=1.5"),
    (dict(groups=0), r"`groups`.*Received: groups=0"),
    (dict(groups=4), r"`groups` must divide the input channels \(6\)\. Received: groups=4"),
    (dict(groups=6, shuffle_groups=4), r"`shuffle_groups` must divide.*Received: shuffle_groups=4"),
    (dict(groups=6, shuffle_groups=True), r"`shuffle_groups`.*Received: shuffle_groups=True"),
])
def test_python_argument_validation(kwargs, match):
    x, f = tf.zeros((1, 4, 4, 6)), tf.zeros((3, 3, 1, 6))
    with pytest.raises(ValueError, match=match):
        ops.grouped_depthwise_conv2d(x, f, **kwargs)


def test_python_dtype_validation():
    with pytest.raises(ValueError, match=r"Received: x.dtype=int32"):
        ops.grouped_depthwise_conv2d(tf.zeros((1, 4, 4, 6), tf.int32), tf.zeros((3, 3, 1, 6), tf.int32))
    with pytest.raises(ValueError, match=r"Received: filters.dtype=float64"):
        ops.grouped_depthwise_conv2d(tf.zeros((1, 4, 4, 6)), tf.zeros((3, 3, 1, 6), tf.float64))


def test_groups_inferred_from_filter(op_lib):
    x, f = _tensors(CONFIGS[8])  # 12 channels, filter depth 4 -> groups 3
    y = ops.grouped_depthwise_conv2d(x, f, shuffle_groups=3)
    np.testing.assert_allclose(y.numpy(), np_conv(x, f, (1, 1), "SAME", (1, 1), 3, 3),
                               rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# Loader internals that do not need a rebuild.

def test_cpu_arch_flags_parsing(monkeypatch):
    # The best ISA the flags allow: with KERAS_CNNS_OP_ISA unset (a caller may have capped it).
    monkeypatch.delenv(_loader.ISA_ENV, raising=False)
    avx512 = "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl\n"
    assert _loader.cpu_arch_flags(avx512)[:1] == ["-mavx512f"]
    assert "-mfma" in _loader.cpu_arch_flags(avx512)
    assert _loader.cpu_arch_flags("flags : fpu sse2 avx avx2 fma\n") == ["-mavx2", "-mfma"]
    assert _loader.cpu_arch_flags("flags : fpu sse2 avx\n") == []
    assert _loader.cpu_arch_flags("processor : 0\n") == []


def test_op_isa_caps_the_flags(monkeypatch):
    avx512 = "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl\n"
    monkeypatch.setenv(_loader.ISA_ENV, "avx2")
    assert _loader.cpu_arch_flags(avx512) == ["-mavx2", "-mfma"]
    monkeypatch.setenv(_loader.ISA_ENV, "baseline")
    assert _loader.cpu_arch_flags(avx512) == []
    monkeypatch.setenv(_loader.ISA_ENV, "avx512")
    with pytest.raises(ValueError, match="KERAS_CNNS_OP_ISA=avx512.*lacks.*'avx2'"):
        _loader.cpu_arch_flags("flags : fpu sse2 avx avx2 fma\n")
    monkeypatch.setenv(_loader.ISA_ENV, "sse9")
    with pytest.raises(ValueError, match="KERAS_CNNS_OP_ISA.*auto.*avx512.*'sse9'"):
        _loader.cpu_arch_flags(avx512)


def test_sources_are_shipped_as_package_data():
    import tomllib
    from pathlib import Path
    from fnmatch import fnmatch

    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"]["keras_cnns._custom_ops_src"] == "custom_ops"
    patterns = config["package-data"]["keras_cnns._custom_ops_src"]
    for name in _loader.CPU_SOURCES + _loader.GPU_SOURCES:
        assert (root / "custom_ops" / name).is_file(), name
        assert any(fnmatch(name, p) for p in patterns), name
    # The placeholder directory makes setuptools' package discovery see the package name.
    assert (root / "keras_cnns" / "_custom_ops_src").is_dir()
    assert _loader.source_dir() is not None


def test_compiled_library_is_cached(op_lib):
    libs = list(_loader.cache_dir().glob(f"*/{_loader.LIBRARY_NAME}"))
    assert libs, f"no compiled library under {_loader.cache_dir()}"
    assert any((lib.parent / "build.log").is_file() for lib in libs)


def test_autograph_leaves_the_op_functions_alone(tmp_path):
    """A user's tf.function calling the op: AutoGraph does not convert the Python-level dispatch
    (it used to warn once per loader helper it could not convert, e.g. ``check_pair``)."""
    import subprocess
    import sys

    # a file, not ``-c``: AutoGraph only converts functions whose source it can read
    script = tmp_path / "user_code.py"
    script.write_text(
        "import numpy as np, tensorflow as tf\n"
        "from keras_cnns.ops import grouped_depthwise_conv2d\n"
        "x = tf.constant(np.ones((1, 8, 8, 6), np.float32))\n"
        "w = tf.constant(np.ones((3, 3, 2, 6), np.float32))\n"
        "@tf.function\n"
        "def f(x):\n"
        "    return grouped_depthwise_conv2d(x, w, groups=3, shuffle_groups=3)\n"
        "print(float(tf.reduce_sum(f(x))))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert float(proc.stdout.split()[-1]) > 0
    assert "AutoGraph could not transform" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
