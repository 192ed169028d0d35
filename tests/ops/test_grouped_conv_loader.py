"""Compile-on-first-use loader: fallback paths (each in a fresh process) and the CUDA build check.

The fallback tests run a small script in a subprocess with its own cache directory, so they never
touch the cache the rest of the suite uses and each sees a fresh "first use".
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "custom_ops"

_SCRIPT = textwrap.dedent("""
    import json, warnings
    import numpy as np
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from keras_cnns import ops
        from keras_cnns.ops import _loader
        from keras_cnns.ops._reference import reference_grouped_depthwise_conv2d as ref
        x = np.random.default_rng(0).standard_normal((2, 6, 6, 12)).astype(np.float32)
        f = np.random.default_rng(1).standard_normal((3, 3, 4, 12)).astype(np.float32)
        y1 = ops.grouped_depthwise_conv2d(x, f, groups=3, shuffle_groups=3).numpy()
        y2 = ops.grouped_depthwise_conv2d(x, f, strides=2, groups=3).numpy()  # second call
        err = max(float(np.abs(y1 - ref(x, f, 1, "SAME", 1, 3, 3).numpy()).max()),
                  float(np.abs(y2 - ref(x, f, 2, "SAME", 1, 3, 1).numpy()).max()))
    ours = [str(w.message) for w in caught if "keras_cnns" in str(w.message)]
    print("RESULT" + json.dumps(dict(available=ops.custom_op_available(), warnings=ours,
                                     error=_loader.load_error(), max_err=err)))
