"""``DenseLayer``: a DenseNet-B layer (concatenation -> BN -> ReLU -> 1x1 -> BN -> ReLU -> 3x3)
whose concatenation, normalisations and ReLUs are recomputed in the backward pass (the
memory-efficient DenseNet).

Pleiss, Chen, Huang, Li, van der Maaten, Weinberger, "Memory-Efficient Implementation of
DenseNets", 2017 (arXiv:1707.06990): layer ``l`` of a dense block reads the concatenation of
every earlier map, ``[x_0, ..., x_{l-1}]``, normalises it and applies ReLU before its 1x1
convolution. A straightforward implementation keeps the concatenation and the normalised map of
every layer for the backward pass, ``O(l)`` channels each, so the stored activations grow
quadratically with the block's depth. Pleiss et al. keep only the ``x_i`` (which the network
needs anyway) and recompute the concatenation, the normalisation and the ReLU when the gradient
is taken; torchvision's ``DenseNet(memory_efficient=True)`` does the same with
``torch.utils.checkpoint`` around ``cat -> norm1 -> relu1 -> conv1``.

This layer does it for Keras on TensorFlow: called on the list ``[x_0, ..., x_{l-1}]`` in
training mode it runs the whole layer inside a ``tf.custom_gradient`` that keeps only the
inputs and the 1x1 convolution's ``4k``-channel output (not even that in layers that read at most
``8k`` maps, where recomputing the 1x1 convolution costs little). Its gradient function, which runs only
once the upstream gradient exists (a control dependency: a graph executor would otherwise
recompute as early as the forward pass), recomputes the concatenation, both batch
normalisations and both ReLUs (elementwise work) under ``tf.GradientTape``s and takes the two
convolutions' gradients with ``conv2d_backprop_input`` / ``_filter`` from the stored and
recomputed maps, so no other convolution runs twice. None of the ``O(l)``-channel intermediates
outlives the forward pass. The batch-normalisation statistics are the forward pass's and the
moving averages are updated once per step, outside the recomputed function
(:meth:`keras_cnns.layers.BatchNormalization.fused_training` / ``update_moving_statistics``).
Outside training (and for inputs the fused kernel does not take: other dtypes, another backend)
it is the plain composition, as in inference.

The BatchNormalizations and Conv2Ds are sublayers with their own names (keras.applications'
``conv2_block1_0_bn``, ``_1_conv``, ``_1_bn``, ``_2_conv``), so a weight bridge finds them by
name and the weights are the plain layers' ones.
"""

from __future__ import annotations

import keras

from keras_cnns._checks import check_positive_int, fail
from keras_cnns.layers.batch_norm import BatchNormalization

