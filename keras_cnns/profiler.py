"""Per-layer cost profile of a Keras model: output shape, parameters, multiply-adds, memory.

``profile(model)`` traces the model symbolically (no data, no weights read) at a concrete batch
size and returns a :class:`Profile` with one :class:`LayerProfile` row per layer call, in
topological order, and the totals::

    p = keras_cnns.profile(keras_cnns.create_model("vgg16"))
    print(p.to_table())            # layer, type, output shape, memory, params, mult-adds
    p.total_params, p.total_macs, p.total_activation_bytes

What is counted:

* **Multiply-adds (MACs)**: one multiply-accumulate counts once (the "FLOPs" / "mult-adds" of the
  ResNet, MobileNet, ShuffleNet and EfficientNet papers). Only convolutions and dense layers
  cost MACs; biases, BatchNormalization, activations, pooling and element-wise adds count 0.

  - ``Conv1D/2D/3D`` (any ``groups``): ``K_h * K_w * (C_in / groups) * C_out * H_out * W_out``
  - ``DepthwiseConv2D`` and :class:`~keras_cnns.layers.GroupedDepthwiseConv2D`: the same formula
    with their own kernel, i.e. ``K_h * K_w * C * m * H_out * W_out`` for depthwise
  - ``SeparableConv2D``: depthwise part + pointwise ``C * m * C_out * H_out * W_out``
  - ``Conv2DTranspose``: ``K_h * K_w * C_out * C_in * H_in * W_in`` (every input pixel is
    scattered through the whole kernel)
  - ``Dense``: ``in * out`` per position (per sample for a 2-D input)
  - :class:`~keras_cnns.layers.StochasticDepth`: its residual branch's MACs (at inference every
    block is kept)

  Other layers with weights and no rule report ``macs=None`` ("?" in the table) and count 0 in
  the total; :func:`register_mac_rule` adds a rule for a custom layer.
* **Parameters**: every weight of the layer, trainable and non-trainable (BatchNormalization's
  moving statistics included), so ``total_params == model.count_params()``; a layer called
  twice (shared weights) counts its parameters at its first call only.
* **Activation memory**: the elements of every tensor a layer produces (all its outputs, the
  batch included) times ``bytes_per_element``, plus the model's input tensors. Layers that only
  re-view their input at inference (``Flatten``, ``Reshape``, the ``Dropout`` family,
  ``GaussianNoise``, ``Identity``, ``ActivityRegularization``) allocate nothing and count 0. The
  total is what a forward pass writes, as in the VGG-16 table of the CS231n notes ("VGGNet in
  detail", https://cs231n.github.io/convolutional-networks/); training roughly doubles it
  (gradients).

Nested models (a functional or ``Sequential`` model used as a layer) are entered: their layers
appear as rows named ``outer/inner``, traced with the shapes they actually receive.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import numbers
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import keras
from keras import tree

__all__ = [
    "LayerProfile",
    "Profile",
    "profile",
    "register_mac_rule",
    "layer_macs",
    "conv_cost",
    "depthwise_separable_cost",
    "LayerCost",
]


# ---------------------------------------------------------------------------------------------
# Rows and the profile
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """One layer call.

    Attributes:
        name: layer name (``outer/inner`` inside a nested model).
        class_name: the layer class (``"Conv2D"``).
        output_shapes: the shape of each output, the batch dimension included.
        params: weights of the layer (trainable + non-trainable); 0 for a repeated call of a
            shared layer.
        trainable_params: the trainable part of ``params``.
        macs: multiply-adds of this call (batch included), or ``None`` if the layer has weights
            and no MAC rule.
        activation_elements: elements the call writes (0 for view-only layers).
        activation_bytes: ``activation_elements * bytes_per_element``.
    """

    name: str
    class_name: str
    output_shapes: Tuple[Tuple[int, ...], ...]
    params: int
    trainable_params: int
    macs: Optional[int]
    activation_elements: int
    activation_bytes: int

    @property
    def output_shape(self):
        """The output shape, or the list of shapes for a layer with several outputs."""
        if len(self.output_shapes) == 1:
            return self.output_shapes[0]
        return list(self.output_shapes)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "class_name": self.class_name,
            "output_shape": [list(s) for s in self.output_shapes],
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "activation_elements": self.activation_elements,
            "activation_bytes": self.activation_bytes,
        }


@dataclasses.dataclass(frozen=True)
class Profile:
    """The per-layer rows of :func:`profile` and their totals.

    Attributes:
        model_name: the model's name.
        batch_size: the batch size the shapes, MACs and memory are computed for.
        bytes_per_element: bytes of one activation element (4 for float32).
        rows: :class:`LayerProfile` rows in topological order (inputs first).
    """

    model_name: str
    batch_size: int
    bytes_per_element: int
    rows: Tuple[LayerProfile, ...]

    @property
    def total_params(self) -> int:
        """All parameters (equals ``model.count_params()``)."""
        return sum(r.params for r in self.rows)

    @property
    def total_trainable_params(self) -> int:
        return sum(r.trainable_params for r in self.rows)

    @property
    def total_non_trainable_params(self) -> int:
        return self.total_params - self.total_trainable_params

    @property
    def total_macs(self) -> int:
        """Multiply-adds of one forward pass of the batch (layers without a rule count 0)."""
        return sum(r.macs for r in self.rows if r.macs is not None)

    @property
    def total_activation_elements(self) -> int:
        return sum(r.activation_elements for r in self.rows)

    @property
    def total_activation_bytes(self) -> int:
        return sum(r.activation_bytes for r in self.rows)

    @property
    def unknown_mac_layers(self) -> List[str]:
        """Names of layers with weights whose MACs are unknown (no rule)."""
        return [r.name for r in self.rows if r.macs is None]

    def __getitem__(self, name: str) -> LayerProfile:
        """The first row called ``name``."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-serialisable dict: the rows and the totals."""
        return {
            "model": self.model_name,
            "batch_size": self.batch_size,
            "bytes_per_element": self.bytes_per_element,
            "rows": [r.as_dict() for r in self.rows],
            "totals": {
                "params": self.total_params,
                "trainable_params": self.total_trainable_params,
                "non_trainable_params": self.total_non_trainable_params,
                "macs": self.total_macs,
                "activation_elements": self.total_activation_elements,
                "activation_bytes": self.total_activation_bytes,
            },
        }

    def to_csv(self) -> str:
        """CSV text: one line per row, then a ``TOTAL`` line."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["name", "class_name", "output_shape", "params", "trainable_params", "macs",
                    "activation_elements", "activation_bytes"])
        for r in self.rows:
            w.writerow([r.name, r.class_name, _shapes_str(r.output_shapes, self.batch_size),
                        r.params, r.trainable_params, "" if r.macs is None else r.macs,
                        r.activation_elements, r.activation_bytes])
        w.writerow(["TOTAL", "", "", self.total_params, self.total_trainable_params,
                    self.total_macs, self.total_activation_elements, self.total_activation_bytes])
        return buf.getvalue()

    def to_table(self) -> str:
        """A readable, aligned text table (CS231n's VGG table layout: shape, memory, weights)."""
        header = ["layer", "type", "output shape", "memory (elements)", "params", "mult-adds"]
        body = []
        for r in self.rows:
            body.append([
                r.name,
                r.class_name,
                _shapes_str(r.output_shapes, self.batch_size),
                "-" if r.activation_elements == 0 and r.output_shapes else f"{r.activation_elements:,}",
                f"{r.params:,}",
                "?" if r.macs is None else f"{r.macs:,}",
            ])
        total = ["TOTAL", "", "", f"{self.total_activation_elements:,}", f"{self.total_params:,}",
                 f"{self.total_macs:,}"]
        widths = [max(len(row[i]) for row in [header, total] + body) for i in range(len(header))]
        right = {3, 4, 5}

        def fmt(row):
            cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
            return "  ".join(cells).rstrip()

        rule = "-" * len(fmt(header))
        batch = "" if self.batch_size == 1 else f" (shapes without the batch of {self.batch_size})"
        lines = [f"Model: {self.model_name}{batch}", fmt(header), rule]
        lines += [fmt(b) for b in body]
        lines += [rule, fmt(total), ""]
        per = "image" if self.batch_size == 1 else f"batch of {self.batch_size}"
        lines.append(
            f"Total params: {self.total_params:,} ({_si(self.total_params)}) - trainable "
            f"{self.total_trainable_params:,}, non-trainable {self.total_non_trainable_params:,}"
        )
        lines.append(f"Total mult-adds: {self.total_macs:,} ({_si(self.total_macs)}) / {per}")
        lines.append(
            f"Total activation memory: {self.total_activation_elements:,} elements x "
            f"{self.bytes_per_element} bytes = {self.total_activation_bytes:,} bytes "
            f"({self.total_activation_bytes / 1e6:.1f} MB = "
            f"{self.total_activation_bytes / 2 ** 20:.1f} MiB) / {per}, forward only"
        )
        if self.unknown_mac_layers:
            lines.append("Layers without a MAC rule (counted 0): " + ", ".join(self.unknown_mac_layers))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_table()


def _si(v: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{unit}"
    return str(v)


def _shapes_str(shapes, batch_size: int) -> str:
    def one(s):
        dims = s[1:] if batch_size == 1 and len(s) > 1 else s
        return "x".join("?" if d is None else str(d) for d in dims) or "scalar"

    return ", ".join(one(s) for s in shapes)


# ---------------------------------------------------------------------------------------------
# MAC rules
# ---------------------------------------------------------------------------------------------

MacRule = Callable[[Any, Sequence[Any], Sequence[Any]], Optional[int]]
_MAC_RULES: Dict[type, MacRule] = {}


def register_mac_rule(layer_class: type, rule: MacRule) -> None:
    """Register ``rule(layer, input_specs, output_specs) -> int`` for a layer class.

    The rule applies to the class and its subclasses (the most specific registered class wins).
    ``input_specs`` / ``output_specs`` are the flat lists of ``KerasTensor`` the call takes and
    returns, with the batch dimension set to the profiled batch size.
    """
    if not isinstance(layer_class, type) or not callable(rule):
        raise ValueError("register_mac_rule(layer_class, rule) takes a class and a callable. "
                         f"Received: layer_class={layer_class!r}, rule={rule!r}")
    _MAC_RULES[layer_class] = rule


def _numel(shape) -> int:
    return int(math.prod(int(d) for d in shape))


def _size(variable) -> int:
    return _numel(variable.shape)


def _positions(layer, spec) -> int:
    """Spatial positions x batch of a conv-like tensor (its elements / its channels)."""
    shape = spec.shape
    axis = 1 if getattr(layer, "data_format", "channels_last") == "channels_first" else -1
    return _numel(shape) // int(shape[axis])


def _conv_macs(layer, inputs, outputs) -> int:
    # kernel [k..., C_in / groups, C_out] (Conv) or [k..., C, m] (depthwise): every output
    # position multiplies the whole kernel slice of its channel, i.e. kernel.size / C_out MACs
    # per output element = kernel.size MACs per output position.
    return _size(layer.kernel) * _positions(layer, outputs[0])


def _separable_macs(layer, inputs, outputs) -> int:
    pos = _positions(layer, outputs[0])
    return (_size(layer.depthwise_kernel) + _size(layer.pointwise_kernel)) * pos


def _transpose_macs(layer, inputs, outputs) -> int:
    return _size(layer.kernel) * _positions(layer, inputs[0])


def _dense_macs(layer, inputs, outputs) -> int:
    return _size(layer.kernel) * (_numel(outputs[0].shape) // int(outputs[0].shape[-1]))


def _zero(layer, inputs, outputs) -> int:
    return 0


def _stochastic_depth_macs(layer, inputs, outputs) -> int:
    # keras_cnns' StochasticDepth (Huang et al. 2016) holds its residual branch as a model and
    # runs it on its first input: at inference every block is kept, so it costs its branch.
    x = inputs[0]
    return profile(layer.branch, batch_size=int(x.shape[0]), input_shape=tuple(x.shape[1:])).total_macs


def _hyper_conv_macs(layer, inputs, outputs) -> int:
    # keras_cnns' HyperConv2D (Ha et al. 2016, static hypernetwork): the convolution with its
    # generated kernel [kh, kw, C_in, C_out] at every output position, plus generating that
    # kernel once per call: per 16x16 tile z W_in (z_dim x in_size*d) and, per input slice,
    # a W_out (d x kh*kw*out_size).
    x, w_in, _, w_out = inputs[:4]
    z_dim, in_size, d = (int(v) for v in w_in.shape)
    _, kh, kw, out_size = (int(v) for v in w_out.shape)
    c_in, c_out = int(x.shape[-1]), int(outputs[0].shape[-1])
    tiles = (c_in // in_size) * (c_out // out_size)
    generate = tiles * (z_dim * in_size * d + in_size * d * kh * kw * out_size)
    return kh * kw * c_in * c_out * _positions(layer, outputs[0]) + generate


def _install_default_rules() -> None:
    from keras.src.layers.convolutional.base_conv import BaseConv
    from keras.src.layers.convolutional.base_conv_transpose import BaseConvTranspose
    from keras.src.layers.convolutional.base_depthwise_conv import BaseDepthwiseConv
    from keras.src.layers.convolutional.base_separable_conv import BaseSeparableConv

    from keras_cnns.layers.grouped_conv import GroupedDepthwiseConv2D
    from keras_cnns.layers.hyper import HyperConv2D, HyperKernelGenerator
    from keras_cnns.blocks.reversible import RevNetBlock, ReversibleSequence, reversible_macs
    from keras_cnns.layers.fractal import FractalPathState
    from keras_cnns.layers.stochastic_depth import StochasticDepth

    register_mac_rule(BaseConv, _conv_macs)
    register_mac_rule(BaseDepthwiseConv, _conv_macs)
    register_mac_rule(GroupedDepthwiseConv2D, _conv_macs)
    register_mac_rule(StochasticDepth, _stochastic_depth_macs)
    register_mac_rule(HyperConv2D, _hyper_conv_macs)
    register_mac_rule(HyperKernelGenerator, _zero)  # hands its weights to the HyperConv2Ds
    register_mac_rule(FractalPathState, _zero)  # FractalNet's per-step drop-path draw
    register_mac_rule(RevNetBlock, reversible_macs)  # their sublayers' convolutions
    register_mac_rule(ReversibleSequence, reversible_macs)
    register_mac_rule(BaseSeparableConv, _separable_macs)
    register_mac_rule(BaseConvTranspose, _transpose_macs)
    register_mac_rule(keras.layers.Dense, _dense_macs)
    # Weighted layers that cost no multiply-adds by the convention of the module docstring.
    for cls in (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                keras.layers.GroupNormalization, keras.layers.Normalization,
                keras.layers.PReLU, keras.layers.Embedding):
        register_mac_rule(cls, _zero)


_install_default_rules()


def _rule_for(op) -> Optional[MacRule]:
    for cls in type(op).__mro__:
        if cls in _MAC_RULES:
            return _MAC_RULES[cls]
    return None


def layer_macs(layer, input_specs, output_specs) -> Optional[int]:
    """Multiply-adds of one call of ``layer`` (``None``: it has weights and no rule)."""
    rule = _rule_for(layer)
    if rule is not None:
        return int(rule(layer, list(input_specs), list(output_specs)))
    if getattr(layer, "weights", None):
        return None
    return 0


# View-only layers: at inference they return (a reshaped view of) their input.
_VIEW_LAYERS = (
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.Dropout,  # SpatialDropout1D/2D/3D subclass it
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.Identity,
    keras.layers.ActivityRegularization,
)


# ---------------------------------------------------------------------------------------------
# Tracing
# ---------------------------------------------------------------------------------------------


def _as_functional(op):
    """The graph of a functional / Sequential model, or ``None`` for a plain layer."""
    if isinstance(op, keras.Sequential):
        op = getattr(op, "_functional", None)
    if op is not None and hasattr(op, "_run_through_graph") and hasattr(op, "_nodes_by_depth"):
        return op
    return None


class _Tracer:
    def __init__(self, bytes_per_element: int):
        self.bpe = bytes_per_element
        self.rows: List[LayerProfile] = []
        self.seen_weights: set = set()

    def _params(self, op) -> Tuple[int, int]:
        total = trainable = 0
        for v in getattr(op, "weights", []) or []:
            if id(v) in self.seen_weights:
                continue
            self.seen_weights.add(id(v))
            n = _size(v)
            total += n
            if v.trainable:
                trainable += n
        return total, trainable

    def add(self, name, op, class_name, inputs, outputs, *, view=False, macs=0):
        shapes = tuple(tuple(int(d) if d is not None else None for d in o.shape) for o in outputs)
        elements = 0 if view else sum(_numel(s) for s in shapes)
        total, trainable = self._params(op) if op is not None else (0, 0)
        self.rows.append(LayerProfile(
            name=name, class_name=class_name, output_shapes=shapes, params=total,
            trainable_params=trainable, macs=macs, activation_elements=elements,
            activation_bytes=elements * self.bpe,
        ))

    def trace(self, graph, inputs, prefix: str):
        def operation_fn(op):
            def call(*args, **kwargs):
                flat_in = [t for t in tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
                sub = _as_functional(op)
                if sub is not None:
                    x = args[0] if len(args) == 1 else list(args)
                    out = self.trace(sub, x, f"{prefix}{op.name}/")
                    # Weights the nested model owns outside its graph (rare) are still counted.
                    leftover = [v for v in op.weights if id(v) not in self.seen_weights]
                    if leftover:
                        self.add(f"{prefix}{op.name}", op, type(op).__name__, flat_in,
                                 tree.flatten(out), view=True, macs=None)
                    return out
                out = op.compute_output_spec(*args, **kwargs)
                flat_out = [t for t in tree.flatten(out) if isinstance(t, keras.KerasTensor)]
                self.add(f"{prefix}{op.name}", op, type(op).__name__, flat_in, flat_out,
                         view=isinstance(op, _VIEW_LAYERS), macs=layer_macs(op, flat_in, flat_out))
                return out

            return call

        return graph._run_through_graph(inputs, operation_fn=operation_fn)


def profile(model, batch_size: int = 1, bytes_per_element: int = 4, input_shape=None,
            outputs: str = "all") -> Profile:
    """Per-layer output shapes, parameters, multiply-adds and activation memory of ``model``.

    Args:
        model: a functional or ``Sequential`` Keras model (nested models are entered); any
            other model is profiled as one opaque row (give ``input_shape``; its MACs are
            unknown unless a rule is registered for its class).
        batch_size: the batch the shapes, MACs and activation memory are computed for.
        bytes_per_element: bytes per activation element (4 for float32, 2 for float16).
        input_shape: the input shape without the batch, for models built with unknown sides
            (``(None, None, 3)``); a list of shapes for several inputs. Default: the model's.
        outputs: ``"all"`` (every layer: the training model, auxiliary classifiers included) or
            ``"served"`` (the layers the served output needs, as the SavedModel and TFLite
            exports run it; :func:`keras_cnns.models.heads.served_model`).

    Returns:
        A :class:`Profile`.

    Raises:
        ValueError: a bad argument, or an input side that is unknown and not given.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    for arg, v in (("batch_size", batch_size), ("bytes_per_element", bytes_per_element)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"`{arg}` must be an integer >= 1. Received: {arg}={v!r}")
    if outputs not in ("all", "served"):
        raise ValueError(f"`outputs` must be 'all' or 'served'. Received: outputs={outputs!r}")
    if outputs == "served" and len(getattr(model, "outputs", None) or ()) > 1:
        from keras_cnns.models.heads import served_model

        model = served_model(model)
    graph = _as_functional(model)
    if graph is None:  # a subclassed (or unbuilt Sequential) model: one opaque row
        if input_shape is None:
            raise ValueError(
                f"Model {model.name!r} is not a functional model, so its input shape is unknown: "
                "pass `input_shape` (without the batch). Received: input_shape=None"
            )
        shapes = [tuple(input_shape)]
        dtypes = ["float32"]
        names = ["input"]
    else:
        model_inputs = list(graph.inputs)
        dtypes = [x.dtype for x in model_inputs]
        names = []
        for x in model_inputs:
            hist = getattr(x, "_keras_history", None)
            names.append(hist[0].name if hist and hist[0] is not None else "input")
        if input_shape is None:
            shapes = [tuple(x.shape[1:]) for x in model_inputs]
        else:
            several = len(input_shape) > 0 and isinstance(input_shape[0], (tuple, list))
            shapes = [tuple(s) for s in input_shape] if several else [tuple(input_shape)]
            if len(shapes) != len(model_inputs) or any(
                len(s) != len(x.shape) - 1 for s, x in zip(shapes, model_inputs)
            ):
                raise ValueError(
                    f"`input_shape` must match the model's {len(model_inputs)} input(s) of rank "
                    f"{[len(x.shape) - 1 for x in model_inputs]} (without the batch). "
                    f"Received: input_shape={input_shape!r}"
                )
    for s in shapes:
        if any(d is None or isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in s):
            raise ValueError(
                "The model's input has unknown dimensions; pass `input_shape` (without the batch, "
                f"positive integers) to profile it at a concrete size. Received: input_shape={s!r}"
            )
    specs = [keras.KerasTensor((batch_size,) + tuple(int(d) for d in s), dtype=dt)
             for s, dt in zip(shapes, dtypes)]

    tracer = _Tracer(int(bytes_per_element))
    for name, spec in zip(names, specs):
        tracer.add(name, None, "InputLayer", [], [spec])
    if graph is not None:
        tracer.trace(graph, specs, "")
    else:
        out = model.compute_output_spec(specs[0])
        flat_out = [t for t in tree.flatten(out) if isinstance(t, keras.KerasTensor)]
        tracer.add(model.name, model, type(model).__name__, specs, flat_out,
                   macs=layer_macs(model, specs, flat_out))
    return Profile(model_name=model.name, batch_size=int(batch_size),
                   bytes_per_element=int(bytes_per_element), rows=tuple(tracer.rows))


# ---------------------------------------------------------------------------------------------
# Closed-form layer costs (MobileNet paper, Howard et al. 2017, eqs. (2) and (7))
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """Multiply-adds and parameters of one layer (no bias, no BN)."""

    macs: int
    params: int


def conv_cost(d_k: int, m: int, n: int, d_f: int, alpha: float = 1.0, rho: float = 1.0) -> LayerCost:
    """A standard ``D_K x D_K`` convolution, ``M -> N`` channels, on a ``D_F x D_F`` map.

    ``D_K * D_K * aM * aN * rD_F * rD_F`` mult-adds and ``D_K * D_K * aM * aN`` weights, with
    ``aM = int(alpha * M)`` (keras.applications' rounding) and ``rD_F = round(rho * D_F)``.
    Stride 1, "same" padding (output side = input side), as in the MobileNet paper.
    """
    am, an, df = int(m * alpha), int(n * alpha), int(round(d_f * rho))
    return LayerCost(macs=d_k * d_k * am * an * df * df, params=d_k * d_k * am * an)


def depthwise_separable_cost(d_k: int, m: int, n: int, d_f: int, alpha: float = 1.0,
                             rho: float = 1.0) -> LayerCost:
    """A depthwise separable convolution: MobileNet's formula (Howard et al. 2017, eq. (7)).

    ``D_K * D_K * aM * rD_F * rD_F + aM * aN * rD_F * rD_F`` mult-adds and
    ``D_K * D_K * aM + aM * aN`` weights (``aM = int(alpha * M)``, ``rD_F = round(rho * D_F)``).
    """
    am, an, df = int(m * alpha), int(n * alpha), int(round(d_f * rho))
    return LayerCost(macs=d_k * d_k * am * df * df + am * an * df * df, params=d_k * d_k * am + am * an)