""")


def _run(env_updates, tmp_path):
    env = dict(os.environ)
    env.pop("KERAS_CNNS_DISABLE_CUSTOM_OP", None)
    env.update({"KERAS_CNNS_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3",
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    env.update(env_updates)
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_disable_env_var_forces_quiet_fallback(tmp_path):
    res = _run({"KERAS_CNNS_DISABLE_CUSTOM_OP": "1"}, tmp_path)
    assert res["available"] is False
    assert "KERAS_CNNS_DISABLE_CUSTOM_OP" in res["error"]
    assert res["warnings"] == []  # an explicit opt-out is not warned about
    assert res["max_err"] < 1e-5
    assert not (tmp_path / "cache").exists()  # nothing was compiled


def test_missing_compiler_falls_back_with_one_warning(tmp_path):
    res = _run({"CXX": "no-such-compiler-kcnn"}, tmp_path)
    assert res["available"] is False
    assert len(res["warnings"]) == 1, res["warnings"]
    assert "no C++ compiler" in res["warnings"][0] and "no-such-compiler-kcnn" in res["warnings"][0]
    assert "reference" in res["warnings"][0]
    assert res["max_err"] < 1e-5


def test_compile_error_falls_back_with_one_warning(tmp_path):
    res = _run({"CXX": shutil.which("false") or "/bin/false"}, tmp_path)
    assert res["available"] is False
    assert len(res["warnings"]) == 1, res["warnings"]
    assert "compiling the custom op failed" in res["warnings"][0]
    assert "build.log" in res["warnings"][0]
    assert res["max_err"] < 1e-5
    # Nothing half-built was left in the cache.
    assert not list((tmp_path / "cache").glob("ops/*/_grouped_conv_ops.so"))


def test_unloadable_library_is_reported_and_evicted(tmp_path):
    # A cache entry that is not a loadable library (e.g. from another TF build): warn once with
    # the ABI-mismatch explanation, and delete the entry so the next process rebuilds.
    from keras_cnns.ops import _loader

    src = _loader.source_dir()
    cxx = shutil.which(os.environ.get("CXX") or "g++")
    arch = _loader.cpu_arch_flags()
    recipe = _loader._recipes(tf, Path("<src>"), Path("<out>"), cxx, arch, None)
    key = _loader._cache_key(tf, src, cxx, arch, None, repr(recipe))
    target = tmp_path / "cache" / "ops" / key / _loader.LIBRARY_NAME
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not an ELF file")
    res = _run({}, tmp_path)
    assert res["available"] is False
    assert len(res["warnings"]) == 1 and "ABI mismatch" in res["warnings"][0]
    assert not target.parent.exists()
    assert res["max_err"] < 1e-5


def _nvcc_flags():
    return [f for f in tf.sysconfig.get_compile_flags() if f.startswith(("-I", "-D"))]


#: A compile check, not a build to run: no host or device optimisation (the device check script,
#: custom_ops/gpu_check/run_on_device.sh, builds its own optimised copy on the GPU machine).
_COMPILE_CHECK_OPT = ("-O0", "-Xptxas", "-O0")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH: the CUDA kernels "
                    "cannot be compile-checked on this machine")
def test_cuda_sources_compile_with_nvcc(tmp_path):
    """The framework-free CUDA kernels (through the C-ABI check harness) and the TF GPU glue
    (grouped_conv_ops.cu.cc with -DGOOGLE_CUDA=1) both compile with nvcc."""
    nvcc = shutil.which("nvcc")
    harness = subprocess.Popen(
        [nvcc, *_COMPILE_CHECK_OPT, "-std=c++17", "-shared", "-Xcompiler", "-fPIC", "-arch=sm_90",
         "-o", str(tmp_path / "kcnn_gpu_check.so"), str(SOURCES / "gpu_check" / "kcnn_gpu_check.cu")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    glue = subprocess.Popen(
        [nvcc, "-std=c++17", "-x", "cu", "-DGOOGLE_CUDA=1", "--expt-relaxed-constexpr",
         "-Xcompiler", "-fPIC", "-Xcompiler", "-Wno-deprecated-declarations", *_COMPILE_CHECK_OPT,
         "-arch=sm_90", "-DNDEBUG", *_nvcc_flags(), "-c", str(SOURCES / "grouped_conv_ops.cu.cc"),
         "-o", str(tmp_path / "gpu.o")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_h, _ = harness.communicate(timeout=600)
    out_g, _ = glue.communicate(timeout=600)
    assert harness.returncode == 0, out_h[-4000:]
    assert glue.returncode == 0, out_g[-4000:]
    exported = subprocess.run(["nm", "-D", str(tmp_path / "kcnn_gpu_check.so")],
                              capture_output=True, text=True).stdout
    for name in ("kcnn_forward_f32", "kcnn_backprop_input_f32", "kcnn_backprop_filter_f32"):
        assert name in exported
    symbols = subprocess.run(["nm", "-C", str(tmp_path / "gpu.o")], capture_output=True,
                             text=True).stdout
    assert "GroupedConvForwardKernel" in symbols and "GroupedConvBackpropFilterKernel" in symbols
    assert "TiledGemmKernel" in symbols


def test_cuda_tiled_gemm_emulated_on_the_cpu(tmp_path):
    """The tiled GEMM steps of the CUDA kernels for grouped convolutions (forward and both
    gradients, both tile widths, split reductions), run on the CPU block by block and thread by
    thread between the barriers, against a naive float64 reference."""
    cxx = shutil.which(os.environ.get("CXX") or "g++")
    assert cxx is not None, "g++ is needed to build the custom op"
    exe = tmp_path / "cuda_tiles_selftest"
    build = subprocess.run(
        [cxx, "-std=c++17", "-O2", "-Wall", "-Werror", f"-I{SOURCES}", "-o", str(exe),
         str(SOURCES / "tests" / "cuda_tiles_selftest.cc")], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip().endswith("PASS"), run.stdout[-4000:]
    assert run.stdout.count(" ok") == 36


def _isa_variants():
    """Compiler flag sets for every vector width this CPU runs: baseline, AVX2, AVX-512."""
    from keras_cnns.ops._loader import cpu_arch_flags

    best = cpu_arch_flags()
    variants = {"baseline": []}
    if "-mavx2" in best:
        variants["avx2"] = ["-mavx2", "-mfma"]
    if "-mavx512f" in best:
        variants["avx512"] = best
    return variants


def test_cpu_kernels_selftest_every_isa(tmp_path):
    """The framework-free CPU kernels against a naive C++ reference, built for each vector width
    the CPU supports (so the AVX2 / SSE tile shapes are tested on an AVX-512 machine too), with
    two threads and tensors big enough for the streaming-store paths."""
    cxx = shutil.which(os.environ.get("CXX") or "g++")
    assert cxx is not None, "g++ is needed to build the custom op"
    procs = {}
    for name, flags in _isa_variants().items():
        exe = tmp_path / f"selftest_{name}"
        procs[name] = (exe, subprocess.Popen(
            [cxx, "-std=c++17", "-O2", *flags, f"-I{SOURCES}", "-pthread", "-o", str(exe),
             str(SOURCES / "tests" / "cpu_kernels_selftest.cc")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for name, (exe, proc) in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name}: {out[-3000:]}"
        run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0 and "PASS" in run.stdout, f"{name}:\n{run.stdout[-4000:]}"
