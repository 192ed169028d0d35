// C-ABI wrapper around the framework-free CUDA kernels (../grouped_conv_cuda.cuh), for checking
// them without TensorFlow (check_cuda_kernels.py loads it with ctypes and feeds it the
// data_ptr() of torch CUDA tensors).
//
// Build: nvcc -O3 -std=c++17 -shared -Xcompiler -fPIC -arch=sm_90 -o kcnn_gpu_check.so \
//            kcnn_gpu_check.cu
//
// Geometry is passed as int64 geom[14] = {N, H, W, C, KH, KW, C_out, stride_h, stride_w,
// dilation_h, dilation_w, same_padding (0/1), groups, shuffle_groups}. Every function returns 0 on
// success, 1 for invalid geometry, 2 for a CUDA error; kcnn_last_error() returns the message.
// Launches go to `stream` (a cudaStream_t, or null for the default stream) and are asynchronous.

#include <cstdint>
#include <string>

#include "../grouped_conv_cuda.cuh"
#include "../grouped_conv_params.h"

namespace {

thread_local std::string g_last_error;

int MakeParams(const int64_t* g, keras_cnns::GroupedConvParams* p) {
  if (g == nullptr) {
    g_last_error = "geom is null";
    return 1;
  }
  const int64_t groups = g[12];
  const int64_t filter_in = groups > 0 ? g[3] / groups : 0;
  const std::string err = keras_cnns::MakeGroupedConvParams(
      g[0], g[1], g[2], g[3], g[4], g[5], filter_in, g[6], g[7], g[8], g[9], g[10], g[11] != 0,
      groups, g[13], p);
  if (!err.empty()) {
    g_last_error = err;
    return 1;
  }
  return 0;
}

int Check(cudaError_t err) {
  if (err == cudaSuccess) return 0;
  g_last_error = cudaGetErrorString(err);
  return 2;
}

}  // namespace

extern "C" {

const char* kcnn_last_error() { return g_last_error.c_str(); }

// Output height and width for geom (TensorFlow's SAME/VALID rules).
int kcnn_output_size(const int64_t* geom, int64_t* out_h, int64_t* out_w) {
  keras_cnns::GroupedConvParams p;
  if (int rc = MakeParams(geom, &p)) return rc;
  *out_h = p.out_h;
  *out_w = p.out_w;
  return 0;
}

int kcnn_forward_f32(const int64_t* geom, const float* x, const float* filter, float* y,
                     void* stream) {
  keras_cnns::GroupedConvParams p;
  if (int rc = MakeParams(geom, &p)) return rc;
  return Check(keras_cnns::cuda::LaunchGroupedConvForward<float>(
      p, x, filter, y, static_cast<cudaStream_t>(stream)));
}

int kcnn_backprop_input_f32(const int64_t* geom, const float* dy, const float* filter,
                            float* dx, void* stream) {
  keras_cnns::GroupedConvParams p;
  if (int rc = MakeParams(geom, &p)) return rc;
  return Check(keras_cnns::cuda::LaunchGroupedConvBackpropInput<float>(
      p, dy, filter, dx, static_cast<cudaStream_t>(stream)));
}

int kcnn_backprop_filter_f32(const int64_t* geom, const float* x, const float* dy,
                             float* dfilter, void* stream) {
  keras_cnns::GroupedConvParams p;
  if (int rc = MakeParams(geom, &p)) return rc;
  return Check(keras_cnns::cuda::LaunchGroupedConvBackpropFilter<float>(
      p, x, dy, dfilter, static_cast<cudaStream_t>(stream)));
}

int kcnn_forward_f64(const int64_t* geom, const double* x, const double* filter, double* y,
                     void* stream) {
  keras_cnns::GroupedConvParams p;
  if (int rc = MakeParams(geom, &p)) return rc;
  return Check(keras_cnns::cuda::LaunchGroupedConvForward<double>(
      p, x, filter, y, static_cast<cudaStream_t>(stream)));
}

// Waits for `stream` and reports any asynchronous kernel error.
int kcnn_synchronize(void* stream) {
  return Check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
}

}  // extern "C"
