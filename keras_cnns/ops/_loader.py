"""Compile-on-first-use loader of the ``KerasCnns>GroupedDepthwiseConv2D`` custom op.

The C++ sources ship inside the package (``keras_cnns/_custom_ops_src``, installed from
``custom_ops/``) or, in a source checkout, sit in ``<repo>/custom_ops``. On first use the loader

1. hashes the sources, the TensorFlow version and build flags, the compiler, the CPU's vector
   ISA flags and the build recipe into a cache key;
2. looks for ``${KERAS_CNNS_CACHE_DIR:-~/.cache/keras_cnns}/ops/<key>/_grouped_conv_ops.so``;
3. if absent, compiles it with ``g++`` (``$CXX`` if set) into a temporary directory next to it,
   under a file lock, and atomically renames it into place (so concurrent processes never see a
   half-written library);
4. loads it with ``tf.load_op_library`` and registers the gradients.

Any failure (no compiler, compile error, a library that does not load, e.g. an ABI mismatch)
makes :func:`load_library` return ``None`` and emits ONE ``RuntimeWarning`` per process saying why;
callers then use the pure-TensorFlow reference. ``KERAS_CNNS_DISABLE_CUSTOM_OP=1`` forces that
fallback without a warning.

The GPU kernels (``grouped_conv_ops.cu.cc``) are added to the library only when TensorFlow is
built with CUDA, a GPU is visible and ``nvcc`` is on ``PATH``; a failed GPU build falls back to
the CPU-only library (with the one warning).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = [
    "BUILD_RECIPE_VERSION",
    "cache_dir",
    "cpu_arch_flags",
    "op_isa",
    "load_error",
    "load_library",
    "source_dir",
]

# Bump when the build commands change in a way the cache key would not otherwise see.
BUILD_RECIPE_VERSION = 3

LIBRARY_NAME = "_grouped_conv_ops.so"
CPU_SOURCES = (
    "grouped_conv_params.h",
    "grouped_conv_cpu_kernels.h",
    "grouped_conv_cpu_kernels_impl.h",
    "grouped_conv_cpu_kernels.cc",
    "grouped_conv_op_kernels.h",
    "grouped_conv_ops.cc",
)
GPU_SOURCES = ("grouped_conv_cuda.cuh", "grouped_conv_cuda_tiles.h", "grouped_conv_ops.cu.cc")
DISABLE_ENV = "KERAS_CNNS_DISABLE_CUSTOM_OP"
CACHE_ENV = "KERAS_CNNS_CACHE_DIR"
COMPILE_TIMEOUT_S = 900

_lock = threading.Lock()
_state: dict = {"done": False, "lib": None, "error": None, "warned": False}


def source_dir() -> Path | None:
    """Directory holding the C++/CUDA sources, or ``None`` if they are not shipped.

    Installed packages carry them in ``keras_cnns/_custom_ops_src``; a source checkout (editable
    install) in ``<repo>/custom_ops``.
    """
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_custom_ops_src", package.parent / "custom_ops"):
        if all((candidate / name).is_file() for name in CPU_SOURCES):
            return candidate
    return None


def cache_dir() -> Path:
    """Root of the compiled-op cache: ``${KERAS_CNNS_CACHE_DIR:-~/.cache/keras_cnns}/ops``."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "keras_cnns")
    return Path(root) / "ops"


def cpu_arch_flags(cpuinfo: str | None = None) -> list[str]:
    """Vector-ISA compiler flags this CPU supports, read from ``/proc/cpuinfo``.

    Never ``-march=native``: the flags are explicit and part of the cache key, so a cache shared
    between different machines never hands one a library it cannot run.

    Args:
        cpuinfo: contents of ``/proc/cpuinfo`` (read from the system when ``None``).

    Returns:
        ``-mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma`` with AVX-512, ``-mavx2
        -mfma`` with AVX2 and FMA, else ``[]`` (the compiler's baseline, SSE2 on x86-64);
        ``KERAS_CNNS_OP_ISA`` (``avx512``, ``avx2``, ``baseline``) caps it.

    Raises:
        ValueError: ``KERAS_CNNS_OP_ISA`` unknown, or above what the CPU supports.
    """
    return list(_ISA_FLAGS[_build_isa(cpuinfo)])


def op_isa() -> str:
    """The vector ISA the CPU kernels are built for in this process: ``"avx512"``, ``"avx2"`` or
    ``"baseline"`` (the ISA of :func:`cpu_arch_flags`' flags; ``"baseline"`` if
    ``KERAS_CNNS_OP_ISA`` is invalid, in which case the op does not load)."""
    try:
        return _build_isa()
    except ValueError:
        return "baseline"


