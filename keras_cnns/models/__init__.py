"""Model families. Importing this package registers every model with the registry."""

from keras_cnns.models._builder import feature_extractor, shapes_only
from keras_cnns.models._figures import ReferenceFigures, reference_figures
from keras_cnns.models._registry import (
    ModelInfo,
    create_model,
    list_models,
    model_info,
    register_model,
)

# Family modules: importing each registers its variants.
from keras_cnns.models import lenet  # noqa: F401,E402
from keras_cnns.models import alexnet  # noqa: F401,E402
from keras_cnns.models import vgg  # noqa: F401,E402
from keras_cnns.models import nin  # noqa: F401,E402
from keras_cnns.models import squeezenet  # noqa: F401,E402
from keras_cnns.models import mobilenet  # noqa: F401,E402
from keras_cnns.models import mobilenet_v2  # noqa: F401,E402
from keras_cnns.models import mobilenet_v3  # noqa: F401,E402
from keras_cnns.models import efficientnet  # noqa: F401,E402
from keras_cnns.models import fbnet  # noqa: F401,E402
from keras_cnns.models import squeezenext  # noqa: F401,E402
from keras_cnns.models import shufflenet  # noqa: F401,E402
from keras_cnns.models import resnet  # noqa: F401,E402
from keras_cnns.models import densenet  # noqa: F401,E402
from keras_cnns.models import cspnet  # noqa: F401,E402
from keras_cnns.models import hypernet  # noqa: F401,E402
from keras_cnns.models import googlenet  # noqa: F401,E402
from keras_cnns.models import inception_v3  # noqa: F401,E402
from keras_cnns.models import xception  # noqa: F401,E402
from keras_cnns.models import nasnet  # noqa: F401,E402
from keras_cnns.models import overfeat  # noqa: F401,E402
from keras_cnns.models import fractalnet  # noqa: F401,E402
from keras_cnns.models import revnet  # noqa: F401,E402
from keras_cnns.models import irevnet  # noqa: F401,E402

__all__ = ["ModelInfo", "ReferenceFigures", "create_model", "feature_extractor", "list_models",
           "model_info", "reference_figures", "register_model", "shapes_only"]
