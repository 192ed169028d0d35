"""A search in its own process (kill/resume and chief/worker tests): ``_child.py CONFIG.json``."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        config = json.load(f)
    from keras_cnns.tuning import search

    result = search(**config["search"])
    if config.get("out"):
        with open(config["out"], "w") as f:
            json.dump({"trials": result.trials, "front": result.front}, f)