def _build_isa(cpuinfo: str | None = None) -> str:
    """The key of ``_ISA_FLAGS`` the kernels are built for (see :func:`cpu_arch_flags`)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return "baseline"
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    supported = ["baseline"]
    if {"avx2", "fma"} <= flags:
        supported.append("avx2")
        if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags:
            supported.append("avx512")
    raw = os.environ.get(ISA_ENV, "auto")
    isa = raw.strip().lower() or "auto"
    if isa not in ("auto",) + tuple(_ISA_FLAGS):
        raise ValueError(f"`{ISA_ENV}` must be one of ['auto', 'avx512', 'avx2', 'baseline']. "
                         f"Received: {ISA_ENV}={raw!r}")
    if isa == "auto":
        return supported[-1]
    if isa not in supported:
        raise ValueError(f"`{ISA_ENV}={raw}` asks for an ISA this CPU lacks; it supports "
                         f"{supported}")
    return isa


#: ``KERAS_CNNS_OP_ISA``: build the CPU kernels for a lower vector ISA than the CPU's best
#: (``avx2`` on an AVX-512 machine, to time the AVX2 kernels there); ``auto`` (default) = the best.
ISA_ENV = "KERAS_CNNS_OP_ISA"
_ISA_FLAGS = {"avx512": ("-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"),
              "avx2": ("-mavx2", "-mfma"), "baseline": ()}


def load_error() -> str | None:
    """Why the compiled op is not in use (``None`` if it is, or if loading was not tried yet)."""
    return _state["error"]


def load_library():
    """The loaded op library (a module with the op wrappers), or ``None`` to use the fallback.

    Thread-safe; the (possibly minutes-long on a cold cache) build happens at most once per
    process. Failures emit one ``RuntimeWarning`` per process and are remembered.
    """
    if _state["done"]:
        return _state["lib"]
    with _lock:
        if _state["done"]:
            return _state["lib"]
        lib, error, warn = None, None, True
        if os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
            error, warn = f"disabled by {DISABLE_ENV}={os.environ[DISABLE_ENV]}", False
        else:
            try:
                lib = _build_and_load()
            except _LoadFailure as e:
                error = str(e)
            except Exception as e:  # a bug here must not break the model: fall back, loudly
                error = f"unexpected {type(e).__name__}: {e}"
        _state.update(done=True, lib=lib, error=error)
        if error is not None and warn and not _state["warned"]:
            _state["warned"] = True
            warnings.warn(
                "keras_cnns: the compiled grouped_depthwise_conv2d op is unavailable, using the "
                f"(slower) pure-TensorFlow reference instead. Reason: {error}",
                RuntimeWarning,
                stacklevel=3,
            )
        return lib


class _LoadFailure(RuntimeError):
    """The op could not be built or loaded; the message says why."""


def _run(cmd: list[str], log: list[str]) -> subprocess.Popen:
    log.append("$ " + " ".join(cmd))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _tool_version(tool: str) -> str:
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e})"


def _gpu_build_config(tf):
    """``(nvcc, arch_flags)`` when the GPU kernels should be built, else ``None``."""
    nvcc = shutil.which("nvcc")
    if nvcc is None or not tf.test.is_built_with_cuda():
        return None
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    archs = set()
    for gpu in gpus:
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if cc:
            archs.add(f"-gencode=arch=compute_{cc[0]}{cc[1]},code=sm_{cc[0]}{cc[1]}")
    return nvcc, sorted(archs)


def _recipes(tf, src: Path, out: Path, cxx: str, arch: list[str], gpu):
    """Build commands: ``(compile_jobs, link_cmd)``; paths under ``out``."""
    tf_cflags = list(tf.sysconfig.get_compile_flags())
    tf_lflags = list(tf.sysconfig.get_link_flags())
    jobs = [
        [cxx, "-std=c++17", "-O3", *arch, "-fPIC", "-fvisibility=hidden",
         "-fvisibility-inlines-hidden", "-DNDEBUG", "-c", str(src / "grouped_conv_cpu_kernels.cc"),
         "-o", str(out / "kernels.o")],
        [cxx, "-std=c++17", "-O2", "-fPIC", "-DNDEBUG", "-Wno-deprecated-declarations",
         *tf_cflags, "-c", str(src / "grouped_conv_ops.cc"), "-o", str(out / "ops.o")],
    ]
    objs = [str(out / "kernels.o"), str(out / "ops.o")]
    extra_link: list[str] = []
    if gpu is not None:
        nvcc, gencode = gpu
        nv_flags = [f for f in tf_cflags if f.startswith(("-I", "-D"))]
        jobs.append([nvcc, "-std=c++17", "-x", "cu", "-DGOOGLE_CUDA=1", "--expt-relaxed-constexpr",
                     "-Xcompiler", "-fPIC", "-O3", "-DNDEBUG", *gencode, *nv_flags, "-c",
                     str(src / "grouped_conv_ops.cu.cc"), "-o", str(out / "gpu.o")])
        objs.append(str(out / "gpu.o"))
        cuda_lib = Path(nvcc).resolve().parent.parent / "lib64"
        extra_link = [f"-L{cuda_lib}", "-lcudart", f"-Wl,-rpath,{cuda_lib}"]
    link = [cxx, "-shared", *objs, "-o", str(out / LIBRARY_NAME), *tf_lflags, *extra_link]
    return jobs, link


def _cache_key(tf, src: Path, cxx: str, arch: list[str], gpu, recipe_text: str) -> str:
    h = hashlib.sha256()
    names = CPU_SOURCES + (GPU_SOURCES if gpu is not None else ())
    for name in names:
        h.update(name.encode() + b"\0" + (src / name).read_bytes() + b"\0")
    for part in (str(BUILD_RECIPE_VERSION), tf.__version__, tf.sysconfig.CXX11_ABI_FLAG.__str__(),
                 " ".join(tf.sysconfig.get_compile_flags()), " ".join(tf.sysconfig.get_link_flags()),
                 cxx, _tool_version(cxx), " ".join(arch), repr(gpu),
                 _tool_version(gpu[0]) if gpu is not None else "", sys.platform, recipe_text):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:20]


@contextlib.contextmanager
def _file_lock(path: Path):
    """Exclusive lock on ``path`` across processes (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _compile(tf, src: Path, target: Path, cxx: str, arch: list[str], gpu) -> None:
    """Builds ``target`` from ``src``; raises _LoadFailure with the compiler's message."""
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    log: list[str] = []
    try:
        jobs, link = _recipes(tf, src, tmp, cxx, arch, gpu)

        def run(cmd):
            proc = _run(cmd, log)
            try:
                out, _ = proc.communicate(timeout=COMPILE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
                return cmd, -1, (out or "") + f"\n(timed out after {COMPILE_TIMEOUT_S}s)"
            return cmd, proc.returncode, out or ""

        try:
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                results = list(pool.map(run, jobs))
            for cmd, rc, out in results:
                log.append(out)
                if rc != 0:
                    raise _LoadFailure(_compile_message(cmd, rc, out, target.parent))
            cmd, rc, out = run(link)
            log.append(out)
            if rc != 0:
                raise _LoadFailure(_compile_message(cmd, rc, out, target.parent))
        except OSError as e:
            raise _LoadFailure(f"could not run the compiler ({e})") from e
        finally:
            (target.parent / "build.log").write_text("\n".join(log))
        os.replace(tmp / LIBRARY_NAME, target)  # atomic: readers see all or nothing
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compile_message(cmd, rc, out, where) -> str:
    errors = [line for line in out.splitlines() if "error" in line.lower()] or out.splitlines()
    excerpt = "\n    ".join(errors[:8])
    return (f"compiling the custom op failed ({os.path.basename(cmd[0])} exited with {rc}); "
            f"full log in {where / 'build.log'}:\n    {excerpt}")


def _build_and_load():
    import tensorflow as tf

    src = source_dir()
    if src is None:
        raise _LoadFailure("the C++ sources (keras_cnns/_custom_ops_src or custom_ops/) were not "
                           "found; reinstall keras-cnns")
    cxx_name = os.environ.get("CXX") or "g++"
    cxx = shutil.which(cxx_name)
    if cxx is None:
        raise _LoadFailure(f"no C++ compiler: {cxx_name!r} is not on PATH (install g++ or set CXX)")
    arch = cpu_arch_flags()
    gpu = None
    try:
        gpu = _gpu_build_config(tf)
    except Exception:  # device query problems only disable the GPU kernels
        gpu = None
    gpu_error = None
    for attempt_gpu in ([gpu, None] if gpu is not None else [None]):
        recipe = _recipes(tf, Path("<src>"), Path("<out>"), cxx, arch, attempt_gpu)
        key = _cache_key(tf, src, cxx, arch, attempt_gpu, repr(recipe))
        target = cache_dir() / key / LIBRARY_NAME
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _LoadFailure(f"cannot create the cache directory {target.parent} ({e}); set "
                               f"{CACHE_ENV} to a writable directory") from e
        try:
            with _file_lock(target.parent / ".lock"):
                if not target.is_file():
                    _compile(tf, src, target, cxx, arch, attempt_gpu)
        except _LoadFailure as e:
            if attempt_gpu is not None:
                gpu_error = f"the GPU kernels failed to build, using CPU kernels only: {e}"
                continue
            raise
        lib = _load(tf, target)
        _register_gradients(tf, lib)
        if gpu_error is not None:
            _state["warned"] = True
            warnings.warn(f"keras_cnns: {gpu_error}", RuntimeWarning, stacklevel=4)
        return lib
    raise _LoadFailure(gpu_error or "no build was attempted")  # pragma: no cover


def _load(tf, path: Path):
    try:
        return tf.load_op_library(str(path))
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, OSError) as e:
        # As in TF Addons: a library that does not load was almost always built against another
        # TensorFlow (undefined symbols = ABI mismatch). The cache key includes the TF version,
        # so this means a stale or foreign cache entry: drop it so the next process rebuilds.
        shutil.rmtree(path.parent, ignore_errors=True)
        raise _LoadFailure(
            f"could not load {path} with TensorFlow {tf.__version__}: {e}. This usually means an "
            "ABI mismatch between the TensorFlow the op was built against and the one installed; "
            "the cache entry was removed and will be rebuilt by the next process (or set "
            f"{CACHE_ENV} to a fresh directory).") from e


def _register_gradients(tf, lib) -> None:
    from keras_cnns.ops import _gradients

    _gradients.register(tf, lib)
