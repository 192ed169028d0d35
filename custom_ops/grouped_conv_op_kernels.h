// TensorFlow OpKernels of KerasCnns>GroupedDepthwiseConv2D{,BackpropInput,BackpropFilter}.
//
// Device-generic glue: validates the tensors (InvalidArgumentError, never a crash), fills a
// GroupedConvParams, allocates the output and calls GroupedConvLauncher<Device, T>, whose CPU
// specialisation lives in grouped_conv_ops.cc and GPU one in grouped_conv_ops.cu.cc. Included by
// both, so it must stay compilable by nvcc.

#ifndef KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_OP_KERNELS_H_
#define KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_OP_KERNELS_H_

#ifndef EIGEN_USE_THREADS
#define EIGEN_USE_THREADS
#endif

#include <string>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

#include "grouped_conv_params.h"

namespace keras_cnns {

// Device-specific launch of the three kernels. Returns an error status instead of crashing.
template <typename Device, typename T>
struct GroupedConvLauncher {
  static absl::Status Forward(tensorflow::OpKernelContext* ctx, const GroupedConvParams& p,
                              const T* x, const T* filter, T* y);
  static absl::Status BackpropInput(tensorflow::OpKernelContext* ctx, const GroupedConvParams& p,
                                    const T* dy, const T* filter, T* dx);
  static absl::Status BackpropFilter(tensorflow::OpKernelContext* ctx,
                                     const GroupedConvParams& p, const T* x, const T* dy,
                                     T* dfilter);
};

// The attributes shared by the three ops.
struct GroupedConvAttrs {
  int64_t stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1, groups = 1, shuffle_groups = 1;
  bool same = true;

  absl::Status Init(tensorflow::OpKernelConstruction* ctx) {
    std::vector<int32_t> strides, dilations;
    std::string padding;
    int64_t groups_attr = 1, shuffle_attr = 1;
    TF_RETURN_IF_ERROR(ctx->GetAttr("strides", &strides));
    TF_RETURN_IF_ERROR(ctx->GetAttr("dilations", &dilations));
    TF_RETURN_IF_ERROR(ctx->GetAttr("padding", &padding));
    TF_RETURN_IF_ERROR(ctx->GetAttr("groups", &groups_attr));
    TF_RETURN_IF_ERROR(ctx->GetAttr("shuffle_groups", &shuffle_attr));
    if (strides.size() != 2 || strides[0] < 1 || strides[1] < 1) {
      return absl::InvalidArgumentError("strides must be a list of 2 integers >= 1");
    }
    if (dilations.size() != 2 || dilations[0] < 1 || dilations[1] < 1) {
      return absl::InvalidArgumentError("dilations must be a list of 2 integers >= 1");
    }
    stride_h = strides[0];
    stride_w = strides[1];
    dil_h = dilations[0];
    dil_w = dilations[1];
    same = padding == "SAME";
    groups = groups_attr;
    shuffle_groups = shuffle_attr;
    return absl::OkStatus();
  }

