"""The command-line subcommands that join several packages (the ``cli`` layer, under
:mod:`keras_cnns.cli`, which dispatches to them).

* :mod:`keras_cnns.commands.profile`: ``keras-cnns profile NAME`` (the registry and the profiler).
* :mod:`keras_cnns.commands.export`: ``keras-cnns export SOURCE`` (a training run's checkpoint, the
  data pipelines and the exporters).

A package whose command needs nothing above the package keeps it (:mod:`keras_cnns.training.cli`,
:mod:`keras_cnns.tuning.cli`); the layering is the ``[tool.importlinter]`` contract in
``pyproject.toml``, checked by ``tests/test_layering.py``.
"""
