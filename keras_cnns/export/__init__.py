"""Export keras_cnns models for serving: SavedModel (TF Serving layout) and TFLite.

Both trace the model inside :func:`keras_cnns.ops.stock_ops_only`, so the exported graph holds
stock TensorFlow ops only and runs without keras_cnns or its compiled custom-op library; the
graph is checked for custom ops before anything is published.
"""

from keras_cnns.export._savedmodel import (
    CUSTOM_OP_NAMESPACE,
    CustomOpInGraphError,
    export_saved_model,
    find_custom_ops,
    list_versions,
    output_kind,
    saved_model,
    saved_model_op_names,
    serving_commands,
)
from keras_cnns.export._tflite import (
    QUANTIZATIONS,
    UnsupportedByTFLiteError,
    export_tflite,
    run_tflite,
    tflite,
)

__all__ = [
    "CUSTOM_OP_NAMESPACE",
    "CustomOpInGraphError",
    "QUANTIZATIONS",
    "UnsupportedByTFLiteError",
    "export_saved_model",
    "export_tflite",
    "find_custom_ops",
    "list_versions",
    "output_kind",
    "run_tflite",
    "saved_model",
    "saved_model_op_names",
    "serving_commands",
    "tflite",
]
