"""Fully connected layers as convolutions on whole models: :func:`fc_to_conv` and OverFeat's
multi-scale evaluation, :func:`multiscale_predict`.

Sermanet et al., "OverFeat: Integrated Recognition, Localization and Detection using
Convolutional Networks", ICLR 2014 (arXiv:1312.6229), Sec. 3.3-3.5: a classifier trained on
fixed-size crops (``Flatten -> Dense -> ... -> Dense``) is a convolutional network whose first
FC layer is a convolution with the kernel of the map it flattens and whose later FC layers are
1x1 convolutions; applied to a larger image it computes, in one pass and sharing the work of the
overlapping windows, the classifier's output at every window of the training size, at the
network's total stride. Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015, Sec. 3.1, use the same conversion ("convolutionalization").
Simonyan & Zisserman (VGG, ICLR 2015, Sec. 3.2) evaluate their nets the same way ("the
fully-connected layers are first converted to convolutional layers (the first FC layer to a 7x7
conv. layer, the last two FC layers to 1x1 conv. layers)"), then average the class score map
spatially and over horizontal flips.
"""

from __future__ import annotations

import numbers
from typing import Optional

import keras
import numpy as np
from keras import layers, tree

from keras_cnns._checks import check_bool, check_choice, check_positive_int, fail
from keras_cnns.layers.conv_fc import dense_to_conv_kernel

__all__ = ["fc_to_conv", "multiscale_predict"]

#: Layers that act on the last axis only, or element by element: after the Flatten they act on
#: the class / unit axis of every cell of the map exactly as on the vector.
_PER_CELL = (layers.Dropout, layers.AlphaDropout, layers.GaussianDropout, layers.GaussianNoise,
             layers.ReLU, layers.LeakyReLU, layers.ELU, layers.Activation, layers.Identity,
             layers.Softmax)
#: Pools that are the identity when their output size equals their input size (torchvision's
#: AlexNet ``AdaptiveAvgPool2d((6, 6))`` at 224x224): dropped, so the trunk slides.
_ADAPTIVE = tuple(getattr(layers, n) for n in ("AdaptiveAveragePooling2D",
                                               "AdaptiveMaxPooling2D") if hasattr(layers, n))


def _unallocated(layer) -> bool:
    """Whether ``layer``'s weights were never allocated (a model built under
    :func:`keras_cnns.models.shapes_only`): then only the shapes are converted."""
    return any(getattr(w, "_value", 0) is None for w in layer.weights)


def _describe(op) -> str:
    return f"layer {op.name!r} ({type(op).__name__})"


def _graph(model):
    """The functional graph to convert: the model's main output (auxiliary classifiers are
    training-only) from its one image input."""
    from keras_cnns.models.heads import served_model

    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            fail("model", "must be built (a Sequential model with a known input shape)", model)
        model = functional
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        fail("model", "must be a functional (or built Sequential) keras.Model", model)
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        fail("model", "must have one image input (batch, height, width, channels)",
             getattr(model, "name", model))
    return served_model(model)


def _check_input_shape(input_shape, channels):
    if input_shape is None:
        return (None, None, channels)
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__") \
            or len(input_shape) != 3:
        fail("input_shape", "must be None or a tuple (height, width, channels)", input_shape)
    h, w, c = input_shape
    for v in (h, w):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1):
            fail("input_shape", "must have positive integer (or None) height and width",
                 input_shape)
    if c != channels:
        fail("input_shape", f"must keep the model's {channels} channels", input_shape)
    return (None if h is None else int(h), None if w is None else int(w), int(c))


