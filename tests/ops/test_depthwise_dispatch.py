"""The per-shape choice between the custom op and TF's depthwise kernel (depthwise_dispatch)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_cnns.ops import custom_op_available, grouped_depthwise_conv2d
from keras_cnns.ops.depthwise_dispatch import ENV_VAR, measured_rule, prefer_custom_op

needs_op = pytest.mark.skipif(not custom_op_available(), reason="custom op not built here")


def test_measured_rule():
    # oneDNN off: the custom op for every measured shape
    for shape in [(7, 7, 1152, 3, 1), (112, 112, 16, 3, 1), (14, 14, 672, 5, 1)]:
        assert measured_rule(*shape, onednn=False)
    # oneDNN on: TF's kernel for 3x3 on large maps with few channels
    assert measured_rule(7, 7, 1152, 3, 1, onednn=True)
    assert not measured_rule(113, 113, 64, 3, 2, onednn=True)
    assert not measured_rule(112, 112, 16, 3, 1, onednn=True)
    assert measured_rule(112, 112, 16, 5, 1, onednn=True)    # 5x5: always the custom op
    assert measured_rule(28, 28, 256, 3, 1, onednn=True)
    assert measured_rule(None, None, 256, 3, 1, onednn=True)  # unknown sides count as large
    assert not measured_rule(None, None, 32, 3, 1, onednn=True)
    # the baseline (SSE) build keeps the AVX-512 measurements' rule
    assert not measured_rule(112, 112, 16, 3, 1, onednn=True, isa="baseline")


def test_measured_rule_with_the_avx2_build():
    # The op's AVX2 kernels were measured faster than oneDNN's at the shapes above too.
    for shape in [(113, 113, 64, 3, 2), (112, 112, 16, 3, 1), (56, 56, 72, 3, 1),
                  (None, None, 32, 3, 1), (7, 7, 1152, 5, 1)]:
        assert measured_rule(*shape, onednn=True, isa="avx2")
        assert measured_rule(*shape, onednn=False, isa="avx2")


def test_rule_reads_the_op_build(monkeypatch):
    from keras_cnns.ops import _loader, depthwise_dispatch

    monkeypatch.delenv(ENV_VAR, raising=False)
    isa = _loader.op_isa()
    assert isa in ("avx512", "avx2", "baseline")
    assert prefer_custom_op(112, 112, 16, 3, 1, onednn=True) == (isa == "avx2")
    # KERAS_CNNS_OP_ISA caps the build, and the ISA read from it follows
    monkeypatch.setenv("KERAS_CNNS_OP_ISA", "baseline")
    assert _loader.op_isa() == "baseline"
    monkeypatch.setattr(depthwise_dispatch, "_op_isa", lambda: "avx2")
    assert prefer_custom_op(112, 112, 16, 3, 1, onednn=True)


def test_environment_override(monkeypatch):
    from keras_cnns.ops import depthwise_dispatch

    monkeypatch.setattr(depthwise_dispatch, "_op_isa", lambda: "avx512")
    monkeypatch.setenv(ENV_VAR, "stock")
    assert not prefer_custom_op(28, 28, 256, 5, 1)
    monkeypatch.setenv(ENV_VAR, "custom")
    assert prefer_custom_op(112, 112, 16, 3, 1, onednn=True)
    monkeypatch.setenv(ENV_VAR, "auto")
    assert not prefer_custom_op(112, 112, 16, 3, 1, onednn=True)
    monkeypatch.setenv(ENV_VAR, "fastest")
    with pytest.raises(ValueError, match=ENV_VAR):
        prefer_custom_op(7, 7, 1152, 3, 1)


def _op_types(fn, *args):
    return {op.type for op in fn.get_concrete_function(*args).graph.get_operations()}


@needs_op
@pytest.mark.parametrize("mode", ["custom", "stock"])
def test_dispatch_picks_the_kernel_and_both_agree(monkeypatch, mode):
    monkeypatch.setenv(ENV_VAR, mode)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 9, 9, 8)).astype("float32"))
    k = tf.constant(rng.normal(size=(3, 3, 1, 8)).astype("float32"))

    @tf.function
    def f(x):
        return grouped_depthwise_conv2d(x, k, strides=2, padding="SAME")

    types = _op_types(f, tf.TensorSpec(x.shape, x.dtype))
    custom = any("GroupedDepthwise" in t for t in types)
    assert custom == (mode == "custom")
    assert ("DepthwiseConv2dNative" in types) == (mode == "stock")
    expected = tf.nn.depthwise_conv2d(x, tf.reshape(k, (3, 3, 8, 1)), (1, 2, 2, 1), "SAME")
    np.testing.assert_allclose(f(x).numpy(), expected.numpy(), atol=1e-5)


@needs_op
def test_grouped_and_shuffled_convolutions_always_use_the_custom_op(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "stock")
    x = tf.zeros((1, 6, 6, 8))

    @tf.function
    def f(x):
        return grouped_depthwise_conv2d(x, tf.ones((3, 3, 1, 8)), shuffle_groups=2)

    assert any("GroupedDepthwise" in t for t in _op_types(f, tf.TensorSpec(x.shape)))


# ------------------------------------------------------------------------------------------------
# Grouped spatial convolutions: oneDNN's grouped tf.nn.conv2d where oneDNN runs TF's kernels
# ------------------------------------------------------------------------------------------------

def test_grouped_rule_and_override(monkeypatch):
    from keras_cnns.ops.depthwise_dispatch import GROUPED_ENV_VAR, prefer_native_grouped

    monkeypatch.delenv(GROUPED_ENV_VAR, raising=False)
    assert prefer_native_grouped(onednn=True)
    assert not prefer_native_grouped(onednn=False)  # Eigen has no grouped Conv2D gradient
    monkeypatch.setenv(GROUPED_ENV_VAR, "custom")
    assert not prefer_native_grouped(onednn=True)
    monkeypatch.setenv(GROUPED_ENV_VAR, "native")
    assert prefer_native_grouped(onednn=True) and not prefer_native_grouped(onednn=False)
    monkeypatch.setenv(GROUPED_ENV_VAR, "fastest")
    with pytest.raises(ValueError, match=GROUPED_ENV_VAR):
        prefer_native_grouped(onednn=True)


_GROUPED_CHILD = """
import json, os, sys
import numpy as np, tensorflow as tf
from keras_cnns.ops import grouped_depthwise_conv2d, reference_grouped_depthwise_conv2d
from keras_cnns.ops.depthwise_dispatch import onednn_enabled
rng = np.random.default_rng(0)
x = tf.constant(rng.normal(size=(2, 9, 9, 16)).astype("float32"))
k = tf.constant(rng.normal(size=(3, 3, 4, 16)).astype("float32"))

