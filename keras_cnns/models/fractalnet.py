"""FractalNet (with local and global drop-path), its single-column subnetworks, and Fractal of
FractalNet.

Papers:

* Larsson, Maire, Shakhnarovich, "FractalNet: Ultra-Deep Neural Networks without Residuals",
  ICLR 2017 (arXiv:1605.07648). The expansion rule ``f_1(z) = conv(z)``,
  ``f_{C+1}(z) = join(f_C(f_C(z)), conv(z))`` gives a block of ``C`` columns, column ``c`` a
  chain of ``2^c`` convolutions (``c = 0`` the shallowest, ``C - 1`` the deepest, ``2^(C-1)``
  layers); ``B`` blocks with 2x2 max pooling between them give a network of depth
  ``B * 2^(C-1)``. "conv" is a 3x3 convolution, batch normalisation and ReLU; a *join* is the
  element-wise mean of the columns that end at the same depth (the nested joins of the rule
  merged into one, as in the paper's Fig. 1). Drop-path (local, global, mixed per mini-batch)
  is :mod:`keras_cnns.layers.fractal`.
* Smith & Topin, "Deep Convolutional Neural Network Design Patterns", 2016 (arXiv:1611.00847),
  Fractal of FractalNet (FoF): the same expansion rule one level up, its unit a whole fractal
  block with its pooling: a wider, shallower network with more paths, trained with
  *freeze-drop-path* (the simplest path first, then frozen, then the next deeper path added:
  :class:`keras_cnns.training.fractal_schedule.FreezeDropPath`).

Reference code:

* The official generator, gustavla/fractalnet ``generation/fractalnet.py`` and ``globals.crox``
  (CIFAR: ``COLUMNS = 3``, 5 reductions, filters 64-128-256-512-512): each unit is a 3x3
  convolution *with bias* (Xavier = LeCun-uniform kernels, zero biases), dropout (per block
  ``DROPOUTS = (0, 0.1, 0.2, 0.3, 0.4)``, the paper's optional dropout), Caffe ``BatchNorm``
  *without* scale and shift (``center=False, scale=False`` here) and ReLU; each column of a block
  is max-pooled (2x2, stride 2) *before* the block's last join (the paper's Fig. 1 draws the
  pool after it: max-pooling does not commute with the mean, the generator's order is kept);
  the classifier is one InnerProduct on the 1x1 map left
  after the fifth pool (here global average pooling, the identity on that map, then the dense
  layer, so other input sizes work). Joins: ``FractalJoin`` of the official Caffe layer (local
  drop-path 0.15). Counts: C=3 33,714,314 and C=4 76,084,554 parameters at 10 classes.
* iPhysicist/CNNDesignPatterns ``FoF.prototxt`` (the FoF of Smith & Topin): 3 outer paths over
  4 reductions with 64-128-256-512 filters; the deepest path is four C=3 fractal blocks (one
  pool each), the middle one two blocks of 128 and 512 filters (two pools each), the shallowest
  one block of 512 filters (four pools); the paths join after two reductions (the middle and the
  deepest) and at the end (all three); the classifier is one InnerProduct on the 2x2x512 map
  (flattened here). Its per-layer dropout rates (0 - 0.3, uneven) are left to ``dropout``.

Our own choices, where no reference fixes them: BN epsilon 1e-5 (Caffe's) and momentum 0.99
(Keras' default: an average over ~100 batches; Caffe's BatchNorm keeps a running average over
the whole run). With drop-path the training batches alternate between local and global ones
whose statistics differ (a join's mean of several columns has a smaller variance than one
column), so BatchNorm statistics meant for inference must be averaged over many batches or,
better, recomputed with drop-path off (``keras_cnns.layers.fractal.drop_path_disabled`` around
a precise-BN recalibration): a recalibration over a few batches *with* drop-path on gives
statistics of randomly truncated networks, and the held-out accuracy then swings from epoch to
epoch (measured on the embedded digits: 0.28 - 0.97).

FractalNet-34 for ImageNet (paper Sec. 4.2: ResNet-34's first and last layers with 4 blocks
of 8 layers between them): torchvision ResNet-34's stem (7x7/2 bias-free convolution with 64
maps, affine BN, ReLU, 3x3/2 max pool) and head (global average pooling, 1000-way dense), four
C=4 blocks of 64-128-256-512 filters, columns pooled 2x2 before the last join of the first three
blocks (56 -> 28 -> 14 -> 7), no pool after the fourth; 41,345,384 parameters by our count
(``reference_figures.csv``). The paper's Table 3 (C = 1..6, depth 5..160,
0.3M..21.1M parameters on CIFAR-100) is reproduced by 16-32-64-128-128 filters with B = 5 at 100
classes (every row rounds to the printed figure; see the csv).

Feature levels: the output of each block (after its pooling and last join), ``P1`` .. ``P5`` on
CIFAR (floor pooling: extents ``2^k``); FractalNet-34: ``P1`` the stem's ReLU, ``P2`` its max
pool, ``P3``, ``P4`` the first two blocks (pooled), ``P5`` the fourth block (the third block's
pooled output has the same side). Fractal of FractalNet:
``P1`` .. ``P4`` the joins where the paths meet at that reduction (or the deepest path's block).
"""

