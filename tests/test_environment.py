"""The environment report (``keras-cnns info --env``) and the oneDNN-portability run.

TensorFlow chooses its CPU kernels at import (oneDNN's or its own Eigen ones, by
``TF_ENABLE_ONEDNN_OPTS`` and the CPU), so one process can test only one setting. The last test
here runs the tests of the stock-TF paths (``tests/ops``, ``tests/export`` but the family sweep,
the REST/CLI wrappers, tfmot and the calibration checks, ``tests/layers``) again in a child process with the *other* setting, so the README's test command covers both on every
machine: oneDNN off on AMD CPUs, on on Intel ones.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_cnns import cli
from keras_cnns.environment import cpu_description, environment_info, format_environment, onednn_enabled

ROOT = Path(__file__).resolve().parents[1]

AMD = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 sse4_2 avx f16c fma avx2
processor\t: 1
model name\t: ignored second CPU
"""


def test_cpu_description_parses_model_vendor_and_isa():
    cpu = cpu_description(AMD)
    assert cpu == {"model": "AMD EPYC 7B13", "vendor": "AuthenticAMD",
                   "isa": ["sse4_2", "avx", "avx2", "fma", "f16c"]}
    intel = cpu_description("vendor_id : GenuineIntel\nflags : avx2 fma avx512f avx512bw amx_tile\n")
    assert intel["isa"] == ["avx2", "fma", "avx512f", "avx512bw", "amx_tile"]


def test_environment_reports_tf_onednn_setting_and_the_custom_op():
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    info = environment_info()
    assert info["tensorflow"] == tf.__version__
    assert info["onednn"] is onednn_enabled() is bool(_pywrap_util_port.IsMklEnabled())
    assert info["custom_op_loaded"] is True and info["custom_op_error"] is None
    assert info["gpus_visible"] == [d.name for d in tf.config.list_physical_devices("GPU")]
    from importlib import metadata
    try:
        litert = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        litert = "(not installed)"
    assert info["ai_edge_litert"] == litert
    text = format_environment(info)
    assert f"onednn                 {'on' if info['onednn'] else 'off'}" in text
    assert "custom_op_loaded       yes" in text


_ALLOCATOR_CHILD = """
import resource, sys
if sys.argv[1] == "keras_cnns":
    import keras_cnns
import numpy as np, tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
x = tf.constant(np.ones((64, 64, 64, 64), np.float32))  # 64 MiB, well above malloc's mmap threshold
step = tf.function(lambda x: tf.reduce_sum(x * 2.0))
step(x)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step(x)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
try:  # keras_cnns.environment.cpu_allocator's check, without importing keras_cnns
    tf.config.experimental.get_memory_info("CPU:0")
    allocator = "pooled"
except ValueError:
    allocator = "malloc"
print(bool(_pywrap_util_port.IsMklEnabled()), allocator, faults // 20)
"""


