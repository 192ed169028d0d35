"""Fixtures of the custom-op tests: the compiled op library (built on first use, once)."""

import pytest


@pytest.fixture(scope="session")
def op_lib():
    """The loaded ``KerasCnns>GroupedDepthwiseConv2D`` library.

    Fails (does not skip) when the op cannot be built: on a machine with g++ the compiled op is a
    requirement of the package, and a skip would hide a broken build.
    """
    from keras_cnns.ops import _loader

    lib = _loader.load_library()
    assert lib is not None, f"the custom op did not build/load: {_loader.load_error()}"
    return lib


@pytest.fixture(autouse=True)
def _grouped_on_the_op(monkeypatch):
    """The op's grouped kernels are what these tests check: where oneDNN runs TF's kernels the
    dispatch rule would hand grouped spatial convolutions to its grouped ``tf.nn.conv2d``
    (``keras_cnns.ops.depthwise_dispatch``), so the op is forced here; the rule itself is tested
    in test_depthwise_dispatch.py."""
    monkeypatch.setenv("KERAS_CNNS_GROUPED", "custom")
