"""DenseNet: the ImageNet DenseNets (121 / 161 / 169 / 201 / 264) and the CIFAR DenseNets of the
paper's Table 2, with the memory-efficient implementation as a keyword.

Papers:

* Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks", CVPR 2017
  (arXiv:1608.06993). Layer ``l`` of a dense block computes ``x_l = H_l([x_0, ..., x_{l-1}])``
  (eq. 2); ``H_l`` = BN -> ReLU -> 3x3 conv with ``k`` (growth rate) maps, after a bottleneck BN
  -> ReLU -> 1x1 conv with ``4k`` maps in DenseNet-B; between blocks a transition BN -> ReLU ->
  1x1 conv -> 2x2 average pool, compressing to ``floor(theta m)`` maps in DenseNet-C
  (``compression=theta``; DenseNet-BC: both, ``theta = 0.5``).

  - ImageNet (Table 1): a 7x7/2 convolution with ``2k`` maps, BN, ReLU, a 3x3/2 max pool, four
    dense blocks of (6, 12, 24, 16) / (6, 12, 32, 32) / (6, 12, 48, 32) / (6, 12, 64, 48) layers
    (DenseNet-121 / 169 / 201 / 264, ``k = 32``) with three transitions, BN, ReLU, global
    average pooling, the classifier. DenseNet-161 is ``k = 48`` with (6, 12, 36, 24)
    (torchvision and the authors' ``densenet-imagenet.lua``).
  - CIFAR (Sec. 4.2, Table 2): a 3x3 convolution with 16 maps (``2k`` for DenseNet-BC), three
    dense blocks of equal length at 32, 16 and 8 px (``(L - 4) / 3`` layers per block, half as
    many bottleneck layers), two transitions, BN, ReLU, global average pooling, the classifier:
    DenseNet (L=40, k=12), (L=100, k=12), (L=100, k=24), DenseNet-BC (L=100, k=12),
    (L=250, k=24), (L=190, k=40) with 1.0 M, 7.0 M, 27.2 M, 0.8 M, 15.3 M, 25.6 M parameters.

* Pleiss, Chen, Huang, Li, van der Maaten, Weinberger, "Memory-Efficient Implementation of
  DenseNets", 2017 (arXiv:1707.06990): ``memory_efficient=True`` recomputes each layer's
  concatenation, batch normalisations and ReLUs in the backward pass instead of storing them
  (:class:`keras_cnns.layers.DenseLayer`; the 1x1 convolution too in a block's first layers,
  which read at most 8k maps), so the stored activations
  grow linearly with a block's depth instead of quadratically; outputs, gradients, weights and
  their names are the plain model's, and the BN moving statistics are updated once per step
  (needs ``drop_rate=0``).

Reference code:

* keras.applications ``keras/src/applications/densenet.py`` (``DenseNet121/169/201``; our
  default ``layout="keras"``): the layer names here (``conv1_conv``, ``conv1_bn``, ``pool1``,
  ``conv{s}_block{b}_{0_bn,1_conv,1_bn,2_conv,concat}``, ``pool{s}_{bn,conv,pool}``, ``bn``,
  ``relu``, ``avg_pool``, ``predictions``), BN epsilon 1.001e-5 and Keras' momentum 0.99,
  Glorot-uniform kernels; transitions keep ``int(m * theta)`` maps.
* torchvision ``torchvision/models/densenet.py`` (``densenet121/161/169/201``): the same
  network (``features.conv0``, ``denseblock{i}.denselayer{j}.{norm1,conv1,norm2,conv2}``,
  ``transition{i}``, ``norm5``, ``classifier``); ``layout="torchvision"`` takes its BN epsilon
  1e-5, momentum 0.1 (Keras 0.9) and Kaiming-normal kernels, so that
  :func:`keras_cnns.from_torchvision` copies its weights. Its zero-padded max pool equals
  keras.applications' (the input is a ReLU output, so zero padding is the maximum's identity).
* The authors' CIFAR code (liuzhuang13/DenseNet ``densenet.lua``; our ``layout="cifar"``):
  bias-free convolutions, fan-out He-normal kernels, BN epsilon 1e-5; dropout after every
  convolution but the first when ``drop_rate > 0`` (the paper's 0.2 without data augmentation).

Feature levels: ImageNet P1 (the stem's ReLU) to P5 (the final BN -> ReLU), P2..P4 each dense
block's output before its transition (timm's ``features.denseblock{i}``); CIFAR P0 to P2. The
transitions' 2x2 pools floor odd sides, so P3..P5 (P1, P2 on CIFAR) are declared with the
extents that give their sides.
"""