  // Validates shapes and fills `p` from the input [N, H, W, C] and filter [KH, KW, C/g, C_out].
  absl::Status MakeParams(const tensorflow::TensorShape& input,
                          const tensorflow::TensorShape& filter, GroupedConvParams* p) const {
    if (input.dims() != 4) {
      return absl::InvalidArgumentError("input must be 4-D [N, H, W, C], got shape " +
                                        input.DebugString());
    }
    if (filter.dims() != 4) {
      return absl::InvalidArgumentError("filter must be 4-D [KH, KW, C / groups, C_out], got shape " +
                                        filter.DebugString());
    }
    const std::string err = MakeGroupedConvParams(
        input.dim_size(0), input.dim_size(1), input.dim_size(2), input.dim_size(3),
        filter.dim_size(0), filter.dim_size(1), filter.dim_size(2), filter.dim_size(3), stride_h,
        stride_w, dil_h, dil_w, same, groups, shuffle_groups, p);
    if (!err.empty()) {
      return absl::InvalidArgumentError(err + " (input shape " + input.DebugString() +
                                        ", filter shape " + filter.DebugString() + ")");
    }
    return absl::OkStatus();
  }
};

// Reads a 1-D int32/int64 tensor of 4 sizes into a TensorShape.
inline absl::Status SizesToShape(const tensorflow::Tensor& sizes, const char* what,
                                 tensorflow::TensorShape* shape) {
  if (sizes.dims() != 1 || sizes.NumElements() != 4) {
    return absl::InvalidArgumentError(std::string(what) + " must be a vector of 4 sizes, got shape " +
                                      sizes.shape().DebugString());
  }
  std::vector<int64_t> dims(4);
  for (int i = 0; i < 4; ++i) {
    dims[i] = sizes.dtype() == tensorflow::DT_INT32 ? sizes.vec<int32_t>()(i)
                                                    : sizes.vec<int64_t>()(i);
    if (dims[i] < 0) {
      return absl::InvalidArgumentError(std::string(what) + " must be non-negative");
    }
  }
  return tensorflow::TensorShapeUtils::MakeShape(dims, shape);
}

inline absl::Status CheckOutBackprop(const GroupedConvParams& p,
                                     const tensorflow::TensorShape& dy) {
  const tensorflow::TensorShape expected({p.batch, p.out_h, p.out_w, p.out_c});
  if (dy != expected) {
    return absl::InvalidArgumentError("out_backprop has shape " + dy.DebugString() +
                                      " but the convolution's output has shape " +
                                      expected.DebugString());
  }
  return absl::OkStatus();
}

template <typename Device, typename T>
class GroupedDepthwiseConv2DOp : public tensorflow::OpKernel {
 public:
  explicit GroupedDepthwiseConv2DOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, attrs_.Init(ctx));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& x = ctx->input(0);
    const tensorflow::Tensor& filter = ctx->input(1);
    GroupedConvParams p;
    OP_REQUIRES_OK(ctx, attrs_.MakeParams(x.shape(), filter.shape(), &p));
    tensorflow::Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, tensorflow::TensorShape({p.batch, p.out_h, p.out_w, p.out_c}), &y));
    if (y->NumElements() == 0) return;
    OP_REQUIRES_OK(ctx, (GroupedConvLauncher<Device, T>::Forward(
                            ctx, p, x.flat<T>().data(), filter.flat<T>().data(),
                            y->flat<T>().data())));
  }

 private:
  GroupedConvAttrs attrs_;
};

template <typename Device, typename T>
class GroupedDepthwiseConv2DBackpropInputOp : public tensorflow::OpKernel {
 public:
  explicit GroupedDepthwiseConv2DBackpropInputOp(tensorflow::OpKernelConstruction* ctx)
      : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, attrs_.Init(ctx));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& input_sizes = ctx->input(0);
    const tensorflow::Tensor& filter = ctx->input(1);
    const tensorflow::Tensor& dy = ctx->input(2);
    tensorflow::TensorShape input_shape;
    OP_REQUIRES_OK(ctx, SizesToShape(input_sizes, "input_sizes", &input_shape));
    GroupedConvParams p;
    OP_REQUIRES_OK(ctx, attrs_.MakeParams(input_shape, filter.shape(), &p));
    OP_REQUIRES_OK(ctx, CheckOutBackprop(p, dy.shape()));
    tensorflow::Tensor* dx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, input_shape, &dx));
    if (dx->NumElements() == 0) return;
    OP_REQUIRES_OK(ctx, (GroupedConvLauncher<Device, T>::BackpropInput(
                            ctx, p, dy.flat<T>().data(), filter.flat<T>().data(),
                            dx->flat<T>().data())));
  }

 private:
  GroupedConvAttrs attrs_;
};

template <typename Device, typename T>
class GroupedDepthwiseConv2DBackpropFilterOp : public tensorflow::OpKernel {
 public:
  explicit GroupedDepthwiseConv2DBackpropFilterOp(tensorflow::OpKernelConstruction* ctx)
      : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, attrs_.Init(ctx));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& x = ctx->input(0);
    const tensorflow::Tensor& filter_sizes = ctx->input(1);
    const tensorflow::Tensor& dy = ctx->input(2);
    tensorflow::TensorShape filter_shape;
    OP_REQUIRES_OK(ctx, SizesToShape(filter_sizes, "filter_sizes", &filter_shape));
    GroupedConvParams p;
    OP_REQUIRES_OK(ctx, attrs_.MakeParams(x.shape(), filter_shape, &p));
    OP_REQUIRES_OK(ctx, CheckOutBackprop(p, dy.shape()));
    tensorflow::Tensor* df = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, filter_shape, &df));
    if (df->NumElements() == 0) return;
    OP_REQUIRES_OK(ctx, (GroupedConvLauncher<Device, T>::BackpropFilter(
                            ctx, p, x.flat<T>().data(), dy.flat<T>().data(),
                            df->flat<T>().data())));
  }

 private:
  GroupedConvAttrs attrs_;
};

}  // namespace keras_cnns

#endif  // KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_OP_KERNELS_H_
