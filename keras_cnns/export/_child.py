"""The environment of the fresh child processes that check an export without keras_cnns.

:func:`keras_cnns.export.verify_exports` (the SavedModel in a process that refuses to import
keras_cnns), :func:`keras_cnns.export.run_litert` (the LiteRT interpreter, without TensorFlow) and
the serving tests start Python children that must not find this checkout: ``PYTHONPATH`` is
dropped, so only what the interpreter has installed is importable (the import hooks of those
children then refuse keras_cnns even when it is installed), and TensorFlow's C++ start-up log is
silenced. The one definition of that environment; keep copies out.
"""

from __future__ import annotations

import os
from typing import Dict

__all__ = ["child_env"]


def child_env() -> Dict[str, str]:
    """This process's environment without ``PYTHONPATH``, with ``TF_CPP_MIN_LOG_LEVEL=3``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env
