"""Local Response Normalization across channels (AlexNet).

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012, Sec. 3.3::

    b[x, y, i] = a[x, y, i] / (k + alpha' * sum_{j=max(0, i-r)}^{min(C-1, i+r)} a[x, y, j]^2) ** beta

with ``k=2, n=5 (r=2), alpha=1e-4, beta=0.75``. Caffe's ``LRN`` layer (and so the released
AlexNet/CaffeNet/GoogLeNet models and torchvision's ``LocalResponseNorm``) uses
``alpha' = alpha / n``; TensorFlow's ``tf.nn.local_response_normalization`` uses
``alpha' = alpha``. ``alpha_is_per_element=True`` (default) selects the Caffe convention.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_cnns._checks import check_float

__all__ = ["LocalResponseNormalization"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class LocalResponseNormalization(keras.layers.Layer):
    """Cross-channel LRN, ``b = a / (k + alpha' * sum_window a^2) ** beta`` (channels last).

    The window covers channels ``i - depth_radius .. i + depth_radius`` (clipped at the edges),
    ``n = 2 * depth_radius + 1``.

    Args:
        depth_radius: half-width ``r`` of the channel window (``n = 2r + 1``), integer >= 0.
        bias: ``k``.
        alpha: scale. With ``alpha_is_per_element=True`` the sum is multiplied by ``alpha / n``
            (Caffe / torchvision convention); with ``False`` by ``alpha`` (TF convention).
        beta: exponent.
        alpha_is_per_element: see ``alpha``.
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: ``depth_radius`` not a non-negative integer, ``alpha`` or ``bias`` negative,
            ``beta`` not a number, or input not 4-D.
    """

    def __init__(self, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75, alpha_is_per_element=True,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(depth_radius, bool) or not isinstance(depth_radius, int) or depth_radius < 0:
            raise ValueError("`depth_radius` must be a non-negative integer. "
                             f"Received: depth_radius={depth_radius!r}")
        self.depth_radius = depth_radius
        self.bias = check_float("bias", bias, 0.0)
        self.alpha = check_float("alpha", alpha, 0.0)
        self.beta = check_float("beta", beta)
        if not isinstance(alpha_is_per_element, bool):
            raise ValueError("`alpha_is_per_element` must be a bool. "
                             f"Received: alpha_is_per_element={alpha_is_per_element!r}")
        self.alpha_is_per_element = alpha_is_per_element
        self.input_spec = keras.layers.InputSpec(ndim=4)

    @property
    def effective_alpha(self):
        """The coefficient passed to ``tf.nn.local_response_normalization``."""
        n = 2 * self.depth_radius + 1
        return self.alpha / n if self.alpha_is_per_element else self.alpha

    def call(self, inputs):
        dtype = inputs.dtype
        x = tf.cast(inputs, tf.float32) if dtype != tf.float32 else inputs
        y = tf.nn.local_response_normalization(
            x, depth_radius=self.depth_radius, bias=self.bias, alpha=self.effective_alpha,
            beta=self.beta,
        )
        return tf.cast(y, dtype) if dtype != tf.float32 else y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "depth_radius": self.depth_radius,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
            "alpha_is_per_element": self.alpha_is_per_element,
        })
        return config
