"""Reversible residual blocks (RevNet) whose backward pass reconstructs activations.

Gomez, Ren, Urtasun & Grosse, "The Reversible Residual Network: Backpropagation Without Storing
Activations", NIPS 2017 (arXiv:1707.04585), Sec. 3: the channels are split into halves
``(x1, x2)`` and a block computes::

    y1 = x1 + F(x2)            x2 = y2 - G(y1)
    y2 = x2 + G(y1)            x1 = y1 - F(x2)        (the inverse, Eq. 2)

so a block's input can be recomputed from its output, and the backward pass (Algorithm 1)
rebuilds every activation of a run of such blocks from the run's output alone: the peak memory
of training no longer grows with the number of blocks. Blocks that downsample (stride 2, or more
channels) are not invertible; as in the authors' code they are ordinary blocks whose input is
stored.

The layout is the authors' TensorFlow code, renmengye/revnet-public
(``resnet/models/revnet_model.py`` on top of ``resnet/models/resnet_model.py``):

* ``F`` and ``G`` are pre-activation residual functions on ``C/2`` channels: basic
  ``BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3`` or bottleneck
  ``BN-ReLU-conv1x1(stride)-BN-ReLU-conv3x3-BN-ReLU-conv1x1`` with ``out/4`` inner channels;
  the very first unit of the network omits the first BN-ReLU (the stem's follows it); bias-free
  ``SAME`` convolutions; BatchNorm with epsilon 1e-3 and moving averages with decay 0.99 (their
  ``nnlib.batch_norm``), the variance the biased batch variance.
* A downsampling unit (:class:`RevNetBlock`) has the same coupling with ``F`` strided and each
  half's shortcut downsampled: basic units average-pool ``stride x stride`` and zero-pad the
  channels equally on both sides (``_possible_downsample``); bottleneck units project each half
  with a bias-free 1x1 convolution (``_possible_bottleneck_downsample``).
* Gradients of the reconstructed units are those of Algorithm 1: ``G`` is re-run on ``y1``
  (``x2 = y2 - G(y1)``, ``dz1 = dy1 + dG^T dy2``), then ``F`` on the reconstructed ``x2``
  (``x1 = y1 - F(x2)``, ``dx2 = dy2 + dF^T dz1``, ``dx1 = dz1``). BatchNorm uses the batch
  statistics of the reconstructed activations (equal to the forward pass's up to rounding) and
  the moving statistics are updated once, in the forward pass, never during reconstruction
  (revnet-public's ``add_bn_ops=False``).

:class:`ReversibleSequence` is one run of reversible units wrapped in a single
``tf.custom_gradient``: its forward pass is not recorded by the tape, the backward pass keeps only
the run's output and the unit being differentiated. Both passes are a ``tf.while_loop`` over the
units (their weights stacked per parameter slot) with one iteration in flight: the executor
finishes one unit's gradients before it reconstructs the previous unit (otherwise it may run the
whole reconstruction chain ahead and hold every unit's activations at once), and the traced
graph holds one unit instead of one copy per unit.
``reversible_backprop=False`` computes the same network with ordinary autodiff (the reference
the tests compare gradients with). The custom gradient is used in training mode; inference mode
(``training=False``) runs the same ops without it, so exported inference graphs carry no custom
gradient. Both layers work in eager mode, in ``tf.function`` /
``model.fit``, under a mixed-precision policy (convolutions in the compute dtype, BatchNorm in
float32) and under ``tf.distribute`` (each replica reconstructs its own batch).

Numerical note (mixed precision): the inverse subtracts what the forward pass added, so rounding
of ``y = x + F(x)`` is not undone. In float32 reconstructed inputs agree with the stored ones to
~1e-6 relative; in float16 the activations carry an 11-bit mantissa and the error is of the order
of float16's epsilon (measured figures in keras_cnns/models/revnet.py's docstring).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from tensorflow.python.eager import record as _record

from keras_cnns._checks import check_bool, check_positive_int, fail

__all__ = ["RevNetBlock", "ReversibleSequence", "reversible_macs"]

#: revnet-public ``_conv``: truncated normal, stddev sqrt(2 / (k * k * out_filters)).
_KERNEL_INIT = dict(class_name="VarianceScaling",
                    config=dict(scale=2.0, mode="fan_out", distribution="truncated_normal"))


def _check_unit_interval(arg, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        fail(arg, "must be a float in (0, 1)", value)
    return float(value)


def _check_positive(arg, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        fail(arg, "must be a positive float", value)
    return float(value)


# ------------------------------------------------------------------------------------------------
# Pure functions: the residual functions as TF ops on tensors (weights passed in, no variables).
# ------------------------------------------------------------------------------------------------


def _batch_norm(x, params, training, epsilon, stats):
    """BatchNorm in float32 (as Keras' layer does under mixed precision), with TensorFlow's fused
    kernel. ``params``: gamma, beta (training) or gamma, beta, moving mean, moving variance
    (inference). Training mode normalises with the batch statistics and appends them to ``stats``
    when it is a list: the mean and the biased variance (what Keras' BatchNormalization and
    revnet-public's ``tf.nn.moments`` average; the fused kernel returns the unbiased one)."""
    dtype = x.dtype
    x32 = tf.cast(x, tf.float32)
    if training:
        gamma, beta = params
        y, mean, var = tf.compat.v1.nn.fused_batch_norm(x32, gamma, beta, epsilon=epsilon,
                                                        is_training=True)[:3]
        if stats is not None:
            shape = tf.shape(x32)
            n = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
            stats.extend((tf.stop_gradient(mean),
                          tf.stop_gradient(var * (n - 1.0) / tf.maximum(n, 1.0))))
    else:
        gamma, beta, mean, var = params
        y = tf.compat.v1.nn.fused_batch_norm(x32, gamma, beta, mean=mean, variance=var,
                                             epsilon=epsilon, is_training=False)[0]
    return tf.cast(y, dtype)


class _Branch:
    """One residual function (F or G): its convolutions and BatchNorms and their weights."""

    def __init__(self, prefix, cin, cout, stride, bottleneck, preact):
        mid = cout // 4 if bottleneck else cout
        if bottleneck:
            self.convs = [(1, cin, mid, stride), (3, mid, mid, 1), (1, mid, cout, 1)]
        else:
            self.convs = [(3, cin, cout, stride), (3, cout, cout, 1)]
        self.preact = [bool(preact)] + [True] * (len(self.convs) - 1)
        self.prefix = prefix

    def build(self, owner, input_dtype=None):
        """Create the weights as Keras sublayers of ``owner`` (``BatchNormalization`` and
        ``Conv2D`` layers used as weight holders, so every weight has its usual path, e.g.
        ``unit_1_rev/unit0_f_bn1/moving_variance``); ``owner`` runs them as TF ops."""
        self.bn, self.kernels = [], []
        for i, ((k, cin, cout, _), pre) in enumerate(zip(self.convs, self.preact), start=1):
            if pre:
                bn = keras.layers.BatchNormalization(
                    momentum=owner.momentum, epsilon=owner.epsilon, name=f"{self.prefix}_bn{i}",
                    dtype=owner.dtype_policy)
                bn.build((None, None, None, cin))
                owner.weight_layers.append(bn)
                self.bn.append((bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
            else:
                self.bn.append(None)
            conv = keras.layers.Conv2D(cout, k, padding="same", use_bias=False,
                                       kernel_initializer=keras.initializers.get(_KERNEL_INIT),
                                       name=f"{self.prefix}_conv{i}", dtype=owner.dtype_policy)
            conv.build((None, None, None, cin))
            owner.weight_layers.append(conv)
            self.kernels.append(conv.kernel)

    def params(self, dtype, training):
        """The weights as tensors, in :meth:`apply`'s order (kernels cast to ``dtype``)."""
        out = []
        for bn, kernel in zip(self.bn, self.kernels):
            if bn is not None:
                out += [tf.convert_to_tensor(v.value) for v in (bn if not training else bn[:2])]
            out.append(tf.cast(kernel.value, dtype))
        return out

    def moving(self):
        """The moving statistics, in the order :meth:`apply` reports the batch statistics."""
        return [v for bn in self.bn if bn is not None for v in bn[2:]]

    def n_params(self, training):
        return sum((2 if training else 4) if bn is not None else 0 for bn in self.bn) + len(self.kernels)

    def apply(self, x, params, training, epsilon, stats=None):
        it = iter(params)
        for (_, _, _, stride), pre in zip(self.convs, self.preact):
            if pre:
                bn = [next(it) for _ in range(2 if training else 4)]
                x = tf.nn.relu(_batch_norm(x, bn, training, epsilon, stats))
            x = tf.nn.conv2d(x, next(it), stride, "SAME")
        return x

    def macs(self, batch, h_in, w_in):
        total, h, w = 0, h_in, w_in
        for k, cin, cout, stride in self.convs:
            h, w = -(-h // stride), -(-w // stride)
            total += k * k * cin * cout * h * w * batch
        return total


class _CouplingLayer(keras.layers.Layer):
    """What both RevNet layers share: the BatchNorm knobs, the moving-statistics update, the MAC
    count and the serialization."""

    def __init__(self, *, momentum=0.99, epsilon=1e-3, **kwargs):
        kwargs.setdefault("autocast", False)  # the layer casts its own weights (BN in float32)
        super().__init__(**kwargs)
        self.momentum = _check_unit_interval("momentum", momentum)
        self.epsilon = _check_positive("epsilon", epsilon)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _update_moving(self, branches, stats):
        moving = [v for b in branches for v in b.moving()]
        # m <- m - (m - value) (1 - momentum): the moving average in four graph nodes (a
        # RevNet-164 step updates 648 of them; the graph is traced memory)
        for var, value in zip(moving, stats):
            var.assign_sub((var - tf.cast(value, var.dtype)) * (1.0 - self.momentum))

    def _branches(self):
        raise NotImplementedError

    def _extra_macs(self, batch, h_out, w_out):
        return 0

    def count_macs(self, input_shape):
        """Multiply-adds of one forward pass (convolutions only, ``input_shape`` with batch)."""
        batch, h, w = (int(d) for d in input_shape[:3])
        total = 0
        for branch, (bh, bw) in self._branch_inputs(h, w):
            total += branch.macs(batch, bh, bw)
        oh, ow = self.compute_output_shape(tuple(input_shape))[1:3]
        return total + self._extra_macs(batch, oh, ow)

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon)
        return config


def reversible_macs(layer, inputs, outputs):
    """A :func:`keras_cnns.profiler.register_mac_rule` rule for :class:`RevNetBlock` and
    :class:`ReversibleSequence` (register it for ``_CouplingLayer``, their common base):
    the multiply-adds of their convolutions."""
    return layer.count_macs(tuple(inputs[0].shape))


@keras.saving.register_keras_serializable(package="keras_cnns")
class RevNetBlock(_CouplingLayer):
    """One RevNet unit whose input is stored: the first unit of a stage, where a stride or a
    wider output breaks invertibility (by default recomputed in the backward pass from that
    input, so its inner activations are not stored either).

    ``y1 = s(x1) + F(x2)``, ``y2 = s(x2) + G(y1)``, ``s`` the shortcut: identity when the shape
    is kept; average pooling + symmetric channel zero-padding (basic units) or a bias-free 1x1
    projection on each half (bottleneck units) otherwise (revnet-public ``_residual`` /
    ``_bottleneck_residual``).

    Args:
        filters: output channels (even; the input's channels are even too).
        strides: 1 or 2 (on ``F``'s first convolution and the shortcuts).
        bottleneck: bottleneck residual functions (``filters / 8`` inner channels per half).
        preactivate: ``False`` for the network's first unit (``F`` starts with its conv).
        recompute: keep only the unit's input for the backward pass and recompute the unit
            there (one custom gradient, as revnet-public's ``_residual_grad`` re-runs the unit
            from the stored hidden state); ``False``: ordinary autodiff (every activation
            stored).
        momentum, epsilon: BatchNorm's moving-average decay and epsilon (revnet-public: 0.99,
            1e-3).
    """

    def __init__(self, filters, strides=1, bottleneck=False, preactivate=True, recompute=True,
                 **kwargs):
        super().__init__(**kwargs)
        check_positive_int("filters", filters)
        if filters % 2:
            fail("filters", "must be even (the two halves of a reversible block)", filters)
        if strides not in (1, 2) or isinstance(strides, bool):
            fail("strides", "must be 1 or 2", strides)
        if bottleneck and filters % 8:
            fail("filters", "must be a multiple of 8 with bottleneck=True", filters)
        self.filters, self.strides = int(filters), int(strides)
        self.bottleneck = check_bool("bottleneck", bottleneck)
        self.preactivate = check_bool("preactivate", preactivate)
        self.recompute = check_bool("recompute", recompute)

    def build(self, input_shape):
        cin = input_shape[-1]
        if cin is None or cin % 2:
            raise ValueError(f"{self.name}: the input's channels must be known and even; got {cin}")
        if cin > self.filters:
            raise ValueError(f"{self.name}: input channels ({cin}) above `filters`. "
                             f"Received: filters={self.filters}")
        if not self.bottleneck and (self.filters - cin) % 4:
            raise ValueError(f"{self.name}: the channel padding of each half ({cin // 2} -> "
                             f"{self.filters // 2}) must be even. Received: filters={self.filters}")
        hi, ho = cin // 2, self.filters // 2
        self.weight_layers = []
        self.f = _Branch("f", hi, ho, self.strides, self.bottleneck, self.preactivate)
        self.g = _Branch("g", ho, ho, 1, self.bottleneck, True)
        self.f.build(self)
        self.g.build(self)
        self.project = self.bottleneck and (self.strides > 1 or hi != ho)
        if self.project:
            self.proj = []
            for i in (1, 2):
                conv = keras.layers.Conv2D(ho, 1, strides=self.strides, use_bias=False,
                                           kernel_initializer=keras.initializers.get(_KERNEL_INIT),
                                           name=f"x{i}_project", dtype=self.dtype_policy)
                conv.build((None, None, None, hi))
                self.weight_layers.append(conv)
                self.proj.append(conv.kernel)
        self._cin = cin

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        div = (lambda s: None if s is None else -(-s // self.strides))
        return (n, div(h), div(w), self.filters)

    def _branch_inputs(self, h, w):
        oh, ow = -(-h // self.strides), -(-w // self.strides)
        return [(self.f, (h, w)), (self.g, (oh, ow))]

    def _extra_macs(self, batch, h_out, w_out):
        return 2 * self._cin // 2 * self.filters // 2 * h_out * w_out * batch if self.project else 0

    def _shortcut(self, x, i, proj):
        if self.project:
            return tf.nn.conv2d(x, proj[i], self.strides, "SAME")
        if self.strides > 1:
            x = tf.nn.avg_pool2d(x, self.strides, self.strides, "SAME")
        pad = (self.filters - self._cin) // 4
        if pad:
            x = tf.pad(x, [[0, 0], [0, 0], [0, 0], [pad, pad]])
        return x

    def _params(self, dtype, training):
        proj = [tf.cast(k.value, dtype) for k in self.proj] if self.project else []
        return self.f.params(dtype, training) + self.g.params(dtype, training) + proj

    def _forward(self, x, params, training, stats):
        nf, ng = self.f.n_params(training), self.g.n_params(training)
        pf, pg, proj = params[:nf], params[nf:nf + ng], params[nf + ng:]
        c = self._cin // 2
        x1, x2 = x[..., :c], x[..., c:]
        y1 = self._shortcut(x1, 0, proj) + self.f.apply(x2, pf, training, self.epsilon, stats)
        y2 = self._shortcut(x2, 1, proj) + self.g.apply(y1, pg, training, self.epsilon, stats)
        return tf.concat([y1, y2], axis=-1)

    def _recomputed(self, x, params, training):
        """The unit under a custom gradient that keeps only its input and recomputes the unit
        in the backward pass (revnet-public ``_residual_grad`` on the saved hidden state)."""

        @tf.custom_gradient
        def unit(x, *params):
            stats = [] if training else None
            with _record.stop_recording():
                y = self._forward(x, list(params), training, stats)

            def grad(dy, *unused_stat_grads):
                with tf.GradientTape() as tape:
                    tape.watch([x] + list(params))
                    y_again = self._forward(x, list(params), training, None)
                return tape.gradient(y_again, [x] + list(params), output_gradients=dy)

            return [y] + (stats or []), grad

        out = unit(x, *params)
        return out[0], list(out[1:])

    def call(self, inputs, training=None):
        training = bool(training)
        x = tf.cast(inputs, self.compute_dtype)
        params = self._params(x.dtype, training)
        if self.recompute and training:
            y, stats = self._recomputed(x, params, training)
        else:
            stats = [] if training else None
            y = self._forward(x, params, training, stats)
        if training and self.trainable:
            self._update_moving((self.f, self.g), stats)
        return y

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, strides=self.strides, bottleneck=self.bottleneck,
                      preactivate=self.preactivate, recompute=self.recompute)
        return config


@keras.saving.register_keras_serializable(package="keras_cnns")
class ReversibleSequence(_CouplingLayer):
    """``units`` reversible RevNet units of unchanged shape, trained without stored activations.

    Each unit is ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)`` on the channel halves (first half
    ``x1``, as revnet-public's ``_split``); ``F`` and ``G`` are pre-activation basic or bottleneck
    residual functions of ``C/2`` channels (bottleneck: ``C/8`` inner channels).

    With ``reversible_backprop=True`` (the default) the whole run is one ``tf.custom_gradient``:
    the forward pass records nothing, and the backward pass reconstructs each unit's input from
    its output (Algorithm 1 of the paper), so memory does not grow with ``units``. With
    ``False`` the same computation is differentiated ordinarily (every activation stored).

    Args:
        units: the number of units (>= 1).
        bottleneck: bottleneck residual functions.
        reversible_backprop: reconstruct activations in the backward pass.
        momentum, epsilon: BatchNorm's moving-average decay and epsilon (revnet-public: 0.99,
            1e-3).

    Methods :meth:`inverse` (the input from the output, with the batch statistics of training
    mode or the moving ones) and :meth:`reconstruction_error` expose the reconstruction.
    """

    def __init__(self, units, bottleneck=False, reversible_backprop=True, **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.bottleneck = check_bool("bottleneck", bottleneck)
        self.reversible_backprop = check_bool("reversible_backprop", reversible_backprop)

    def build(self, input_shape):
        c = input_shape[-1]
        if c is None or c % 2 or (self.bottleneck and c % 8):
            raise ValueError(f"{self.name}: the input's channels must be known and "
                             f"{'a multiple of 8' if self.bottleneck else 'even'}; got {c}")
        h = c // 2
        self.weight_layers = []
        self.blocks = []
        for u in range(self.units):
            f = _Branch(f"unit{u}_f", h, h, 1, self.bottleneck, True)
            g = _Branch(f"unit{u}_g", h, h, 1, self.bottleneck, True)
            f.build(self)
            g.build(self)
            self.blocks.append((f, g))
        self._half = h

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _branch_inputs(self, h, w):
        return [(b, (h, w)) for f, g in self.blocks for b in (f, g)]

    # -- the computation ----------------------------------------------------------------------

    def _params(self, dtype, training):
        return [p for f, g in self.blocks for b in (f, g) for p in b.params(dtype, training)]

    def _split_params(self, params, training):
        out, i = [], 0
        for f, g in self.blocks:
            nf, ng = f.n_params(training), g.n_params(training)
            out.append((params[i:i + nf], params[i + nf:i + nf + ng]))
            i += nf + ng
        return out

    def _forward(self, x, params, training, stats):
        c = self._half
        x1, x2 = x[..., :c], x[..., c:]
        for (f, g), (pf, pg) in zip(self.blocks, self._split_params(params, training)):
            x1 = x1 + f.apply(x2, pf, training, self.epsilon, stats)
            x2 = x2 + g.apply(x1, pg, training, self.epsilon, stats)
        return tf.concat([x1, x2], axis=-1)

    def _inverse(self, y, params, training):
        c = self._half
        y1, y2 = y[..., :c], y[..., c:]
        for (f, g), (pf, pg) in reversed(list(zip(self.blocks, self._split_params(params, training)))):
            y2 = y2 - g.apply(y1, pg, training, self.epsilon)
            y1 = y1 - f.apply(y2, pf, training, self.epsilon)
        return tf.concat([y1, y2], axis=-1)

    def _reversible(self, x, params, training):
        """The run under one custom gradient: ``(y, batch statistics)``.

        The units share one structure, so the forward pass and the reconstructing backward
        pass are each one ``tf.while_loop`` over the units (the weights of each parameter slot
        stacked across the units, ``parallel_iterations=1``: one unit in flight, finished
        before the next starts): the traced graph holds one unit, not ``units`` unrolled
        copies, so the one-time tracing memory no longer grows with depth either (RevNet-164:
        README, "Memory").
        """
        units = self.units
        per = len(params) // units  # parameter slots per unit: F's, then G's
        f, g = self.blocks[0]  # the units' common structure; the weights are passed in
        nf = f.n_params(training)
        epsilon, c = self.epsilon, self._half
        loop = dict(parallel_iterations=1, maximum_iterations=units)

        def unit_major(arrays):
            """Per-slot TensorArrays written per unit -> [unit 0's slots..., unit 1's, ...]."""
            per_slot = [tf.unstack(a.stack(), num=units) for a in arrays]
            return [t for u in range(units) for t in (slot[u] for slot in per_slot)]

        @tf.custom_gradient
        def run(x, *params):
            # slot k of every unit, stacked: [units, *shape]
            stacked = [tf.stack(params[k::per]) for k in range(per)]
            with _record.stop_recording():
                # a unit's batch statistics: mean and variance of each of its BatchNorms
                n_stats = len(f.moving()) + len(g.moving()) if training else 0

                def forward(i, x1, x2, *arrays):
                    p = [s[i] for s in stacked]
                    stats = []
                    x1 = x1 + f.apply(x2, p[:nf], training, epsilon, stats)
                    x2 = x2 + g.apply(x1, p[nf:], training, epsilon, stats)
                    return (i + 1, x1, x2, *[a.write(i, v) for a, v in zip(arrays, stats)])

                arrays = [tf.TensorArray(tf.float32, size=units) for _ in range(n_stats)]
                _, y1, y2, *arrays = tf.while_loop(
                    lambda i, *_: i < units, forward, (0, x[..., :c], x[..., c:], *arrays),
                    **loop)
                y = tf.concat([y1, y2], axis=-1)
                stats = unit_major(arrays)

            def grad(dy, *unused_stat_grads):
                def backward(i, y1, y2, dy1, dy2, *arrays):
                    u = units - 1 - i
                    p = [s[u] for s in stacked]
                    pf, pg = p[:nf], p[nf:]
                    with tf.GradientTape() as tape:
                        tape.watch([y1] + pg)
                        gy1 = g.apply(y1, pg, training, epsilon)
                    x2 = y2 - gy1
                    grads_g = tape.gradient(gy1, [y1] + pg, output_gradients=dy2)
                    dz1 = dy1 + grads_g[0]
                    # G's gradients before F is re-run: the executor would otherwise run both,
                    # and hold both residual functions' activations at once
                    with tf.control_dependencies([d for d in grads_g if d is not None]):
                        x2 = tf.identity(x2)
                    with tf.GradientTape() as tape:
                        tape.watch([x2] + pf)
                        fx2 = f.apply(x2, pf, training, epsilon)
                    x1 = y1 - fx2
                    grads_f = tape.gradient(fx2, [x2] + pf, output_gradients=dz1)
                    dx2 = dy2 + grads_f[0]
                    dparams = [tf.zeros_like(w) if d is None else d
                               for w, d in zip(p, grads_f[1:] + grads_g[1:])]
                    return (i + 1, x1, x2, dz1, dx2,
                            *[a.write(u, d) for a, d in zip(arrays, dparams)])

                arrays = [tf.TensorArray(s.dtype, size=units) for s in stacked]
                _, _, _, dx1, dx2, *arrays = tf.while_loop(
                    lambda i, *_: i < units, backward,
                    (0, y[..., :c], y[..., c:], dy[..., :c], dy[..., c:], *arrays), **loop)
                return [tf.concat([dx1, dx2], axis=-1)] + unit_major(arrays)

            return [y] + stats, grad

        out = run(x, *params)
        return out[0], list(out[1:])

    def call(self, inputs, training=None):
        training = bool(training)
        x = tf.cast(inputs, self.compute_dtype)
        params = self._params(x.dtype, training)
        if self.reversible_backprop and training:  # inference: plain ops (exportable)
            y, stats = self._reversible(x, params, training)
        else:
            stats = [] if training else None
            y = self._forward(x, params, training, stats)
        if training and self.trainable:
            self._update_moving([b for fg in self.blocks for b in fg], stats)
        return y

    def inverse(self, outputs, training=False):
        """The input reconstructed from the output (Eq. 2, unit by unit from the last).
        ``training``: use batch statistics (as the backward pass does) instead of the moving
        ones; no statistics are updated."""
        y = tf.cast(outputs, self.compute_dtype)
        return self._inverse(y, self._params(y.dtype, bool(training)), bool(training))

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, bottleneck=self.bottleneck,
                      reversible_backprop=self.reversible_backprop)
        return config
