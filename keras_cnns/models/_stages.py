"""Stages of blocks: one frozen spec type (:class:`StageSpec`) and :func:`build_stages`.

A stage is ``blocks`` blocks of one kind at one width; its first block (or its last, for
keras.applications ResNetV2) strides. :func:`build_stages` builds a sequence of stages from a
mapping ``kind -> block function`` (default :data:`keras_cnns.blocks.BLOCKS`; families with other
blocks pass their own), names each block with ``name_fn(stage_index, block_index)``, spreads
stochastic depth over all blocks (Huang et al. 2016, arXiv:1603.09382) and collects the feature
pyramid: ``features["P<k>"]`` is the last map at stride ``2^k`` (keras-hub's ``pyramid_outputs``
keys), recorded before a block that leaves level ``k`` and at the end.

A block function is called as ``fn(x, spec.filters, stride=..., groups=spec.groups,
base_width=spec.base_width, survival_prob=p_l or None, name=..., **block_kwargs,
**spec.options)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from keras_cnns._checks import fail, is_int
from keras_cnns.blocks.stochastic_depth import check_survival_prob

__all__ = [
    "SURVIVAL_RULES",
    "StageSpec",
    "build_numbered_stages",
    "build_stages",
    "check_stochastic_depth",
    "stage_levels",
    "survival_probabilities",
]

SURVIVAL_RULES = ("linear", "uniform")
_STRIDE_BLOCKS = ("first", "last")


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One stage of blocks.

    Attributes:
        block: the block kind, a key of the block mapping (``"basic"``, ``"bottleneck"``,
            ``"preact_basic"``, ``"preact_bottleneck"`` in :data:`keras_cnns.blocks.BLOCKS`).
        blocks: number of blocks.
        filters: the blocks' ``filters``.
        stride: the stage's stride, a power of two (1 keeps the resolution).
        groups: the blocks' ``groups``.
        base_width: the blocks' ``base_width``.
        stride_block: which block strides: ``"first"`` (the papers, torchvision) or ``"last"``
            (keras.applications ResNetV2).
        options: further keyword arguments of this stage's blocks, a mapping (stored as sorted
            ``(key, value)`` pairs so the spec stays hashable).

    Raises:
        ValueError: an invalid field (the message names it).
    """

    block: str
    blocks: int
    filters: int
    stride: int = 1
    groups: int = 1
    base_width: int = 64
    stride_block: str = "first"
    options: Any = ()

    def __post_init__(self):
        if not isinstance(self.block, str) or not self.block:
            fail("block", "must be a block kind name (a non-empty string)", self.block)
        for arg in ("blocks", "filters", "stride", "groups", "base_width"):
            value = getattr(self, arg)
            if not is_int(value) or value < 1:
                fail(arg, "must be a positive integer", value)
            object.__setattr__(self, arg, int(value))
        if self.stride & (self.stride - 1):
            fail("stride", "must be a power of two (1, 2, 4, ...)", self.stride)
        if self.stride_block not in _STRIDE_BLOCKS:
            fail("stride_block", f"must be one of {list(_STRIDE_BLOCKS)}", self.stride_block)
        options = self.options
        if isinstance(options, Mapping):
            options = tuple(sorted(options.items()))
        try:
            options = tuple((k, v) for k, v in options)
        except (TypeError, ValueError):
            options = None
        if options is None or not all(isinstance(k, str) for k, _ in options):
            fail("options", "must be a mapping of block keyword arguments", self.options)
        reserved = {"stride", "groups", "base_width", "survival_prob", "name"} & {k for k, _ in options}
        if reserved:
            fail("options", f"must not set {sorted(reserved)} (StageSpec fields / set per block)",
                 self.options)
        object.__setattr__(self, "options", options)

    @property
    def kwargs(self) -> Dict[str, Any]:
        """``options`` as a dict."""
        return dict(self.options)

    def block_stride(self, index: int) -> int:
        """The stride of block ``index`` (0-based) of this stage."""
        at = 0 if self.stride_block == "first" else self.blocks - 1
        return self.stride if index == at else 1


