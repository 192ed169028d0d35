"""Model registry: ``register_model``, ``create_model``, ``list_models``, ``model_info``.

Every architecture variant is registered under a lowercase snake_case name together with the
facts the generic tests check it against: the paper, the default and the minimum input size, and
its reference figures (exact parameter count, multiply-adds, the paper's printed count), which
come from ``reference_figures.csv`` with the source of each (``reference_note``).
``create_model(name, **kwargs)`` calls the family builder with the variant's fixed keyword
arguments, overridden by ``kwargs``.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from typing import Any, Callable, Dict, Optional, Tuple

from keras_cnns.models._figures import ReferenceFigures, reference_figures

__all__ = [
    "ModelInfo",
    "register_model",
    "create_model",
    "list_models",
    "model_info",
]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the library knows about one registered model.

    Attributes:
        name: registered name (``"squeezenet1_1"``).
        family: family name (``"SqueezeNet"``).
        paper: the paper it implements (authors, title, year).
        default_input_shape: the native input shape ``(H, W, C)``.
        min_input_size: the smallest spatial side the architecture accepts.
        reference_params: the exact parameter count a correct build reproduces at the default
            input shape and ``default_classes``, or ``None``.
        reference_params_kind: ``"trainable"`` (torchvision-comparable) or ``"total"``
            (Keras ``count_params()``, including BN moving statistics).
        reference_macs: multiply-accumulates at the default input shape, as the source quotes
            them (``figures.macs`` has the quoted digits and the tolerance), or ``None``.
        reference_note: where the reference figures come from.
        paper_params: the parameter count printed in the paper (rounded), or ``None``.
        figures: the model's row of ``reference_figures.csv`` (quoted figures and sources), or
            ``None`` for a model registered with figures of its own.
        builder: the family builder function.
        kwargs: the keyword arguments this variant fixes.
        default_classes: classes of the reference configuration.
        heavy: building it takes about a minute (thousands of layers, e.g. ResNet-1202) or
            running it dominates the suite (EfficientNet-B6 / B7): the generic tests build it
            once, for its figures, instead of once per test.
    """

    name: str
    family: str
    paper: str
    default_input_shape: Tuple[int, int, int]
    min_input_size: int
    builder: Callable[..., Any]
    kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    reference_params: Optional[int] = None
    reference_params_kind: str = "trainable"
    reference_macs: Optional[float] = None
    reference_note: str = ""
    default_classes: int = 1000
    heavy: bool = False
    paper_params: Optional[float] = None
    figures: Optional[ReferenceFigures] = None

    def as_dict(self, feature_levels: bool = False) -> Dict[str, Any]:
        """The public facts as a plain dict (the builder is left out); with
        ``feature_levels=True`` also :meth:`feature_levels` and :meth:`outputs` (builds the
        model without its weights)."""
        d = dataclasses.asdict(self)
        d.pop("builder")
        if feature_levels:
            d["feature_levels"] = self.feature_levels()
            d["outputs"] = [spec.as_dict() for spec in self.outputs()]
        return d

    def multipliers(self) -> Dict[str, Any]:
        """The multipliers this model's family exposes to the tuner: ``{"grid": {"alpha":
        (...), "rho": (...)}, "closed_form": name or None}``, or ``{}`` (not tunable). Data in
        ``_multipliers.py``."""
        from keras_cnns.models._multipliers import multipliers_for

        return multipliers_for(self.family)

    def recipe(self, kind: str = "paper") -> Optional[Dict[str, Any]]:
        """The training recipe of this model as a dict of ``keras_cnns.training.Recipe`` fields
        (with its ``source``): ``"paper"`` (its paper's recipe, ``None`` when not recorded) or
        ``"default"`` (the library's recipe for short runs). Data in ``_recipes.py``."""
        from keras_cnns.models._recipes import recipe_for

        if kind not in ("paper", "default"):
            raise ValueError(f"`kind` must be 'paper' or 'default'. Received: kind={kind!r}")
        return recipe_for(self.name, self.family, kind)

    def feature_levels(self) -> list:
        """The feature levels this model's family declares, at the default input shape:
        ``[{"level": "P2", "stride": 4, "channels": 64, "extent": 1, "layer": "...", "side":
        56}, ...]`` (``P<k>`` = stride 2^k; a map's side is ``floor((H - extent) / stride) + 1``
        for an input side ``H``, ``side`` at the default one; ``layer``: the layer that gives
        it). ``create_model(name,
        features_only=True)`` returns these maps. Builds the model once per process, without
        allocating its weights."""
        if self.name not in _FEATURE_LEVELS:
            from keras_cnns.models._builder import declared_levels, shapes_only

            with shapes_only():  # only the graph's shapes are read: no weights are allocated
                model = create_model(self.name, features_only=True)
            _FEATURE_LEVELS[self.name] = declared_levels(model)
            del model
        return [dict(level) for level in _FEATURE_LEVELS[self.name]]

    def outputs(self, **kwargs) -> list:
        """What ``create_model(name, **kwargs)`` returns: one
        :class:`~keras_cnns.models.heads.OutputSpec` per output, in order (name, kind, loss
        weight, whether the SavedModel serves it). Builds the model without allocating its
        weights (once per process for the registered configuration)."""
        key = (self.name, repr(sorted(kwargs.items())))
        if key not in _OUTPUTS:
            from keras_cnns.models._builder import shapes_only
            from keras_cnns.models.heads import output_specs

            with shapes_only():
                model = create_model(self.name, **kwargs)
            _OUTPUTS[key] = tuple(output_specs(model))
            del model
        return list(_OUTPUTS[key])


