// TensorFlow registration of KerasCnns>GroupedDepthwiseConv2D and its two gradient ops, with
// shape functions, plus the CPU kernels (which run the framework-free kernels of
// grouped_conv_cpu_kernels.h on the op's intra-op thread pool). GPU kernels are registered in
// grouped_conv_ops.cu.cc.

#define EIGEN_USE_THREADS

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

#include "grouped_conv_cpu_kernels.h"
#include "grouped_conv_op_kernels.h"
#include "grouped_conv_params.h"

namespace keras_cnns {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

namespace {

// Attribute checks shared by the three shape functions.
absl::Status GetShapeAttrs(InferenceContext* c, GroupedConvAttrs* a) {
  std::vector<int32_t> strides, dilations;
  std::string padding;
  TF_RETURN_IF_ERROR(c->GetAttr("strides", &strides));
  TF_RETURN_IF_ERROR(c->GetAttr("dilations", &dilations));
  TF_RETURN_IF_ERROR(c->GetAttr("padding", &padding));
  TF_RETURN_IF_ERROR(c->GetAttr("groups", &a->groups));
  TF_RETURN_IF_ERROR(c->GetAttr("shuffle_groups", &a->shuffle_groups));
  if (strides.size() != 2 || strides[0] < 1 || strides[1] < 1) {
    return absl::InvalidArgumentError("strides must be a list of 2 integers >= 1");
  }
  if (dilations.size() != 2 || dilations[0] < 1 || dilations[1] < 1) {
    return absl::InvalidArgumentError("dilations must be a list of 2 integers >= 1");
  }
  a->stride_h = strides[0];
  a->stride_w = strides[1];
  a->dil_h = dilations[0];
  a->dil_w = dilations[1];
  a->same = padding == "SAME";
  return absl::OkStatus();
}

// Checks what is statically known of input [N, H, W, C] and filter [KH, KW, C/g, C_out].
absl::Status CheckKnownDims(InferenceContext* c, const GroupedConvAttrs& a, ShapeHandle input,
                            ShapeHandle filter) {
  const auto known = [c](DimensionHandle d) { return c->ValueKnown(d); };
  const DimensionHandle ch = c->Dim(input, 3), fin = c->Dim(filter, 2), fout = c->Dim(filter, 3);
  for (int i = 0; i < 2; ++i) {
    if (known(c->Dim(filter, i)) && c->Value(c->Dim(filter, i)) < 1) {
      return absl::InvalidArgumentError("filter spatial dimensions must be positive");
    }
  }
  if (known(ch)) {
    const int64_t cv = c->Value(ch);
    if (cv < 1) return absl::InvalidArgumentError("input channels must be positive");
    if (cv % a.groups != 0) {
      return absl::InvalidArgumentError("input channels (" + std::to_string(cv) +
                                        ") must be divisible by groups (" +
                                        std::to_string(a.groups) + ")");
    }
    if (cv % a.shuffle_groups != 0) {
      return absl::InvalidArgumentError("input channels (" + std::to_string(cv) +
                                        ") must be divisible by shuffle_groups (" +
                                        std::to_string(a.shuffle_groups) + ")");
    }
    if (known(fin) && c->Value(fin) * a.groups != cv) {
      return absl::InvalidArgumentError(
          "filter input depth (" + std::to_string(c->Value(fin)) +
          ") must equal input channels / groups (" + std::to_string(cv) + " / " +
          std::to_string(a.groups) + ")");
    }
  }
  if (known(fout) && (c->Value(fout) < 1 || c->Value(fout) % a.groups != 0)) {
    return absl::InvalidArgumentError("filter output channels (" + std::to_string(c->Value(fout)) +
                                      ") must be positive and divisible by groups (" +
                                      std::to_string(a.groups) + ")");
  }
  return absl::OkStatus();
}

DimensionHandle OutputDim(InferenceContext* c, DimensionHandle in, DimensionHandle k,
                          int64_t stride, int64_t dil, bool same) {
  if (!c->ValueKnown(in) || (!same && !c->ValueKnown(k))) return c->UnknownDim();
  int64_t out = 0, pad = 0;
  ComputeConvOutputSize(c->Value(in), same ? 1 : c->Value(k), stride, same ? 1 : dil, same, &out,
                        &pad);
  return c->MakeDim(out);
}

absl::Status ForwardShape(InferenceContext* c) {
  GroupedConvAttrs a;
  TF_RETURN_IF_ERROR(GetShapeAttrs(c, &a));
  ShapeHandle input, filter;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &input));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &filter));
  TF_RETURN_IF_ERROR(CheckKnownDims(c, a, input, filter));
  c->set_output(0, c->MakeShape({c->Dim(input, 0),
                                 OutputDim(c, c->Dim(input, 1), c->Dim(filter, 0), a.stride_h,
                                           a.dil_h, a.same),
                                 OutputDim(c, c->Dim(input, 2), c->Dim(filter, 1), a.stride_w,
                                           a.dil_w, a.same),
                                 c->Dim(filter, 3)}));
  return absl::OkStatus();
}

