"""Copy a timm (pytorch-image-models) model's weights into the keras_cnns model of the same
configuration.

``from_timm(source, model)`` is :func:`keras_cnns.from_torchvision` for timm's models: the same
sources (a ``torch.nn.Module`` -- ``timm.create_model(...)`` --, a ``state_dict`` of torch
tensors or NumPy arrays, an ``.npz`` / ``.pt`` / ``.pth`` file), the same PyTorch -> Keras
conversions (:mod:`keras_cnns.bridges.torchvision`: convolution kernels, grouped ones included,
``Linear`` weights, BatchNorm statistics; every BatchNorm's ``eps`` read from a module, else
``bn_epsilon``) and the same guarantee: every pair and shape is checked before anything is
assigned, and a mismatch raises ``ValueError`` naming both sides.

What differs is the pairing: the name maps registered under this bridge's name
(:data:`BRIDGE` ``= "timm"``) map Keras layers to timm's module paths (``("stem_conv1_conv",
"stem.conv1.conv")``). Registered: ``CSPNet`` and ``Darknet``
(:func:`keras_cnns.models.cspnet.timm_names`: ``cspresnet50``, ``cspresnext50``,
``cspdarknet53``, ``darknet53``) and ``DenseNet`` (timm's ``densenet121/161/169/201`` keep
torchvision's module names: :func:`keras_cnns.models.densenet.torchvision_names`; build the
model with ``layout="torchvision"`` for timm's BatchNorm epsilon). Another family needs one line in the table of
:mod:`keras_cnns.bridges._name_maps` (``register_name_map("DenseNet", "timm", fn)``) and nothing
here; a model without a map pairs its weighted layers with the state dict's modules in order.

Like torchvision, timm imports torchvision, which crashes when imported after TensorFlow in one
process (torch 2.14 / torchvision 0.29 / TF 2.21): build the timm model first (then importing
keras_cnns is fine, and the module can be passed in) or in a process without TensorFlow, saving
its ``state_dict``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

from keras_cnns.bridges._common import NameMap
from keras_cnns.bridges.torchvision import copy_torch_weights

__all__ = ["BRIDGE", "from_timm"]

#: This bridge's name in :func:`keras_cnns.bridges.register_name_map`.
BRIDGE = "timm"


def from_timm(
    source,
    model,
    *,
    family: Optional[str] = None,
    names: Union[None, Sequence[Tuple[str, str]], NameMap] = None,
    strict: bool = True,
    bn_epsilon: Optional[float] = None,
):
    """Copy a timm model's weights into the keras_cnns ``model``.

    Build ``model`` with the timm configuration: the same variant (the registered names are
    timm's: ``cspresnet50``, ``cspresnext50``, ``cspdarknet53``, ``darknet53``) and ``classes``
    (1000 for ImageNet weights). timm returns logits: build with ``classifier_activation=None``
    to compare outputs. Inputs are NHWC on the Keras side (``x.transpose(0, 2, 3, 1)``); timm's
    preprocessing (its ``pretrained_cfg`` mean / std, input size 256) is the caller's.

    Example::

        # timm before TensorFlow (or in another process, saving the state_dict):
        #   model_t = timm.create_model("cspdarknet53", pretrained=True)
        model = keras_cnns.create_model("cspdarknet53", classifier_activation=None)
        keras_cnns.bridges.from_timm(model_t, model)

    Args:
        source: a ``torch.nn.Module`` (``timm.create_model(...)``), a ``state_dict`` (mapping of
            names to torch tensors or NumPy arrays), or the path of an ``.npz`` file (read
            without torch) or a ``.pt`` / ``.pth`` file (``torch.load``, imported only then).
        model: the Keras model to fill.
        family: the registered ``"timm"`` name map to use; default: the family of the
            registered model called ``model.name``, if a map is registered for it.
        names: explicit ``[(keras_layer_name, timm_module_prefix), ...]`` (or ``fn(model)``
            returning it) instead of the registered map.
        strict: require every Keras layer with weights to be paired and every state-dict entry
            (``num_batches_tracked`` aside) to be used. With ``False`` those are left alone; a
            pair that does not fit always raises.
        bn_epsilon: the ``eps`` of the BatchNorm layers when ``source`` is a state dict or a
            file (they do not hold it); ``None``: PyTorch's 1e-5 (timm's CSPNet / Darknet /
            DenseNet use it). A module gives each BatchNorm's own ``eps`` (timm's
            ``BatchNormAct2d`` is a ``BatchNorm2d``). Every Keras ``BatchNormalization`` must
            use its timm layer's epsilon: nothing is adjusted.

    Returns:
        ``model``, with the timm weights.

    Raises:
        ValueError: ``source`` or ``model`` is not one of the accepted kinds, a file is missing
            or of an unknown type, the model has no timm counterpart (e.g. CSPDenseNet), a
            mapping names a layer or module that is not there, layers or entries are left
            unpaired (``strict``), a BatchNorm epsilon differs, or a pair does not correspond
            (the message names the Keras layer and the timm module). Nothing is assigned unless
            every pair fits.
    """
    return copy_torch_weights(source, model, bridge=BRIDGE, origin="timm", family=family,
                              names=names, strict=strict, bn_epsilon=bn_epsilon)
