"""keras_cnns: every classic convolutional architecture as a clean, trainable Keras model.

Quick start::

    import keras_cnns
    model = keras_cnns.SqueezeNet(bypass="simple")            # SqueezeNet 1.0, simple bypass
    model = keras_cnns.MobileNet(alpha=0.75, rho=0.714)       # MobileNet v1 at 160x160
    model = keras_cnns.create_model("vgg16", classes=10)
    keras_cnns.list_models("squeezenet*")
    keras_cnns.profile(model)                                 # per-layer params / mult-adds
"""

from keras_cnns import _startup

_startup.quiet_tensorflow_start()  # only in the `keras-cnns` command, without --verbose
_startup.pooled_cpu_allocator()  # oneDNN-off processes: pooled CPU tensors (no page faults)

from keras_cnns import bridges, data, export, layers, models, ops  # noqa: E402
from keras_cnns.bridges import from_keras_applications, from_timm, from_torchvision  # noqa: E402
from keras_cnns.models import create_model, list_models, model_info  # noqa: E402
from keras_cnns.models.cspnet import CSPDenseNet, CSPNet, Darknet  # noqa: E402
from keras_cnns.models.efficientnet import EfficientNet, efficientnet  # noqa: E402
from keras_cnns.models.fbnet import FBNet  # noqa: E402
from keras_cnns.models.fractalnet import FractalNet, FractalOfFractalNet, extract_column  # noqa: E402
from keras_cnns.models.fully_conv import fc_to_conv, multiscale_predict  # noqa: E402
from keras_cnns.models.googlenet import BNInception, GoogLeNet  # noqa: E402
from keras_cnns.models.hypernet import HyperWideResNet  # noqa: E402
from keras_cnns.models.inception_v3 import InceptionV3  # noqa: E402
from keras_cnns.models.irevnet import CifarIRevNet, IRevNet, invert  # noqa: E402
from keras_cnns.models.mobilenet import MobileNet  # noqa: E402
from keras_cnns.models.mobilenet_v2 import MobileNetV2  # noqa: E402
from keras_cnns.models.mobilenet_v3 import MobileNetV3  # noqa: E402
from keras_cnns.models.nasnet import NASNet  # noqa: E402
from keras_cnns.models.overfeat import OverFeat  # noqa: E402
from keras_cnns.models.resnet import (  # noqa: E402
    CifarResNet, PreActResNet, ResNet, ResNeXt, ResNetV2, WideResNet, wrn,
)
from keras_cnns.models.densenet import CifarDenseNet, DenseNet  # noqa: E402
from keras_cnns.models.revnet import RevNet  # noqa: E402
from keras_cnns.models.squeezenet import SqueezeNet  # noqa: E402
from keras_cnns.models.xception import Xception  # noqa: E402
from keras_cnns.profiler import Profile, profile  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "BNInception",
    "CSPDenseNet",
    "CSPNet",
    "CifarDenseNet",
    "CifarResNet",
    "Darknet",
    "DenseNet",
    "EfficientNet",
    "FBNet",
    "FractalNet",
    "FractalOfFractalNet",
    "GoogLeNet",
    "HyperWideResNet",
    "CifarIRevNet",
    "IRevNet",
    "InceptionV3",
    "MobileNet",
    "MobileNetV2",
    "MobileNetV3",
    "NASNet",
    "OverFeat",
    "PreActResNet",
    "Profile",
    "ResNeXt",
    "ResNet",
    "ResNetV2",
    "RevNet",
    "SqueezeNet",
    "WideResNet",
    "Xception",
    "bridges",
    "create_model",
    "data",
    "efficientnet",
    "export",
    "extract_column",
    "fc_to_conv",
    "from_keras_applications",
    "from_timm",
    "from_torchvision",
    "invert",
    "layers",
    "list_models",
    "model_info",
    "models",
    "multiscale_predict",
    "ops",
    "profile",
    "wrn",
]
