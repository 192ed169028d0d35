// GPU kernels of KerasCnns>GroupedDepthwiseConv2D{,BackpropInput,BackpropFilter}: the
// framework-free CUDA kernels of grouped_conv_cuda.cuh launched on the op's stream.
//
// Built with nvcc (-DGOOGLE_CUDA=1 -std=c++17 -x cu --expt-relaxed-constexpr) only when
// TensorFlow has CUDA and a GPU is present; otherwise this file compiles to nothing.

#if GOOGLE_CUDA

#define EIGEN_USE_GPU
#define EIGEN_USE_THREADS

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/gpu_kernel_helper.h"

#include "grouped_conv_cuda.cuh"
#include "grouped_conv_op_kernels.h"

namespace keras_cnns {

using GPUDevice = Eigen::GpuDevice;

namespace {

absl::Status ToStatus(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(std::string("KerasCnns>GroupedDepthwiseConv2D: launching ") + what +
                             " failed: " + cudaGetErrorString(err));
}

}  // namespace

template <typename T>
struct GroupedConvLauncher<GPUDevice, T> {
  static absl::Status Forward(tensorflow::OpKernelContext* ctx, const GroupedConvParams& p,
                              const T* x, const T* filter, T* y) {
    return ToStatus(cuda::LaunchGroupedConvForward<T>(p, x, filter, y,
                                                      ctx->eigen_device<GPUDevice>().stream()),
                    "the forward kernel");
  }
  static absl::Status BackpropInput(tensorflow::OpKernelContext* ctx, const GroupedConvParams& p,
                                    const T* dy, const T* filter, T* dx) {
    return ToStatus(cuda::LaunchGroupedConvBackpropInput<T>(
                        p, dy, filter, dx, ctx->eigen_device<GPUDevice>().stream()),
                    "the input-gradient kernel");
  }
  static absl::Status BackpropFilter(tensorflow::OpKernelContext* ctx,
                                     const GroupedConvParams& p, const T* x, const T* dy,
                                     T* dfilter) {
    return ToStatus(cuda::LaunchGroupedConvBackpropFilter<T>(
                        p, x, dy, dfilter, ctx->eigen_device<GPUDevice>().stream()),
                    "the filter-gradient kernel");
  }
};

#define KCNN_REGISTER_GPU(T)                                                          \
  REGISTER_KERNEL_BUILDER(Name("KerasCnns>GroupedDepthwiseConv2D")                    \
                              .Device(tensorflow::DEVICE_GPU)                         \
                              .TypeConstraint<T>("T"),                                \
                          GroupedDepthwiseConv2DOp<GPUDevice, T>);                    \
  REGISTER_KERNEL_BUILDER(Name("KerasCnns>GroupedDepthwiseConv2DBackpropInput")       \
                              .Device(tensorflow::DEVICE_GPU)                         \
                              .TypeConstraint<T>("T")                                 \
                              .HostMemory("input_sizes"),                             \
                          GroupedDepthwiseConv2DBackpropInputOp<GPUDevice, T>);       \
  REGISTER_KERNEL_BUILDER(Name("KerasCnns>GroupedDepthwiseConv2DBackpropFilter")      \
                              .Device(tensorflow::DEVICE_GPU)                         \
                              .TypeConstraint<T>("T")                                 \
                              .HostMemory("filter_sizes"),                            \
                          GroupedDepthwiseConv2DBackpropFilterOp<GPUDevice, T>);

KCNN_REGISTER_GPU(float)
KCNN_REGISTER_GPU(double)

#undef KCNN_REGISTER_GPU

}  // namespace keras_cnns

#endif  // GOOGLE_CUDA