def grads(fn):
    @tf.function
    def f(x, k):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = fn(x, k)
            loss = tf.reduce_sum(y * y)
        return [y] + tape.gradient(loss, [x, k])
    types = {op.type for op in f.get_concrete_function(x, k).graph.get_operations()}
    return [t.numpy() for t in f(x, k)], types

ours, types = grads(lambda x, k: grouped_depthwise_conv2d(x, k, strides=2, groups=4))
ref, _ = grads(lambda x, k: reference_grouped_depthwise_conv2d(x, k, (2, 2), "SAME", (1, 1), 4, 1))
print(json.dumps(dict(onednn=onednn_enabled(), custom=any("GroupedDepthwise" in t for t in types),
                      conv2d="Conv2D" in types,
                      diff=max(float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))
                               for a, b in zip(ours, ref)))))
"""


@needs_op
@pytest.mark.parametrize("onednn, mode", [("1", "auto"), ("1", "custom"), ("0", "auto"),
                                          ("0", "native")])
def test_grouped_dispatch_per_onednn_setting(onednn, mode):
    # A child per setting (TF reads TF_ENABLE_ONEDNN_OPTS at import): oneDNN on -> one grouped
    # Conv2D (forward and both gradients) unless KERAS_CNNS_GROUPED=custom; off -> the custom op
    # even when "native" is asked (Eigen has no grouped gradient). Both equal the per-group
    # stock formulation.
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, KERAS_CNNS_GROUPED=mode,
               TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", _GROUPED_CHILD], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if got["onednn"] is None:
        pytest.skip("this TensorFlow cannot tell whether oneDNN is on")
    native = bool(got["onednn"]) and mode != "custom"
    assert got["custom"] == (not native)
    assert got["conv2d"] == native
    assert got["diff"] <= 1e-5