__all__ = ["DenseLayer"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class DenseLayer(keras.layers.Layer):
    """DenseNet-B's ``H_l``: ``concat -> BN -> ReLU -> Conv2D(bottleneck, 1) -> BN -> ReLU ->
    Conv2D(growth_rate, 3, "same")`` on a list of maps (no conv biases), memory-efficient in
    training (module docstring). Returns the ``growth_rate`` new maps.

    Args:
        growth_rate: ``k``, the new maps.
        bottleneck: the 1x1 convolution's maps (DenseNet-B: ``4k``).
        epsilon, momentum: BatchNormalization settings (Keras' momentum convention).
        kernel_initializer: both convolutions' kernel initializer.
        names: the sublayers' names ``(bn1, conv1, bn2, conv2)`` (default ``<name>_0_bn``,
            ``<name>_1_conv``, ``<name>_1_bn``, ``<name>_2_conv``).
        recompute: ``True`` (default) recomputes the concatenation, BNs and ReLUs in training,
            and the 1x1 convolution too (its ``bottleneck`` output is then not kept either)
            where that is cheap: when the layer reads at most ``2 * bottleneck`` maps, so a
            stored value saved costs at most two multiply-adds again (a block's first layers,
            where the maps are largest). ``"all"``: the 1x1 convolution in every layer;
            ``False``: the plain composition (same outputs, for comparisons).
        **kwargs: Keras layer arguments (``name``, ...).

    Raises:
        ValueError: ``growth_rate`` or ``bottleneck`` not a positive integer, inputs of
            different spatial sizes.
    """

    def __init__(self, growth_rate, bottleneck=None, epsilon=1.001e-5, momentum=0.99,
                 kernel_initializer="glorot_uniform", names=None, recompute=True, **kwargs):
        super().__init__(**kwargs)
        self.growth_rate = check_positive_int("growth_rate", growth_rate)
        self.bottleneck = check_positive_int("bottleneck", 4 * self.growth_rate
                                             if bottleneck is None else bottleneck)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if names is None:
            names = [f"{self.name}_{s}" for s in ("0_bn", "1_conv", "1_bn", "2_conv")]
        if not isinstance(names, (list, tuple)) or len(names) != 4 \
                or not all(isinstance(n, str) and n for n in names):
            fail("names", "must be four layer names (bn1, conv1, bn2, conv2)", names)
        self.names = list(names)
        if recompute not in (True, False, "all"):
            fail("recompute", "must be True, False or 'all'", recompute)
        self.recompute = recompute
        bn = dict(epsilon=self.epsilon, momentum=self.momentum)
        conv = dict(use_bias=False, kernel_initializer=self.kernel_initializer)
        self.norm1 = BatchNormalization(name=self.names[0], **bn)
        self.conv1 = keras.layers.Conv2D(self.bottleneck, 1, name=self.names[1], **conv)
        self.norm2 = BatchNormalization(name=self.names[2], **bn)
        self.conv2 = keras.layers.Conv2D(self.growth_rate, 3, padding="same", name=self.names[3],
                                         **conv)

    @staticmethod
    def _shapes(input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and \
                isinstance(input_shape[0], (list, tuple)):
            return [tuple(s) for s in input_shape]
        return [tuple(input_shape)]

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        if any(s[-1] is None for s in shapes):
            fail("inputs", "must have known channel counts", shapes)
        known = {tuple(s[1:3]) for s in shapes if None not in s[1:3]}
        if len(known) > 1:
            fail("inputs", "must have the same spatial size", shapes)
        side = (None,) + tuple(shapes[0][1:3])
        channels = sum(int(s[-1]) for s in shapes)
        self.norm1.build(side + (channels,))
        self.conv1.build(side + (channels,))
        self.norm2.build(side + (self.bottleneck,))
        self.conv2.build(side + (self.bottleneck,))
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(self._shapes(input_shape)[0][:3]) + (self.growth_rate,)

    def _plain(self, xs, training):
        x = keras.ops.concatenate(xs, axis=-1) if len(xs) > 1 else xs[0]
        x = self.conv1(keras.ops.relu(self.norm1(x, training=training)))
        return self.conv2(keras.ops.relu(self.norm2(x, training=training)))

    def call(self, inputs, training=None):
        xs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        channels = sum(int(x.shape[-1]) for x in xs)
        fusable = (self.norm1._fusable(_like(xs[0], channels), None)
                   and self.norm2._fusable(_like(xs[0], self.bottleneck), None))
        if not (training and self.recompute and self.trainable and fusable):
            return self._plain(xs, training)
        return self._recomputed(xs)

    def _recomputed(self, xs):
        import tensorflow as tf

        norm1, norm2 = self.norm1, self.norm2
        k1, k2 = self.conv1.kernel, self.conv2.kernel
        channels = sum(int(x.shape[-1]) for x in xs)
        recompute_conv = self.recompute == "all" or (
            self.recompute is True and channels <= 2 * self.bottleneck)

        def bn_relu(x, norm):
            y, mean, variance = norm.fused_training(x)
            return tf.nn.relu(y), mean, variance

        def first_half(parts):
            return bn_relu(tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0], norm1)

        @tf.custom_gradient
        def run(*parts):
            parts = list(parts)
            r1, m1, v1 = first_half(parts)
            c1 = tf.nn.conv2d(r1, k1, 1, "VALID")
            r2, m2, v2 = bn_relu(c1, norm2)
            out = tf.nn.conv2d(r2, k2, 1, "SAME")

            def grad(d_out, *unused, variables=None):
                del unused  # the statistics only feed the moving averages
                with tf.control_dependencies([d_out]):  # recompute only when needed
                    again = [tf.identity(p) for p in parts]
                    if not recompute_conv:
                        c1_again = tf.identity(c1)
                with tf.GradientTape() as tape1:
                    tape1.watch(again)
                    r1_again, _, _ = first_half(again)
                if recompute_conv:  # the 1x1 convolution again instead of its stored output
                    c1_again = tf.nn.conv2d(r1_again, k1, 1, "VALID")
                with tf.GradientTape() as tape2:
                    tape2.watch(c1_again)
                    r2_again, _, _ = bn_relu(c1_again, norm2)
                k2v = tf.convert_to_tensor(k2)
                d_r2 = tf.compat.v1.nn.conv2d_backprop_input(tf.shape(r2_again), k2v, d_out,
                                                             [1, 1, 1, 1], "SAME")
                d_k2 = tf.compat.v1.nn.conv2d_backprop_filter(r2_again, tf.shape(k2v), d_out,
                                                              [1, 1, 1, 1], "SAME")
                d_c1, d_g2, d_b2 = tape2.gradient(
                    r2_again, [c1_again, norm2.gamma.value, norm2.beta.value],
                    output_gradients=d_r2)
                k1v = tf.convert_to_tensor(k1)
                d_r1 = tf.compat.v1.nn.conv2d_backprop_input(tf.shape(r1_again), k1v, d_c1,
                                                             [1, 1, 1, 1], "VALID")
                d_k1 = tf.compat.v1.nn.conv2d_backprop_filter(r1_again, tf.shape(k1v), d_c1,
                                                              [1, 1, 1, 1], "VALID")
                found = tape1.gradient(r1_again, again + [norm1.gamma.value, norm1.beta.value],
                                       output_gradients=d_r1)
                d_parts, d_g1, d_b1 = found[:len(again)], found[-2], found[-1]
                by_variable = [(norm1.gamma, d_g1), (norm1.beta, d_b1), (k1, d_k1),
                               (norm2.gamma, d_g2), (norm2.beta, d_b2), (k2, d_k2)]
                d_vars = []
                for v in variables or []:
                    match = [g for kv, g in by_variable if v is kv.value]
                    d_vars.append(match[0] if match else None)
                return d_parts, d_vars

            stats = [tf.stop_gradient(t) for t in (m1, v1, m2, v2)]
            return (out, *stats), grad

        out, m1, v1, m2, v2 = run(*xs)
        norm1.update_moving_statistics(m1, v1)
        norm2.update_moving_statistics(m2, v2)
        return out

    def get_config(self):
        config = super().get_config()
        config.update(growth_rate=self.growth_rate, bottleneck=self.bottleneck,
                      epsilon=self.epsilon, momentum=self.momentum,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      names=list(self.names), recompute=self.recompute)
        return config


class _like:
    """A stand-in with the shape and dtype ``BatchNormalization._fusable`` looks at."""

    def __init__(self, x, channels):
        self.shape = tuple(x.shape[:-1]) + (channels,)
        self.dtype = x.dtype