def _dense_as_conv(dense, kernel_hw, channels):
    """A ``Conv2D`` equal to ``dense`` on a ``kernel_hw`` x ``channels`` map flattened in
    ``(h, w, c)`` order (Keras ``Flatten`` of an NHWC map): the same name, activation and bias,
    the kernel reshaped to ``[h, w, c, units]`` (an exact copy)."""
    if getattr(dense, "quantization_mode", None):
        raise ValueError(f"fc_to_conv: {_describe(dense)} is quantized "
                         f"({dense.quantization_mode}); convert the float model")
    conv = layers.Conv2D(dense.units, kernel_hw, padding="valid", activation=dense.activation,
                         use_bias=dense.use_bias, name=dense.name, dtype=dense.dtype_policy)
    conv.build((None, None, None, channels))
    if _unallocated(dense):
        return conv
    weights = [dense_to_conv_kernel(keras.ops.convert_to_numpy(dense.kernel),
                                    (*kernel_hw, channels))]
    if dense.use_bias:
        weights.append(keras.ops.convert_to_numpy(dense.bias))
    conv.set_weights(weights)
    return conv


def _output_spec(model, shape):
    """The symbolic output of ``model`` for an input of ``shape``, through its layers'
    ``compute_output_spec`` (no input-shape check against the model's own input, no new node)."""
    return tree.flatten(model._run_through_graph(
        [keras.KerasTensor(shape, dtype=model.inputs[0].dtype)],
        call_fn=lambda op, *args, **kwargs: op.compute_output_spec(*args, **kwargs)))[0]


def _clone(op):
    """A copy of ``op`` (same config, same weights once called)."""
    return op.__class__.from_config(op.get_config())


