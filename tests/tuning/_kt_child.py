"""A user's own ``kt.Hyperband`` over the public hypermodel, in its own process (the kill/resume
test): ``_kt_child.py CONFIG.json``. Every model built with weights is appended to
``config["builds"]`` (one JSON line: alpha, side) to check none was over the budget."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        config = json.load(f)
    import dataclasses

    import keras_tuner as kt
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    from keras_cnns.data import load_digits
    from keras_cnns.models import _registry
    from keras_cnns.tuning import MultiplierHyperModel

    info = _registry.model_info("mobilenet")

    def recording_builder(*args, **kwargs):
        if not in_stateless_scope():
            with open(config["builds"], "a") as f:
                f.write(json.dumps({"alpha": kwargs.get("alpha", 1.0),
                                    "side": kwargs["input_shape"][0]}) + "\n")
        return info.builder(*args, **kwargs)

    _registry._REGISTRY["mobilenet"] = dataclasses.replace(info, builder=recording_builder)
    digits = load_digits(image_size=16, batch_size=32)
    hypermodel = MultiplierHyperModel("mobilenet", classes=10, **config["hypermodel"])
    tuner = kt.Hyperband(hypermodel=hypermodel, objective="val_accuracy", max_epochs=2,
                         factor=2, seed=1, directory=config["directory"], project_name="hb")
    tuner.search(digits.train.take(2), validation_data=digits.val.take(1), verbose=1)
    with open(config["out"], "w") as f:
        json.dump([{"id": t.trial_id, "status": t.status, "values": t.hyperparameters.values}
                   for t in tuner.oracle.trials.values()], f)
