"""``DenseBottleneck``: DenseNet's concatenation -> BN -> ReLU -> 1x1 convolution, recomputed in
the backward pass (the memory-efficient DenseNet).

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
training mode it runs ``concat -> BN -> ReLU -> conv 1x1`` inside a ``tf.custom_gradient`` whose
gradient function recomputes them from the inputs (``tf.GradientTape``), so none of the
``O(l)``-channel intermediates outlives the forward pass; only its ``4k``-channel output is
kept. The batch-normalisation statistics are those of the forward pass and the moving averages
are updated once per step, outside the recomputed function
(:meth:`keras_cnns.layers.BatchNormalization.fused_training` /
``update_moving_statistics``). Outside training (and for inputs the fused kernel does not take:
other dtypes, another backend) it is the plain composition, as in inference.

The BatchNormalization and Conv2D are sublayers with their own names (keras.applications'
``conv2_block1_0_bn`` / ``conv2_block1_1_conv``), so a weight bridge finds them by name and the
weights are the plain layers' ones.
"""

from __future__ import annotations

import keras

from keras_cnns._checks import check_positive_int, fail
from keras_cnns.layers.batch_norm import BatchNormalization

__all__ = ["DenseBottleneck"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class DenseBottleneck(keras.layers.Layer):
    """``concat -> BatchNormalization -> ReLU -> Conv2D(filters, 1, use_bias=False)`` on a list
    of maps, recomputed in the backward pass in training (module docstring).

    Args:
        filters: output channels of the 1x1 convolution (DenseNet-B: ``4 * growth_rate``).
        epsilon: BatchNormalization epsilon.
        momentum: BatchNormalization momentum (Keras' convention).
        kernel_initializer: the convolution's kernel initializer.
        norm_name: name of the BatchNormalization sublayer (default ``<name>_bn``).
        conv_name: name of the Conv2D sublayer (default ``<name>_conv``).
        recompute: ``True`` (default) recomputes in training; ``False`` stores the
            intermediates like the plain layers (same outputs, for comparisons).
        **kwargs: Keras layer arguments (``name``, ...).

    Call arguments:
        inputs: a tensor or a list of 4-D channels-last tensors of the same spatial size.
        training: Keras' training flag.

    Raises:
        ValueError: ``filters`` not a positive integer, or inputs of different spatial sizes.
    """

    def __init__(self, filters, epsilon=1.001e-5, momentum=0.99,
                 kernel_initializer="glorot_uniform", norm_name=None, conv_name=None,
                 recompute=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.norm_name = norm_name or f"{self.name}_bn"
        self.conv_name = conv_name or f"{self.name}_conv"
        self.recompute = bool(recompute)
        self.norm = BatchNormalization(epsilon=self.epsilon, momentum=self.momentum,
                                       name=self.norm_name)
        self.conv = keras.layers.Conv2D(self.filters, 1, use_bias=False,
                                        kernel_initializer=self.kernel_initializer,
                                        name=self.conv_name)

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
        sides = {tuple(s[1:3]) for s in shapes}
        known = {side for side in sides if None not in side}
        if len(known) > 1:
            fail("inputs", "must have the same spatial size", shapes)
        channels = sum(int(s[-1]) for s in shapes)
        batch_shape = (None,) + tuple(shapes[0][1:3]) + (channels,)
        self.norm.build(batch_shape)
        self.conv.build(batch_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        return tuple(shapes[0][:3]) + (self.filters,)

    def _plain(self, xs, training):
        x = keras.ops.concatenate(xs, axis=-1) if len(xs) > 1 else xs[0]
        x = self.norm(x, training=training)
        return self.conv(keras.ops.relu(x))

    def call(self, inputs, training=None):
        xs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        channels = sum(int(x.shape[-1]) for x in xs)
        if not (training and self.recompute and self.norm.trainable
                and self.norm._fusable(_like(xs[0], channels), None)):
            return self._plain(xs, training)
        return self._recomputed(xs)

    def _recomputed(self, xs):
        import tensorflow as tf

        norm, conv = self.norm, self.conv

        def forward(parts):
            x = tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]
            y, mean, variance = norm.fused_training(x)
            out = tf.nn.conv2d(tf.nn.relu(y), tf.cast(conv.kernel, y.dtype), 1, "VALID")
            return out, mean, variance

        @tf.custom_gradient
        def run(*parts):
            out, mean, variance = forward(list(parts))

            def grad(d_out, d_mean, d_variance, variables=None):
                del d_mean, d_variance  # the statistics only feed the moving averages
                variables = list(variables or [])
                # Recompute only once the upstream gradient exists: in a graph the recomputation
                # depends on the forward inputs alone, and the executor would otherwise run it
                # as early as the forward pass, keeping every layer's intermediates alive again.
                with tf.control_dependencies([d_out]):
                    again_in = [tf.identity(p) for p in parts]
                with tf.GradientTape() as tape:
                    tape.watch(again_in)
                    again, _, _ = forward(again_in)
                grads = tape.gradient(again, again_in + variables, output_gradients=d_out)
                return grads[:len(parts)], grads[len(parts):]

            return (out, tf.stop_gradient(mean), tf.stop_gradient(variance)), grad

        out, mean, variance = run(*xs)
        norm.update_moving_statistics(mean, variance)
        return out

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, epsilon=self.epsilon, momentum=self.momentum,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      norm_name=self.norm_name, conv_name=self.conv_name,
                      recompute=self.recompute)
        return config


class _like:
    """A stand-in with the shape and dtype ``BatchNormalization._fusable`` looks at."""

    def __init__(self, x, channels):
        self.shape = tuple(x.shape[:-1]) + (channels,)
        self.dtype = x.dtype
