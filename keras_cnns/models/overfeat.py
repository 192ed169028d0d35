"""OverFeat, the fast and the accurate network (Sermanet et al. 2014), as a classifier or fully
convolutional.

P. Sermanet, D. Eigen, X. Zhang, M. Mathieu, R. Fergus, Y. LeCun. "OverFeat: Integrated
Recognition, Localization and Detection using Convolutional Networks". ICLR 2014
(arXiv:1312.6229). Layer tables: Table 1 (fast) and Table 3 (accurate) of the paper.

- ``overfeat_fast`` (Table 1), 231x231x3: 96@11x11/4 -> pool 2/2, 256@5x5 -> pool 2/2,
  512, 1024, 1024 @3x3 (pad 1) -> pool 2/2 (6x6x1024), FC 3072 -> 4096 -> classes.
  **145,920,872** parameters, **2,801,403,904** multiply-adds (hand counts).
- ``overfeat_accurate`` (Table 3), 221x221x3: 96@7x7/2 -> pool 3/3, 256@7x7 -> pool 2/2,
  512, 512, 1024, 1024 @3x3 (pad 1) -> pool 3/3 (5x5x1024), FC 4096 -> 4096 -> classes.
  **144,656,488** parameters, **5,355,446,784** multiply-adds (hand counts).

Both have ReLU after every layer, non-overlapping max-pools, no LRN, and dropout 0.5 after the
two hidden FC layers ("we use dropout with a ratio of 0.5 in the fully connected layers, 6th and
7th", Sec. 3.1). Convolutions without padding are "valid", those with 1 pixel of padding are
"same" (3x3, stride 1), pools are "valid" (floor), which gives the maps of the tables:
231 -> 56 -> 28 -> 24 -> 12 -> 12 -> 12 -> 12 -> 6 (fast) and 221 -> 108 -> 36 -> 30 -> 15 -> ...
-> 15 -> 5 (accurate).

**The registered model is the classifier** as the network was trained: ``Flatten -> fc1 -> fc2 ->
predictions`` on the last pooled map (as AlexNet and VGG here), so fc1 has ``h * w * 1024`` inputs:
6x6 at 231 (fast), 5x5 at 221 (accurate); the parameter count is the paper's at the native
size, and smaller inputs (down to 71 / 77 pixels, a 1x1 map) give smaller heads.

**Fully convolutional** on request (Sec. 3.5, "ConvNets and sliding window efficiency"):
``OverFeat(..., fully_convolutional=True)`` builds the FC layers as "valid" convolutions
(:func:`keras_cnns.layers.conv_fc.fc_as_conv`: fc1 is a 6x6 / 5x5 convolution, fc2 and the
predictions 1x1), with the same layer names and weights reshaped (the Flatten order is
``(h, w, c)``, so fc1's kernel is the Dense kernel reshaped to ``[h, w, 1024, units]``), and the
softmax over the class axis. At the native size it gives a 1x1 map equal to the classifier; a
larger image gives a map of class scores ``(N, h, w, classes)``, one per window of the native
size, at a stride of 32 (fast) or 36 (accurate) pixels (each cell is the head on its window of
the last pooled map, so the 3x3 layers see the image around the window where a separate crop
would see their zero padding): ``h = (H - 231) // 32 + 1`` (fast),
``(H - 221) // 36 + 1`` (accurate). Its input side is free by default (``(None, None, 3)``).
:func:`keras_cnns.fc_to_conv` turns a trained classifier into the same model, and
:func:`keras_cnns.multiscale_predict` runs OverFeat's multi-scale evaluation (Sec. 3.3-3.4).

Layer names: ``conv{i}``, ``conv{i}_relu``, ``pool{i}``; the head ``flatten`` (classifier only),
``fc1``, ``fc1_relu``, ``fc1_drop``, ``fc2``, ``fc2_relu``, ``fc2_drop``, ``predictions``.

Feature levels: the maps whose stride is a power of two (``P<k>``, stride 2^k): fast ``P2``
(``conv1_relu``), ``P3`` (``conv2_relu``), ``P4`` (``conv5_relu``), ``P5`` (``pool5``); the
accurate network strides by 2, then 3 (pool 3/3), so only ``P1`` (``conv1_relu``) is a power-of-two
level (its later maps are at strides 6, 12 and 36).

Not built here: the paper's "fine stride" trick of Sec. 3.3 (pool5 evaluated at the 3x3 offsets
``Delta x, Delta y in {0, 1, 2}``), and the localization / detection regressors.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from keras import layers

from keras_cnns._checks import check_bool, check_choice, check_probability
from keras_cnns.layers.conv_fc import fc_as_conv
from keras_cnns.models._builder import classifier, family_builder, feature_level
from keras_cnns.models._registry import register_model
from keras_cnns.models.heads import OutputSpec, attach_output_specs

__all__ = ["OverFeat", "OVERFEAT_MODELS"]

_PAPER = ("P. Sermanet, D. Eigen, X. Zhang, M. Mathieu, R. Fergus, Y. LeCun. OverFeat: Integrated "
          "Recognition, Localization and Detection using Convolutional Networks. ICLR 2014 "
          "(arXiv:1312.6229)")


@dataclasses.dataclass(frozen=True)
class _Conv:
    filters: int
    kernel: int
    stride: int = 1
    same: bool = False   # 1 pixel of zero padding (3x3, stride 1): "same"; else "valid"
    pool: int = 0        # non-overlapping max-pool (size = stride) after the ReLU; 0: none


@dataclasses.dataclass(frozen=True)
class _Table:
    convs: Tuple[_Conv, ...]
    fc: Tuple[int, int]
    side: int        # native input side
    min_side: int    # smallest side giving a 1x1 map after the last pool


#: The two layer tables (Sermanet et al. 2014, Tables 1 and 3).
OVERFEAT_MODELS = {
    "fast": _Table(
        convs=(_Conv(96, 11, 4, pool=2), _Conv(256, 5, pool=2), _Conv(512, 3, same=True),
               _Conv(1024, 3, same=True), _Conv(1024, 3, same=True, pool=2)),
        fc=(3072, 4096), side=231,
        min_side=71,     # 71 -> 16 -> 8 -> 4 -> 2 -> 2 -> 2 -> 2 -> 1
    ),
    "accurate": _Table(
        convs=(_Conv(96, 7, 2, pool=3), _Conv(256, 7, pool=2), _Conv(512, 3, same=True),
               _Conv(512, 3, same=True), _Conv(1024, 3, same=True),
               _Conv(1024, 3, same=True, pool=3)),
        fc=(4096, 4096), side=221,
        min_side=77,     # 77 -> 36 -> 12 -> 6 -> 3 -> 3 -> 3 -> 3 -> 3 -> 1
    ),
}


def _trunk(x, table):
    """The convolutions and pools; returns ``(x, features, extent, stride)``. The levels are the
    last maps before each layer that strides, kept where the stride is a power of two; the map
    side follows ``floor((H - extent) / stride) + 1``, the extent growing by ``(kernel - 1) *
    stride`` for a valid convolution or pool (0 for a "same" one)."""
    features, extent, stride = {}, 1, 1

    def level_ends():
        if stride > 1 and stride & (stride - 1) == 0:
            k = stride.bit_length() - 1
            features[f"P{k}"] = feature_level(f"P{k}", x, extent=extent)

    for i, spec in enumerate(table.convs, start=1):
        if spec.stride > 1:
            level_ends()
        x = layers.Conv2D(spec.filters, spec.kernel, strides=spec.stride,
                          padding="same" if spec.same else "valid", name=f"conv{i}")(x)
        x = layers.ReLU(name=f"conv{i}_relu")(x)
        if not spec.same:
            extent += (spec.kernel - 1) * stride
        stride *= spec.stride
        if spec.pool:
            level_ends()
            x = layers.MaxPooling2D(spec.pool, strides=spec.pool, padding="valid",
                                    name=f"pool{i}")(x)
            extent += (spec.pool - 1) * stride
            stride *= spec.pool
    level_ends()
    return x, features, extent, stride


def _head(x, table, ctx, dropout, fully_convolutional, kernel):
    """``Flatten -> fc1 -> fc2 -> predictions`` (ReLU and dropout after fc1 and fc2), or the same
    layers as convolutions: fc1 ``kernel`` x ``kernel`` valid, the others 1x1."""
    if not fully_convolutional:
        x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(table.fc, start=1):
        if fully_convolutional:
            x = fc_as_conv(x, units, kernel_size=kernel if i == 1 else 1, name=f"fc{i}")
        else:
            x = layers.Dense(units, name=f"fc{i}")(x)
        x = layers.ReLU(name=f"fc{i}_relu")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"fc{i}_drop")(x)
    if fully_convolutional:
        # the classifier activation (softmax) acts on the last axis: the classes of each cell
        return layers.Conv2D(ctx.classes, 1, activation=ctx.classifier_activation,
                             name="predictions")(x)
    return classifier(x, ctx.classes, ctx.classifier_activation)


@family_builder
def OverFeat(model="fast", dropout=0.5, fully_convolutional=False, *, ctx):
    """OverFeat (Sermanet et al. 2014): the fast (Table 1) or the accurate (Table 3) network.

    ``model="fast"``: 96@11x11/4, pool 2, 256@5x5, pool 2, 512, 1024, 1024 @3x3, pool 2, FC
    3072 -> 4096 -> classes, 231x231x3 (145,920,872 parameters). ``model="accurate"``:
    96@7x7/2, pool 3, 256@7x7, pool 2, 512, 512, 1024, 1024 @3x3, pool 3, FC 4096 -> 4096 ->
    classes, 221x221x3 (144,656,488 parameters). ReLU everywhere, non-overlapping max-pools,
    dropout after fc1 and fc2.

    Args:
        model: ``"fast"`` or ``"accurate"``.
        dropout: dropout rate after ``fc1`` and ``fc2`` (0.5 in the paper; 0 removes the layers).
        fully_convolutional: build the FC layers as "valid" convolutions (fc1 with the kernel of
            the last pooled map at the native size, 6x6 / 5x5; the others 1x1) so that the
            network slides over a larger image and gives a map of class scores ``(N, h, w,
            classes)`` (1x1 at the native size, where it equals the classifier with the same
            weights reshaped). The default input is then ``(None, None, 3)`` and the sides must
            be at least the native size. Only with the head.
{common_args}

    Input: default ``(231, 231, 3)`` (fast) or ``(221, 221, 3)`` (accurate), sides >= 71 / 77;
    the classifier flattens the ``h x w x 1024`` map after the last pool (6x6 / 5x5 at the
    native size), so its H and W must be known. Default name ``"overfeat_fast"`` /
    ``"overfeat_accurate"``.

    Returns:
        A ``keras.Model``: ``(N, classes)``, or ``(N, h, w, classes)`` fully convolutional.

    Raises:
        ValueError: invalid argument (the message names it).
    """
    check_choice("model", model, sorted(OVERFEAT_MODELS))
    dropout = check_probability("dropout", dropout)
    check_bool("fully_convolutional", fully_convolutional)
    table = OVERFEAT_MODELS[model]
    dense = fully_convolutional and ctx.head
    x = ctx.start(default_shape=(None, None, 3) if dense else (table.side, table.side, 3),
                  min_size=table.side if dense else table.min_side, require_static=not dense)
    x, features, extent, stride = _trunk(x, table)
    kernel = (table.side - extent) // stride + 1   # the last map's side at the native size
    built = ctx.finish(x, lambda x: _head(x, table, ctx, dropout, dense, kernel),
                       default_name=f"overfeat_{model}", features=features)
    if dense:  # a map of class scores, not a classification output
        attach_output_specs(built, [OutputSpec("predictions", "score_map")])
    return built


# reference figures: reference_figures.csv
for _model in ("fast", "accurate"):
    register_model(
        f"overfeat_{_model}", family="OverFeat", paper=_PAPER, builder=OverFeat,
        default_input_shape=(OVERFEAT_MODELS[_model].side,) * 2 + (3,),
        min_input_size=OVERFEAT_MODELS[_model].min_side, model=_model,
    )
del _model
