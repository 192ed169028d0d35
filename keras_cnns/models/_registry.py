"""Model registry: ``register_model``, ``create_model``, ``list_models``, ``model_info``.

Every architecture variant is registered under a lowercase snake_case name together with the
facts the generic tests check it against (the paper, the default and the minimum input size, the
reference parameter count of the reference implementation or the paper's layer table, named in
``reference_note``).  ``create_model(name, **kwargs)`` calls the
family builder with the variant's fixed keyword arguments, overridden by ``kwargs``.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from typing import Any, Callable, Dict, Optional, Tuple

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
        reference_params: the parameter count a correct build reproduces at the default input
            shape with 1000 classes (or the count named in ``reference_note``), or ``None``.
        reference_params_kind: ``"trainable"`` (torchvision-comparable) or ``"total"``
            (Keras ``count_params()``, including BN moving statistics).
        reference_macs: multiply-accumulates at the default input shape, or ``None``.
        reference_note: where the reference figures come from.
        builder: the family builder function.
        kwargs: the keyword arguments this variant fixes.
        default_classes: classes of the reference configuration.
        heavy: building it takes about a minute (thousands of layers, e.g. ResNet-1202): the
            generic tests build it once instead of once per test.
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

    def as_dict(self, feature_levels: bool = False) -> Dict[str, Any]:
        """The public facts as a plain dict (the builder is left out); with
        ``feature_levels=True`` also :meth:`feature_levels` (builds the model)."""
        d = dataclasses.asdict(self)
        d.pop("builder")
        if feature_levels:
            d["feature_levels"] = self.feature_levels()
        return d

    def feature_levels(self) -> list:
        """The levels ``create_model(name, features_only=True)`` returns at the default input
        shape: ``[{"level": "P2", "stride": 4, "channels": 64}, ...]`` (``P<k>`` = stride 2^k).
        Builds the feature model once per process (no weights are computed on)."""
        if self.name not in _FEATURE_LEVELS:
            model = create_model(self.name, features_only=True)
            _FEATURE_LEVELS[self.name] = [
                {"level": key, "stride": 2 ** int(key[1:]), "channels": int(t.shape[-1])}
                for key, t in sorted(model.output.items(), key=lambda kv: int(kv[0][1:]))]
            del model
        return [dict(level) for level in _FEATURE_LEVELS[self.name]]


_REGISTRY: Dict[str, ModelInfo] = {}
_FEATURE_LEVELS: Dict[str, list] = {}


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

    Raises:
        ValueError: if ``name`` is already registered or not lowercase snake_case, or
            ``reference_params_kind`` is not ``"trainable"`` or ``"total"``.
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
