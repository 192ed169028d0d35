"""keras_cnns.tuning: the cost model, the budget, the Pareto front, resume, chief/worker."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_cnns.tuning import (candidate_configs, mobilenet_v1_macs, pareto_front,
                               profiled_cost, search)

CHILD = os.path.join(os.path.dirname(__file__), "_child.py")
# MobileNet on the digits at small sides: rho in {128,160,192,224}/224 of 48 -> 27 (below the
# minimum 32, dropped), 34, 41, 48; alpha 0.25 / 0.5: 6 configurations
SMALL = dict(base_size=48, grid={"alpha": (0.25, 0.5)}, epochs=1, steps_per_epoch=1,
             batch_size=32, plot=True)


def test_closed_form_cost_equals_the_profiler_on_the_papers_grid():
    for c in candidate_configs("mobilenet", base_size=224, classes=1000):
        macs, _ = profiled_cost("mobilenet", c.kwargs, c.side, 3, 1000)
        assert c.macs == macs == mobilenet_v1_macs(c.kwargs["alpha"], c.side), c.label
    # the paper's Tables 6 and 7 (millions of mult-adds)
    paper = {(1.0, 224): 569, (0.75, 224): 325, (0.5, 224): 149, (0.25, 224): 41,
             (1.0, 192): 418, (1.0, 160): 290, (1.0, 128): 186}
    for (alpha, side), millions in paper.items():
        # the paper's integers are within 1 M of the exact sums (160: 290.68 printed as 290)
        assert abs(mobilenet_v1_macs(alpha, side) / 1e6 - millions) < 1.0, (alpha, side)


def test_pareto_front_is_exactly_the_non_dominated_rows():
    rng = np.random.default_rng(0)
    rows = [{"config": str(i), "macs": float(m), "accuracy": float(a)}
            for i, (m, a) in enumerate(zip(rng.integers(1, 20, 40), rng.random(40).round(2)))]
    front = pareto_front(rows)
    ids = {r["config"] for r in front}
    for r in rows:
        dominated = any(o["accuracy"] >= r["accuracy"] and o["macs"] <= r["macs"]
                        and (o["accuracy"], o["macs"]) != (r["accuracy"], r["macs"])
                        for o in rows)
        assert (r["config"] in ids) == (not dominated)
    assert [r["macs"] for r in front] == sorted(r["macs"] for r in front)


def test_search_honours_the_budget_and_reports_a_non_dominated_front(tmp_path):
    budget = 1.5e6
    result = search("mobilenet", "digits", max_macs=budget, directory=str(tmp_path),
                    export_dir=str(tmp_path / "sm"), verbose=0, **SMALL)
    configs = candidate_configs("mobilenet", base_size=48, grid={"alpha": (0.25, 0.5)})
    allowed = {c.label for c in configs if c.macs <= budget}
    assert 0 < len(allowed) < len(configs)
    assert {r["config"] for r in result.rejected} == {c.label for c in configs
                                                      if c.macs > budget}
    assert {t["config"] for t in result.trials} == allowed  # every trial under the budget
    assert all(t["macs"] <= budget for t in result.trials)
    for t in result.trials:
        for key in ("accuracy", "macs", "params", "latency_ms", "score"):
            assert np.isfinite(t[key])
    assert result.front == pareto_front(result.trials)
    for f in result.front:  # no trial dominates a front member
        assert not any(t["accuracy"] >= f["accuracy"] and t["macs"] <= f["macs"]
                       and (t["accuracy"] > f["accuracy"] or t["macs"] < f["macs"])
                       for t in result.trials)
    assert os.path.isfile(result.plot_path)
    assert os.path.isfile(os.path.join(result.export_path, "saved_model.pb"))
    assert "Pareto" not in result.table() and "MMACs" in result.table()


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _spawn(tmp_path, tag, search_kwargs, env=None, out=True):
    path = tmp_path / f"{tag}.json"
    config = {"search": search_kwargs, "out": str(tmp_path / f"{tag}.out.json") if out else None}
    path.write_text(json.dumps(config))
    full_env = dict(os.environ, **(env or {}))
    return subprocess.Popen([sys.executable, CHILD, str(path)], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kwargs(tmp_path, **extra):
    kw = dict(SMALL, grid={"alpha": [0.25, 0.5]})
    kw.update(extra)
    return dict(name="mobilenet", data="digits", directory=str(tmp_path / "tuning"),
                verbose=1, **kw)


def _label(values, base=48):  # a trial's point as search() labels it
    return f"alpha={values['alpha']:.3g} side={round(values['rho'] * base)}"


def test_resuming_after_a_kill_skips_the_completed_trials(tmp_path):
    kwargs = _kwargs(tmp_path, grid={"alpha": [0.25], "rho": [41 / 48, 1.0]})  # 2 configurations
    proc = _spawn(tmp_path, "killed", kwargs)
    done = []
    deadline = time.time() + 600
    for line in proc.stdout:  # kill it once the first trial has reported
        if "top-1" in line:
            done.append(line.split(":")[1].strip())
            if len(done) == 1:
                proc.send_signal(signal.SIGKILL)
                break
        assert time.time() < deadline
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and len(done) == 1
    project = tmp_path / "tuning" / "mobilenet_digits"
    completed = set()
    for trial_json in project.glob("trial_*/trial.json"):
        trial = json.loads(trial_json.read_text())
        if trial["status"] == "COMPLETED":  # one hyperparameter per multiplier
            completed.add(_label(trial["hyperparameters"]["values"]))
    # the reported trial may have been killed before Keras Tuner recorded it: then it is retried
    done = completed
    resumed = _spawn(tmp_path, "resumed", kwargs)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    started = [line.split(":")[1].strip().split(" (")[0] for line in out.splitlines()
               if line.startswith("trial ") and line.rstrip().endswith("...")]
    assert started and not set(started) & set(done), (done, started)
    assert len(started) == 2 - len(done)
    with open(tmp_path / "resumed.out.json") as f:
        trials = json.load(f)["trials"]
    assert len(trials) == 2 and len({t["config"] for t in trials}) == 2


def test_a_chief_and_one_worker_complete_a_search(tmp_path):
    kwargs = _kwargs(tmp_path, max_trials=2, grid={"alpha": [0.25]}, algorithm="random")
    port = str(_free_port())
    common = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": port}
    chief = _spawn(tmp_path, "chief", kwargs, env={**common, "KERASTUNER_TUNER_ID": "chief"})
    time.sleep(3)
    worker = _spawn(tmp_path, "worker", kwargs, env={**common, "KERASTUNER_TUNER_ID": "tuner0"},
                    out=False)
    w_out, _ = worker.communicate(timeout=600)
    c_out, _ = chief.communicate(timeout=120)
    assert worker.returncode == 0, w_out[-3000:]
    assert chief.returncode == 0, c_out[-3000:]
    assert sum("top-1" in line for line in w_out.splitlines()) == 2  # the worker trained them
    with open(tmp_path / "chief.out.json") as f:
        trials = json.load(f)["trials"]
    assert len(trials) == 2  # ... and the chief's oracle recorded them


@pytest.mark.parametrize("kwargs,arg", [
    ({"name": "mobilenet9"}, "name"),
    ({"name": "lenet5"}, "model"),
    ({"name": "mobilenet", "max_macs": 1.0}, "max_macs"),
    ({"name": "mobilenet", "objective": "speed"}, "objective"),
    ({"name": "mobilenet", "max_macs": -5}, "max_macs"),
    ({"name": "mobilenet", "cost": "energy"}, "cost"),
])
def test_bad_input_is_an_error_before_any_trial(kwargs, arg, tmp_path):
    with pytest.raises(ValueError, match=f"`{arg}`|{arg}="):
        search(data="digits", directory=str(tmp_path), verbose=0, **kwargs)
    assert not any(tmp_path.iterdir())  # no project, no trial


@pytest.mark.parametrize("argv,flag", [
    (["tune", "lenet5"], "MODEL"),
    (["tune", "mobilenet", "--objective", "speed"], "--objective"),
    (["tune", "mobilenet", "--budget-madds", "-1"], "--budget-madds"),
])
def test_cli_tune_bad_input_names_the_flag(argv, flag, capsys, tmp_path):
    from keras_cnns import cli

    assert cli.main(argv + ["--directory", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert flag in err and "Received:" in err


def test_every_tunable_family_yields_costed_configurations():
    from keras_cnns import list_models, model_info

    tunable = {model_info(n).family: n for n in list_models() if model_info(n).multipliers()}
    assert set(tunable) == {"MobileNet", "MobileNetV2", "MobileNetV3", "ShuffleNet",
                            "ShuffleNetV2", "EfficientNet"}
    assert not model_info("lenet5").multipliers() and not model_info("resnet50").multipliers()
    for family in ("MobileNetV2", "ShuffleNetV2"):
        name = tunable[family]
        grid = {k: v[:2] for k, v in model_info(name).multipliers()["grid"].items()}
        configs = candidate_configs(name, base_size=96, grid=grid)
        assert configs and all(c.macs > 0 and c.params > 0 for c in configs)
        assert len({c.macs for c in configs}) == len(configs)  # each multiplier changes the cost


def test_efficientnet_compound_grid_respects_the_flops_constraint():
    grid = {"alpha": (1.15, 1.2, 1.25), "beta": (1.05, 1.1), "gamma": (1.1, 1.15, 1.2)}
    configs = candidate_configs("efficientnet_b0", base_size=64, grid=grid)
    assert 0 < len(configs) < 18  # the constraint removed some of the 18 grid points
    labels = {c.label for c in configs}
    assert "depth=1.2 width=1.1 side=74" in labels  # the paper's alpha, beta, gamma at phi = 1
    for c in configs:
        a, b = c.kwargs["depth"], c.kwargs["width"]
        g = c.side / 64
        assert abs(a * b * b * g * g - 2.0) < 0.1 + 0.1  # side rounding moves gamma slightly
    phi2 = {c.label for c in candidate_configs("efficientnet_b0", base_size=64, phi=2,
                                               grid={"alpha": (1.2,), "beta": (1.1,),
                                                     "gamma": (1.15,)})}
    assert phi2 == {"depth=1.44 width=1.21 side=85"}
