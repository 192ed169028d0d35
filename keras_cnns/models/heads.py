"""Heads and outputs: what a model returns, in one place.

A family body builds its trunk (the backbone) and declares its feature levels; the *task* is
what sits on top: the heads, and the outputs they give. This module holds

- the heads every family shares: :func:`pool_features` (``include_top=False``),
  :func:`classifier` / :func:`pooled_classifier` (global pooling, dropout, ``Dense(classes)``),
  :func:`auxiliary_classifier` (the side classifiers of GoogLeNet, Inception-v3, NASNet:
  Szegedy et al. 2015, section 5), :func:`spatial_classifier` (a 1x1 convolution giving a map
  of class scores: OverFeat, Sermanet et al. 2014; fully convolutional networks);
- :class:`OutputSpec`, the description of one output (its name, kind, loss weight, whether it
  is served), and :func:`output_specs`, which reads them off a built model. ``train()``, the
  evaluation, the SavedModel export, the profiler and the tuner read outputs through it instead
  of assuming ``model.outputs[0]``.

Detection and segmentation heads (boxes, masks) are added here as new :data:`OUTPUT_KINDS` with
their losses and metrics; :data:`OUTPUT_KINDS` says what each kind is trained and scored with.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from keras import layers

__all__ = [
    "OUTPUT_KINDS",
    "OutputSpec",
    "auxiliary_classifier",
    "classifier",
    "main_output",
    "output_specs",
    "pool_features",
    "pooled_classifier",
    "served_model",
    "served_outputs",
    "spatial_classifier",
]

#: Output kinds: what ``train()`` trains and scores each with (``loss``: the classification loss of
#: the recipe, ``metrics``: top-1 / top-5 accuracy), and the SavedModel output key prefix.
OUTPUT_KINDS = {
    # class probabilities (or logits) of the image: the main output of a classifier
    "classification": {"loss": "classification", "metrics": ("accuracy", "top5_accuracy")},
    # a side classifier on an intermediate map, trained with a loss weight, not served by default
    "auxiliary": {"loss": "classification", "metrics": ("accuracy",)},
    # a map of class scores (N, h, w, classes): OverFeat's dense evaluation, served as a map
    "score_map": {"loss": None, "metrics": ()},
    # a feature map or vector (include_top=False, features_only)
    "features": {"loss": None, "metrics": ()},
}


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """One output of a model.

    Attributes:
        name: the output's name (the name of the layer that gives it; the key of the dicts
            ``train()`` and the SavedModel use).
        kind: a key of :data:`OUTPUT_KINDS`.
        loss_weight: its weight in the training loss (the paper's 0.3 for GoogLeNet's auxiliary
            classifiers); 0 or a kind without a loss: not trained directly.
        served: whether the SavedModel serves it by default (auxiliary outputs are not).
    """

    name: str
    kind: str = "classification"
    loss_weight: float = 1.0
    served: bool = True

    def __post_init__(self):
        from keras_cnns._checks import fail

        if not isinstance(self.name, str) or not self.name:
            fail("name", "must be a non-empty string", self.name)
        if self.kind not in OUTPUT_KINDS:
            fail("kind", f"must be one of {sorted(OUTPUT_KINDS)}", self.kind)
        if isinstance(self.loss_weight, bool) or not isinstance(self.loss_weight, (int, float)) \
                or not self.loss_weight >= 0:
            fail("loss_weight", "must be a number >= 0", self.loss_weight)
        if not isinstance(self.served, bool):
            fail("served", "must be True or False", self.served)

    @property
    def trained(self) -> bool:
        """Whether ``train()`` puts a loss on this output."""
        return self.loss_weight > 0 and OUTPUT_KINDS[self.kind]["loss"] is not None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


#: The attribute of a built keras.Model holding its :class:`OutputSpec` tuple.
_SPECS_ATTR = "_keras_cnns_outputs"


def output_name(tensor) -> str:
    """The name of the layer that produced ``tensor``."""
    return tensor._keras_history[0].name


def attach_output_specs(model, specs) -> None:
    """Record ``specs`` (one per ``model.outputs``, in order) on ``model``."""
    specs = tuple(specs)
    if len(specs) != len(model.outputs):
        raise ValueError(f"{len(specs)} output specs for a model with {len(model.outputs)} "
                         "outputs")
    object.__setattr__(model, _SPECS_ATTR, specs)


def output_specs(model) -> Tuple[OutputSpec, ...]:
    """The :class:`OutputSpec` of each of ``model.outputs``, in order.

    Models built by the library carry them. For any other model (or one loaded from a ``.keras``
    file, which does not keep Python attributes): the first output is the main one (a
    ``"classification"`` output if it is 2-D, else ``"features"``), and outputs whose name starts
    with ``aux`` are ``"auxiliary"`` with weight 0.3 (Szegedy et al. 2015); other outputs are
    ``"features"``, not trained."""
    specs = getattr(model, _SPECS_ATTR, None)
    if specs is not None and len(specs) == len(model.outputs):
        return specs
    found = []
    for i, tensor in enumerate(model.outputs):
        name = output_name(tensor)
        if i == 0:
            kind = "classification" if len(tensor.shape) == 2 else "features"
            found.append(OutputSpec(name, kind))
        elif name.startswith("aux"):
            found.append(OutputSpec(name, "auxiliary", 0.3, served=False))
        else:
            found.append(OutputSpec(name, "features", 0.0, served=False))
    return tuple(found)


def main_output(model) -> Tuple[int, OutputSpec]:
    """``(index, spec)`` of the main output: the first served one."""
    for i, spec in enumerate(output_specs(model)):
        if spec.served:
            return i, spec
    return 0, output_specs(model)[0]


def served_model(model):
    """``model`` itself, or for a model with several outputs the model of its main output
    (:func:`main_output`: auxiliary classifiers are training-only), sharing its layers and
    weights: what TFLite converts and what a cost budget counts."""
    if len(model.outputs) == 1:
        return model
    import keras

    index, _ = main_output(model)
    return keras.Model(model.inputs, model.outputs[index], name=model.name)


def served_outputs(model, include=None) -> list:
    """``[(index, spec), ...]`` of the outputs to serve: the served ones, plus those named in
    ``include`` (e.g. an auxiliary output on request).

    Raises:
        ValueError: a name in ``include`` that is not an output of ``model``.
    """
    specs = output_specs(model)
    names = [s.name for s in specs]
    include = [] if include is None else list(include)
    for n in include:
        if n not in names:
            from keras_cnns._checks import fail

            fail("outputs", f"must name outputs of the model, from {names}", include)
    return [(i, s) for i, s in enumerate(specs) if s.served or s.name in include]


# ------------------------------------------------------------------------------------------------
# Heads
# ------------------------------------------------------------------------------------------------

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


def pooled_classifier(x, ctx, dropout: float = 0.0, dropout_name: str = "dropout",
                      name: str = "predictions", **dense_kwargs):
    """The usual head: global average pooling (``avg_pool``), dropout when ``dropout > 0``, and
    :func:`classifier` with the context's classes and activation."""
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=dropout_name)(x)
    return classifier(x, ctx.classes, ctx.classifier_activation, name=name, **dense_kwargs)