def check_stochastic_depth(stochastic_depth, rule):
    """``(p_L or None, rule)`` checked: ``stochastic_depth`` None or in ``(0, 1]``, ``rule`` in
    :data:`SURVIVAL_RULES`."""
    p_last = check_survival_prob("stochastic_depth", stochastic_depth)
    if rule not in SURVIVAL_RULES:
        fail("stochastic_depth_rule", f"must be one of {list(SURVIVAL_RULES)}", rule)
    return p_last, rule


def survival_probabilities(num_blocks: int, last: float = 0.5, rule: str = "linear") -> list:
    """Survival probabilities ``[p_1, ..., p_L]`` of ``L = num_blocks`` residual blocks.

    ``"linear"``: Huang et al.'s linear decay rule ``p_l = 1 - l / L * (1 - p_L)`` (eq. (4); the
    paper's default ``p_L = 0.5``), from nearly 1 at the input to ``p_L`` at the last block;
    ``"uniform"``: ``p_l = p_L`` for every block.

    Raises:
        ValueError: ``num_blocks`` not a positive integer, ``last`` outside ``(0, 1]`` or an
            unknown ``rule``.
    """
    if not is_int(num_blocks) or num_blocks < 1:
        fail("num_blocks", "must be a positive integer", num_blocks)
    last, rule = check_stochastic_depth(last, rule)
    if last is None:
        fail("last", "must be a survival probability in (0, 1]", last)
    if rule == "uniform":
        return [last] * int(num_blocks)
    return [1.0 - l / num_blocks * (1.0 - last) for l in range(1, int(num_blocks) + 1)]


def _level_step(stride: int) -> int:
    return stride.bit_length() - 1  # log2 of a power of two


def _check_stages(stages, block_fns):
    if isinstance(stages, StageSpec) or not isinstance(stages, Sequence) or not stages \
            or not all(isinstance(s, StageSpec) for s in stages):
        fail("stages", "must be a non-empty sequence of StageSpec", stages)
    for spec in stages:
        if spec.block not in block_fns:
            fail("stages", f"use block kinds from {sorted(block_fns)} (unknown {spec.block!r})",
                 stages)


def stage_levels(stages: Sequence[StageSpec], level: int = 0) -> list:
    """The pyramid levels ``k`` (stride ``2^k``) that :func:`build_stages` records for ``stages``
    starting from a map at level ``level`` (sorted; the starting level included when a block
    runs at it)."""
    levels = []
    for spec in stages:
        for index in range(spec.blocks):
            stride = spec.block_stride(index)
            if stride > 1:
                if level not in levels:
                    levels.append(level)
                level += _level_step(stride)
    if level not in levels:
        levels.append(level)
    return sorted(levels)


def _default_name(stage_index: int, block_index: int) -> str:
    return f"stage{stage_index + 1}_block{block_index + 1}"


