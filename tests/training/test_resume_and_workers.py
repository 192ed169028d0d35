"""Kill a run with SIGKILL in the middle of an epoch and resume it; two MultiWorkerMirrored
workers on loopback against one worker. Every run is its own process (``_child.py``) with TF's
op determinism on, so "the same" means the same within float tolerance.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

CHILD = os.path.join(os.path.dirname(__file__), "_child.py")
RESUME_RUN = dict(model_or_name="mobilenet_0_25", data="digits", image_size=32, epochs=3,
                  steps_per_epoch=4, batch_size=32, seed=7, verbose=0, restore_best=False)


def _env(**extra):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _start(tmp_path, tag, config, env=None):
    path = tmp_path / f"{tag}.json"
    config = dict(config, out=str(tmp_path / f"{tag}.npz"))
    path.write_text(json.dumps(config))
    return subprocess.Popen([sys.executable, CHILD, str(path)], env=env or _env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), config


def _finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]


def _load(config):
    w = np.load(config["out"])
    with open(config["out"] + ".json") as f:
        meta = json.load(f)
    return [w[f"w{i}"] for i in range(len(w.files))], meta


def _assert_same_run(a, b, atol):
    (wa, ma), (wb, mb) = a, b
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=atol)
    assert set(ma["history"]) == set(mb["history"])
    for key in ma["history"]:
        np.testing.assert_allclose(ma["history"][key], mb["history"][key], rtol=1e-5, atol=atol,
                                   err_msg=key)


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    ckpt = tmp_path / "ckpt"
    marker = tmp_path / "killed-here"
    reference, ref_config = _start(tmp_path, "reference",
                                   {"train_kwargs": dict(RESUME_RUN,
                                                         checkpoint_dir=str(tmp_path / "ref"))})
    doomed, _ = _start(tmp_path, "doomed", {
        "train_kwargs": dict(RESUME_RUN, checkpoint_dir=str(ckpt)),
        "kill_after_batches": 6, "marker": str(marker)})  # batch 2 of epoch 2
    deadline = time.time() + 600
    while not marker.exists():
        assert doomed.poll() is None, doomed.communicate()[0][-3000:]
        assert time.time() < deadline
        time.sleep(0.2)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=60)
    assert doomed.returncode == -signal.SIGKILL
    assert sorted(p.name for p in ckpt.iterdir() if p.name.startswith("ckpt-")) == ["ckpt-0001"]

    resumed, res_config = _start(tmp_path, "resumed", {
        "train_kwargs": dict(RESUME_RUN, checkpoint_dir=str(ckpt), resume=True)})
    _finish(resumed)
    _finish(reference)
    got, want = _load(res_config), _load(ref_config)
    assert got[1]["resumed_from"] == 1 and want[1]["resumed_from"] == 0
    assert len(got[1]["history"]["loss"]) == 3
    _assert_same_run(got, want, atol=1e-5)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_multiworker_mirrored_workers_equal_one_worker_on_the_same_global_batch(tmp_path):
    run = dict(model_or_name="lenet5", data="digits", image_size=32, epochs=2,
               steps_per_epoch=3, batch_size=32, seed=3, verbose=0, restore_best=False,
               optimizer="sgd", learning_rate=0.05, warmup_epochs=0.0)
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(_start(tmp_path, f"worker{index}",
                            {"train_kwargs": run, "strategy": "multiworker"},
                            env=_env(TF_CONFIG=json.dumps(tf_config))))
    single, single_config = _start(tmp_path, "single", {"train_kwargs": run})
    for proc, _ in procs:
        _finish(proc)
    _finish(single)
    want = _load(single_config)
    for _, config in procs:  # both workers hold the same, synchronously trained weights
        got = _load(config)
        for x, y in zip(got[0], want[0]):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got[1]["history"]["loss"], want[1]["history"]["loss"],
                                   rtol=1e-4)
    assert not np.allclose(want[0][0], _initial_lenet_kernel(run))  # it did train


def _initial_lenet_kernel(run):
    import keras

    from keras_cnns.models import model_info

    keras.utils.set_random_seed(run["seed"])
    model = model_info("lenet5").builder(input_shape=(32, 32, 1), classes=10)
    return keras.ops.convert_to_numpy(model.weights[0])
