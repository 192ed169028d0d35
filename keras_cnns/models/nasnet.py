"""NASNet-A (Zoph et al. 2018): Mobile (4 @ 1056) and Large (6 @ 4032), with cells written as
data, scheduled drop-path and the auxiliary head.

Paper: B. Zoph, V. Vasudevan, J. Shlens, Q. V. Le, "Learning Transferable Architectures for
Scalable Image Recognition", CVPR 2018 (arXiv:1707.07012).

* Sec. 3, Fig. 2: the ImageNet network is a 3x3 / 2 stem convolution, two reduction cells (the
  stem cells), then ``N`` normal cells, a reduction cell, ``N`` normal cells, a reduction cell,
  ``N`` normal cells, ReLU, global average pooling and the classifier; each reduction doubles the
  filters ("NASNet-A (N @ P)": ``P`` = the filters of the penultimate layer, 24 times the last
  cells' filters, because a normal cell concatenates six ``filters``-wide states and a reduction
  cell four).
* Fig. 4 (and App. A, Fig. 7): the NASNet-A normal and reduction cells. Each cell reads two
  hidden states, ``h_i`` (the previous cell's output) and ``h_{i-1}`` (the one before), and
  builds five new states, each the sum of two operations on earlier states; the states no
  operation reads are concatenated.
* "ScheduledDropPath" (the paper's regularisation of NASNet): every path in a cell is dropped
  per sample with a probability that rises linearly over training
  (:class:`keras_cnns.layers.drop_path_schedule.ScheduledDropPath`).
* Table 2: NASNet-A (4 @ 1056) 5.3 M parameters, 564 M mult-adds at 224; NASNet-A (6 @ 4032)
  88.9 M, 23.8 B at 331. Built here (and by keras.applications): 5,289,978 / 88,753,150
  trainable parameters (88.8 M: the 88.9 M matches only the total with BN moving statistics,
  88,949,818), 563.6 M / 23.78 G multiply-adds.

The cells are data (:data:`NASNET_A_NORMAL`, :data:`NASNET_A_REDUCTION`): TF-slim's
``nets/nasnet/nasnet_utils.py`` ``NasNetANormalCell`` / ``NasNetAReductionCell`` ``operations``,
``hiddenstate_indices`` and ``used_hiddenstates``, read as ten ``(operation, input state)`` pairs
(two per new state) by one cell function, :func:`nasnet_cell`. State 0 is the cell's input after
ReLU -> 1x1 conv -> BN, state 1 the previous cell's output brought to the same shape
(:func:`adjust_previous`: TF-slim's ``_reduce_prev_layer``, the factorized reduction when it is
twice as large, a ReLU -> 1x1 conv -> BN projection when its width differs), states 2..6 the
sums. In a reduction cell the operations on states 0 and 1 have stride 2.

Reference code:

* keras.applications ``keras/src/applications/nasnet.py`` (``NASNetMobile``, ``NASNetLarge``):
  our layout, layer names and weights (:func:`keras_cnns.from_keras_applications` copies them one
  to one): BN momentum 0.9997, epsilon 1e-3; He-normal 1x1 kernels; separable operations
  ReLU -> SeparableConv -> BN -> ReLU -> SeparableConv -> BN (our
  :class:`~keras_cnns.layers.SeparableConv2D`: Keras' layer and weights, its depthwise half on
  the library's depthwise dispatch); stride-2 convolutions and pools
  zero-padded with ``imagenet_utils.correct_pad`` then "valid" (TF-slim's pools are "SAME": a
  max pool padding with -inf and an average pool leaving the padding out; keras' zero padding is
  what its weights were converted for, and what we reproduce); no drop-path, no dropout, no
  auxiliary head. NASNetMobile: ``skip_reduction=False`` (the cell after a reduction reads the
  last normal cell as ``h_{i-1}``); NASNetLarge: ``skip_reduction=True`` (it reads the normal
  cell before that, TF-slim's ``skip_reduction_layer_input=1``).
* TF-slim ``nets/nasnet/nasnet.py``: ``mobile_imagenet_config`` / ``large_imagenet_config``
  (44 / 168 filters, stem 32 / 96, 12 / 18 cells), ``_build_aux_head`` and the training notes
  (auxiliary loss weight 0.4, dense dropout keep 0.5, drop-path keep 1.0 / 0.7 over 250k steps,
  label smoothing 0.1), ``drop_path`` and ``_apply_drop_path`` (the per-cell scaling of the
  drop-path rate).

Any input side >= 32, odd ones included. keras.applications' graph depends on the input's
parity: ``correct_pad`` reads the static side (an unknown side is taken as even, so an odd input
of unknown size crashes or shifts every stride-2 window: keras issue 14170, keras-applications
#62 / #164), and ``_adjust_block`` compares static shapes. Here a side that is known is padded
exactly as ``correct_pad`` pads it (TensorFlow's "SAME" rule; at every static side, 224 and 331
included, the graph and outputs are keras.applications'), an unknown side is padded by the same
rule when the graph runs (:class:`~keras_cnns.layers.drop_path_schedule.SamePadding2D`, and
"same" padding in the strided separable convolutions), and which cells adjust ``h_{i-1}`` follows
from the network's structure, not from shapes. Every stride-2 step gives ``ceil(n / 2)``.

Drop-path: ``drop_path`` is TF-slim's ``1 - drop_path_keep_prob`` (0.3 for Large, 0 for Mobile),
the rate of the last cell at the end of training; cell ``c`` of the ``3N + 4`` (stem cells
included, TF-slim's ``total_num_cells``) gets ``drop_path * (c + 1) / (3N + 4)``, and the rate
rises with the training progress that :class:`keras_cnns.training.drop_path_schedule.
DropPathSchedule` sets (``train()`` attaches it). The default 0 builds no drop-path layer, so the
model is keras.applications' exactly.

Auxiliary head (``aux_logits=True``; TF-slim ``_build_aux_head``): on the ReLU of the last normal
cell before the second reduction cell (TF-slim's ``aux_head_cell_idxes = [reduction_indices[1] -
1]``, the stride-16 map): average pool 5x5 / 3 "valid", 1x1 conv 128 -> BN -> ReLU, a "valid"
conv as large as the pooled map with 768 filters -> BN -> ReLU, flatten, the classifier. It is
the model's second output ``aux_predictions`` with loss weight 0.4 (TF-slim's training notes:
"auxiliary head loss weighting: 0.4"); the served model has the main output only. A map narrower
than 5 (inputs below ~80 px) is pooled globally instead.

Feature levels: P1 ``stem_bn1``, P2 the first stem cell, P3 / P4 the last normal cell of the
stride-8 / stride-16 stages, P5 the final ReLU; the stem convolution is "valid" 3x3 / 2 and every
later reduction gives ``ceil(n / 2)``, so level ``k`` has side ``floor((H - 3) / 2^k) + 1``
(extent 3).
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from keras import layers

from keras_cnns._checks import check_bool, check_float, check_positive_int, fail
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.drop_path_schedule import SamePadding2D, ScheduledDropPath, same_padding
from keras_cnns.layers.separable_conv import SeparableConv2D
from keras_cnns.models._builder import family_builder, feature_level
from keras_cnns.models._registry import register_model
from keras_cnns.models.heads import pooled_classifier

__all__ = ["CellGenotype", "NASNET_A_NORMAL", "NASNET_A_REDUCTION", "NASNet", "adjust_previous",
           "nasnet_cell"]

_PAPER = ("B. Zoph, V. Vasudevan, J. Shlens, Q. V. Le. Learning Transferable Architectures for "
          "Scalable Image Recognition. CVPR 2018 (arXiv:1707.07012)")
_MIN_SIZE = 32  # keras.applications' minimum; P5 side floor((32 - 3) / 32) + 1 = 1
_BN = dict(momentum=0.9997, epsilon=1e-3)  # keras.applications and TF-slim's ImageNet arg scopes
#: The auxiliary loss weight of TF-slim's training notes (nets/nasnet/nasnet.py).
AUX_LOSS_WEIGHT = 0.4


@dataclasses.dataclass(frozen=True)
class CellGenotype:
    """One NASNet cell as data, in TF-slim's encoding (``nasnet_utils.NasNetABaseCell``).

    Attributes:
        kind: ``"normal"`` or ``"reduction"`` (operations on states 0 and 1 have stride 2).
        operations: ten operation names, two per new state (left, right): ``"separable_KxK_2"``
            (two stacked ReLU -> separable conv -> BN), ``"avg_pool_3x3"``, ``"max_pool_3x3"``,
            ``"none"`` (the identity).
        hiddenstate_indices: the state each operation reads (0: the cell's input after its
            1x1 conv, 1: the previous cell's output adjusted, 2..6: the new states).
        used_hiddenstates: per state, 1 if an operation reads it (those are not concatenated).
        names: keras.applications' layer-name stems per new state ``(left, right, add)``
            (its names are not systematic; ``None``: a layer it leaves unnamed).
    """

    kind: str
    operations: Tuple[str, ...]
    hiddenstate_indices: Tuple[int, ...]
    used_hiddenstates: Tuple[int, ...]
    names: Tuple[Tuple[str, str, str], ...]

    @property
    def pairs(self):
        """``[((left op, input), (right op, input)), ...]``, one per new state."""
        ops = list(zip(self.operations, self.hiddenstate_indices))
        return [(ops[2 * i], ops[2 * i + 1]) for i in range(len(ops) // 2)]

    @property
    def concat(self):
        """The states the cell outputs, concatenated in this order."""
        return [i for i, used in enumerate(self.used_hiddenstates) if not used]


#: Zoph et al. 2018 Fig. 4 (left), TF-slim ``NasNetANormalCell``.
NASNET_A_NORMAL = CellGenotype(
    kind="normal",
    operations=("separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2",
                "avg_pool_3x3", "none", "avg_pool_3x3", "avg_pool_3x3", "separable_3x3_2",
                "none"),
    hiddenstate_indices=(0, 1, 1, 1, 0, 1, 1, 1, 0, 0),
    used_hiddenstates=(1, 0, 0, 0, 0, 0, 0),
    names=tuple((f"normal_left{i}", f"normal_right{i}", f"normal_add_{i}") for i in range(1, 6)),
)

#: Zoph et al. 2018 Fig. 4 (right), TF-slim ``NasNetAReductionCell``.
NASNET_A_REDUCTION = CellGenotype(
    kind="reduction",
    operations=("separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2",
                "avg_pool_3x3", "separable_5x5_2", "none", "avg_pool_3x3", "separable_3x3_2",
                "max_pool_3x3"),
    hiddenstate_indices=(0, 1, 0, 1, 0, 1, 3, 2, 2, 0),
    used_hiddenstates=(1, 1, 1, 0, 0, 0, 0),
    names=(("reduction_left1", "reduction_right1", "reduction_add_1"),
           ("reduction_left2", "reduction_right2", "reduction_add_2"),
           ("reduction_left3", "reduction_right3", "reduction_add3"),
           (None, "reduction_left4", "reduction_add_4"),
           ("reduction_left4", "reduction_right5", "reduction_add4")),
)


# ------------------------------------------------------------------------------------------------
# Operations
# ------------------------------------------------------------------------------------------------

def _static(x):
    return all(v is not None for v in x.shape[1:3])


def _pad_for_stride2(x, kernel_size, name):
    """keras.applications' ``correct_pad`` zero padding before a stride-2 "valid" window, for
    known sides; :class:`SamePadding2D` (the same rule, when the graph runs) for unknown ones."""
    if _static(x):
        pads = tuple(same_padding(int(v), kernel_size, 2) for v in x.shape[1:3])
        return layers.ZeroPadding2D(pads, name=name)(x)
    return SamePadding2D(kernel_size, 2, name=name)(x)


def _separable_block(x, filters, kernel_size, strides, block_id):
    """keras.applications' ``_separable_conv_block`` (TF-slim ``_stacked_separable_conv`` with
    two layers): ReLU -> SeparableConv (stride) -> BN -> ReLU -> SeparableConv -> BN."""
    x = layers.Activation("relu", name=f"separable_conv_1_relu_{block_id}")(x)
    padding = "same"
    if strides == 2 and _static(x):
        x = _pad_for_stride2(x, kernel_size, f"separable_conv_1_pad_{block_id}")
        padding = "valid"
    x = SeparableConv2D(filters, kernel_size, strides=strides, padding=padding,
                               use_bias=False, name=f"separable_conv_1_{block_id}")(x)
    x = BatchNormalization(name=f"separable_conv_1_bn_{block_id}", **_BN)(x)
    x = layers.Activation("relu", name=f"separable_conv_2_relu_{block_id}")(x)
    x = SeparableConv2D(filters, kernel_size, padding="same", use_bias=False,
                               name=f"separable_conv_2_{block_id}")(x)
    return BatchNormalization(name=f"separable_conv_2_bn_{block_id}", **_BN)(x)


def _conv_bn(x, filters, name, bn_name, strides=1):
    x = layers.Conv2D(filters, 1, strides=strides, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=name)(x)
    return BatchNormalization(name=bn_name, **_BN)(x)


def _operation(x, op, filters, strides, name, block_id, padded):
    """One operation of a cell (TF-slim ``_apply_conv_operation``); ``padded(x)``: the
    zero-padded copy of a state for stride-2 pools (made once per state, as keras'
    ``reduction_pad_1``)."""
    if op.startswith("separable_"):
        k = int(op.split("_")[1].split("x")[0])
        return _separable_block(x, filters, k, strides, f"{name}_{block_id}")
    if op in ("avg_pool_3x3", "max_pool_3x3"):
        pool = layers.AveragePooling2D if op.startswith("avg") else layers.MaxPooling2D
        if strides == 2:
            x = pool(3, strides=2, padding="valid", name=f"{name}_{block_id}")(padded(x))
        else:
            x = pool(3, strides=1, padding="same", name=f"{name}_{block_id}")(x)
        if x.shape[-1] != filters:  # TF-slim: a 1x1 conv -> BN after a pool that changes width
            x = _conv_bn(x, filters, f"{name}_conv_{block_id}", f"{name}_bn_{block_id}")
        return x
    if op == "none":
        if strides == 1 and x.shape[-1] == filters:
            return x
        x = layers.Activation("relu", name=f"{name}_relu_{block_id}")(x)  # TF-slim: strided 1x1
        return _conv_bn(x, filters, f"{name}_conv_{block_id}", f"{name}_bn_{block_id}",
                        strides=strides)
    raise ValueError(f"unknown NASNet operation {op!r}")


def adjust_previous(p, p_level, ip_level, filters, block_id):
    """Bring ``h_{i-1}`` (``p``, at reduction level ``p_level``) to the shape of the cell's
    input (level ``ip_level``, ``filters`` maps): keras.applications' ``_adjust_block`` /
    TF-slim's ``_reduce_prev_layer``, decided by the levels (the structure), not by static shapes.

    One level finer: the factorized reduction (ReLU; two 1x1 convs with ``filters / 2`` maps on
    the stride-2 samples at offsets (0, 0) and (1, 1), the second after shifting by zero padding
    the bottom-right and cropping the top-left; concatenated; BN). Same level, other width: ReLU
    -> 1x1 conv -> BN. Otherwise ``p`` unchanged."""
    if p_level == ip_level - 1:
        p = layers.Activation("relu", name=f"adjust_relu_1_{block_id}")(p)
        p1 = layers.AveragePooling2D(1, strides=2, padding="valid",
                                     name=f"adjust_avg_pool_1_{block_id}")(p)
        p1 = layers.Conv2D(filters // 2, 1, padding="same", use_bias=False,
                           kernel_initializer="he_normal", name=f"adjust_conv_1_{block_id}")(p1)
        p2 = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"adjust_pad_2_{block_id}")(p)
        p2 = layers.Cropping2D(((1, 0), (1, 0)), name=f"adjust_crop_2_{block_id}")(p2)
        p2 = layers.AveragePooling2D(1, strides=2, padding="valid",
                                     name=f"adjust_avg_pool_2_{block_id}")(p2)
        p2 = layers.Conv2D(filters // 2, 1, padding="same", use_bias=False,
                           kernel_initializer="he_normal", name=f"adjust_conv_2_{block_id}")(p2)
        p = layers.Concatenate(name=f"adjust_concat_{block_id}")([p1, p2])
        return BatchNormalization(name=f"adjust_bn_{block_id}", **_BN)(p)
    if p_level != ip_level:
        raise ValueError(f"cell {block_id}: h_(i-1) is {ip_level - p_level} levels finer")
    if p.shape[-1] != filters:
        p = layers.Activation("relu", name=f"adjust_relu_1_{block_id}")(p)
        return _conv_bn(p, filters, f"adjust_conv_projection_{block_id}",
                        f"adjust_bn_{block_id}")
    return p


def nasnet_cell(genotype, ip, p, filters, block_id, drop_rate=0.0):
    """One cell: ``(output, ip)`` from its inputs ``ip = (h_i, level)`` and ``p = (h_{i-1},
    level)`` or ``None`` (the first stem cell reads ``h_i`` twice, keras' ``p = ip``).

    ``drop_rate``: the cell's final drop-path rate (a :class:`ScheduledDropPath` after every
    operation but the identity, as TF-slim's ``_apply_conv_operation``; 0: none). Layer names
    are keras.applications' (``genotype.names``). The output's level is ``ip``'s, one more for a
    reduction cell."""
    x, level = ip
    kind = genotype.kind
    if p is None:
        prev = x
    else:
        prev = adjust_previous(p[0], p[1], level, filters, block_id)
    h = layers.Activation("relu", name=f"{kind}_relu_1_{block_id}")(x)
    h = _conv_bn(h, filters, f"{kind}_conv_1_{block_id}", f"{kind}_bn_1_{block_id}")
    states = [h, prev]
    stride = 2 if kind == "reduction" else 1
    pads = {}

    def padded_state(index):
        def pad(t):
            if index not in pads:
                pads[index] = _pad_for_stride2(t, 3, f"{kind}_pad_{index + 1}_{block_id}")
            return pads[index]
        return pad

    for i, ((left_op, li), (right_op, ri)) in enumerate(genotype.pairs):
        left_name, right_name, add_name = genotype.names[i]
        outs = []
        for op, index, name, side in ((left_op, li, left_name, "left"),
                                      (right_op, ri, right_name, "right")):
            name = name or f"{kind}_{side}{i + 1}"
            t = _operation(states[index], op, filters, stride if index < 2 else 1, name,
                           block_id, padded_state(index))
            if drop_rate > 0 and op != "none":
                t = ScheduledDropPath(drop_rate,
                                      name=f"{kind}_{side}{i + 1}_drop_path_{block_id}")(t)
            outs.append(t)
        states.append(layers.Add(name=f"{add_name}_{block_id}")(outs))
    out = layers.Concatenate(name=f"{kind}_concat_{block_id}")([states[j]
                                                                 for j in genotype.concat])
    return (out, level + (kind == "reduction")), ip


def _aux_head(x, classes, classifier_activation):
    """TF-slim ``_build_aux_head`` on ``x`` (the module docstring)."""
    x = layers.Activation("relu", name="aux_relu")(x)
    if x.shape[1] < 5 or x.shape[2] < 5:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="aux_pool")(x)
    else:
        x = layers.AveragePooling2D(5, strides=3, padding="valid", name="aux_pool")(x)
    x = layers.Conv2D(128, 1, use_bias=False, kernel_initializer="he_normal",
                      name="aux_proj")(x)
    x = BatchNormalization(name="aux_bn0", **_BN)(x)
    x = layers.Activation("relu", name="aux_relu0")(x)
    x = layers.Conv2D(768, tuple(int(v) for v in x.shape[1:3]), padding="valid", use_bias=False,
                      kernel_initializer="he_normal", name="aux_conv")(x)
    x = BatchNormalization(name="aux_bn1", **_BN)(x)
    x = layers.Activation("relu", name="aux_relu1")(x)
    x = layers.Flatten(name="aux_flatten")(x)
    return layers.Dense(classes, activation=classifier_activation, name="aux_predictions")(x)


def _check_knobs(penultimate_filters, num_cells, stem_filters, filter_multiplier,
                 skip_reduction, aux_logits, drop_path, dropout, default_size):
    check_positive_int("penultimate_filters", penultimate_filters)
    check_positive_int("num_cells", num_cells)
    check_positive_int("stem_filters", stem_filters)
    check_positive_int("filter_multiplier", filter_multiplier)
    check_bool("skip_reduction", skip_reduction)
    check_bool("aux_logits", aux_logits)
    drop_path = check_float("drop_path", drop_path, 0.0, 1.0, high_inclusive=False)
    dropout = check_float("dropout", dropout, 0.0, 1.0, high_inclusive=False)
    check_positive_int("default_size", default_size)
    step = 24 * filter_multiplier ** 2
    if penultimate_filters % step:
        fail("penultimate_filters", f"must be a multiple of 24 * filter_multiplier ** 2 = {step} "
             "(24 times the filters of the last cells, which are filter_multiplier ** 2 times "
             "those of the first stem cell)", penultimate_filters)
    if (penultimate_filters // 24 // filter_multiplier) % 2:
        fail("penultimate_filters", "must give an even number of filters to the second stem "
             f"cell (penultimate_filters / 24 / filter_multiplier = "
             f"{penultimate_filters // 24 // filter_multiplier}): the factorized reduction "
             "splits them in two halves", penultimate_filters)
    return drop_path, dropout


@family_builder
def NASNet(penultimate_filters=1056, num_cells=4, stem_filters=32, filter_multiplier=2,
           skip_reduction=False, aux_logits=False, drop_path=0.0, dropout=0.0,
           default_size=224, *, ctx):
    """NASNet-A ``(num_cells @ penultimate_filters)`` (Zoph et al. 2018) as a functional Keras
    model, in keras.applications' layout (the module docstring).

    Args:
        penultimate_filters: ``P``, the width of the last cells' output (24 times their
            filters); a multiple of ``24 * filter_multiplier ** 2``. 1056 for NASNet-A Mobile,
            4032 for Large.
        num_cells: ``N``, the normal cells of each of the three stages (4 Mobile, 6 Large).
        stem_filters: filters of the 3x3 / 2 stem convolution (32 Mobile, 96 Large).
        filter_multiplier: the width factor of each reduction (TF-slim's
            ``filter_scaling_rate``, 2), a positive integer.
        skip_reduction: the first normal cell after a reduction reads the cell before the last
            normal one as ``h_{i-1}`` (NASNetLarge, TF-slim's ``skip_reduction_layer_input``)
            instead of the last normal cell (NASNetMobile).
        aux_logits: add TF-slim's auxiliary head on the stride-16 map as a second output
            (``aux_predictions``, loss weight 0.4); needs a known input size.
        drop_path: the scheduled drop-path rate of the last cell at the end of training
            (TF-slim's ``1 - drop_path_keep_prob``: 0.3 for Large), in ``[0, 1)``; 0 (default,
            keras.applications) adds no drop-path layer.
        dropout: dropout before the classifier (TF-slim's ``1 - dense_dropout_keep_prob``: 0.5),
            in ``[0, 1)``; 0 (default, keras.applications) adds none.
        default_size: the input side when neither ``input_shape`` nor ``input_tensor`` is given
            (224 Mobile, 331 Large).
{common_args}

    Returns:
        A ``keras.Model`` (default name ``nasnet``; the registered ``nasnet_mobile`` /
        ``nasnet_large``).

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    drop_path, dropout = _check_knobs(penultimate_filters, num_cells, stem_filters,
                                      filter_multiplier, skip_reduction, aux_logits, drop_path,
                                      dropout, default_size)
    m = filter_multiplier
    filters = penultimate_filters // 24
    img_input = ctx.start(default_shape=(default_size, default_size, 3), min_size=_MIN_SIZE,
                          require_static=aux_logits)
    total_cells = 3 * num_cells + 4  # TF-slim's total_num_cells: 2 stem + 2 reduction cells
    cell_num = iter(range(total_cells))

    def cell(genotype, ip, p, width, block_id):
        rate = drop_path * (next(cell_num) + 1) / total_cells
        return nasnet_cell(genotype, ip, p, width, block_id, drop_rate=rate)

    x = layers.Conv2D(stem_filters, 3, strides=2, padding="valid", use_bias=False,
                      kernel_initializer="he_normal", name="stem_conv1")(img_input)
    x = BatchNormalization(name="stem_bn1", **_BN)(x)
    features = {"P1": feature_level("P1", x, extent=3)}
    x, p = cell(NASNET_A_REDUCTION, (x, 1), None, filters // m ** 2, "stem_1")
    features["P2"] = feature_level("P2", x[0], extent=3)
    x, p = cell(NASNET_A_REDUCTION, x, p, filters // m, "stem_2")
    aux_at = None
    for stage in range(3):
        width = filters * m ** stage
        if stage:
            x, p_after = cell(NASNET_A_REDUCTION, x, p, width, f"reduce_{stage * num_cells}")
            p = p if skip_reduction else p_after
        for i in range(num_cells):
            block = i if stage == 0 else stage * num_cells + i + 1
            x, p = cell(NASNET_A_NORMAL, x, p, width, f"{block}")
        if stage < 2:
            features[f"P{stage + 3}"] = feature_level(f"P{stage + 3}", x[0], extent=3)
        if stage == 1:
            aux_at = x[0]
    x = layers.Activation("relu", name="relu")(x[0])
    features["P5"] = feature_level("P5", x, extent=3)
    if aux_logits:
        ctx.auxiliary(aux_at, lambda t: _aux_head(t, ctx.classes, ctx.classifier_activation),
                      name="aux_predictions", loss_weight=AUX_LOSS_WEIGHT)
    return ctx.finish(x, lambda t: pooled_classifier(t, ctx, dropout=dropout),
                      default_name="nasnet", features=features)


# reference figures: reference_figures.csv
register_model("nasnet_mobile", family="NASNet-A", paper=_PAPER, builder=NASNet,
               default_input_shape=(224, 224, 3), min_input_size=_MIN_SIZE,
               penultimate_filters=1056, num_cells=4, stem_filters=32, skip_reduction=False,
               default_size=224)
register_model("nasnet_large", family="NASNet-A", paper=_PAPER, builder=NASNet,
               default_input_shape=(331, 331, 3), min_input_size=_MIN_SIZE,
               penultimate_filters=4032, num_cells=6, stem_filters=96, skip_reduction=True,
               default_size=331)