from __future__ import annotations

from keras import layers

from keras_cnns._checks import check_bool, check_choice, check_float, check_positive_int, fail, \
    is_int
from keras_cnns.blocks.dense import check_memory_efficient, dense_layer, dense_transition
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.models._builder import family_builder, feature_level
from keras_cnns.models._registry import register_model
from keras_cnns.models._stages import Stage, StageSpec, Transition, build_stages, plain_block
from keras_cnns.models.heads import pooled_classifier

__all__ = ["CifarDenseNet", "DenseNet", "IMAGENET_DEPTHS", "torchvision_names"]

#: depth -> (layers per dense block, growth rate) of the ImageNet DenseNets (Table 1;
#: DenseNet-161 from torchvision / the authors' densenet-imagenet.lua).
IMAGENET_DEPTHS = {
    121: ((6, 12, 24, 16), 32),
    161: ((6, 12, 36, 24), 48),
    169: ((6, 12, 32, 32), 32),
    201: ((6, 12, 48, 32), 32),
    264: ((6, 12, 64, 48), 32),
}
_IMAGENET_MIN_SIZE = 32  # P5 side floor((H + 3) / 32) >= 1
_CIFAR_MIN_SIZE = 8      # two transitions: 8 -> 4 -> 2

_FAN_IN_NORMAL = {"class_name": "VarianceScaling",
                  "config": {"scale": 2.0, "mode": "fan_in", "distribution": "untruncated_normal"}}
