#!/usr/bin/env bash
# Builds the C-ABI wrapper of the framework-free CUDA kernels and checks / times them against
# torch + cuDNN on the local GPU (no TensorFlow needed). One command, well under 5 minutes:
#
#   bash custom_ops/gpu_check/run_on_device.sh [--quick]
#
# Env: ARCH (default sm_90, e.g. ARCH=sm_80 for an A100), NVCC (default nvcc), PYTHON
# (default python3), OUT (if set, the library and report are also written there).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
arch="${ARCH:-sm_90}"
build="${OUT:-$(mktemp -d)}"
mkdir -p "$build"
echo "building kcnn_gpu_check.so for ${arch} in ${build}"
time "${NVCC:-nvcc}" -O3 -std=c++17 -shared -Xcompiler -fPIC -arch="${arch}" \
    -o "${build}/kcnn_gpu_check.so" "${here}/kcnn_gpu_check.cu"
"${PYTHON:-python3}" "${here}/check_cuda_kernels.py" --lib "${build}/kcnn_gpu_check.so" \
    --out "${build}/gpu_check_report.txt" "$@"