absl::Status BackpropInputShape(InferenceContext* c) {
  GroupedConvAttrs a;
  TF_RETURN_IF_ERROR(GetShapeAttrs(c, &a));
  ShapeHandle sizes, input, filter, dy;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 1, &sizes));
  TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(0, &input));
  TF_RETURN_IF_ERROR(c->WithRank(input, 4, &input));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &filter));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 4, &dy));
  TF_RETURN_IF_ERROR(CheckKnownDims(c, a, input, filter));
  c->set_output(0, input);
  return absl::OkStatus();
}

absl::Status BackpropFilterShape(InferenceContext* c) {
  GroupedConvAttrs a;
  TF_RETURN_IF_ERROR(GetShapeAttrs(c, &a));
  ShapeHandle sizes, input, filter, dy;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &input));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &sizes));
  TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(1, &filter));
  TF_RETURN_IF_ERROR(c->WithRank(filter, 4, &filter));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 4, &dy));
  TF_RETURN_IF_ERROR(CheckKnownDims(c, a, input, filter));
  c->set_output(0, filter);
  return absl::OkStatus();
}

}  // namespace

#define KCNN_CONV_ATTRS                        \
  Attr("T: {float, double}")                   \
      .Attr("strides: list(int)")              \
      .Attr("padding: {'SAME', 'VALID'}")      \
      .Attr("dilations: list(int) = [1, 1]")   \
      .Attr("groups: int >= 1")                \
      .Attr("shuffle_groups: int >= 1 = 1")

REGISTER_OP("KerasCnns>GroupedDepthwiseConv2D")
    .Input("input: T")
    .Input("filter: T")
    .Output("output: T")
    .KCNN_CONV_ATTRS
    .SetShapeFn(ForwardShape)
    .Doc(R"doc(
Grouped / depthwise 2-D convolution of an NHWC input with a fused channel shuffle:
output = conv2d(shuffle(input, shuffle_groups), filter, strides, padding, dilations) with
`groups` channel groups. filter is [KH, KW, C / groups, C_out], C_out divisible by groups.
strides and dilations are [height, width].
)doc");

REGISTER_OP("KerasCnns>GroupedDepthwiseConv2DBackpropInput")
    .Input("input_sizes: Tshape")
    .Input("filter: T")
    .Input("out_backprop: T")
    .Output("output: T")
    .KCNN_CONV_ATTRS
    .Attr("Tshape: {int32, int64} = DT_INT32")
    .SetShapeFn(BackpropInputShape)
    .Doc(R"doc(
Gradient of KerasCnns>GroupedDepthwiseConv2D with respect to its (unshuffled) input.
)doc");

REGISTER_OP("KerasCnns>GroupedDepthwiseConv2DBackpropFilter")
    .Input("input: T")
    .Input("filter_sizes: Tshape")
    .Input("out_backprop: T")
    .Output("output: T")
    .KCNN_CONV_ATTRS
    .Attr("Tshape: {int32, int64} = DT_INT32")
    .SetShapeFn(BackpropFilterShape)
    .Doc(R"doc(
Gradient of KerasCnns>GroupedDepthwiseConv2D with respect to its filter.
)doc");

#undef KCNN_CONV_ATTRS

using CPUDevice = Eigen::ThreadPoolDevice;