_REGISTRY: Dict[str, ModelInfo] = {}
_FEATURE_LEVELS: Dict[str, list] = {}
_OUTPUTS: Dict[Any, tuple] = {}


def register_model(
    name: str,
    *,
    family: str,
    paper: str,
    builder: Callable[..., Any],
    default_input_shape: Tuple[int, int, int] = (224, 224, 3),
    min_input_size: int = 32,
    reference_params: Optional[int] = None,
    reference_params_kind: str = "trainable",
    reference_macs: Optional[float] = None,
    reference_note: str = "",
    default_classes: int = 1000,
    heavy: bool = False,
    **kwargs: Any,
) -> ModelInfo:
    """Register a model variant; returns its :class:`ModelInfo`.

    The reference figures of a name listed in ``reference_figures.csv`` come from that file
    (pass none of ``reference_params``/``reference_macs``/``reference_note`` for it); a model of
    your own can pass its figures here.

    Raises:
        ValueError: if ``name`` is already registered or not lowercase snake_case,
            ``reference_params_kind`` is not ``"trainable"`` or ``"total"``, or figures are
            passed for a name whose figures are in ``reference_figures.csv``.
    """
    if name in _REGISTRY:
        raise ValueError(f"Model name {name!r} is already registered.")
    if name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"Model names are lowercase snake_case. Received: name={name!r}")
    if reference_params_kind not in ("trainable", "total"):
        raise ValueError(
            "`reference_params_kind` must be 'trainable' or 'total'. "
            f"Received: reference_params_kind={reference_params_kind!r}"
        )
    figures = reference_figures().get(name)
    paper_params = None
    if figures is not None:
        if reference_params is not None or reference_macs is not None or reference_note:
            raise ValueError(
                f"The reference figures of {name!r} are in reference_figures.csv; pass none "
                "of reference_params, reference_macs, reference_note for it."
            )
        reference_params = figures.params
        reference_params_kind = figures.params_kind
        reference_macs = figures.macs.value if figures.macs is not None else None
        reference_note = figures.note()
        paper_params = figures.paper_params.value if figures.paper_params is not None else None
    info = ModelInfo(
        name=name,
        family=family,
        paper=paper,
        default_input_shape=tuple(default_input_shape),
        min_input_size=int(min_input_size),
        builder=builder,
        kwargs=dict(kwargs),
        reference_params=reference_params,
        reference_params_kind=reference_params_kind,
        reference_macs=reference_macs,
        reference_note=reference_note,
        default_classes=default_classes,
        heavy=bool(heavy),
        paper_params=paper_params,
        figures=figures,
    )
    _REGISTRY[name] = info
    return info


def _ensure_loaded() -> None:
    # Importing the families package registers every model.
    from keras_cnns import models  # noqa: F401


def list_models(pattern: str = "*") -> list:
    """Sorted names of the registered models that match an fnmatch ``pattern``.

    Example: ``list_models("vgg*")`` gives ``['vgg11', 'vgg11_bn', ...]``.
    """
    _ensure_loaded()
    if not isinstance(pattern, str):
        raise ValueError(f"`pattern` must be a string. Received: pattern={pattern!r}")
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern.lower()))


def _lookup(name: str) -> ModelInfo:
    _ensure_loaded()
    if not isinstance(name, str):
        raise ValueError(f"`name` must be a string. Received: name={name!r}")
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model {name!r}.{hint} See keras_cnns.list_models() for all "
            f"{len(_REGISTRY)} names. Received: name={name!r}"
        )
    return _REGISTRY[key]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered model.

    Raises:
        ValueError: for an unknown name, listing close matches.
    """
    return _lookup(name)


def create_model(name: str, **kwargs: Any):
    """Build a registered model by name.

    Args:
        name: a name from :func:`list_models` (case-insensitive, ``-`` accepted for ``_``).
        **kwargs: builder arguments (``include_top``, ``input_shape``, ``classes``, family knobs,
            ...); they override the variant's own fixed arguments.

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: for an unknown name (with close matches) or invalid arguments.
    """
    info = _lookup(name)
    merged = dict(info.kwargs)
    merged.update(kwargs)
    merged.setdefault("name", info.name)
    return info.builder(**merged)