from __future__ import annotations

import keras
from keras import layers

from keras_cnns._checks import check_probability, fail, is_int
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.fractal import FractalJoin, FractalPathState, fractal_state
from keras_cnns.models._builder import family_builder, feature_level
from keras_cnns.models._registry import register_model
from keras_cnns.models.heads import (attach_output_specs, classifier, output_specs,
                                     pooled_classifier)

__all__ = ["FractalNet", "FractalOfFractalNet", "extract_column", "fractal_expand", "path_layers"]

_PAPER = ("G. Larsson, M. Maire, G. Shakhnarovich. FractalNet: Ultra-Deep Neural Networks "
          "without Residuals. ICLR 2017 (arXiv:1605.07648)")
_FOF_PAPER = ("L. N. Smith, N. Topin. Deep Convolutional Neural Network Design Patterns. 2016 "
              "(arXiv:1611.00847); FractalNet: " + _PAPER)

#: The official generator's CIFAR filters and dropout rates per block.
CIFAR_FILTERS = (64, 128, 256, 512, 512)
PAPER_DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4)
#: Filters that reproduce the paper's Table 3 parameter counts.
TABLE3_FILTERS = (16, 32, 64, 128, 128)
_BN = dict(epsilon=1e-5, momentum=0.99)


class _Seeds:
    """Consecutive seeds ``seed, seed + 1, ...`` for the random layers (``None`` stays None)."""

    def __init__(self, seed):
        self.seed, self.count = seed, 0

    def __call__(self):
        if self.seed is None:
            return None
        self.count += 1
        return self.seed + self.count


def fractal_expand(x, columns, unit, join, pool=None):
    """The fractal expansion rule in its flattened form (the official generator's loop).

    ``unit(t, c, j)`` applies the ``j``-th unit of column ``c`` to ``t``; column ``c`` has
    ``2^c`` units, the deepest ``2^(columns-1)``. After the last units, ``pool(t, c)`` (if
    given) pools each column; wherever several columns end at the same depth,
    ``join(tensors, cols, k)`` merges them (``cols`` ascending, ``k`` counts the joins).
    Returns the block's output."""
    length = 2 ** (columns - 1)
    lasts = [x] * columns
    units = [0] * columns
    k = 0
    for depth in range(length):
        ended = []
        for c in reversed(range(columns)):
            if (depth + 1) % 2 ** (columns - 1 - c) == 0:
                lasts[c] = unit(lasts[c], c, units[c])
                units[c] += 1
                ended.append(c)
        if depth == length - 1 and pool is not None:
            lasts = [pool(t, c) for c, t in enumerate(lasts)]
        if len(ended) >= 2:
            ended.sort()
            y = join([lasts[c] for c in ended], ended, k)
            k += 1
            for c in ended:
                lasts[c] = y
    return lasts[0]


def _conv_unit(t, filters, name, dropout, seeds):
    """conv 3x3 (bias) -> dropout -> BN (no scale, no shift) -> ReLU (globals.crox ``conv``)."""
    t = layers.Conv2D(filters, 3, padding="same", kernel_initializer="lecun_uniform",
                      name=f"{name}_conv")(t)
    if dropout > 0:
        t = layers.Dropout(dropout, seed=seeds(), name=f"{name}_drop")(t)
    t = BatchNormalization(center=False, scale=False, name=f"{name}_bn", **_BN)(t)
    return layers.Activation("relu", name=f"{name}_relu")(t)


