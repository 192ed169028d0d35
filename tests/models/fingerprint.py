"""Model fingerprints: what a registered model is, so that a change that alters one by accident
fails the suite.

A fingerprint has two parts:

- **structure** (from a build at the default input size, weights never allocated): the ordered
  layer names, and every weight's path and shape. These are exact: names and shapes do not
  depend on the CPU.
- **outputs** (from a build at the minimum input size with 7 classes): the logits
  (``classifier_activation=None``) of two fixed normal images in inference mode, with every
  weight set by :func:`seed_weights` (values drawn from a generator seeded by the weight's path,
  scaled so that activations stay O(1): fresh Keras initialisations leave many models' logits
  constant or ~1e-11, which no change would move).
  They are compared with a tolerance relative to the logits' scale (:func:`outputs_match`),
  because float32 rounding differs between CPUs, vector ISAs and oneDNN settings; a change of
  the model (a layer, an activation, a padding, an epsilon, the order weights are drawn in)
  moves them by far more.

The committed fingerprints are ``fingerprints.json.gz`` beside this file; the suite compares
every registered model with them (``test_models_generic.py``). Regenerate them only for a change
that is meant to alter models, and say so in the commit::

    python tests/models/fingerprint.py --write            # every model
    python tests/models/fingerprint.py --write resnet18   # some, the others kept
    python tests/models/fingerprint.py --compare          # report differences only
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np

PATH = Path(__file__).with_name("fingerprints.json.gz")
SEED = 1234
CLASSES = 7
#: |a - b| <= RTOL * max|reference|: float32 differences between oneDNN on and off were at most
#: 4.4e-6 of the scale over all 93 models (AMD EPYC, AVX-512); a changed model moves its logits
#: by O(1) of the scale.
RTOL = 5e-4


def images(shape, batch=2, seed=0):
    """The fixed inputs: ``batch`` standard-normal images (the generic tests' ``_x``)."""
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


def min_shape(info):
    return (info.min_input_size, info.min_input_size, info.default_input_shape[-1])


def structure(model) -> dict:
    """``{"layers": [name, ...], "weights": [[path, shape], ...]}`` of a built model."""
    return {
        "layers": [layer.name for layer in model.layers],
        "weights": [[w.path, [int(d) for d in w.shape]] for w in model.weights],
    }


def _fan_in(layer, weight) -> int:
    shape = [int(d) for d in weight.shape]
    if len(shape) < 2:
        return 1
    if len(shape) == 4 and "depthwise" in type(layer).__name__.lower() \
            or weight.path.endswith("depthwise_kernel"):
        return shape[0] * shape[1]  # (kh, kw, C, multiplier): each output sees kh * kw inputs
    return int(np.prod(shape[:-1]))


def seed_weights(model, seed: int = SEED) -> None:
    """Set every weight of ``model`` from a generator seeded by ``seed`` and the weight's path
    (so the values do not depend on the order weights are created in): kernels He-normal
    (``sqrt(2 / fan_in)``), BatchNorm ``gamma`` 1 + 0.1 N, ``moving_variance`` (and
    ``Normalization``'s ``variance``) U(0.5, 1.5), a hypernetwork generator's ``b_in`` / ``b_out``
    0 (HyperNetworks add them to every generated kernel entry), other vectors (biases, ``beta``, ``moving_mean``) 0.1 N, integer variables left alone."""
    import zlib

    for layer in model._flatten_layers(include_self=False):
        for w in list(layer._trainable_variables) + list(layer._non_trainable_variables):
            if not str(w.dtype).startswith("float"):
                continue
            rng = np.random.default_rng([seed, zlib.crc32(w.path.encode())])
            shape = tuple(int(d) for d in w.shape)
            leaf = w.path.rsplit("/", 1)[-1]
            if len(shape) >= 2:
                value = rng.normal(size=shape) * np.sqrt(2.0 / max(1, _fan_in(layer, w)))
            elif leaf == "gamma":
                value = 1.0 + 0.1 * rng.normal(size=shape)
            elif leaf in ("moving_variance", "variance"):  # BatchNorm, Normalization
                value = rng.uniform(0.5, 1.5, size=shape)
            elif leaf in ("b_in", "b_out"):  # a hypernetwork's biases: added to every
                value = np.zeros(shape)       # generated kernel entry, they compound per layer
            else:
                value = 0.1 * rng.normal(size=shape)
            w.assign(value.astype(str(w.dtype)))


def outputs(model, shape) -> list:
    """The inference-mode main output of :func:`images` as nested lists (``None`` where
    not finite)."""
    from keras_cnns.models.heads import main_output

    y = model(images(shape), training=False)
    if isinstance(y, (list, tuple)):  # a training model with auxiliary heads: its main output
        y = y[main_output(model)[0]]
    y = np.asarray(y, dtype="float64")
    return [[float(v) if np.isfinite(v) else None for v in row] for row in y]


def outputs_match(got, expected, rtol: float = RTOL):
    """``(ok, worst)``: whether ``got`` is within ``rtol`` of ``expected``'s scale, and the
    largest difference in units of that scale."""
    a = np.asarray(got, dtype="float64")
    b = np.array([[np.nan if v is None else v for v in row] for row in expected], dtype="float64")
    if a.shape != b.shape:
        return False, float("inf")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return bool(np.array_equal(np.isfinite(a), np.isfinite(b))), float("nan")
    scale = float(np.max(np.abs(b))) or 1.0
    worst = float(np.max(np.abs(a - b))) / scale
    return worst <= rtol, worst


def load() -> dict:
    with gzip.open(PATH, "rt", encoding="utf-8") as f:
        return json.load(f)


def compute(name: str, with_outputs: bool = True) -> dict:
    """The fingerprint of registered model ``name`` (builds it twice: at the default size without
    weights, at the minimum size with seeded weights)."""
    import keras
    import keras_cnns
    from keras_cnns.models import shapes_only

    info = keras_cnns.model_info(name)
    keras.backend.clear_session()
    with shapes_only():
        entry = structure(keras_cnns.create_model(name))
    if with_outputs:
        keras.backend.clear_session()
        shape = min_shape(info)
        model = keras_cnns.create_model(name, input_shape=shape, classes=CLASSES,
                                        classifier_activation=None)
        seed_weights(model)
        entry["outputs"] = outputs(model, shape)
    keras.backend.clear_session()
    return entry


def _diff_structure(name, got, expected):
    problems = []
    for key in ("layers", "weights"):
        if got[key] != expected[key]:
            first = next((i for i, (a, b) in enumerate(zip(got[key], expected[key])) if a != b),
                         min(len(got[key]), len(expected[key])))
            problems.append(
                f"{name}: {key} differ ({len(got[key])} now, {len(expected[key])} committed); "
                f"first at #{first}: now "
                f"{got[key][first] if first < len(got[key]) else '-'}, committed "
                f"{expected[key][first] if first < len(expected[key]) else '-'}")
    return problems


def diff(name: str, got: dict, expected: dict) -> list:
    """Human-readable differences between two fingerprints (empty: the same model)."""
    problems = _diff_structure(name, got, expected)
    if "outputs" in got and "outputs" in expected:
        ok, worst = outputs_match(got["outputs"], expected["outputs"])
        if not ok:
            problems.append(f"{name}: outputs differ by {worst:.3g} of their scale "
                            f"(tolerance {RTOL}): now {got['outputs']}, committed "
                            f"{expected['outputs']}")
    return problems


def main(argv=None) -> int:
    import argparse

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="models (default: every registered model)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the fingerprints")
    mode.add_argument("--compare", action="store_true", help="compare with the committed ones")
    parser.add_argument("--output", type=Path, default=PATH, help="file to write or compare with")
    args = parser.parse_args(argv)

    import keras_cnns

    names = args.names or keras_cnns.list_models()
    committed = {}
    if args.output.exists():
        with gzip.open(args.output, "rt", encoding="utf-8") as f:
            committed = json.load(f)
    problems = []
    for i, name in enumerate(names, 1):
        entry = compute(name)
        print(f"[{i}/{len(names)}] {name}: {len(entry['layers'])} layers, "
              f"{len(entry['weights'])} weights", flush=True)
        if args.compare:
            if name not in committed:
                problems.append(f"{name}: no committed fingerprint")
            else:
                problems += diff(name, entry, committed[name])
        else:
            committed[name] = entry
    if args.write:
        tmp = args.output.with_suffix(".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            json.dump(dict(sorted(committed.items())), f, separators=(",", ":"))
        os.replace(tmp, args.output)
        print(f"wrote {len(committed)} fingerprints to {args.output}")
    for p in problems:
        print(p)
    if args.compare:
        print(f"{len(names) - len({p.split(':')[0] for p in problems})} of {len(names)} "
              "models match")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
