"""A training run in its own process, for the kill/resume and multi-worker tests.

``python _child.py CONFIG.json``: CONFIG holds ``train_kwargs`` for
:func:`keras_cnns.training.train` and ``out`` (an ``.npz`` path for the final weights and a
``.json`` beside it for the history). With ``kill_after_batches`` N and ``marker``, the run writes
the marker after its N-th training batch and then waits to be killed (the parent sends SIGKILL).
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(path):
    with open(path) as f:
        config = json.load(f)
    import numpy as np
    import keras
    import tensorflow as tf

    # one thread per op: the reduction order (and so every rounding) is the same in every process
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if config.get("strategy") == "multiworker":  # must exist before any other TF operation
        from keras_cnns.training import make_strategy

        strategy = make_strategy("multiworker")
    else:
        strategy = None
    tf.config.experimental.enable_op_determinism()
    from keras_cnns.training import train

    callbacks = []
    kill_after = config.get("kill_after_batches")
    if kill_after:
        class KillPoint(keras.callbacks.Callback):
            seen = 0

            def on_train_batch_end(self, batch, logs=None):
                KillPoint.seen += 1
                if KillPoint.seen == kill_after:
                    with open(config["marker"], "w") as m:
                        m.write(str(batch))
                    while True:  # in the middle of an epoch, until SIGKILL arrives
                        time.sleep(0.1)

        callbacks.append(KillPoint())
    result = train(**config["train_kwargs"], strategy=strategy, callbacks=callbacks)
    weights = {f"w{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(result.model.weights)}
    np.savez(config["out"], **weights)
    with open(config["out"] + ".json", "w") as f:
        json.dump({"history": result.history, "resumed_from": result.resumed_from,
                   "val_accuracy": result.val_accuracy}, f)


if __name__ == "__main__":
    main(sys.argv[1])