_FAN_OUT_NORMAL = {"class_name": "VarianceScaling",
                   "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}}
#: Layer settings of each layout (module docstring).
LAYOUTS = {
    "keras": dict(bn_epsilon=1.001e-5, bn_momentum=0.99, kernel_initializer="glorot_uniform"),
    "torchvision": dict(bn_epsilon=1e-5, bn_momentum=0.9, kernel_initializer=_FAN_IN_NORMAL),
    "cifar": dict(bn_epsilon=1e-5, bn_momentum=0.9, kernel_initializer=_FAN_OUT_NORMAL),
}

_PAPER = ("G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger. Densely Connected "
          "Convolutional Networks. CVPR 2017 (arXiv:1608.06993)")


def _check_knobs(growth_rate, compression, drop_rate, bottleneck, memory_efficient, layout):
    check_positive_int("growth_rate", growth_rate)
    compression = check_float("compression", compression, low=0.0, high=1.0,
                              low_inclusive=False)
    drop_rate = check_float("drop_rate", drop_rate, low=0.0, high=1.0, high_inclusive=False)
    check_bool("bottleneck", bottleneck)
    check_bool("memory_efficient", memory_efficient)
    check_memory_efficient(memory_efficient, bottleneck, drop_rate)
    check_choice("layout", layout, sorted(LAYOUTS))
    return compression, drop_rate


def _dense_stages(block_sizes, growth_rate, channels, compression, drop_rate, settings):
    """The stages: ``Stage(dense layers, post=transition)`` for all blocks but the last; returns
    ``(stages, channels at the end)``."""
    stages = []
    for s, n in enumerate(block_sizes):
        channels += n * growth_rate
        spec = StageSpec("dense", n, growth_rate)
        if s == len(block_sizes) - 1:
            stages.append(Stage(spec))
            break
        out = int(channels * compression)
        if out < 1:
            fail("compression", f"leaves no maps after dense block {s + 1} "
                                f"(int({channels} * {compression}) = 0)", compression)

        def transition(t, out=out, s=s):
            return dense_transition(t, out, name=f"pool{s + 2}", drop_rate=drop_rate, **settings)

        stages.append(Stage(spec, post=Transition(transition, stride=2)))
        channels = out
    return stages, channels


def _trunk(x, block_sizes, growth_rate, channels, *, bottleneck, compression, drop_rate,
           memory_efficient, settings, level, features):
    """Dense blocks and transitions, the final BN -> ReLU; returns ``(x, features)``."""
    stages, _ = _dense_stages(block_sizes, growth_rate, channels, compression, drop_rate,
                              settings)
    block = plain_block(dense_layer, stride_arg=None)
    x, features = build_stages(
        x, stages, block_fns={"dense": block}, level=level, features=features,
        block_kwargs=dict(bottleneck=bottleneck, drop_rate=drop_rate,
                          memory_efficient=memory_efficient, **settings),
        name_fn=lambda s, b: f"conv{s + 2}_block{b + 1}",
    )
    x = BatchNormalization(epsilon=settings["bn_epsilon"], momentum=settings["bn_momentum"],
                           name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    features[f"P{level + len(block_sizes) - 1}"] = x
    return x, features


def _declared(features, first, extents):
    """The transitions' floor pooling: ``P<first + i>`` declared with ``extents[i]``."""
    for i, extent in enumerate(extents):
        name = f"P{first + i}"
        features[name] = feature_level(name, features[name], extent=extent)
    return features


@family_builder
def DenseNet(depth=121, growth_rate=None, blocks=None, bottleneck=True, compression=0.5,
             drop_rate=0.0, memory_efficient=False, layout="keras", *, ctx):
    """An ImageNet DenseNet (Huang et al. 2017, Table 1) as a functional Keras model.

    Args:
        depth: 121, 161, 169, 201 or 264 (the blocks and growth rate of
            :data:`IMAGENET_DEPTHS`); ignored for the blocks when ``blocks`` is given.
        growth_rate: ``k``, default the depth's (48 for DenseNet-161, else 32), a positive
            integer. The stem has ``2k`` maps.
        blocks: ``None`` or a sequence of four positive layer counts (a DenseNet of your own).
        bottleneck: DenseNet-B's 1x1 bottleneck (``4k`` maps) in every layer.
        compression: ``theta`` in ``(0, 1]``, the share of maps a transition keeps.
        drop_rate: dropout after each convolution of a layer and of a transition, in ``[0, 1)``.
        memory_efficient: recompute each layer's concatenation, BNs and ReLUs in the backward
            pass (Pleiss et al. 2017; needs ``bottleneck`` and ``drop_rate=0``): the same
            outputs, gradients and weights, activation memory linear in the depth.
        layout: ``"keras"`` (keras.applications: BN epsilon 1.001e-5, momentum 0.99, Glorot
            kernels) or ``"torchvision"`` (epsilon 1e-5, momentum 0.9, He-normal kernels: build
            this for torchvision weights), or ``"cifar"`` (the authors' Torch code's settings).
{common_args}

    Returns:
        A ``keras.Model`` (default name ``densenet{depth}`` as keras.applications, or
        ``densenet`` with custom ``blocks``).

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    if blocks is None:
        check_choice("depth", depth, sorted(IMAGENET_DEPTHS))
        block_sizes, default_k = IMAGENET_DEPTHS[depth]
    else:
        if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__len__") or len(blocks) != 4 \
                or not all(is_int(n) and n >= 1 for n in blocks):
            fail("blocks", "must be None or four positive layer counts (one per dense block)",
                 blocks)
        block_sizes, default_k = tuple(int(n) for n in blocks), 32
    growth_rate = default_k if growth_rate is None else growth_rate
    compression, drop_rate = _check_knobs(growth_rate, compression, drop_rate, bottleneck,
                                          memory_efficient, layout)
    settings = LAYOUTS[layout]
    bn = dict(epsilon=settings["bn_epsilon"], momentum=settings["bn_momentum"])

    img_input = ctx.start(default_shape=(224, 224, 3), min_size=_IMAGENET_MIN_SIZE)
    x = layers.ZeroPadding2D(3, name="conv1_pad")(img_input)
    x = layers.Conv2D(2 * growth_rate, 7, strides=2, use_bias=False,
                      kernel_initializer=settings["kernel_initializer"], name="conv1_conv")(x)
    x = BatchNormalization(name="conv1_bn", **bn)(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    stem = x
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x, features = _trunk(x, block_sizes, growth_rate, 2 * growth_rate, bottleneck=bottleneck,
                         compression=compression, drop_rate=drop_rate,
                         memory_efficient=memory_efficient, settings=settings, level=2,
                         features={"P1": stem})
    # P3..P5: floor((H + 3) / 2^k) after the floor pools = floor((H - E) / 2^k) + 1.
    features = _declared(features, 3, (5, 13, 29))
    default_name = f"densenet{depth}" if blocks is None else "densenet"
    return ctx.finish(x, lambda t: pooled_classifier(t, ctx), default_name=default_name,
                      features=features)


def cifar_block_size(depth, bottleneck):
    """Layers per dense block of a CIFAR DenseNet of depth ``L``: ``(L - 4) / 3``, halved with
    bottlenecks (two convolutions per layer).

    Raises:
        ValueError: ``depth`` does not fit the rule.
    """
    per = 6 if bottleneck else 3
    if not is_int(depth) or depth < 4 + per or (depth - 4) % per:
        rule = "L = 6n + 4 with bottleneck" if bottleneck else "L = 3n + 4 without bottleneck"
        fail("depth", f"must fit the CIFAR DenseNet rule {rule} (n >= 1 layers per block)",
             depth)
    return (depth - 4) // per


@family_builder(classes=10)
def CifarDenseNet(depth=100, growth_rate=12, bottleneck=True, compression=0.5, drop_rate=0.0,
                  memory_efficient=False, layout="cifar", *, ctx):
    """A CIFAR DenseNet (Huang et al. 2017, Sec. 4.2 and Table 2) as a functional Keras model.

    Args:
        depth: ``L``, the number of weighted layers: ``3n + 4`` without bottleneck (``n`` layers
            per block), ``6n + 4`` with it.
        growth_rate: ``k``, a positive integer.
        bottleneck: DenseNet-B's 1x1 bottleneck (``4k`` maps) in every layer.
        compression: ``theta`` in ``(0, 1]`` (DenseNet-C: 0.5; the plain DenseNet: 1).
        drop_rate: dropout after every convolution but the first, in ``[0, 1)`` (the paper's
            0.2 without data augmentation).
        memory_efficient: recompute each layer's concatenation, BNs and ReLUs in the backward
            pass (Pleiss et al. 2017; needs ``bottleneck`` and ``drop_rate=0``).
        layout: ``"cifar"`` (the authors' code: BN epsilon 1e-5, He-normal fan-out kernels),
            ``"keras"`` or ``"torchvision"`` (their BN and initializer settings).
{common_args}

    The stem is a 3x3 convolution with 16 maps, ``2k`` for DenseNet-BC (``bottleneck`` and
    ``compression < 1``), as in the paper. Default input ``(32, 32, 3)``, 10 classes.

    Returns:
        A ``keras.Model`` (default name ``densenet{L}_k{k}``, ``densenet_bc{L}_k{k}`` for BC).

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    check_bool("bottleneck", bottleneck)
    n = cifar_block_size(depth, bottleneck)
    compression, drop_rate = _check_knobs(growth_rate, compression, drop_rate, bottleneck,
                                          memory_efficient, layout)
    settings = LAYOUTS[layout]
    bc = bottleneck and compression < 1.0
    stem_maps = 2 * growth_rate if bc else 16

    img_input = ctx.start(default_shape=(32, 32, 3), min_size=_CIFAR_MIN_SIZE)
    x = layers.Conv2D(stem_maps, 3, padding="same", use_bias=False,
                      kernel_initializer=settings["kernel_initializer"], name="conv1_conv")(img_input)
    x, features = _trunk(x, (n, n, n), growth_rate, stem_maps, bottleneck=bottleneck,
                         compression=compression, drop_rate=drop_rate,
                         memory_efficient=memory_efficient, settings=settings, level=0,
                         features={})
    features = _declared(features, 1, (2, 4))  # floor(H / 2), floor(H / 4)
    default_name = f"densenet_bc{depth}_k{growth_rate}" if bc else f"densenet{depth}_k{growth_rate}"
    return ctx.finish(x, lambda t: pooled_classifier(t, ctx), default_name=default_name,
                      features=features)


def torchvision_names(model):
    """``(keras layer, torchvision module)`` pairs of an ImageNet DenseNet:
    ``conv1_conv`` / ``conv1_bn`` -> ``features.conv0`` / ``norm0``;
    ``conv{s}_block{b}_{0_bn,1_conv,1_bn,2_conv}`` ->
    ``features.denseblock{s-1}.denselayer{b}.{norm1,conv1,norm2,conv2}``;
    ``pool{s}_{bn,conv}`` -> ``features.transition{s-1}.{norm,conv}``; ``bn`` -> ``features.norm5``;
    ``predictions`` -> ``classifier``."""
    names = set()
    stack = [model]
    while stack:  # every layer, nested ones included (the memory-efficient bottleneck's)
        layer = stack.pop()
        for child in getattr(layer, "_flatten_layers", lambda **k: [])(include_self=False,
                                                                       recursive=False):
            names.add(child.name)
            stack.append(child)
    if "conv1_pad" not in names:
        fail("model", "must be an ImageNet DenseNet (torchvision has no CIFAR DenseNet)",
             model.name)
    pairs = [("conv1_conv", "features.conv0"), ("conv1_bn", "features.norm0")]
    ours = {"0_bn": "norm1", "1_conv": "conv1", "1_bn": "norm2", "2_conv": "conv2"}
    for s in range(2, 6):
        b = 1
        while f"conv{s}_block{b}_2_conv" in names:
            pairs += [(f"conv{s}_block{b}_{k}", f"features.denseblock{s - 1}.denselayer{b}.{v}")
                      for k, v in ours.items() if f"conv{s}_block{b}_{k}" in names]
            b += 1
        if f"pool{s}_conv" in names:
            pairs += [(f"pool{s}_bn", f"features.transition{s - 1}.norm"),
                      (f"pool{s}_conv", f"features.transition{s - 1}.conv")]
    pairs.append(("bn", "features.norm5"))
    if "predictions" in names:
        pairs.append(("predictions", "classifier"))
    return pairs


# reference figures: reference_figures.csv
for _depth in sorted(IMAGENET_DEPTHS):
    register_model(f"densenet{_depth}", family="DenseNet", paper=_PAPER, builder=DenseNet,
                   default_input_shape=(224, 224, 3), min_input_size=_IMAGENET_MIN_SIZE,
                   depth=_depth)
for _name, _depth, _k, _bottleneck, _theta in (
        ("densenet40_k12", 40, 12, False, 1.0), ("densenet100_k12", 100, 12, False, 1.0),
        ("densenet100_k24", 100, 24, False, 1.0), ("densenet_bc100_k12", 100, 12, True, 0.5),
        ("densenet_bc250_k24", 250, 24, True, 0.5), ("densenet_bc190_k40", 190, 40, True, 0.5)):
    register_model(_name, family="DenseNet", paper=_PAPER, builder=CifarDenseNet,
                   default_input_shape=(32, 32, 3), min_input_size=_CIFAR_MIN_SIZE,
                   default_classes=10, depth=_depth, growth_rate=_k, bottleneck=_bottleneck,
                   compression=_theta)
del _depth, _name, _k, _bottleneck, _theta
