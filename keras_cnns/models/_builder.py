"""The builder contract every family shares: common arguments, inputs, trunk, heads, model.

A family is a body decorated with :func:`family_builder`::

    @family_builder
    def VGG(depth=16, batch_norm=False, dropout=0.5, *, ctx):
        # docstring: "Args: depth, batch_norm, dropout ... {common_args}"
        check_choice("depth", depth, ...)      # family checks, before any layer
        x = ctx.start(default_shape=(224, 224, 3), min_size=32, require_static=True)
        x, features = ...                      # the trunk, and its levels {"P<k>": map}
        ctx.auxiliary(x4a, aux_head, name="aux1", loss_weight=0.3)   # optional side heads
        return ctx.finish(x, head=lambda x: ..., default_name=f"vgg{depth}",
                          features=features)

The public ``VGG`` then takes the knobs plus :data:`COMMON_ARGS`, checks them all first, and
:meth:`BuildContext.finish` builds what the call asks for from the trunk: the head (and the
auxiliary heads, as further outputs), or the pooling, or the declared feature levels. Every
family declares its levels (:class:`FeatureLevel`: name, map, channels, reduction and the
padding arithmetic that gives its side), as timm's ``feature_info`` does; the model carries its
:class:`~keras_cnns.models.heads.OutputSpec` per output (what ``train()``, the export and the
tuner read) and its levels (what :func:`feature_extractor` reads).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Dict, Mapping, Optional

import keras

from keras_cnns.models._validation import check_common_args, resolve_input_shape
from keras_cnns.models.heads import (OutputSpec, attach_output_specs, classifier, output_name,
                                     pool_features, pooled_classifier)

__all__ = [
    "BuildContext",
    "COMMON_ARGS",
    "COMMON_ARGS_DOC",
    "FeatureLevel",
    "declare_levels",
    "family_builder",
    "feature_extractor",
    "feature_level",
    "pyramid_levels",
    "make_input",
    "pool_features",
    "classifier",
    "make_model",
]


def make_input(shape, input_tensor=None, name: str = "input"):
    """``(img_input, model_inputs)``: a new ``keras.Input`` or the given tensor and its sources."""
    if input_tensor is None:
        img_input = keras.Input(shape=shape, name=name)
        return img_input, img_input
    return input_tensor, keras.utils.get_source_inputs(input_tensor)


def make_model(inputs, outputs, name: str, weights: Any = None) -> keras.Model:
    """The functional model, with ``weights`` (a file path) loaded when given, its plain
    convolutions on the custom op where the measured rule says it is faster
    (:func:`keras_cnns.layers.dispatch_plain_convolutions`)."""
    from keras_cnns.layers.conv import dispatch_plain_convolutions

    model = keras.Model(inputs, outputs, name=name)
    dispatch_plain_convolutions(model)
    if weights is not None:
        model.load_weights(weights)
    return model


# ------------------------------------------------------------------------------------------------
# The builder contract in one place: ``@family_builder`` + ``BuildContext``.
# ------------------------------------------------------------------------------------------------

#: The arguments every builder takes after its family knobs, with their defaults.
COMMON_ARGS = (
    ("include_top", True),
    ("weights", None),
    ("input_tensor", None),
    ("input_shape", None),
    ("pooling", None),
    ("classes", 1000),
    ("classifier_activation", "softmax"),
    ("name", None),
    ("features_only", False),
    ("out_indices", None),
)

#: Their documentation, substituted for ``{common_args}`` in every builder's docstring.
COMMON_ARGS_DOC = """\
        include_top: whether to include the classifier head (else the feature map, or its
            global pooling, is the output).
        weights: ``None`` (random initialisation) or the path of a weights file saved from a
            model of the same configuration.
        input_tensor: optional Keras tensor to use as the image input.
        input_shape: ``(H, W, C)``; the default is the architecture's native size. Sides below
            the architecture's minimum are refused.
        pooling: with ``include_top=False``: ``None`` (the 4-D feature map), ``"avg"`` or
            ``"max"`` (its global pooling).
        classes: number of classes.
        classifier_activation: activation of the predictions (``None`` for logits).
        name: model name (default: the registered variant's name).
        features_only: return a multi-scale feature extractor instead: a model whose outputs
            are a dict ``{"P<k>": map}``, ``P<k>`` the feature map at the end of the stride-2^k
            level (keras-hub's ``pyramid_outputs`` keys) as the family declares it; the head
            and ``pooling`` are left out.
        out_indices: with ``features_only``: the levels ``k`` to return (default: all levels
            the architecture declares; ``model_info(name).feature_levels()`` lists them)."""


@dataclasses.dataclass(frozen=True)
class FeatureLevel:
    """One declared feature level of a trunk (timm's ``feature_info``, keras-hub's
    ``pyramid_outputs``).

    Attributes:
        name: its key, ``"P<k>"`` for the map at reduction ``2^k`` (``"P0"``: full resolution).
        tensor: the map (the last one of the trunk at this reduction).
        channels: its channels.
        reduction: its stride relative to the input (``2^k``).
        extent: the padding arithmetic of the layers before it: an input side ``H`` gives a side
            of ``floor((H - extent) / reduction) + 1``. Every chain of convolutions and pools has
            this form (a "same" convolution is ``extent`` 1, so the default gives
            ``ceil(H / reduction)``; "valid" convolutions and pools add ``kernel - stride`` times
            the stride before them, as a receptive field does; a ceil-mode pool adds
            ``kernel - 2 * stride + 1``).
    """

    name: str
    tensor: Any
    channels: int
    reduction: int
    extent: int = 1

    def side(self, input_side: int) -> int:
        """The map's side for an input side of ``input_side``."""
        return (int(input_side) - self.extent) // self.reduction + 1

    @property
    def k(self) -> int:
        """``log2(reduction)``: the ``k`` of ``P<k>``."""
        return self.reduction.bit_length() - 1

    def describe(self) -> Dict[str, Any]:
        """The level without its tensor: ``{"level", "stride", "channels", "extent", "layer",
        "side"}`` (``side``: the map's height at the size it was built for, ``None`` if
        unknown)."""
        side = self.tensor.shape[1]
        return {"level": self.name, "stride": self.reduction, "channels": self.channels,
                "extent": self.extent, "layer": output_name(self.tensor),
                "side": None if side is None else int(side)}


def feature_level(name: str, tensor, reduction: Optional[int] = None, extent: int = 1):
    """A :class:`FeatureLevel` for ``tensor``; ``reduction`` defaults to ``2^k`` of a ``"P<k>"``
    name, ``channels`` is the tensor's last axis."""
    from keras_cnns._checks import fail

    if reduction is None:
        if not (isinstance(name, str) and name[:1] == "P" and name[1:].isdigit()):
            fail("reduction", f"must be given for a level not named P<k> ({name!r})", reduction)
        reduction = 2 ** int(name[1:])
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1 \
            or reduction & (reduction - 1):
        fail("reduction", "must be a power of two (1, 2, 4, ...)", reduction)
    if name != f"P{reduction.bit_length() - 1}":
        fail("name", f"must be 'P<k>' with 2^k = reduction ({reduction})", name)
    return FeatureLevel(name=name, tensor=tensor, channels=int(tensor.shape[-1]),
                        reduction=int(reduction), extent=int(extent))


def declare_levels(features: Mapping[str, Any]) -> Dict[str, FeatureLevel]:
    """The ordered, checked declaration of a trunk's levels from ``{"P<k>": tensor or
    FeatureLevel}`` (what :func:`keras_cnns.models._stages.build_stages` returns): sorted by
    reduction, each a :class:`FeatureLevel`.

    Raises:
        ValueError: an empty or malformed declaration (a family's bug: the message says which
            level).
    """
    from keras_cnns._checks import fail

    if not isinstance(features, Mapping) or not features:
        fail("features", "must be a non-empty mapping {'P<k>': tensor} of the trunk's levels",
             features)
    levels = {}
    for name, value in features.items():
        level = value if isinstance(value, FeatureLevel) else feature_level(name, value)
        if level.name != name:
            fail("features", f"key {name!r} holds level {level.name!r}", features)
        levels[name] = level
    return dict(sorted(levels.items(), key=lambda kv: kv[1].reduction))


class BuildContext:
    """The shared arguments of one builder call and the steps every family takes with them.

    A family body (decorated with :func:`family_builder`) checks its own knobs, calls
    :meth:`start` (resolves the input shape and creates the input), builds its trunk, declares
    its auxiliary heads (:meth:`auxiliary`) and returns :meth:`finish` with its declared feature
    levels (head or pooling or feature outputs, the model, the weights).
    """

    def __init__(self, common: dict):
        self.__dict__.update(common)
        self.shape = None
        self.inputs = None
        self._auxiliary = []

    def start(self, *, default_shape, min_size, require_static=False, input_name="input"):
        """Resolve ``(H, W, C)`` (``input_shape``, else ``input_tensor``'s, else
        ``default_shape``) against ``min_size`` and return the image input tensor.
        ``require_static``: the head flattens its map, so H and W must be known (only when the
        head is built)."""
        self.shape = resolve_input_shape(
            self.input_shape, self.input_tensor, default_shape=default_shape, min_size=min_size,
            require_static=require_static and self.include_top and not self.features_only,
        )
        img_input, self.inputs = make_input(self.shape, self.input_tensor, name=input_name)
        return img_input

    @property
    def head(self) -> bool:
        """Whether the classifier head (and any auxiliary head) is to be built."""
        return self.include_top and not self.features_only

    def auxiliary(self, x, head, *, name: str, loss_weight: float = 0.3, kind: str = "auxiliary",
                  served: bool = False):
        """Declare an auxiliary head on the intermediate map ``x``: :meth:`finish` builds
        ``head(x)`` (whose output layer must be named ``name``) after the main head when the head
        is built, and the model returns it after the main output, with an
        :class:`~keras_cnns.models.heads.OutputSpec` (``loss_weight``: its weight in the
        training loss; ``served``: whether the SavedModel serves it by default)."""
        spec = OutputSpec(name, kind, loss_weight, served)
        if any(s.name == name for s, _, _ in self._auxiliary):
            raise ValueError(f"auxiliary head {name!r} declared twice")
        self._auxiliary.append((spec, x, head))

    def finish(self, x, head=None, *, default_name: str, features):
        """The model: ``head(x)`` (and the auxiliary heads) when the head is built, else
        ``pooling`` of ``x``; with ``features_only`` the declared feature levels.

        ``features``: the trunk's levels, ``{"P<k>": tensor or FeatureLevel}`` (see
        :func:`declare_levels`): every family declares them."""
        name = self.name or default_name
        levels = declare_levels(features)
        if self.features_only:
            return _features_model(self, levels, name)
        if self.head:
            if head is None:
                raise ValueError(f"{default_name}: this architecture has no classifier head")
            main = head(x)
            specs = [OutputSpec(output_name(main), "classification")]
            outputs = [main]
            for spec, at, aux_head in self._auxiliary:
                out = aux_head(at)
                if output_name(out) != spec.name:
                    raise ValueError(f"auxiliary head {spec.name!r}: its output layer is named "
                                     f"{output_name(out)!r}")
                outputs.append(out)
                specs.append(spec)
            model = make_model(self.inputs, outputs if len(outputs) > 1 else main, name,
                               self.weights)
        else:
            out = pool_features(x, self.pooling)
            specs = [OutputSpec(output_name(out), "features", 0.0)]
            model = make_model(self.inputs, out, name, self.weights)
        attach_output_specs(model, specs)
        _attach_levels(model, levels)
        return model


#: The attribute of a built keras.Model holding its declared levels (layer names).
_LEVELS_ATTR = "_keras_cnns_feature_levels"


def _attach_levels(model, levels):
    object.__setattr__(model, _LEVELS_ATTR, [lv.describe() for lv in levels.values()])


def declared_levels(model) -> Optional[list]:
    """The levels a library-built model declared (:meth:`FeatureLevel.describe` each), or
    ``None`` for any other model."""
    return getattr(model, _LEVELS_ATTR, None)


def pyramid_levels(model) -> dict:
    """A shape probe for models from outside the library (the library's declare their levels):
    ``{k: layer_name}``: for each stride level ``2^k`` (k >= 1) of a single-input image
    model, the last layer (in construction order, padding layers left out) whose 4-D output
    has that stride, before a layer of a coarser level appears. Strides are ``round(log2(H_in / H_out))``; needs a static
    input height, and is meant for a model at its native input size (far smaller inputs round
    the strides of VALID convolutions and pools differently)."""
    h_in = model.inputs[0].shape[1]
    if h_in is None:
        raise ValueError("pyramid_levels needs a model with a static input height")
    levels, deepest = {}, 0
    for layer in model.layers:
        out = getattr(layer, "output", None)
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.ZeroPadding2D)) \
                or not hasattr(out, "shape"):
            continue  # a padded copy of a map is not a feature of its own
        if len(out.shape) != 4 or out.shape[1] is None or out.shape[1] == 0:
            continue
        k = int(round(math.log2(h_in / out.shape[1])))
        if k < 1 or k < deepest:
            continue
        levels[k] = layer.name
        deepest = k
    return levels


