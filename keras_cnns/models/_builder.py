"""The builder contract every family shares: common arguments, inputs, head, features, model.

A family is a body decorated with :func:`family_builder`::

    @family_builder
    def VGG(depth=16, batch_norm=False, dropout=0.5, *, ctx):
        # docstring: "Args: depth, batch_norm, dropout ... {common_args}"
        check_choice("depth", depth, ...)      # family checks, before any layer
        x = ctx.start(default_shape=(224, 224, 3), min_size=32, require_static=True)
        x = ...                                # the body
        return ctx.finish(x, head=lambda x: ..., default_name=f"vgg{depth}")

The public ``VGG`` then takes the knobs plus :data:`COMMON_ARGS`, checks them all first and
builds the head, the pooling or the feature outputs in :meth:`BuildContext.finish`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Optional

import keras
from keras import layers

from keras_cnns.models._validation import check_common_args, resolve_input_shape

__all__ = [
    "BuildContext",
    "COMMON_ARGS",
    "COMMON_ARGS_DOC",
    "family_builder",
    "feature_extractor",
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


def make_model(inputs, outputs, name: str, weights: Any = None) -> keras.Model:
    """The functional model, with ``weights`` (a file path) loaded when given."""
    model = keras.Model(inputs, outputs, name=name)
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
            level (keras-hub's ``pyramid_outputs`` keys); the head and ``pooling`` are left out.
        out_indices: with ``features_only``: the levels ``k`` to return (default: all levels
            the architecture has; ``model_info(name).feature_levels()`` lists them)."""


class BuildContext:
    """The shared arguments of one builder call and the steps every family takes with them.

    A family body (decorated with :func:`family_builder`) checks its own knobs, calls
    :meth:`start` (resolves the input shape and creates the input), builds its layers, and
    returns :meth:`finish` (head or pooling or feature outputs, the model, the weights).
    """

    def __init__(self, common: dict, probe: bool = False):
        self.__dict__.update(common)
        self.shape = None
        self.inputs = None
        self._probe = probe
        self._levels = None  # layer names of the feature levels, found on a static-shape probe

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
        """Whether the classifier head is to be built."""
        return self.include_top and not self.features_only

    def finish(self, x, head=None, *, default_name: str, features=None):
        """The model: ``head(x)`` when the head is built, else ``pooling`` of ``x``; with
        ``features_only`` the feature levels (``features``, a dict ``{"P<k>": tensor}``, when
        the family knows them, else found in the graph, see :func:`pyramid_levels`)."""
        name = self.name or default_name
        if self.features_only:
            return _features_model(self, x, features, name)
        if self.head:
            if head is None:
                raise ValueError(f"{default_name}: this architecture has no classifier head")
            x = head(x)
        else:
            x = pool_features(x, self.pooling)
        return make_model(self.inputs, x, name, self.weights)


def pyramid_levels(model) -> dict:
    """``{k: layer_name}``: for each stride level ``2^k`` (k >= 1) of a single-input image
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


def _features_model(ctx, x, features, name):
    if features is None:
        backbone = keras.Model(ctx.inputs, x)
        if ctx._levels is None:
            ctx._levels = pyramid_levels(backbone)
        if ctx._probe:  # only the layer names of the levels are wanted
            return backbone
        features = {f"P{k}": backbone.get_layer(layer).output for k, layer in ctx._levels.items()}
    available = {int(key[1:]): tensor for key, tensor in features.items()}
    chosen = _check_out_indices(ctx.out_indices, available)
    return keras.Model(ctx.inputs, {f"P{k}": available[k] for k in chosen}, name=name)


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
        ctx = BuildContext(shared)
        if shared["features_only"] and (shared["input_shape"] is not None
                                        or shared["input_tensor"] is not None):
            # A level is the architecture's nominal stride 2^k, read off the graph at the native
            # input size (at other sizes VALID convolutions and pools round it, and unknown sides
            # give none): find the levels' layers on a probe at that size, select them by name.
            ctx._levels = _probe_levels(body, values, shared)
        model = body(**values, ctx=ctx)
        if shared["features_only"] and ctx._levels is not None:
            # a build at the native size found the levels: later probes reuse them
            _LEVELS_CACHE.setdefault(_levels_key(body, values, shared), dict(ctx._levels))
        return model

    public.__signature__ = public_sig
    if body.__doc__:
        public.__doc__ = body.__doc__.replace("{common_args}", COMMON_ARGS_DOC)
    del public.__wrapped__  # help() and inspect show the public signature, not the body's
    return public


#: Layer names of the feature levels per family body and knobs, found on probes at the native size.
_LEVELS_CACHE: dict = {}


def _levels_key(body, values, shared):
    return body.__module__, body.__qualname__, repr(sorted(values.items())), shared["name"]


def _probe_levels(body, values, shared):
    """The ``{k: layer_name}`` levels of ``body(**values)`` at its native input size: built once
    per process and set of knobs, in a ``keras.StatelessScope`` (only shapes are needed, so no
    weight is allocated or initialised)."""
    key = _levels_key(body, values, shared)
    if key not in _LEVELS_CACHE:
        probe = BuildContext(dict(shared, input_shape=None, input_tensor=None, out_indices=None),
                             probe=True)
        with shapes_only():
            body(**values, ctx=probe)
        _LEVELS_CACHE[key] = None if probe._levels is None else dict(probe._levels)
    levels = _LEVELS_CACHE[key]
    return None if levels is None else dict(levels)


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
    """A multi-scale feature model from any built image model (e.g. one with loaded weights):
    outputs ``{"P<k>": map}`` at the end of each stride-2^k level (:func:`pyramid_levels`)."""
    levels = pyramid_levels(model)
    chosen = _check_out_indices(out_indices, levels)
    return keras.Model(model.inputs, {f"P{k}": model.get_layer(levels[k]).output for k in chosen},
                       name=f"{model.name}_features")