def fc_to_conv(model, input_shape=None, name: Optional[str] = None):
    """The fully convolutional equivalent of a ``Flatten -> Dense ...`` classifier.

    The model's trunk (every layer before the ``Flatten``) is copied layer by layer with its
    weights; the first ``Dense`` after the ``Flatten`` becomes a "valid" ``Conv2D`` whose kernel
    is the size of the flattened map (its ``[h * w * c, units]`` kernel reshaped to ``[h, w, c,
    units]``: Keras flattens an NHWC map in ``(h, w, c)`` order), every later ``Dense`` a 1x1
    ``Conv2D``, under the same names; dropout and activations stay as they are (a softmax acts
    on the last axis: the classes of each cell). An adaptive pool that is the identity at the
    model's input size (torchvision's AlexNet: 6x6 -> 6x6 at 224) is dropped. Works for the
    library's AlexNet, ZFNet, VGG and OverFeat and for any functional model whose main output
    is such a head.

    The result is an independent model (exact copies of the weights; training one does not
    change the other): at the model's input size it gives a ``(N, 1, 1, classes)`` map equal to
    the model's output; on a larger image, a map of class scores ``(N, h, w, classes)`` whose
    cell ``(i, j)`` is the model's head applied to the window at ``(i, j)`` of the trunk's map
    (the network's total stride ``s`` apart in the image: the window the crop at ``(i * s, j *
    s)`` gives). For a trunk without padding that is exactly the model applied to that crop.
    With zero padding inside the trunk (AlexNet, VGG, OverFeat's 3x3 layers) a crop sees zeros
    at its borders where the larger image has pixels, so a cell is the model on its window with
    the surrounding context instead (for VGG-16 on 384x384 with random weights the 36 cells
    differ from the 36 crops by up to ~30% of the scores' scale): the dense evaluation of
    OverFeat and VGG, not 36 separate crops. Its output carries the ``"score_map"`` output kind
    and the model's declared feature levels.

    Args:
        model: a functional (or built ``Sequential``) ``keras.Model`` with one image input, a
            static input size and a ``Flatten -> Dense [-> Dropout / activation] -> Dense ...``
            head on its main output (auxiliary classifiers are left out).
        input_shape: ``None`` (the default: free height and width, ``(None, None, C)``) or
            ``(H, W, C)`` with the model's channels; sides below the model's are refused.
        name: the new model's name (default ``"<model.name>_fully_conv"``).

    Returns:
        A ``keras.Model`` with output ``(N, h, w, classes)``.

    Raises:
        ValueError: ``model`` is not such a classifier (no Flatten on its main output, a global
            pooling head, a layer after the Flatten that does not act per unit, a second
            Flatten, a non-static map before the Flatten; the message names the layer), or a
            bad ``input_shape``.
    """
    from keras_cnns.models._builder import _LEVELS_ATTR, declared_levels
    from keras_cnns.models.heads import OutputSpec, attach_output_specs, output_name

    graph = _graph(model)
    h0, w0, channels = graph.inputs[0].shape[1:]
    if h0 is None or w0 is None:
        fail("model", "must have a static input size (the size its Flatten head was built "
                      "for)", graph.inputs[0].shape)
    shape = _check_input_shape(input_shape, channels)
    new_input = keras.Input(shape=shape, name=graph.inputs[0].name)
    tensors = {id(graph.inputs[0]): new_input}
    # the role of each tensor after the Flatten: "map" (the flattened map: its Dense is an
    # h x w convolution) or "units" (a later vector: 1x1)
    role = {}
    flattened = None  # (h, w, c) of the map the Flatten reads
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            op = node.operation
            if op is None or node.is_input:
                continue
            if any(id(x) not in tensors for x in node.input_tensors):
                continue
            args, kwargs = node.arguments.fill_in(tensors)
            roles = {role[id(x)] for x in node.input_tensors if id(x) in role}
            if isinstance(op, layers.Flatten):
                if roles:
                    raise ValueError(f"fc_to_conv: {_describe(op)} flattens a second time; only "
                                     "one Flatten head can be made convolutional")
                fshape = tuple(node.input_tensors[0].shape[1:])
                if len(fshape) != 3 or None in fshape or \
                        getattr(op, "data_format", "channels_last") != "channels_last":
                    raise ValueError(f"fc_to_conv: {_describe(op)} must flatten a static NHWC "
                                     f"map (h, w, c); its input is {fshape}")
                flattened, out, new_role = fshape, args[0], "map"
            elif roles:
                if len(node.input_tensors) != 1:
                    raise ValueError(f"fc_to_conv: {_describe(op)} after the Flatten combines "
                                     "several inputs; only Dense layers, dropout and "
                                     "activations can follow it")
                if isinstance(op, layers.Dense):
                    kernel_hw = flattened[:2] if roles == {"map"} else (1, 1)
                    cin = flattened[2] if roles == {"map"} else node.input_tensors[0].shape[-1]
                    out, new_role = _dense_as_conv(op, kernel_hw, cin)(args[0]), "units"
                elif isinstance(op, _PER_CELL):
                    if isinstance(op, layers.Softmax) and op.axis not in (-1, [-1], (-1,)):
                        raise ValueError(f"fc_to_conv: {_describe(op)} acts on axis {op.axis}; "
                                         "only the last axis can stay per cell")
                    out, new_role = _clone(op)(*args, **kwargs), roles.pop()
                else:
                    raise ValueError(f"fc_to_conv: {_describe(op)} after the Flatten cannot be "
                                     "made convolutional: only Dense layers, dropout and "
                                     "activations can follow the Flatten")
            else:
                in_shape = tuple(node.input_tensors[0].shape)
                out_shape = tuple(tree.flatten(node.outputs)[0].shape)
                if isinstance(op, _ADAPTIVE) and len(in_shape) == 4 and in_shape == out_shape:
                    out, new_role = args[0], None   # the identity at the model's size
                elif isinstance(op, _ADAPTIVE):
                    raise ValueError(f"fc_to_conv: {_describe(op)} resizes its {in_shape[1:3]} "
                                     f"map to {out_shape[1:3]} at the model's input size; only "
                                     "an adaptive pool that is the identity there can be dropped")
                elif len(in_shape) == 4 and len(out_shape) == 2:
                    raise ValueError(f"fc_to_conv: {_describe(op)} turns the map into a vector "
                                     "(a global-pooling head?): fc_to_conv converts a Flatten + "
                                     "Dense head; a global-pooling head already takes any size")
                else:
                    try:
                        clone = _clone(op)
                        out = clone(*args, **kwargs)
                    except Exception as exc:  # noqa: BLE001 - re-raised with the layer's name
                        raise ValueError(f"fc_to_conv: {_describe(op)} cannot run on a map of "
                                         f"another size: {exc}") from exc
                    if not _unallocated(op):
                        clone.set_weights(op.get_weights())
                    new_role = None
            for x, y in zip(node.outputs, tree.flatten(out)):
                tensors[id(x)] = y
                if new_role is not None:
                    role[id(x)] = new_role
    main = graph.outputs[0]
    if flattened is None or id(main) not in role:
        raise ValueError("fc_to_conv: `model` has no Flatten layer on the path to its main "
                         f"output {output_name(main)!r} (output shape {tuple(main.shape)}): "
                         "nothing to convert")
    if role[id(main)] != "units":
        raise ValueError("fc_to_conv: `model` has no Dense layer after its Flatten")
    converted = keras.Model(new_input, tensors[id(main)],
                            name=name or f"{graph.name}_fully_conv")
    # at the model's own size the converted model gives one cell
    spec = _output_spec(converted, (1, h0, w0, channels))
    if tuple(spec.shape[1:3]) != (1, 1):
        raise ValueError(f"fc_to_conv: at the model's input size {h0}x{w0} the converted model "
                         f"gives a {tuple(spec.shape[1:3])} map, not 1x1: a layer before the "
                         "Flatten depends on the input size")
    attach_output_specs(converted, [OutputSpec(output_name(converted.outputs[0]), "score_map")])
    levels = declared_levels(model)
    if levels is not None:
        side = shape[0]
        object.__setattr__(converted, _LEVELS_ATTR, [
            dict(lv, side=None if side is None else (side - lv["extent"]) // lv["stride"] + 1)
            for lv in levels])
    return converted


# ------------------------------------------------------------------------------------------------
# Multi-scale evaluation
# ------------------------------------------------------------------------------------------------

def _map_side(model, h, w, channels):
    """The score map's ``(h, w)`` for an ``h x w`` input, or ``None`` where the model cannot run
    at that size (a map would be empty)."""
    try:
        spec = _output_spec(model, (1, h, w, channels))
    except Exception:  # noqa: BLE001 - too small for some layer
        return None
    out = tuple(spec.shape[1:3])
    if any(v is None or v < 1 for v in out):
        return None
    return out


def _min_side(model, channels, limit=4096):
    """The smallest square side the model runs at (binary search), or ``None`` beyond
    ``limit``."""
    if _map_side(model, limit, limit, channels) is None:
        return None
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if _map_side(model, mid, mid, channels) is None:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _check_scales(scales, model, channels, fixed):
    if isinstance(scales, (str, bytes)) or not hasattr(scales, "__iter__"):
        fail("scales", "must be a non-empty sequence of sides (int) or (height, width) pairs",
             scales)
    scales = list(scales)
    if not scales:
        fail("scales", "must be a non-empty sequence of sides (int) or (height, width) pairs",
             scales)
    sizes = []
    for s in scales:
        pair = (s, s) if isinstance(s, numbers.Integral) and not isinstance(s, bool) else s
        try:
            pair = tuple(pair)
        except TypeError:
            pair = ()
        if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                     and v >= 1 for v in pair):
            fail("scales", "must hold positive integer sides or (height, width) pairs", scales)
        pair = (int(pair[0]), int(pair[1]))
        if fixed != (None, None) and any(f is not None and f != v for f, v in zip(fixed, pair)):
            fail("scales", f"must match the model's fixed input size {fixed}: build it with "
                           "free sides (keras_cnns.fc_to_conv(model) or input_shape=(None, "
                           "None, C)) to evaluate other scales", scales)
        if _map_side(model, *pair, channels) is None:
            smallest = _min_side(model, channels)
            fail("scales", f"must not be smaller than the model's minimum input ({smallest} "
                           f"pixels a side gives a 1x1 score map); {pair} is", scales)
        sizes.append(pair)
    return sizes


