"""Gradients of the ``KerasCnns>GroupedDepthwiseConv2D`` ops (registered once per process).

First order: the forward op's gradient is the BackpropInput / BackpropFilter ops. Second order:
both backprop ops are linear in each argument and adjoint to the forward op, so their gradients
are again the forward and backprop ops:

* ``dx = BackpropInput(f, dy)``: d/ddy = ``Forward(ddx, f)``, d/df = ``BackpropFilter(ddx, dy)``.
* ``df = BackpropFilter(x, dy)``: d/dx = ``BackpropInput(ddf, dy)``, d/ddy = ``Forward(x, ddf)``.
"""

from __future__ import annotations

FORWARD = "KerasCnns>GroupedDepthwiseConv2D"
BACKPROP_INPUT = "KerasCnns>GroupedDepthwiseConv2DBackpropInput"
BACKPROP_FILTER = "KerasCnns>GroupedDepthwiseConv2DBackpropFilter"

_registered = False


def op_attrs(op) -> dict:
    """The convolution attributes of one of the three ops, as keyword arguments."""
    padding = op.get_attr("padding")
    return {
        "strides": list(op.get_attr("strides")),
        "padding": padding.decode() if isinstance(padding, bytes) else padding,
        "dilations": list(op.get_attr("dilations")),
        "groups": op.get_attr("groups"),
        "shuffle_groups": op.get_attr("shuffle_groups"),
    }


def register(tf, lib) -> None:
    """Registers the three gradient functions for ``lib``'s ops (idempotent)."""
    global _registered
    if _registered:
        return
    forward = lib.keras_cnns_grouped_depthwise_conv2d
    backprop_input = lib.keras_cnns_grouped_depthwise_conv2d_backprop_input
    backprop_filter = lib.keras_cnns_grouped_depthwise_conv2d_backprop_filter

    def forward_grad(op, grad):
        x, f = op.inputs
        attrs = op_attrs(op)
        dx = backprop_input(tf.shape(x), f, grad, **attrs)
        df = backprop_filter(x, tf.shape(f), grad, **attrs)
        return dx, df

    def backprop_input_grad(op, grad):
        _, f, dy = op.inputs
        attrs = op_attrs(op)
        d_f = backprop_filter(grad, tf.shape(f), dy, **attrs)
        d_dy = forward(grad, f, **attrs)
        return None, d_f, d_dy

    def backprop_filter_grad(op, grad):
        x, _, dy = op.inputs
        attrs = op_attrs(op)
        d_x = backprop_input(tf.shape(x), grad, dy, **attrs)
        d_dy = forward(x, grad, **attrs)
        return d_x, None, d_dy

    for name, fn in ((FORWARD, forward_grad), (BACKPROP_INPUT, backprop_input_grad),
                     (BACKPROP_FILTER, backprop_filter_grad)):
        try:
            tf.RegisterGradient(name)(fn)
        except KeyError:  # already registered (e.g. the module was reloaded)
            pass
    _registered = True
