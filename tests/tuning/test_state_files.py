"""Keras Tuner's state files under a kill: atomic writes, and the repair of a project a killed
run left with an empty ``trial.json`` (:mod:`keras_cnns.tuning._state_files`)."""

import json
import os
import shutil

import keras
import keras_tuner as kt
import pytest
from keras_tuner.src import utils as kt_utils

from keras_cnns.tuning._state_files import atomic_keras_tuner_writes, repair_project


def _build(hp):
    hp.Int("units", 1, 8)
    return keras.Sequential([keras.layers.Dense(1)])


def _tuner(directory):
    return kt.RandomSearch(_build, objective="loss", max_trials=5, directory=str(directory),
                           project_name="p", seed=1)


def _killed_while_creating_a_trial(directory):
    """A project as a search killed inside ``Oracle.create_trial`` leaves it: the first trial
    completed and the tuner saved, the second trial's ``trial.json`` truncated before Keras Tuner
    wrote it (and before the oracle, saved after the trial, recorded it)."""
    tuner = _tuner(directory)
    first = tuner.oracle.create_trial("tuner0")
    tuner.oracle.update_trial(first.trial_id, {"loss": 0.5})
    first.status = "COMPLETED"
    tuner.oracle.end_trial(first)
    tuner.save()  # tuner0.json: the next run reloads the project
    project = directory / "p"
    oracle_before = (project / "oracle.json").read_text()
    second = tuner.oracle.create_trial("tuner0")
    (project / "oracle.json").write_text(oracle_before)
    (project / f"trial_{second.trial_id}" / "trial.json").write_text("")
    return project, first.trial_id, second.trial_id


def test_keras_tuner_alone_cannot_resume_such_a_project(tmp_path):
    _killed_while_creating_a_trial(tmp_path)
    with pytest.raises(json.JSONDecodeError):
        _tuner(tmp_path)


def test_repair_sets_the_unrecorded_trial_aside_and_the_project_resumes(tmp_path):
    project, first, second = _killed_while_creating_a_trial(tmp_path)
    with pytest.warns(RuntimeWarning, match=f"trial_{second}.*not recorded"):
        moved = repair_project(project)
    assert moved == [str(project / f"unreadable_trial_{second}")]
    assert not (project / f"trial_{second}").exists()
    tuner = _tuner(tmp_path)  # reloads
    assert set(tuner.oracle.trials) == {first}
    assert tuner.oracle.trials[first].status == "COMPLETED"
    assert repair_project(project) == []  # nothing left to repair


def test_repair_refuses_an_unreadable_running_trial_and_oracle(tmp_path):
    project = tmp_path / "p"
    (project / "trial_3").mkdir(parents=True)
    (project / "trial_3" / "trial.json").write_text("{\"trial_id\": ")
    (project / "oracle.json").write_text(json.dumps({"ongoing_trials": {"tuner0": "3"}}))
    with pytest.raises(ValueError, match="trial_3.*running.*overwrite=True"):
        repair_project(project)
    assert (project / "trial_3" / "trial.json").exists()  # left as it was
    (project / "oracle.json").write_text("")
    with pytest.raises(ValueError, match="oracle.json is empty or not JSON.*overwrite=True"):
        repair_project(project)
    assert repair_project(tmp_path / "absent") == []


def test_writes_are_atomic_once_enabled(tmp_path, monkeypatch):
    atomic_keras_tuner_writes()
    atomic_keras_tuner_writes()  # idempotent: one wrapper
    assert kt_utils.save_json._keras_cnns_atomic
    path = tmp_path / "trial.json"
    kt_utils.save_json(str(path), {"status": "RUNNING"})
    assert json.loads(path.read_text()) == {"status": "RUNNING"}
    assert oct(os.stat(path).st_mode & 0o777) != oct(0o600)  # a plain file's permissions

    def killed(fd):  # the process dies between writing and the file being in place
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        kt_utils.save_json(str(path), {"status": "COMPLETED"})
    assert json.loads(path.read_text()) == {"status": "RUNNING"}  # the old content, whole
    assert os.listdir(tmp_path) == ["trial.json"]  # no temporary file left


def test_a_tuner_after_budgeted_saves_through_the_atomic_writer(tmp_path, monkeypatch):
    from keras_cnns.tuning import MultiplierHyperModel, budgeted

    hm = MultiplierHyperModel("mobilenet", grid={"alpha": [0.25, 0.5]}, classes=10)
    tuner = kt.GridSearch(hm, objective="val_loss", directory=str(tmp_path), project_name="q")
    budgeted(tuner)
    assert getattr(kt_utils.save_json, "_keras_cnns_atomic", False)
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(b), real_replace(a, b)))
    trial = tuner.oracle.create_trial("tuner0")
    tuner.oracle.update_trial(trial.trial_id, {"val_loss": 0.3})
    trial.status = "COMPLETED"
    tuner.oracle.end_trial(trial)
    trial_file = str(tmp_path / "q" / f"trial_{trial.trial_id}" / "trial.json")
    assert trial_file in replaced and str(tmp_path / "q" / "oracle.json") in replaced
    assert json.loads(open(trial_file).read())["status"] == "COMPLETED"