def multiscale_predict(model, images, scales, *, flip: bool = False, pooling: str = "max",
                       interpolation: str = "bilinear", batch_size: Optional[int] = None):
    """OverFeat's multi-scale classification (Sermanet et al. 2014, Sec. 3.3-3.4).

    For each scale the images are resized (``keras.ops.image.resize``) and run through the
    fully convolutional ``model``, which gives a map of class scores ``(N, h, w, classes)``
    (larger scales give larger maps); each map is pooled over its cells (``"max"``: the
    paper's "take the spatial max for each class, at each scale and flip"; ``"avg"``: the mean
    over the cells, as VGG's dense evaluation does), with ``flip`` the same is done on the
    horizontally flipped images, and the ``C``-vectors of all scales (and flips) are averaged
    ("average the resulting C-dimensional vectors from different scales and flips").

    Args:
        model: a fully convolutional model with one 4-D output ``(N, h, w, classes)``: e.g.
            ``keras_cnns.OverFeat(fully_convolutional=True)`` or
            ``keras_cnns.fc_to_conv(classifier)``; with free input sides to use several scales.
        images: ``(N, H, W, C)`` array or tensor.
        scales: non-empty sequence of input sizes: an int ``s`` (``s x s``) or an
            ``(height, width)`` pair each (OverFeat used six, from 245x245 to 461x569 for the
            fast model, Table 5 of the paper); none below the model's minimum input.
        flip: also evaluate the horizontally flipped images.
        pooling: ``"max"`` or ``"avg"`` over the cells of each map.
        interpolation: resizing method of ``keras.ops.image.resize`` (``"bilinear"``, ...).
        batch_size: images per forward pass (default: all at once).

    Returns:
        NumPy array ``(N, classes)``: the mean over scales (and flips) of the pooled maps.

    Raises:
        ValueError: a model without a 4-D output (a classifier: convert it with
            :func:`fc_to_conv`), images not 4-D or with other channels, empty scales, a scale
            below the model's minimum (the message gives it) or, for a model with a fixed
            input size, a scale of another size; a bad ``pooling``, ``flip`` or ``batch_size``.
    """
    from keras_cnns.models.heads import served_model

    if not isinstance(model, keras.Model):
        fail("model", "must be a keras.Model", model)
    model = served_model(model)
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        fail("model", "must have one image input (batch, height, width, channels)", model.name)
    out_shape = tuple(model.outputs[0].shape)
    if len(out_shape) != 4:
        fail("model", "must give a map of class scores (N, h, w, classes); a classifier with a "
                      "Flatten + Dense head becomes one with keras_cnns.fc_to_conv(model)",
             f"{model.name} with output shape {out_shape}")
    flip = check_bool("flip", flip)
    check_choice("pooling", pooling, ["max", "avg"])
    batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
    if not isinstance(interpolation, str):
        fail("interpolation", "must be a resizing method name such as 'bilinear'", interpolation)
    x = keras.ops.convert_to_numpy(images) if not isinstance(images, np.ndarray) else images
    if x.ndim != 4:
        fail("images", "must be a 4-D batch (N, H, W, C)", getattr(x, "shape", images))
    channels = model.inputs[0].shape[-1]
    if x.shape[-1] != channels:
        fail("images", f"must have the model's {channels} channels", x.shape)
    if x.shape[0] == 0:
        fail("images", "must hold at least one image", x.shape)
    fixed = tuple(model.inputs[0].shape[1:3])
    sizes = _check_scales(scales, model, channels, fixed)
    x = x.astype(model.inputs[0].dtype or "float32", copy=False)
    n = x.shape[0]
    step = batch_size or n
    total, count = None, 0
    for size in sizes:
        for flipped in ((False, True) if flip else (False,)):
            pooled = []
            for start in range(0, n, step):
                batch = x[start:start + step]
                if tuple(batch.shape[1:3]) != size:
                    batch = keras.ops.image.resize(batch, size, interpolation=interpolation)
                if flipped:
                    batch = keras.ops.flip(batch, axis=2)
                scores = model(batch, training=False)
                reduce = keras.ops.max if pooling == "max" else keras.ops.mean
                pooled.append(keras.ops.convert_to_numpy(reduce(scores, axis=(1, 2))))
            vector = np.concatenate(pooled, axis=0).astype("float64")
            total = vector if total is None else total + vector
            count += 1
    return (total / count).astype("float32")
