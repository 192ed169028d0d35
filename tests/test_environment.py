"""The environment report (``keras-cnns info --env``) and the oneDNN-portability run.

TensorFlow chooses its CPU kernels at import (oneDNN's or its own Eigen ones, by
``TF_ENABLE_ONEDNN_OPTS`` and the CPU), so one process can test only one setting. The last test
here runs the tests of the stock-TF paths (``tests/ops``, ``tests/export`` but the family sweep and
the REST/CLI wrappers, ``tests/layers``) again in a child process with the *other* setting, so the README's test command covers both on every
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
           "--ignore=tests/export/test_serving.py", "--ignore=tests/export/test_export_cli.py"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(f"TF_ENABLE_ONEDNN_OPTS={other}: {summary}")
    assert proc.returncode == 0, (f"with TF_ENABLE_ONEDNN_OPTS={other}:\n"
                                  + proc.stdout[-6000:] + proc.stderr[-2000:])
    assert f"oneDNN {'on' if other == '1' else 'off'}" in subprocess.run(
        [sys.executable, "-c", "from keras_cnns.environment import onednn_enabled;"
         "print('oneDNN', 'on' if onednn_enabled() else 'off')"],
        env=env, capture_output=True, text=True).stdout
