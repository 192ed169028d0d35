"""Weight bridges: copy another library's weights into a keras_cnns model.

* :func:`from_keras_applications` (:mod:`keras_cnns.bridges.keras_applications`): a
  ``keras.applications`` model (or any Keras model of the same layout) into ours, and back.
* :func:`from_torchvision` (:mod:`keras_cnns.bridges.torchvision`): a torchvision / PyTorch
  ``torch.nn.Module``, state dict or ``.npz`` / ``.pt`` file into ours.
* :func:`from_timm` (:mod:`keras_cnns.bridges.timm`): a timm (pytorch-image-models) model, state
  dict or file into ours (CSPNet / Darknet; torchvision's PyTorch conversions, timm's module
  names).

All check every pair and shape before assigning anything; the first two are exported as
``keras_cnns.from_keras_applications`` / ``keras_cnns.from_torchvision``.

Layering: this package sits above :mod:`keras_cnns.models` (it reads the registry and the family
modules); ``keras_cnns.models`` never imports it.

How a bridge pairs layers. Each Keras layer that owns weights is paired with one reference layer
(a keras.applications layer, a torch module prefix, ...). By default the pairing is by order
(topological on the Keras side). A family whose layers do not line up in order gives a *name
map*, the one mechanism every bridge uses:

    ``fn(keras_model) -> [(keras_layer_name, reference_name), ...]``

covering every Keras layer that owns weights (it may raise ``ValueError`` for a model of the
family that has no counterpart, e.g. a CIFAR ResNet for torchvision). A family adds its map once,
for one bridge, with::

    register_name_map("ResNet", "torchvision", resnet.torchvision_names)

in the table at the bottom of :mod:`keras_cnns.bridges._name_maps` (the bridge names are each
bridge module's ``BRIDGE``: ``"keras_applications"``, ``"torchvision"``, ``"timm"``; a new
bridge picks its own and looks maps up with :func:`registered_names` / its ``names`` and
``family`` arguments, like the three here). A bridge finds the map from the model's registered
family (``model_info(model.name).family``) or its ``family`` argument; its ``names`` argument
gives pairs (or such a function) for one call. The map function itself may live in the family
module when it is about the names that module builds (it must not import this package), or in
``_name_maps`` otherwise.

How weights are converted is each bridge's own business: :func:`register_weight_rule` for
keras.applications layer classes, PyTorch's layouts in :mod:`keras_cnns.bridges.torchvision`.
"""

from keras_cnns.bridges._common import (
    name_maps,
    register_name_map,
    registered_names,
    weighted_layers,
)
from keras_cnns.bridges.keras_applications import from_keras_applications, register_weight_rule
from keras_cnns.bridges.torchvision import from_torchvision, load_state_dict
from keras_cnns.bridges.timm import from_timm
from keras_cnns.bridges import _name_maps  # noqa: F401,E402  (registers the families' maps)

__all__ = ["from_keras_applications", "from_timm", "from_torchvision", "load_state_dict",
           "name_maps", "register_name_map", "register_weight_rule", "registered_names",
           "weighted_layers"]
