"""Export keras_cnns models for serving: SavedModel (TF Serving layout) and TFLite.

Both trace the model inside :func:`keras_cnns.ops.stock_ops_only`, so the exported graph holds
stock TensorFlow ops only and runs without keras_cnns or its compiled custom-op library; the
graph is checked for custom ops before anything is published. :func:`tflite_report` (and
``keras-cnns export``) writes every TFLite variant -- float32, float16, dynamic, int8, and through
tensorflow-model-optimization in its own process pruned and QAT int8 -- and measures size, gzip
size, batch-1 latency, held-out accuracy and agreement with Keras side by side.
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
from keras_cnns.export._report import (
    REPORT_VARIANTS,
    format_report,
    parse_variants,
    tflite_latency_ms,
    tflite_report,
)
from keras_cnns.export._litert import LiteRTError, litert_available, run_litert, run_litert_many
from keras_cnns.export._tfmot import load_pruned_weights, optimize_with_tfmot
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
    "LiteRTError",
    "QUANTIZATIONS",
    "REPORT_VARIANTS",
    "UnsupportedByTFLiteError",
    "export_saved_model",
    "export_tflite",
    "find_custom_ops",
    "format_report",
    "list_versions",
    "litert_available",
    "load_pruned_weights",
    "optimize_with_tfmot",
    "output_kind",
    "parse_variants",
    "run_litert",
    "run_litert_many",
    "run_tflite",
    "saved_model",
    "saved_model_op_names",
    "serving_commands",
    "tflite",
    "tflite_latency_ms",
    "tflite_report",
]