def _allocator_child(what, **env):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"} | env
    proc = subprocess.run([sys.executable, "-c", _ALLOCATOR_CHILD, what], env=env, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    onednn, allocator, faults = proc.stdout.split()[-3:]
    return onednn == "True", allocator, int(faults)


def test_onednn_off_processes_get_the_pooled_cpu_allocator():
    """Without oneDNN, TensorFlow allocates CPU tensors with ``malloc``: a freed 64 MiB tensor
    goes back to the kernel and the next step's lands on fresh, zero-filled pages (one page
    fault per 4 KiB: ~16,000 per step here); ``import keras_cnns`` gives such processes
    TensorFlow's pooled allocator, whose steps take none. The same process without keras_cnns
    is the control."""
    off = dict(TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="3")
    onednn, allocator, faults = _allocator_child("tensorflow", **off)
    assert (onednn, allocator) == (False, "malloc") and faults > 8000, faults
    onednn, allocator, faults = _allocator_child("keras_cnns", **off)
    assert (onednn, allocator) == (False, "pooled") and faults < 200, faults
    # the opt-out leaves TensorFlow's choice
    assert _allocator_child("keras_cnns", KERAS_CNNS_CPU_ALLOCATOR="default", **off)[1] == "malloc"
    from keras_cnns.environment import cpu_allocator

    assert cpu_allocator() == "pooled"  # this process: oneDNN's allocator, or the one set here


def test_pooled_cpu_allocator_decisions(monkeypatch):
    from keras_cnns import _startup

    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
    monkeypatch.setenv("KERAS_CNNS_CPU_ALLOCATOR", "bfc")
    with pytest.raises(ValueError, match="KERAS_CNNS_CPU_ALLOCATOR.*auto.*pooled.*default.*'bfc'"):
        _startup.pooled_cpu_allocator()
    monkeypatch.setenv("KERAS_CNNS_CPU_ALLOCATOR", "default")
    assert _startup.pooled_cpu_allocator() == "default"
    monkeypatch.setenv("KERAS_CNNS_CPU_ALLOCATOR", "auto")
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "false")  # the user's own choice wins
    assert _startup.pooled_cpu_allocator() == "user"
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "false"
    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC")
    decision = _startup.pooled_cpu_allocator()
    assert decision == ("onednn" if onednn_enabled() else "pooled")
    assert ("TF_CPU_ALLOCATOR_USE_BFC" in os.environ) is (decision == "pooled")
    monkeypatch.setenv("KERAS_CNNS_CPU_ALLOCATOR", "pooled")
    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
    assert _startup.pooled_cpu_allocator() == "pooled"
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "true"


def test_cli_info_env_and_missing_name(capsys):
    assert cli.main(["info", "--env"]) == 0
    out = capsys.readouterr().out
    for key in ("tensorflow", "keras", "onednn", "cpu_isa", "custom_op_loaded", "gpus_visible"):
        assert any(line.startswith(key + " ") for line in out.splitlines()), out
    assert cli.main(["info"]) == 2
    assert "needs a model NAME" in capsys.readouterr().err


@pytest.mark.slow
def test_stock_paths_pass_with_the_other_onednn_setting():
    other = "0" if onednn_enabled() else "1"
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=other, TF_CPP_MIN_LOG_LEVEL="2")
    # The C++/CUDA compile, self-test and loader checks do not involve TensorFlow's kernels:
    # they run once, in the parent. So does the export sweep over one model per family (about
    # 6 minutes): its conversions are the same code as the export tests that do run here.
    # -n 0: in one process (this test already runs on one of the suite's xdist workers)
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "tests/ops",
           "tests/export", "tests/layers", "--ignore=tests/ops/test_grouped_conv_loader.py",
           "--ignore=tests/export/test_export_every_family.py",
           # the REST/CLI wrappers around the exports: the graphs they run are the ones
           # test_export_saved_model / test_export_tflite run here too (~90 s saved)
           "--ignore=tests/export/test_serving.py", "--ignore=tests/export/test_export_cli.py",
           # tfmot's pruning and QAT run in a tf_keras process of their own, and the BatchNorm
           # calibration before conversion is NumPy over a model's outputs; the stock kernels
           # they reach are the layers' and ops' tested here (~60 s saved)
           "--ignore=tests/export/test_tfmot.py",
           "--ignore=tests/export/test_verify_calibration.py",
           # TFLite files run in TFLite's and LiteRT's own kernels, which TF_ENABLE_ONEDNN_OPTS
           # does not touch; the Keras forward they are compared with is the one
           # test_export_saved_model runs here (~15 s saved)
           "--ignore=tests/export/test_export_tflite.py", "--ignore=tests/export/test_litert.py",
           # runs a child per oneDNN setting itself (~50 s)
           "--deselect=tests/ops/test_depthwise_dispatch.py::test_grouped_dispatch_per_onednn_setting"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(f"TF_ENABLE_ONEDNN_OPTS={other}: {summary}")
    assert proc.returncode == 0, (f"with TF_ENABLE_ONEDNN_OPTS={other}:\n"
                                  + proc.stdout[-6000:] + proc.stderr[-2000:])
    assert f"oneDNN {'on' if other == '1' else 'off'}" in subprocess.run(
        [sys.executable, "-c", "from keras_cnns.environment import onednn_enabled;"
         "print('oneDNN', 'on' if onednn_enabled() else 'off')"],
        env=env, capture_output=True, text=True).stdout