def _check_out_indices(out_indices, available):
    from keras_cnns._checks import fail

    if out_indices is None:
        return sorted(available)
    if isinstance(out_indices, (str, bytes)) or not hasattr(out_indices, "__iter__"):
        fail("out_indices", f"must be None or a sequence of levels from {sorted(available)}",
             out_indices)
    chosen = list(out_indices)
    if not chosen or any(isinstance(k, bool) or k not in available for k in chosen) \
            or len(set(chosen)) != len(chosen):
        fail("out_indices", f"must be distinct levels from {sorted(available)} "
                            "(P<k> = stride 2^k)", out_indices)
    return sorted(int(k) for k in chosen)


def _features_model(ctx, levels, name):
    available = {lv.k: lv for lv in levels.values()}
    chosen = _check_out_indices(ctx.out_indices, available)
    outputs = {f"P{k}": available[k].tensor for k in chosen}
    model = make_model(ctx.inputs, outputs, name)
    attach_output_specs(model, [OutputSpec(n, "features", 0.0) for n in sorted(outputs)])
    _attach_levels(model, {f"P{k}": available[k] for k in chosen})
    return model


def _unknown_arguments(builder_name, given, allowed):
    """Raise the ValueError for unknown keyword arguments ``given`` (a dict)."""
    import difflib

    lines = []
    for arg in given:
        close = difflib.get_close_matches(arg, allowed, n=1, cutoff=0.6)
        lines.append(f"`{arg}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
    raise ValueError(f"{builder_name}() got unknown argument(s) {', '.join(lines)}. Allowed: "
                     f"{', '.join(allowed)}. Received: {', '.join(f'{a}={v!r}' for a, v in given.items())}")


def family_builder(body=None, **defaults):
    """Turn a family body ``body(knob=..., ..., *, ctx)`` into a public builder.

    Used as ``@family_builder`` or ``@family_builder(classes=10)`` (other defaults for the
    common arguments).

    The public function takes the family knobs followed by :data:`COMMON_ARGS` (its signature
    says so, for ``help()`` and ``inspect``), runs the shared checks before any layer is built,
    rejects unknown keywords with a ``ValueError`` naming them (with a close match) and listing
    the allowed ones, and passes a :class:`BuildContext` to the body. ``{common_args}`` in the
    body's docstring becomes :data:`COMMON_ARGS_DOC`.
    """
    import functools
    import inspect

    if body is None:
        return functools.partial(family_builder, **defaults)
    unknown = set(defaults) - {n for n, _ in COMMON_ARGS}
    if unknown:
        raise TypeError(f"family_builder: unknown common argument(s) {sorted(unknown)}")
    sig = inspect.signature(body)
    knobs = [p for p in sig.parameters.values() if p.name != "ctx"]
    common = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(n, d))
              for n, d in COMMON_ARGS]
    public_sig = sig.replace(parameters=[p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                         for p in knobs] + common)
    allowed = [p.name for p in public_sig.parameters.values()]

    @functools.wraps(body)
    def public(*args, **kwargs):
        unknown = {k: v for k, v in kwargs.items() if k not in allowed}
        if unknown:
            _unknown_arguments(body.__name__, unknown, allowed)
        try:
            bound = public_sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise ValueError(f"{body.__name__}(): {exc}. Allowed: {', '.join(allowed)}") from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        shared = {n: values.pop(n) for n, _ in COMMON_ARGS}
        check_common_args(**{k: shared[k] for k in ("include_top", "weights", "input_tensor",
                                                     "pooling", "classes",
                                                     "classifier_activation", "name")})
        from keras_cnns._checks import fail

        if not isinstance(shared["features_only"], bool):
            fail("features_only", "must be True or False", shared["features_only"])
        if shared["features_only"] and shared["weights"] is not None:
            fail("weights", "cannot be combined with features_only=True: load the weights into "
                            "the full model, then take keras_cnns.models.feature_extractor(model)",
                 shared["weights"])
        if not shared["features_only"] and shared["out_indices"] is not None:
            fail("out_indices", "is only used with features_only=True", shared["out_indices"])
        return body(**values, ctx=BuildContext(shared))

    public.__signature__ = public_sig
    if body.__doc__:
        public.__doc__ = body.__doc__.replace("{common_args}", COMMON_ARGS_DOC)
    del public.__wrapped__  # help() and inspect show the public signature, not the body's
    return public


@contextlib.contextmanager
def shapes_only():
    """Build models whose weights are never allocated: inside, Keras defers every variable's
    initialisation (``keras.StatelessScope``); on leaving, the deferred variables are dropped.
    Shapes, parameter counts, :func:`keras_cnns.profile` and feature levels work on such a
    model; running it or reading its weights does not."""
    from keras.src.backend.common import global_state

    pending = list(global_state.get_global_attribute("uninitialized_variables", []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)


def feature_extractor(model, out_indices=None):
    """A multi-scale feature model from a built image model (e.g. one with loaded weights):
    outputs ``{"P<k>": map}`` at the end of each stride-2^k level. A model built by the library
    gives the levels its family declared; any other model (or one loaded from a file) is probed:
    :func:`pyramid_levels` reads the levels off its layers' output shapes."""
    declared = declared_levels(model)
    if declared is not None:
        layers_of = {int(lv["level"][1:]): lv["layer"] for lv in declared}
    else:
        layers_of = pyramid_levels(model)
    chosen = _check_out_indices(out_indices, layers_of)
    return keras.Model(model.inputs,
                       {f"P{k}": model.get_layer(layers_of[k]).output for k in chosen},
                       name=f"{model.name}_features")