def _fractal_block(t, state, *, columns, filters, pools, prefix, dropout, local_drop, seeds):
    """One fractal block of ``columns`` columns of conv units, each column max-pooled ``pools``
    times before the last join (its joins read column group 0 of the state)."""

    def unit(z, c, j):
        return _conv_unit(z, filters, f"{prefix}_col{c}_{j + 1}", dropout, seeds)

    def pool(z, c):
        for i in range(pools):
            suffix = "" if pools == 1 else str(i + 1)
            z = layers.MaxPooling2D(2, name=f"{prefix}_col{c}_pool{suffix}")(z)
        return z

    def join(ts, cols, k):
        return FractalJoin(cols, local_drop, seed=seeds(), name=f"{prefix}_join{k + 1}")(
            ts + [state])

    return fractal_expand(t, columns, unit, join, pool if pools else None)


def _check_columns(columns):
    if not is_int(columns) or columns < 1:
        fail("columns", "must be a positive integer (the number of columns of a block)", columns)
    if columns > 8:
        fail("columns", "must be <= 8 (a block of 2^(C-1) layers per column; C = 8 is already "
                        "640 layers deep with 5 blocks)", columns)
    return int(columns)


def _check_dropout(dropout, n):
    """``None`` or a rate or ``n`` rates in ``[0, 1)`` -> a tuple of ``n`` rates."""
    if dropout is None:
        return (0.0,) * n
    if isinstance(dropout, (str, bytes)):
        fail("dropout", "must be None, a rate in [0, 1) or one rate per block", dropout)
    if hasattr(dropout, "__len__"):
        if len(dropout) != n:
            fail("dropout", f"must have one rate per block ({n})", dropout)
        rates = []
        for r in dropout:
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1:
                fail("dropout", "must hold rates in [0, 1)", dropout)
            rates.append(float(r))
        return tuple(rates)
    return (check_probability("dropout", dropout),) * n


def _check_filters(filters, n=None):
    if isinstance(filters, (str, bytes)) or not hasattr(filters, "__len__") or not filters \
            or not all(is_int(f) and f >= 1 for f in filters):
        fail("filters", "must be a sequence of positive filter counts, one per block", filters)
    if n is not None and len(filters) != n:
        fail("filters", f"must have one filter count per block ({n})", filters)
    return tuple(int(f) for f in filters)


def _check_fits(ctx, reduction, arg, value):
    """The input side must survive ``reduction`` (the pools): name ``arg`` when the input is the
    default one, else ``input_shape``."""
    for side in ctx.shape[:2]:
        if side is not None and side < reduction:
            if ctx.input_shape is None and ctx.input_tensor is None:
                fail(arg, f"does not fit the {side}-px input: the network reduces the side "
                          f"{reduction}x (give a larger input_shape or fewer blocks)", value)
            fail("input_shape" if ctx.input_shape is not None else "input_tensor",
                 f"must have height and width >= {reduction} for this network ({arg}={value!r} "
                 f"reduces the side {reduction}x)", ctx.shape)


