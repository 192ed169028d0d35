"""``BatchNormalization``: Keras' layer, with TensorFlow's fused kernel in training mode.

Keras 3 (3.15) computes training-mode batch normalisation from separate ops on every backend
(``ops.moments``: mean, squared difference, mean; then the normalisation's multiplies and adds),
and their gradients add a ``Tile`` and more elementwise passes over the map. On TF's CPU that is
about half of a ShuffleNet v1 training step (a per-op profile of one step: ``Mul`` 26%,
``Tile`` 14%, ``Sum`` / ``SquaredDifference`` / ``Mean`` / ``Sub`` 13%, against 25% for every
convolution of the units; ``benchmarks/bench_shufflenet.py``). TensorFlow has one fused kernel
for it, forward and backward (``FusedBatchNormV3`` / ``FusedBatchNormGradV3``, in its Eigen
kernel set and in oneDNN's), which is what ``tf.keras`` (Keras 2) used by default.

This layer is ``keras.layers.BatchNormalization`` (same arguments, weights, names, config,
inference path) and, in training mode on the TensorFlow backend for a 4-D float32 input
normalised over its last axis (no mask, renorm or synchronisation), runs that kernel instead:
the same output and gradients (a test compares both with Keras' own layer) and the same moving
statistics (Keras' update rule with the *biased* batch variance; the kernel reports the
unbiased one, so it is scaled back by ``(n - 1) / n``). Everything else falls back to Keras'
code. Inference, and so every export, is Keras' own path (stock elementwise ops).
"""

from __future__ import annotations

import keras

__all__ = ["BatchNormalization"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with TensorFlow's fused training kernel (module
    docstring). Arguments, weights and behaviour are Keras'."""

    def _fusable(self, inputs, mask):
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4
                and self.axis in (3, -1) and inputs.shape[-1] is not None
                and keras.backend.standardize_dtype(inputs.dtype) == "float32"
                and self.compute_dtype == "float32")

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        y, mean, variance = self.fused_training(inputs)
        self.update_moving_statistics(mean, variance)
        return y

    def fused_training(self, inputs):
        """Training-mode normalisation of a fusable input (``_fusable``) with the fused kernel,
        *without* touching the moving statistics: ``(y, batch_mean, biased_batch_variance)``.
        A pure function of ``inputs``, ``gamma`` and ``beta``, so it can be recomputed in a
        backward pass (the memory-efficient DenseNet); :meth:`update_moving_statistics` applies
        the batch statistics once."""
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = (tf.cast(self.gamma, tf.float32) if self.scale
                 else tf.ones([channels], tf.float32))
        beta = (tf.cast(self.beta, tf.float32) if self.center
                else tf.zeros([channels], tf.float32))
        empty = tf.constant([], tf.float32)
        y, mean, unbiased, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=gamma, offset=beta, mean=empty, variance=empty,
            epsilon=float(self.epsilon), exponential_avg_factor=1.0, data_format="NHWC",
            is_training=True)
        n = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, tf.float32)
        variance = unbiased * ((n - 1.0) / tf.maximum(n, 1.0))
        return y, mean, variance

    def update_moving_statistics(self, mean, variance):
        """Keras' moving-average update with one batch's ``mean`` and biased ``variance``."""
        import tensorflow as tf

        momentum = self.momentum
        self.moving_mean.assign(tf.cast(self.moving_mean, tf.float32) * momentum
                                + tf.stop_gradient(mean) * (1.0 - momentum))
        self.moving_variance.assign(tf.cast(self.moving_variance, tf.float32) * momentum
                                    + tf.stop_gradient(variance) * (1.0 - momentum))
