"""The pieces every family builder shares: inputs, the pooled/classifier head, the model.

A family builder reads like keras.applications::

    def VGG(..., include_top=True, weights=None, input_tensor=None, input_shape=None,
            pooling=None, classes=1000, classifier_activation="softmax", name=None):
        check_common_args(...)                 # + family checks, all before any layer
        img_input, inputs = make_input(shape, input_tensor)
        x = ...                                # the body
        if include_top: x = ... classifier(x, classes, classifier_activation)
        else: x = pool_features(x, pooling)
        return make_model(inputs, x, name, weights)
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import keras
from keras import layers

from keras_cnns.models._validation import check_common_args, resolve_input_shape

__all__ = [
    "make_input",
    "pool_features",
    "classifier",
    "make_model",
    "begin",
]


def begin(
    *,
    include_top: bool,
    weights: Any,
    input_tensor: Any,
    input_shape: Any,
    pooling: Any,
    classes: Any,
    classifier_activation: Any,
    name: Any,
    default_shape: Tuple[int, int, int],
    min_size: int,
    require_static: bool = False,
) -> Tuple[Optional[int], Optional[int], int]:
    """Run the shared checks and return the resolved ``(H, W, C)`` input shape."""
    check_common_args(
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
    )
    return resolve_input_shape(
        input_shape,
        input_tensor,
        default_shape=default_shape,
        min_size=min_size,
        require_static=require_static and include_top,
    )


def make_input(shape, input_tensor=None, name: str = "input"):
    """``(img_input, model_inputs)``: a new ``keras.Input`` or the given tensor and its sources."""
    if input_tensor is None:
        img_input = keras.Input(shape=shape, name=name)
        return img_input, img_input
    return input_tensor, keras.utils.get_source_inputs(input_tensor)


def pool_features(x, pooling: Optional[str], name: str = ""):
    """``include_top=False`` output: the 4-D feature map, or its global average/max pool."""
    prefix = f"{name}_" if name else ""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=f"{prefix}avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=f"{prefix}max_pool")(x)
    return x


def classifier(x, classes: int, classifier_activation, name: str = "predictions", **dense_kwargs):
    """A ``Dense(classes)`` with the classifier activation."""
    return layers.Dense(classes, activation=classifier_activation, name=name, **dense_kwargs)(x)


def make_model(inputs, outputs, name: str, weights: Any = None) -> keras.Model:
    """The functional model, with ``weights`` (a file path) loaded when given."""
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model
