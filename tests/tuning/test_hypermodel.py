"""keras_cnns.tuning.MultiplierHyperModel with Keras Tuner's own algorithms: the budget honoured by
each (nothing over it built with weights, nor counted as a trial), a user's kt.Hyperband resumed
after a kill, bad input refused before any trial."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import keras_tuner as kt
import pytest
from keras.src.backend.common.stateless_scope import in_stateless_scope

from keras_cnns.data import load_digits
from keras_cnns.models import _registry
from keras_cnns.tuning import (MultiplierHyperModel, budgeted, make_tuner, mobilenet_v1_macs,
                               pareto_front, search, trial_rows)

KT_CHILD = os.path.join(os.path.dirname(__file__), "_kt_child.py")
BUDGET = 1.5e6
# MobileNet on the digits: rho * 48 -> 27 (under its minimum 32), 34, 41, 48 px; alpha 0.25 or
# 0.5: 6 configurations, 2 under the budget (0.25 at 34 and 41 px: 0.85 M and 1.05 M MACs; the
# next, 0.25 at 48 px, needs 1.75 M)
SPACE = dict(base_size=48, grid={"alpha": (0.25, 0.5)})
FEASIBLE = {(0.25, 34), (0.25, 41)}
# tiny trials: 2 steps of 32 digits at 16 px, resized by the hypermodel to each trial's side
FAST = {"run_eagerly": True}


@pytest.fixture(scope="module")
def digits():
    return load_digits(image_size=16, batch_size=32)


@pytest.fixture
def builds(monkeypatch):
    """Every MobileNet built with weights (a weight-free ``shapes_only`` build is not counted)."""
    info = _registry.model_info("mobilenet")
    built = []

    def recording_builder(*args, **kwargs):
        if not in_stateless_scope():
            built.append((kwargs.get("alpha", 1.0), kwargs["input_shape"][0]))
        return info.builder(*args, **kwargs)

    monkeypatch.setitem(_registry._REGISTRY, "mobilenet",
                        dataclasses.replace(info, builder=recording_builder))
    return built


def _macs(alpha, side):
    return mobilenet_v1_macs(alpha, side, classes=10, channels=3)


def test_the_space_is_one_ordered_hyperparameter_per_multiplier():
    hm = MultiplierHyperModel("mobilenet", classes=10, max_macs=BUDGET, **SPACE)
    hp = kt.HyperParameters()
    hm.declare_hyperparameters(hp)
    alpha, rho = hp.space
    assert (alpha.name, rho.name) == ("alpha", "rho")
    assert isinstance(alpha, kt.engine.hyperparameters.Choice) and alpha.ordered
    assert list(alpha.values) == [0.25, 0.5] and len(rho.values) == 4 and rho.ordered
    ranged = kt.HyperParameters()
    MultiplierHyperModel("mobilenet", classes=10, ranges=True, **SPACE).declare_hyperparameters(
        ranged)
    assert all(isinstance(h, kt.engine.hyperparameters.Float) for h in ranged.space)
    assert (ranged.space[0].min_value, ranged.space[0].max_value) == (0.25, 0.5)
    # each multiplier of other families, e.g. EfficientNet's three under its constraint
    eff = kt.HyperParameters()
    MultiplierHyperModel("efficientnet_b0", classes=10, base_size=64).declare_hyperparameters(eff)
    assert [h.name for h in eff.space] == ["alpha", "beta", "gamma"]


# Hyperband: the same check in test_a_users_hyperband_resumes_after_a_kill (both processes)
@pytest.mark.parametrize("algorithm", ["grid", "random", "bayesian"])
def test_every_algorithm_builds_and_counts_nothing_over_the_budget(algorithm, digits, builds,
                                                                   tmp_path):
    ranges = algorithm == "random"  # hp.Float ranges: proposals rejection-sampled
    hm = MultiplierHyperModel("mobilenet", classes=10, max_macs=BUDGET, ranges=ranges,
                              compile_kwargs=FAST, **SPACE)
    common = dict(hypermodel=hm, objective="val_accuracy", seed=3, directory=str(tmp_path),
                  project_name=algorithm)
    if algorithm == "grid":
        tuner = kt.GridSearch(max_trials=4, **common)
    elif algorithm == "random":
        tuner = kt.RandomSearch(max_trials=2, **common)
    elif algorithm == "bayesian":  # one random point, then the Gaussian process proposes
        tuner = kt.BayesianOptimization(max_trials=4, num_initial_points=1, **common)
    assert type(tuner.oracle).__name__.startswith("Budgeted")  # installed by the hypermodel
    tuner.search(digits.train.take(2), validation_data=digits.val.take(1), epochs=1, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert trials and all(t.status == "COMPLETED" for t in trials)
    assert builds and all(_macs(a, s) <= BUDGET for a, s in builds), builds
    rows = trial_rows(tuner)
    assert len(rows) == len(trials) and all(r["macs"] <= BUDGET for r in rows)
    configs = {(r["alpha"], r["side"]) for r in rows}
    assert set(builds) == configs  # every trial's model, and nothing else, built with weights
    if ranges:  # continuous alpha and rho, each draw under the budget
        assert len(trials) == 2
    else:  # the two points under the budget, once each: max_trials=4 is not reached, the
        # configurations over it counted nothing and the exhausted space stopped the search
        assert configs == FEASIBLE and len(trials) == 2
    front = pareto_front(rows, metric="val_accuracy")
    assert front and set(map(id, front)) <= set(map(id, rows))
    if algorithm == "bayesian":  # the plain Keras Tuner flow to the end
        best = tuner.get_best_models(1)[0]
        assert best.input_shape[1] in {s for _, s in configs}


def test_a_users_hyperband_resumes_after_a_kill(tmp_path):
    config = {"hypermodel": {"max_macs": BUDGET, "compile_kwargs": FAST, **SPACE},
              "directory": str(tmp_path / "kt"), "builds": str(tmp_path / "builds.jsonl")}

    def spawn(tag):
        path = tmp_path / f"{tag}.json"
        path.write_text(json.dumps({**config, "out": str(tmp_path / f"{tag}.out.json")}))
        return subprocess.Popen([sys.executable, KT_CHILD, str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    proc = spawn("killed")
    deadline = time.time() + 600
    complete = False
    for line in proc.stdout:  # kill it in its second trial (the first one complete and saved)
        complete = complete or line.startswith("Trial 1 Complete")
        if complete and line.startswith("Search: Running Trial #2"):
            proc.send_signal(signal.SIGKILL)
            break
        assert time.time() < deadline
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    project = tmp_path / "kt" / "hb"
    done = {json.loads(p.read_text())["trial_id"] for p in project.glob("trial_*/trial.json")
            if json.loads(p.read_text())["status"] == "COMPLETED"}
    assert done
    resumed = spawn("resumed")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert "Reloading Tuner" in out
    started = out.count("Search: Running Trial")
    with open(tmp_path / "resumed.out.json") as f:
        trials = json.load(f)
    assert all(t["status"] == "COMPLETED" for t in trials)
    # completed trials were not rerun (the one killed mid-way was retried)
    assert len(trials) == 3 and started == 3 - len(done)
    configs = {(t["values"]["alpha"], round(t["values"]["rho"] * 48)) for t in trials}
    assert configs == FEASIBLE
    with open(config["builds"]) as f:  # both processes: nothing over the budget built
        built = [json.loads(line) for line in f]
    assert built and all(_macs(b["alpha"], b["side"]) <= BUDGET for b in built)


@pytest.mark.parametrize("kwargs,arg", [
    ({"model_name": "mobilenet9"}, "name"),
    ({"model_name": "lenet5"}, "model"),
    ({"model_name": "resnet50"}, "model"),
    ({"model_name": "mobilenet", "max_macs": 1e5}, "max_macs"),
    ({"model_name": "mobilenet", "max_params": 1e3}, "max_params"),
    ({"model_name": "mobilenet", "max_macs": -1}, "max_macs"),
    ({"model_name": "mobilenet", "classes": 0}, "classes"),
    ({"model_name": "mobilenet", "grid": {"width": (1,)}}, "grid"),
])
def test_hypermodel_bad_input_is_an_error_before_any_trial(kwargs, arg, tmp_path):
    kwargs = {"classes": 10, "base_size": 48, **kwargs}
    with pytest.raises(ValueError, match=f"`{arg}`|{arg}="):
        MultiplierHyperModel(kwargs.pop("model_name"), **kwargs)


@pytest.mark.parametrize("kwargs,arg", [
    ({"algorithm": "annealing"}, "algorithm"),
    ({"max_macs": 1e5, "algorithm": "hyperband"}, "max_macs"),
    ({"max_params": 1e3, "algorithm": "bayesian"}, "max_params"),
])
def test_search_bad_algorithm_or_budget_is_an_error_before_any_trial(kwargs, arg, tmp_path):
    kwargs = {"name": "mobilenet", "base_size": 48, **kwargs}
    with pytest.raises(ValueError, match=f"`{arg}`"):
        search(data="digits", directory=str(tmp_path), verbose=0, **kwargs)
    assert not any(tmp_path.iterdir())  # no project, no trial
    with pytest.raises(ValueError, match="`algorithm`"):
        make_tuner("sa", MultiplierHyperModel("mobilenet", classes=10, **SPACE))


def test_budgeted_refuses_another_hypermodel(tmp_path):
    tuner = kt.RandomSearch(hypermodel=lambda hp: None, objective="val_loss", max_trials=1,
                            directory=str(tmp_path))
    with pytest.raises(ValueError, match="`hypermodel`"):
        budgeted(tuner)