def auxiliary_classifier(x, classes: int, classifier_activation="softmax", *, name: str,
                         pool_size: int = 5, pool_strides: int = 3, filters: int = 128,
                         units: int = 1024, dropout: float = 0.7, batch_norm: bool = False):
    """A side classifier on an intermediate map (GoogLeNet, Szegedy et al. 2015, section 5: "an
    average pooling layer with 5x5 filter size and stride 3, a 1x1 convolution with 128 filters
    ... a fully connected layer with 1024 units ... a dropout layer with 70% ratio ... a linear
    layer with softmax loss"): ``AveragePooling(pool_size, pool_strides) -> Conv 1x1 (filters)
    [-> BN] -> ReLU -> Flatten -> Dense(units) -> ReLU -> Dropout -> Dense(classes)``. Maps
    smaller than the pool are pooled globally (keeping 1x1). Layer names start with ``name``;
    the output layer is named ``name``."""
    h = x.shape[1]
    if h is not None and h < pool_size:
        x = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    else:
        x = layers.AveragePooling2D(pool_size, strides=pool_strides, name=f"{name}_pool")(x)
    x = layers.Conv2D(filters, 1, use_bias=not batch_norm, name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(units, name=f"{name}_fc")(x)
    x = layers.ReLU(name=f"{name}_fc_relu")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return layers.Dense(classes, activation=classifier_activation, name=name)(x)


def spatial_classifier(x, classes: int, classifier_activation="softmax", *,
                       name: str = "score_map", kernel_size: int = 1):
    """A map of class scores: ``Conv(classes, kernel_size)`` applied at every position, with the
    classifier activation over the class axis (OverFeat's dense sliding-window evaluation as a
    convolution, Sermanet et al. 2014). Output ``(N, h, w, classes)``."""
    x = layers.Conv2D(classes, kernel_size, name=f"{name}_conv")(x)
    return layers.Activation(classifier_activation or "linear", name=name)(x)