def build_stages(
    x,
    stages: Sequence[StageSpec],
    *,
    block_fns: Optional[Mapping[str, Callable[..., Any]]] = None,
    block_kwargs: Optional[Mapping[str, Any]] = None,
    stochastic_depth: Optional[float] = None,
    stochastic_depth_rule: str = "linear",
    name_fn: Optional[Callable[[int, int], str]] = None,
    level: int = 0,
    features: Optional[Mapping[str, Any]] = None,
    seed: Optional[int] = None,
) -> Tuple[Any, Dict[str, Any]]:
    """Build ``stages`` on ``x``; return ``(x, features)``.

    Args:
        x: input tensor (channels last).
        stages: the :class:`StageSpec` sequence.
        block_fns: kind -> block function; default :data:`keras_cnns.blocks.BLOCKS`.
        block_kwargs: keyword arguments of every block (``shortcut``, ``stride_on``, BN settings,
            ...); a stage's ``options`` override them.
        stochastic_depth: ``None`` (off) or the survival probability ``p_L`` of the last block.
        stochastic_depth_rule: ``"linear"`` (``p_l = 1 - l/L (1 - p_L)`` over all ``L`` blocks of
            all stages) or ``"uniform"`` (see :func:`survival_probabilities`).
        name_fn: ``name_fn(stage_index, block_index) -> str`` (0-based), the block names; default
            ``stage{s+1}_block{b+1}``.
        level: the pyramid level of ``x`` (``log2`` of its stride; 2 after a ResNet stem).
        features: pyramid entries the stem recorded (``{"P1": ...}``), copied into the result.
        seed: base seed of the stochastic-depth draws (block ``l`` gets ``seed + l``).

    Returns:
        ``(x, features)``: the output tensor and ``{"P<k>": tensor}`` with the last map of every
        level (:func:`stage_levels`), plus the given ``features``.

    Raises:
        ValueError: invalid ``stages``, stochastic-depth arguments or ``level``.
    """
    from keras_cnns.blocks import BLOCKS

    block_fns = BLOCKS if block_fns is None else block_fns
    if not isinstance(block_fns, Mapping) or not all(callable(f) for f in block_fns.values()):
        fail("block_fns", "must be a mapping from block kind to block function", block_fns)
    _check_stages(stages, block_fns)
    p_last, rule = check_stochastic_depth(stochastic_depth, stochastic_depth_rule)
    if not is_int(level) or level < 0:
        fail("level", "must be an integer >= 0", level)
    name_fn = _default_name if name_fn is None else name_fn
    total = sum(spec.blocks for spec in stages)
    probs = [None] * total if p_last is None else survival_probabilities(total, p_last, rule)

    out = dict(features or {})
    l = 0
    for s, spec in enumerate(stages):
        for b in range(spec.blocks):
            stride = spec.block_stride(b)
            if stride > 1:
                out[f"P{level}"] = x
                level += _level_step(stride)
            kwargs = dict(block_kwargs or {})
            kwargs.update(spec.options)
            if probs[l] is not None:
                kwargs["seed"] = None if seed is None else seed + l
            x = block_fns[spec.block](
                x, spec.filters, stride=stride, groups=spec.groups, base_width=spec.base_width,
                survival_prob=probs[l], name=name_fn(s, b), **kwargs,
            )
            l += 1
    out[f"P{level}"] = x
    return x, out


def build_numbered_stages(x, stages: Sequence[StageSpec], block_fn: Callable[..., Any], *,
                          layer_names: Callable[[int], Mapping[str, str]],
                          name: Optional[Callable[[int], str]] = None,
                          block_kwargs_of: Optional[Callable[[int], Mapping[str, Any]]] = None,
                          **kwargs):
    """:func:`build_stages` with one block function for every stage, for families whose layer
    names count the blocks over all stages (keras.applications' MobileNetV2 ``block_16_...``,
    MobileNetV3 ``expanded_conv_14_...``): block ``i`` (0-based) is built with
    ``layer_names=layer_names(i)``, when ``name`` is given ``name=name(i)``, and when
    ``block_kwargs_of`` is given with its ``block_kwargs_of(i)`` added (EfficientNet's drop
    connect rate, which grows with ``i``). ``kwargs`` go to :func:`build_stages`; returns its
    ``(x, features)``."""
    offsets = [sum(spec.blocks for spec in stages[:i]) for i in range(len(stages))]
    prefix = name

    def numbered(t, filters, *, name: str, **block_kwargs):
        index = int(name)
        if prefix is not None:
            block_kwargs["name"] = prefix(index)
        if block_kwargs_of is not None:
            block_kwargs.update(block_kwargs_of(index))
        return block_fn(t, filters, layer_names=layer_names(index), **block_kwargs)

    kinds = {spec.block for spec in stages}
    return build_stages(x, stages, block_fns={kind: numbered for kind in kinds},
                        name_fn=lambda s, b: str(offsets[s] + b), **kwargs)