def _fractalnet(columns=3, blocks=5, filters=None, local_drop=0.15, global_drop=0.5,
               dropout=None, imagenet_stem=False, seed=None, *, ctx):
    """A FractalNet (Larsson et al. 2017) as a functional Keras model, with drop-path.

    Args:
        columns: ``C``, the columns of each block (depth ``2^(C-1)`` per block), ``>= 1``.
        blocks: ``B``, the number of blocks.
        filters: one filter count per block; default the official generator's
            ``(64, 128, 256, 512, 512)`` (its first ``blocks``; 512 beyond).
        local_drop: local drop-path: each join input dropped with this probability in a local
            batch, in ``[0, 1)`` (paper: 0.15).
        global_drop: the probability that a training batch uses global drop-path (one column
            for the whole network), in ``[0, 1)`` (paper: 0.5). Both 0: no drop-path.
        dropout: ``None``, a rate, or one rate per block, after every convolution (paper's
            optional ``(0, 0.1, 0.2, 0.3, 0.4)``).
        imagenet_stem: FractalNet-34's layout: ResNet-34's first layer (7x7/2 convolution, BN,
            ReLU, 3x3/2 max pool) and last (global average pooling, dense), blocks pooled only
            between them. Default: the CIFAR layout (every block pooled, ``2^B`` reduction).
        seed: optional int: the seeds of the drop-path draws and dropout layers.
{common_args}

    Columns are numbered 0 (one layer per block) to ``C - 1`` (the deepest);
    :func:`extract_column` returns one of them as a model sharing the weights, and the model's
    :class:`~keras_cnns.layers.fractal.FractalPathState` (``fractal_state(model)``) can force one.
    Default input ``(32, 32, 3)`` (``(224, 224, 3)`` with ``imagenet_stem``), 10 classes.

    Returns:
        A ``keras.Model`` (default name ``fractalnet{depth}``, depth ``B * 2^(C-1)``).

    Raises:
        ValueError: an invalid argument (the message names it), or blocks that do not fit the
            input.
    """
    columns = _check_columns(columns)
    if not is_int(blocks) or blocks < 1:
        fail("blocks", "must be a positive integer", blocks)
    blocks = int(blocks)
    if filters is None:
        filters = CIFAR_FILTERS[:blocks] + (512,) * max(0, blocks - len(CIFAR_FILTERS))
    filters = _check_filters(filters, blocks)
    local_drop = check_probability("local_drop", local_drop)
    global_drop = check_probability("global_drop", global_drop)
    rates = _check_dropout(dropout, blocks)
    if not isinstance(imagenet_stem, bool):
        fail("imagenet_stem", "must be True or False", imagenet_stem)
    if seed is not None and not is_int(seed):
        fail("seed", "must be None or an integer", seed)
    seeds = _Seeds(seed)

    if imagenet_stem:
        reduction = 4 * 2 ** (blocks - 1)
        img_input = ctx.start(default_shape=(224, 224, 3), min_size=1)
        _check_fits(ctx, reduction, "blocks", blocks)
    else:
        reduction = 2 ** blocks
        img_input = ctx.start(default_shape=(32, 32, 3), min_size=1)
        _check_fits(ctx, reduction, "blocks", blocks)
    # one draw per step shared by every join (a one-column network has no join)
    state = (FractalPathState(columns, global_drop, seed=seed, name="fractal_state")(img_input)
             if columns > 1 else None)
    features = {}
    x = img_input
    if imagenet_stem:
        x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
        x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
        x = BatchNormalization(name="conv1_bn", **_BN)(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
        features["P1"] = x
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
        features["P2"] = x
    for b in range(blocks):
        pools = 1 if (not imagenet_stem or b < blocks - 1) else 0
        x = _fractal_block(x, state, columns=columns, filters=filters[b], pools=pools,
                           prefix=f"block{b + 1}", dropout=rates[b], local_drop=local_drop,
                           seeds=seeds)
        if imagenet_stem:
            # ceil(H / 4) after the stem, then floor 2x2 pools: extent 2^k - 3 (DenseNet's)
            k = min(b + 3, blocks + 1)
            features[f"P{k}"] = feature_level(f"P{k}", x, extent=2 ** k - 3)
        else:
            features[f"P{b + 1}"] = feature_level(f"P{b + 1}", x, extent=2 ** (b + 1))
    depth = blocks * 2 ** (columns - 1)
    default_name = f"fractalnet{depth}" if not imagenet_stem else f"fractalnet{depth + 2}"
    return ctx.finish(x, lambda t: pooled_classifier(t, ctx), default_name=default_name,
                      features=features)


_fractalnet.__name__ = _fractalnet.__qualname__ = "FractalNet"
#: The builder (10 classes by default, the CIFAR networks').
FractalNet = family_builder(classes=10)(_fractalnet)
# the same builder with the default classes of Table 3 (CIFAR-100) and of ImageNet
_FractalNet100 = family_builder(classes=100)(_fractalnet)
_FractalNet1000 = family_builder(classes=1000)(_fractalnet)


@family_builder(classes=10)
def FractalOfFractalNet(columns=3, paths=3, filters=(64, 128, 256, 512), local_drop=0.15,
                        global_drop=0.5, dropout=None, seed=None, *, ctx):
    """Fractal of FractalNet (Smith & Topin 2016, Fig. 2; iPhysicist/CNNDesignPatterns
    ``FoF.prototxt``) as a functional Keras model.

    The fractal expansion rule applied to whole fractal blocks: ``paths`` outer columns over
    ``len(filters) = 2^(paths-1)`` reductions; the ``j``-th block of outer path ``p`` spans
    ``2^(paths-1-p)`` reductions (its columns max-pooled that many times before its last join)
    with the filters of the last reduction it spans. Path 0 (one block) is the simplest, path
    ``paths - 1`` (one block per reduction) the deepest. Flatten and a dense classifier at the
    end (the prototxt's InnerProduct on the 2x2 map of a 32-px input).

    Args:
        columns: ``C``, the columns of each inner fractal block.
        paths: the outer columns (paths), ``>= 1``.
        filters: one filter count per reduction, ``2^(paths-1)`` of them.
        local_drop, global_drop: drop-path, as :func:`FractalNet` (inner and outer joins; a
            global batch keeps one inner column and one path).
        dropout: ``None``, a rate, or one rate per reduction (a block takes the rate of the
            last reduction it spans).
        seed: optional int: the seeds of the drop-path draws and dropout layers.
{common_args}

    The model's :class:`~keras_cnns.layers.fractal.FractalPathState` has two column groups:
    0 the inner columns, 1 the paths; the freeze-drop-path schedule
    (:class:`keras_cnns.training.fractal_schedule.FreezeDropPath`) sets the active paths. The
    layers of path ``p`` are named ``path{p}_...``. Default input ``(32, 32, 3)``, 10 classes.

    Returns:
        A ``keras.Model`` (default name ``fractal_of_fractalnet``).

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    columns = _check_columns(columns)
    if not is_int(paths) or not 1 <= paths <= 4:
        fail("paths", "must be an integer in [1, 4]", paths)
    paths = int(paths)
    n = 2 ** (paths - 1)
    filters = _check_filters(filters)
    if len(filters) != n:
        fail("filters", f"must have 2^(paths-1) = {n} filter counts (one per reduction)",
             filters)
    local_drop = check_probability("local_drop", local_drop)
    global_drop = check_probability("global_drop", global_drop)
    rates = _check_dropout(dropout, n)
    if seed is not None and not is_int(seed):
        fail("seed", "must be None or an integer", seed)
    seeds = _Seeds(seed)

    img_input = ctx.start(default_shape=(32, 32, 3), min_size=1, require_static=True)
    _check_fits(ctx, 2 ** n, "filters", filters)
    state = FractalPathState((columns, paths), global_drop, seed=seed,
                             name="fractal_state")(img_input)
    features = {}

    def unit(t, p, j):
        span = 2 ** (paths - 1 - p)
        last = (j + 1) * span - 1
        out = _fractal_block(t, state, columns=columns, filters=filters[last], pools=span,
                             prefix=f"path{p}_block{j + 1}", dropout=rates[last],
                             local_drop=local_drop, seeds=seeds)
        if p == paths - 1:  # the deepest path passes every reduction
            features[f"P{last + 1}"] = out
        return out

    def join(ts, cols, k):
        y = FractalJoin(cols, local_drop, group=1, group_offset=columns, seed=seeds(),
                        name=f"path_join{k + 1}")(ts + [state])
        side_k = [key for key, v in features.items() if v is ts[-1]]
        for key in side_k:  # the level is the joined map
            features[key] = y
        return y

    x = fractal_expand(img_input, paths, unit, join)
    features = {k: feature_level(k, v, extent=2 ** int(k[1:])) for k, v in features.items()}

    def head(t):
        t = layers.Flatten(name="flatten")(t)
        return classifier(t, ctx.classes, ctx.classifier_activation)

    return ctx.finish(x, head, default_name="fractal_of_fractalnet", features=features)


def _check_model_columns(model, column):
    state = fractal_state(model) if isinstance(model, keras.Model) else None
    if state is None:
        fail("model", "must be a FractalNet or Fractal of FractalNet built by keras_cnns (a "
                      "functional model with a FractalPathState)", getattr(model, "name", model))
    groups = state.columns
    cols = (column,) if is_int(column) else column
    if isinstance(cols, (str, bytes)) or not hasattr(cols, "__len__") or len(cols) != len(groups) \
            or not all(is_int(c) and 0 <= c < n for c, n in zip(cols, groups)):
        fail("column", f"must be a column index in [0, {groups[0]})" if len(groups) == 1 else
             f"must be one column per group, each within {list(groups)} (inner column, path)",
             column)
    return tuple(int(c) for c in cols)


def extract_column(model, column):
    """The single-column subnetwork ``column`` of a FractalNet, as a new functional model that
    shares the weights (the same layer objects).

    Every join is replaced by its input from ``column``: the model computes exactly what the full
    model computes with global drop-path forced to that column
    (``fractal_state(model).force_column(column)``), in training and inference mode, at the cost
    of one column (the paper's Sec. 4.3: the deepest column alone is nearly as accurate as the
    whole network).

    Args:
        model: a model built by :func:`FractalNet` or :func:`FractalOfFractalNet` (any head or
            ``features_only``).
        column: the column (0 = the shallowest, ``C - 1`` the deepest); for Fractal of
            FractalNet a pair ``(inner column, path)``.

    Returns:
        A ``keras.Model`` named ``{model.name}_column{column}``.

    Raises:
        ValueError: ``model`` is not a fractal network, or ``column`` is out of range.
    """
    cols = _check_model_columns(model, column)
    from keras import tree

    values = {}
    done = {}
    new_inputs = []
    for t in model.inputs:
        new = keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name.split(":")[0])
        values[id(t)] = new
        new_inputs.append(new)

    def rebuild(t):
        if id(t) in values:
            return values[id(t)]
        op, node_index, tensor_index = t._keras_history
        node = op._inbound_nodes[node_index]
        if isinstance(op, FractalJoin):
            want = cols[op.group]
            if want not in op.input_columns:
                raise ValueError(f"{op.name}: no input from column {want} "
                                 f"(its columns are {op.input_columns})")
            out = rebuild(node.input_tensors[op.input_columns.index(want)])
        else:
            if id(node) not in done:
                filled = {id(kt): rebuild(kt) for kt in node.arguments.keras_tensors}
                args, kwargs = node.arguments.fill_in(filled)
                done[id(node)] = tree.flatten(op(*args, **kwargs))
            out = done[id(node)][tensor_index]
        values[id(t)] = out
        return out

    # iterative depth guard: the graphs are deep (hundreds of layers) but well within recursion
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        outputs = tree.map_structure(rebuild, model._outputs_struct)
    finally:
        sys.setrecursionlimit(limit)
    suffix = cols[0] if len(cols) == 1 else "_".join(str(c) for c in cols)
    column_model = keras.Model(new_inputs if len(new_inputs) > 1 else new_inputs[0], outputs,
                               name=f"{model.name}_column{suffix}")
    try:
        attach_output_specs(column_model, output_specs(model))
    except Exception:  # a model without specs (not built by a builder): none to copy
        pass
    return column_model


def path_layers(model, path):
    """The layers of path ``path`` of a Fractal of FractalNet (named ``path{path}_...``; the
    outer joins and the head belong to no path)."""
    return [layer for layer in model.layers if layer.name.startswith(f"path{path}_")]


# ------------------------------------------------------------------------------------------------
# Registered variants (reference figures: reference_figures.csv)
# ------------------------------------------------------------------------------------------------

register_model("fractalnet20_cifar", family="FractalNet", paper=_PAPER, builder=FractalNet,
               default_input_shape=(32, 32, 3), min_input_size=32, default_classes=10,
               columns=3, blocks=5)
register_model("fractalnet40_cifar", family="FractalNet", paper=_PAPER, builder=FractalNet,
               default_input_shape=(32, 32, 3), min_input_size=32, default_classes=10,
               columns=4, blocks=5)
for _c in range(1, 7):
    register_model(f"fractalnet{5 * 2 ** (_c - 1)}_w16_cifar100", family="FractalNet",
                   paper=_PAPER, builder=_FractalNet100, default_input_shape=(32, 32, 3),
                   min_input_size=32, default_classes=100, columns=_c, blocks=5,
                   filters=TABLE3_FILTERS)
register_model("fractalnet34", family="FractalNet", paper=_PAPER, builder=_FractalNet1000,
               default_input_shape=(224, 224, 3), min_input_size=32, default_classes=1000,
               columns=4, blocks=4, filters=(64, 128, 256, 512), imagenet_stem=True)
register_model("fractal_of_fractalnet", family="FractalNet", paper=_FOF_PAPER,
               builder=FractalOfFractalNet, default_input_shape=(32, 32, 3), min_input_size=16,
               default_classes=10, columns=3, paths=3)
del _c
