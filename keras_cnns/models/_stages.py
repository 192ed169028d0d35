"""Stages of blocks: frozen spec types (:class:`StageSpec`, :class:`Stage`, :class:`Transition`,
:class:`SplitMerge`) and :func:`build_stages`.

A :class:`StageSpec` is ``blocks`` blocks of one kind at one width; its first block (or its
last, for keras.applications ResNetV2) strides. A :class:`Stage` is what a family's stage really
is: one or more ``StageSpec`` parts run in order (ShuffleNet's stride-2 unit, then its stride-1
units), optionally after a ``pre`` and before a ``post`` :class:`Transition` (layers between the
blocks that are not blocks: DenseNet's BN-ReLU-1x1-pool, SqueezeNext v5's 1x1 convolution,
RevNet's downsampling block), optionally with the parts run on one half of a
:class:`SplitMerge` (CSPNet). :func:`build_stages` builds a sequence of stages from a mapping
``kind -> block function`` (default :data:`keras_cnns.blocks.BLOCKS`; families with other
blocks pass their own), names each block with ``name_fn(stage_index, block_index)``, spreads
stochastic depth over all blocks (Huang et al. 2016, arXiv:1603.09382; transitions are not
blocks) and collects the feature pyramid: ``features["P<k>"]`` is the last map at stride
``2^k`` (keras-hub's ``pyramid_outputs`` keys), recorded before a block or transition that
leaves level ``k`` and at the end.

A block function is called as ``fn(x, spec.filters, stride=..., groups=spec.groups,
base_width=spec.base_width, survival_prob=p_l or None, name=..., **block_kwargs,
**spec.options, **block_kwargs_fn(stage_index, block_index))``; :func:`plain_block` adapts a
block without stochastic depth.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from keras_cnns._checks import fail, is_int
from keras_cnns.blocks.stochastic_depth import check_survival_prob

__all__ = [
    "SURVIVAL_RULES",
    "SplitMerge",
    "Stage",
    "StageSpec",
    "Transition",
    "build_numbered_stages",
    "build_stages",
    "check_stochastic_depth",
    "plain_block",
    "stage_levels",
    "survival_probabilities",
]

SURVIVAL_RULES = ("linear", "uniform")
_STRIDE_BLOCKS = ("first", "last")
#: Block keyword arguments that :func:`build_stages` sets itself.
_RESERVED = frozenset({"stride", "groups", "base_width", "survival_prob", "name"})


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
        reserved = _RESERVED & {k for k, _ in options}
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


def _check_stride(value):
    if not is_int(value) or value < 1 or value & (value - 1):
        fail("stride", "must be a power of two (1, 2, 4, ...)", value)
    return int(value)


@dataclasses.dataclass(frozen=True)
class Transition:
    """Layers between blocks that are not a block: ``fn(x) -> x`` (the family names its layers),
    with no stochastic depth and not counted among the ``L`` blocks of the survival rule.

    Attributes:
        fn: the layers, ``fn(x) -> x``.
        stride: how much ``fn`` reduces the resolution, a power of two (DenseNet's 2x2 average
            pool: 2). A striding transition leaves the pyramid level: its input is recorded as
            the last map of the old level, its output counts at the new one. When both sides'
            sizes are known :func:`build_stages` checks that ``fn`` keeps to ``stride``.

    Raises:
        ValueError: ``fn`` not callable or ``stride`` not a power of two.
    """

    fn: Callable[[Any], Any]
    stride: int = 1

    def __post_init__(self):
        if not callable(self.fn):
            fail("fn", "must be a callable fn(x) -> x", self.fn)
        object.__setattr__(self, "stride", _check_stride(self.stride))


@dataclasses.dataclass(frozen=True)
class SplitMerge:
    """A split-and-merge stage (CSPNet, Wang et al. 2020, arXiv:1911.11929): ``split(x) ->
    (part, other)``, the stage's blocks run on ``part`` alone, then ``merge(blocks_output,
    other) -> x`` (CSPNet: a 1x1 transition on the blocks' output, concatenation with
    ``other``, a 1x1 merge convolution). Neither may change the resolution (a stage downsamples
    in its ``pre`` transition).

    Raises:
        ValueError: ``split`` or ``merge`` not callable.
    """

    split: Callable[[Any], Tuple[Any, Any]]
    merge: Callable[[Any, Any], Any]

    def __post_init__(self):
        if not callable(self.split):
            fail("split", "must be a callable split(x) -> (part, other)", self.split)
        if not callable(self.merge):
            fail("merge", "must be a callable merge(blocks_output, other) -> x", self.merge)


def _as_transition(arg, value):
    if value is None or isinstance(value, Transition):
        return value
    if callable(value):
        return Transition(value)
    fail(arg, "must be None, a Transition or a callable fn(x) -> x (stride 1)", value)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage as a family has it: ``pre`` -> [``split``] -> ``parts`` -> [``merge``] ->
    ``post``.

    Attributes:
        parts: a :class:`StageSpec` or a non-empty sequence of them, built one after the other
            (ShuffleNet: the stride-2 unit, then the stride-1 units); the block index that
            ``name_fn`` gets counts over all parts of the stage.
        pre: ``None``, a :class:`Transition` before the blocks, or a callable (a stride-1
            transition).
        post: the same after the blocks (DenseNet's BN-ReLU-1x1-pool with stride 2).
        split_merge: ``None`` or a :class:`SplitMerge` around the blocks; its parts must not
            stride.

    Raises:
        ValueError: an invalid field (the message names it).
    """

    parts: Any
    pre: Optional[Transition] = None
    post: Optional[Transition] = None
    split_merge: Optional[SplitMerge] = None

    def __post_init__(self):
        parts = (self.parts,) if isinstance(self.parts, StageSpec) else self.parts
        if not isinstance(parts, Sequence) or isinstance(parts, str) or not parts \
                or not all(isinstance(p, StageSpec) for p in parts):
            fail("parts", "must be a StageSpec or a non-empty sequence of StageSpec", self.parts)
        object.__setattr__(self, "parts", tuple(parts))
        object.__setattr__(self, "pre", _as_transition("pre", self.pre))
        object.__setattr__(self, "post", _as_transition("post", self.post))
        if self.split_merge is not None:
            if not isinstance(self.split_merge, SplitMerge):
                fail("split_merge", "must be None or a SplitMerge", self.split_merge)
            if any(p.stride > 1 for p in self.parts):
                fail("split_merge", "needs parts of stride 1 (the other part keeps the "
                                    "resolution; downsample in `pre`)", self.split_merge)

    @property
    def blocks(self) -> int:
        """The number of blocks over all parts."""
        return sum(p.blocks for p in self.parts)

    def strides(self):
        """The strides of the stage's steps in build order (transitions and blocks)."""
        if self.pre is not None:
            yield self.pre.stride
        for spec in self.parts:
            yield from (spec.block_stride(i) for i in range(spec.blocks))
        if self.post is not None:
            yield self.post.stride


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
    """``stages`` as a tuple of :class:`Stage` (a :class:`StageSpec` is a one-part stage)."""
    if isinstance(stages, (StageSpec, Stage)) or not isinstance(stages, Sequence) or not stages \
            or not all(isinstance(s, (StageSpec, Stage)) for s in stages):
        fail("stages", "must be a non-empty sequence of StageSpec or Stage", stages)
    stages = tuple(s if isinstance(s, Stage) else Stage(s) for s in stages)
    for stage in stages:
        for spec in stage.parts:
            if spec.block not in block_fns:
                fail("stages", f"use block kinds from {sorted(block_fns)} (unknown "
                               f"{spec.block!r})", stages)
    return stages