namespace {

// ParallelRunner over the op's intra-op thread pool. The calling thread and every pool thread
// take one unit at a time from a shared counter (NumThreads() + 1 workers; the work is split
// for NumThreads()). An earlier version woke only NumThreads() - 1 pool threads, so that exactly
// NumThreads() threads worked (grouped 1x1 forward [32, 28, 28, 240], 3 groups, alone: 0.95-0.96
// -> 0.98-0.99 of tf.nn.conv2d), but it left a pool thread parked, and the ops after each call
// ran 1.5-2x slower while their work waited for it to wake (a chain of 3x3 16 -> 16
// convolutions with Mul / Add / Relu between them, oneDNN off, 2-core Zen 3: the chain 1.12-1.17x
// slower than on Conv2D; waking every pool thread: 0.97-0.98x). The caller waits only for
// helpers that took a unit: one that starts after all units are taken returns at once without
// touching `fn`, so a late helper (pool busy with other ops) never delays the op.
class TfCpuRunner final : public cpu::ParallelRunner {
 public:
  explicit TfCpuRunner(tensorflow::OpKernelContext* ctx)
      : pool_(ctx->device()->tensorflow_cpu_worker_threads()->workers) {}
  int num_workers() const override { return std::max(1, pool_->NumThreads()) + 1; }
  int concurrency() const override { return std::max(1, pool_->NumThreads()); }
  void For(int64_t total, const std::function<void(int64_t, int64_t, int)>& fn) const override {
    if (total <= 0) return;
    const int helpers = static_cast<int>(std::min<int64_t>(total - 1, pool_->NumThreads()));
    if (helpers <= 0) {
      fn(0, total, 0);
      return;
    }
    auto state = std::make_shared<SharedFor>(total, &fn);
    for (int w = 1; w <= helpers; ++w) {
      pool_->Schedule([state, w] {
        {
          std::lock_guard<std::mutex> lock(state->mu);
          if (state->next.load() >= state->total) return;  // nothing left; fn may be gone
          ++state->active;
        }
        state->Work(w);
        std::lock_guard<std::mutex> lock(state->mu);
        if (--state->active == 0) state->idle.notify_all();
      });
    }
    state->Work(0);
    std::unique_lock<std::mutex> lock(state->mu);
    state->idle.wait(lock, [&] { return state->active == 0; });
  }

 private:
  struct SharedFor {
    SharedFor(int64_t n, const std::function<void(int64_t, int64_t, int)>* f) : total(n), fn(f) {}
    void Work(int worker) {
      for (int64_t u = next.fetch_add(1); u < total; u = next.fetch_add(1)) (*fn)(u, u + 1, worker);
    }
    const int64_t total;
    const std::function<void(int64_t, int64_t, int)>* const fn;  // valid while active > 0
    std::atomic<int64_t> next{0};
    std::mutex mu;
    std::condition_variable idle;
    int active = 0;
  };
  tensorflow::thread::ThreadPool* pool_;
};

}  // namespace

template <typename T>
struct GroupedConvLauncher<CPUDevice, T> {
  static absl::Status Forward(tensorflow::OpKernelContext* ctx, const GroupedConvParams& p,
                              const T* x, const T* filter, T* y) {
    cpu::GroupedConvForward<T>(p, x, filter, y, TfCpuRunner(ctx));
    return absl::OkStatus();
  }
  static absl::Status BackpropInput(tensorflow::OpKernelContext* ctx, const GroupedConvParams& p,
                                    const T* dy, const T* filter, T* dx) {
    cpu::GroupedConvBackpropInput<T>(p, dy, filter, dx, TfCpuRunner(ctx));
    return absl::OkStatus();
  }
  static absl::Status BackpropFilter(tensorflow::OpKernelContext* ctx,
                                     const GroupedConvParams& p, const T* x, const T* dy,
                                     T* dfilter) {
    cpu::GroupedConvBackpropFilter<T>(p, x, dy, dfilter, TfCpuRunner(ctx));
    return absl::OkStatus();
  }
};

#define KCNN_REGISTER_CPU(T)                                                          \
  REGISTER_KERNEL_BUILDER(Name("KerasCnns>GroupedDepthwiseConv2D")                    \
                              .Device(tensorflow::DEVICE_CPU)                         \
                              .TypeConstraint<T>("T"),                                \
                          GroupedDepthwiseConv2DOp<CPUDevice, T>);                    \
  REGISTER_KERNEL_BUILDER(Name("KerasCnns>GroupedDepthwiseConv2DBackpropInput")       \
                              .Device(tensorflow::DEVICE_CPU)                         \
                              .TypeConstraint<T>("T"),                                \
                          GroupedDepthwiseConv2DBackpropInputOp<CPUDevice, T>);       \
  REGISTER_KERNEL_BUILDER(Name("KerasCnns>GroupedDepthwiseConv2DBackpropFilter")      \
                              .Device(tensorflow::DEVICE_CPU)                         \
                              .TypeConstraint<T>("T"),                                \
                          GroupedDepthwiseConv2DBackpropFilterOp<CPUDevice, T>);

KCNN_REGISTER_CPU(float)
KCNN_REGISTER_CPU(double)

#undef KCNN_REGISTER_CPU

}  // namespace keras_cnns