def stage_levels(stages: Sequence[Any], level: int = 0) -> list:
    """The pyramid levels ``k`` (stride ``2^k``) that :func:`build_stages` records for ``stages``
    (:class:`StageSpec` or :class:`Stage`) starting from a map at level ``level`` (sorted; the
    starting level included when a block or transition strides from it)."""
    levels = []
    for stage in stages:
        stage = stage if isinstance(stage, Stage) else Stage(stage)
        for stride in stage.strides():
            if stride > 1:
                if level not in levels:
                    levels.append(level)
                level += _level_step(stride)
    if level not in levels:
        levels.append(level)
    return sorted(levels)


def _spatial(x):
    return tuple(getattr(x, "shape", (None,) * 4)[1:3])


def _transition(x, transition, where):
    """Run ``transition`` on ``x``; check its declared stride when both sizes are known."""
    y = transition.fn(x)
    for before, after in zip(_spatial(x), _spatial(y)):
        if before is not None and after is not None and after not in (
                before // transition.stride, -(-before // transition.stride)):
            fail("stages", f"{where}: its transition maps {_spatial(x)} to {_spatial(y)}, not "
                           f"the declared stride {transition.stride}", transition)
    return y


def _split(split_merge, x, where):
    parts = split_merge.split(x)
    if not isinstance(parts, (tuple, list)) or len(parts) != 2:
        fail("stages", f"{where}: split_merge.split must return two tensors (part, other)",
             parts)
    return parts


def _default_name(stage_index: int, block_index: int) -> str:
    return f"stage{stage_index + 1}_block{block_index + 1}"


def build_stages(
    x,
    stages: Sequence[Any],
    *,
    block_fns: Optional[Mapping[str, Callable[..., Any]]] = None,
    block_kwargs: Optional[Mapping[str, Any]] = None,
    stochastic_depth: Optional[float] = None,
    stochastic_depth_rule: str = "linear",
    name_fn: Optional[Callable[[int, int], str]] = None,
    level: int = 0,
    features: Optional[Mapping[str, Any]] = None,
    seed: Optional[int] = None,
    block_kwargs_fn: Optional[Callable[[int, int], Mapping[str, Any]]] = None,
) -> Tuple[Any, Dict[str, Any]]:
    """Build ``stages`` on ``x``; return ``(x, features)``.

    Args:
        x: input tensor (channels last).
        stages: a sequence of :class:`StageSpec` (a stage of one kind of block) and
            :class:`Stage` (several parts, transitions, a split and merge), in any mix.
        block_fns: kind -> block function; default :data:`keras_cnns.blocks.BLOCKS`.
        block_kwargs: keyword arguments of every block (``shortcut``, ``stride_on``, BN settings,
            ...); a part's ``options`` override them.
        stochastic_depth: ``None`` (off) or the survival probability ``p_L`` of the last block.
        stochastic_depth_rule: ``"linear"`` (``p_l = 1 - l/L (1 - p_L)`` over all ``L`` blocks of
            all stages; transitions are not blocks) or ``"uniform"`` (see
            :func:`survival_probabilities`).
        name_fn: ``name_fn(stage_index, block_index) -> str`` (0-based; the block index counts
            over all parts of the stage), the block names; default ``stage{s+1}_block{b+1}``.
        level: the pyramid level of ``x`` (``log2`` of its stride; 2 after a ResNet stem).
        features: pyramid entries the stem recorded (``{"P1": ...}``), copied into the result.
        seed: base seed of the stochastic-depth draws (block ``l`` gets ``seed + l``).
        block_kwargs_fn: ``block_kwargs_fn(stage_index, block_index) -> mapping``, keyword
            arguments of one block, over ``block_kwargs`` and the ``options`` (SqueezeNext's
            order of the separable pair, alternating with the block index).

    Returns:
        ``(x, features)``: the output tensor and ``{"P<k>": tensor}`` with the last map of every
        level (:func:`stage_levels`), plus the given ``features``. A map's level is ``log2`` of
        its stride: a striding block or transition records its input as ``P<level>`` and moves
        the level on.

    Raises:
        ValueError: invalid ``stages`` (also a transition that does not keep to its stride, a
            split that does not give two tensors), ``block_fns``, stochastic-depth arguments,
            ``level`` or ``block_kwargs_fn``.

    Examples (``x`` after the stem, at stride 4, so ``level=2``). Stages of one kind of block,
    ResNet-50::

        stages = [StageSpec("bottleneck", n, f, stride=s)
                  for n, f, s in zip((3, 4, 6, 3), (64, 128, 256, 512), (1, 2, 2, 2))]
        x, features = build_stages(x, stages, stochastic_depth=0.5, level=2,
                                   features={"P1": stem_conv})   # P1 .. P5

    A transition after the blocks, DenseNet-121 (the pool moves the level on; RevNet's
    downsampling block after a reversible run is ``Transition(down_block, stride=2)`` alike)::

        def transition(k, filters):
            def fn(t):
                t = layers.BatchNormalization(name=f"pool{k}_bn")(t)
                t = layers.ReLU(name=f"pool{k}_relu")(t)
                t = layers.Conv2D(filters, 1, use_bias=False, name=f"pool{k}_conv")(t)
                return layers.AveragePooling2D(2, 2, name=f"pool{k}_pool")(t)
            return Transition(fn, stride=2)

        stages = [Stage(StageSpec("dense", 6, 32), post=transition(2, 128)),
                  Stage(StageSpec("dense", 12, 32), post=transition(3, 256)),
                  Stage(StageSpec("dense", 24, 32), post=transition(4, 512)),
                  StageSpec("dense", 16, 32)]
        x, features = build_stages(x, stages, block_fns={"dense": dense_layer}, level=2,
                                   name_fn=lambda s, b: f"conv{s + 2}_block{b + 1}")

    A split-and-merge stage, CSPResNet (the blocks see ``part`` only)::

        def split(t):
            return (layers.Conv2D(64, 1, name="stage2_part1")(t),
                    layers.Conv2D(64, 1, name="stage2_part2")(t))

        def merge(y, other):
            y = layers.Conv2D(64, 1, name="stage2_transition")(y)
            y = layers.Concatenate(name="stage2_concat")([y, other])
            return layers.Conv2D(128, 1, name="stage2_merge")(y)

        stage = Stage(StageSpec("bottleneck", 3, 16, options={"expansion": 4}),
                      pre=Transition(down_conv, stride=2), split_merge=SplitMerge(split, merge))

    Two specs in one stage, ShuffleNet v2 (the stride-2 unit, then stride-1 units; names per
    stage: ``stage2_0`` ... ``stage2_3``)::

        stages = [Stage([StageSpec("down", 1, w, stride=2), StageSpec("basic", n - 1, w)])
                  for n, w in zip((4, 8, 4), (116, 232, 464))]
        x, features = build_stages(x, stages, block_fns={"down": unit, "basic": unit},
                                   level=2, name_fn=lambda s, b: f"stage{s + 2}_{b}")
    """
    from keras_cnns.blocks import BLOCKS

    block_fns = BLOCKS if block_fns is None else block_fns
    if not isinstance(block_fns, Mapping) or not all(callable(f) for f in block_fns.values()):
        fail("block_fns", "must be a mapping from block kind to block function", block_fns)
    stages = _check_stages(stages, block_fns)
    p_last, rule = check_stochastic_depth(stochastic_depth, stochastic_depth_rule)
    if not is_int(level) or level < 0:
        fail("level", "must be an integer >= 0", level)
    if block_kwargs_fn is not None and not callable(block_kwargs_fn):
        fail("block_kwargs_fn", "must be None or a callable (stage_index, block_index) -> "
                                "mapping", block_kwargs_fn)
    name_fn = _default_name if name_fn is None else name_fn
    total = sum(stage.blocks for stage in stages)
    probs = [None] * total if p_last is None else survival_probabilities(total, p_last, rule)

    out = dict(features or {})

    def advance(t, stride):
        nonlocal level
        if stride > 1:
            out[f"P{level}"] = t
            level += _level_step(stride)

    l = 0
    for s, stage in enumerate(stages):
        if stage.pre is not None:
            advance(x, stage.pre.stride)
            x = _transition(x, stage.pre, f"stage {s}'s pre")
        if stage.split_merge is not None:
            x, other = _split(stage.split_merge, x, f"stage {s}")
        b = 0
        for spec in stage.parts:
            for i in range(spec.blocks):
                stride = spec.block_stride(i)
                advance(x, stride)
                kwargs = dict(block_kwargs or {})
                kwargs.update(spec.options)
                if block_kwargs_fn is not None:
                    kwargs.update(_block_kwargs_of(block_kwargs_fn, s, b))
                if probs[l] is not None:
                    kwargs["seed"] = None if seed is None else seed + l
                x = block_fns[spec.block](
                    x, spec.filters, stride=stride, groups=spec.groups,
                    base_width=spec.base_width, survival_prob=probs[l], name=name_fn(s, b),
                    **kwargs,
                )
                b += 1
                l += 1
        if stage.split_merge is not None:
            x = stage.split_merge.merge(x, other)
        if stage.post is not None:
            advance(x, stage.post.stride)
            x = _transition(x, stage.post, f"stage {s}'s post")
    out[f"P{level}"] = x
    return x, out


def _block_kwargs_of(block_kwargs_fn, s, b):
    kwargs = block_kwargs_fn(s, b)
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        fail("block_kwargs_fn", f"must return a mapping of block keyword arguments (stage {s}, "
                                f"block {b})", kwargs)
    reserved = _RESERVED & set(kwargs)
    if reserved:
        fail("block_kwargs_fn", f"must not set {sorted(reserved)} (StageSpec fields / set per "
                                f"block; stage {s}, block {b})", kwargs)
    return kwargs


def plain_block(fn: Callable[..., Any], *, stride_arg: Optional[str] = "stride",
                takes_groups: bool = False) -> Callable[..., Any]:
    """A :func:`build_stages` block function from a block ``fn(x, filters, *, <stride_arg>,
    name, **kwargs)`` without stochastic depth or ``base_width`` (ShuffleNet's units,
    SqueezeNext's block, VGG's convolution): passes the stride as ``stride_arg`` (``None``: the
    block takes none, its stride must be 1), the spec's ``groups`` when ``takes_groups`` (else
    the spec's must be 1), and raises a ValueError naming
    ``stochastic_depth`` when a survival probability would be dropped."""

    def block(x, filters, *, stride, groups: int, base_width, survival_prob, name, **kwargs):
        del base_width
        if survival_prob is not None:
            fail("stochastic_depth", f"must be None: {fn.__name__} has no stochastic depth",
                 survival_prob)
        if takes_groups:
            kwargs["groups"] = groups
        elif groups != 1:
            fail("groups", f"must be 1: {fn.__name__} takes no groups", groups)
        if stride_arg is not None:
            kwargs[stride_arg] = stride
        elif stride != 1:
            fail("stride", f"must be 1: {fn.__name__} takes no stride", stride)
        return fn(x, filters, name=name, **kwargs)

    block.__name__ = getattr(fn, "__name__", "block")
    return block


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
