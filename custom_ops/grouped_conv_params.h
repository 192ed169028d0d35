// Shape/geometry description of a grouped depthwise convolution with a fused channel shuffle.
//
// Framework-free (no TensorFlow, no Eigen): shared by the CPU kernels, the CUDA kernels, the
// TensorFlow glue and the stand-alone CUDA check harness.
//
// Semantics (NHWC, filter [KH, KW, C / groups, C_out]):
//
//   y = conv2d(shuffle(x), filter, strides, padding, dilations)   with `groups` channel groups,
//
// where shuffle is ShuffleNet's channel shuffle with `shuffle_groups` = g: view C as (g, C / g),
// transpose to (C / g, g), flatten. Shuffled channel j therefore reads original channel
// ShuffleSource(j) = (j % g) * (C / g) + j / g. Output channel o belongs to group o / (C_out /
// groups) and reads the shuffled channels [group * (C / groups), (group + 1) * (C / groups)).

#ifndef KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_PARAMS_H_
#define KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_PARAMS_H_

#include <cstdint>
#include <string>

#if defined(__CUDACC__)
#define KCNN_HOST_DEVICE __host__ __device__
#else
#define KCNN_HOST_DEVICE
#endif

namespace keras_cnns {

struct GroupedConvParams {
  int64_t batch = 0;      // N
  int64_t in_h = 0;       // H
  int64_t in_w = 0;       // W
  int64_t in_c = 0;       // C
  int64_t k_h = 0;        // KH
  int64_t k_w = 0;        // KW
  int64_t out_c = 0;      // C_out
  int64_t out_h = 0;      // OH
  int64_t out_w = 0;      // OW
  int64_t stride_h = 1;
  int64_t stride_w = 1;
  int64_t dil_h = 1;
  int64_t dil_w = 1;
  int64_t pad_top = 0;    // rows of implicit zero padding before the input (TF's SAME rule)
  int64_t pad_left = 0;   // columns of implicit zero padding before the input
  int64_t groups = 1;
  int64_t shuffle_groups = 1;

  KCNN_HOST_DEVICE int64_t in_per_group() const { return in_c / groups; }
  KCNN_HOST_DEVICE int64_t out_per_group() const { return out_c / groups; }
  int64_t input_size() const { return batch * in_h * in_w * in_c; }
  int64_t output_size() const { return batch * out_h * out_w * out_c; }
  int64_t filter_size() const { return k_h * k_w * in_per_group() * out_c; }
};

// Original channel read by shuffled channel `j` (channels C, shuffle groups g; g divides C).
KCNN_HOST_DEVICE inline int64_t ShuffleSource(int64_t j, int64_t channels, int64_t g) {
  return (j % g) * (channels / g) + j / g;
}

// Inverse of ShuffleSource: the shuffled position of original channel `c`.
KCNN_HOST_DEVICE inline int64_t ShuffleDestination(int64_t c, int64_t channels, int64_t g) {
  const int64_t per = channels / g;
  return (c % per) * g + c / per;
}

// For stride 1 the input gradient of a depthwise convolution is a forward pass over dy with the
// spatially flipped filter: these are that pass's geometry (dy is its input, dx its output,
// and the padding is the complement of the forward's). Shared by the CPU and CUDA kernels.
inline GroupedConvParams InputGradientAsForward(const GroupedConvParams& p) {
  GroupedConvParams q = p;
  q.in_h = p.out_h;
  q.in_w = p.out_w;
  q.out_h = p.in_h;
  q.out_w = p.in_w;
  q.pad_top = (p.k_h - 1) * p.dil_h - p.pad_top;
  q.pad_left = (p.k_w - 1) * p.dil_w - p.pad_left;
  return q;
}

// TensorFlow's output size and leading padding for one spatial dimension.
// Returns false (and leaves outputs untouched) for invalid arguments.
inline bool ComputeConvOutputSize(int64_t in, int64_t k, int64_t stride, int64_t dilation,
                                  bool same_padding, int64_t* out, int64_t* pad_before) {
  if (in < 0 || k < 1 || stride < 1 || dilation < 1) return false;
  const int64_t eff_k = (k - 1) * dilation + 1;
  if (same_padding) {
    const int64_t o = (in + stride - 1) / stride;
    int64_t pad_total = (o - 1) * stride + eff_k - in;
    if (pad_total < 0) pad_total = 0;
    *out = o;
    *pad_before = pad_total / 2;
  } else {
    *out = in >= eff_k ? (in - eff_k) / stride + 1 : 0;
    *pad_before = 0;
  }
  return true;
}

// Validates the geometry and fills `p`. Returns an empty string on success, else a message
// suitable for an InvalidArgumentError. `filter_in` is the filter's third dimension.
inline std::string MakeGroupedConvParams(int64_t n, int64_t h, int64_t w, int64_t c, int64_t k_h,
                                         int64_t k_w, int64_t filter_in, int64_t out_c,
                                         int64_t stride_h, int64_t stride_w, int64_t dil_h,
                                         int64_t dil_w, bool same_padding, int64_t groups,
                                         int64_t shuffle_groups, GroupedConvParams* p) {
  auto s = [](int64_t v) { return std::to_string(v); };
  if (n < 0 || h < 0 || w < 0) return "input dimensions must be non-negative";
  if (c < 1) return "input channels must be positive, got " + s(c);
  if (k_h < 1 || k_w < 1) return "filter spatial dimensions must be positive, got " + s(k_h) + "x" + s(k_w);
  if (out_c < 1) return "filter output channels must be positive, got " + s(out_c);
  if (stride_h < 1 || stride_w < 1) return "strides must be >= 1, got [" + s(stride_h) + ", " + s(stride_w) + "]";
  if (dil_h < 1 || dil_w < 1) return "dilations must be >= 1, got [" + s(dil_h) + ", " + s(dil_w) + "]";
  if (groups < 1) return "groups must be >= 1, got " + s(groups);
  if (shuffle_groups < 1) return "shuffle_groups must be >= 1, got " + s(shuffle_groups);
  if (c % groups != 0) return "input channels (" + s(c) + ") must be divisible by groups (" + s(groups) + ")";
  if (filter_in * groups != c)
    return "filter input depth (" + s(filter_in) + ") must equal input channels / groups (" + s(c) + " / " +
           s(groups) + ")";
  if (out_c % groups != 0)
    return "filter output channels (" + s(out_c) + ") must be divisible by groups (" + s(groups) + ")";
  if (c % shuffle_groups != 0)
    return "input channels (" + s(c) + ") must be divisible by shuffle_groups (" + s(shuffle_groups) + ")";
  GroupedConvParams q;
  q.batch = n; q.in_h = h; q.in_w = w; q.in_c = c; q.k_h = k_h; q.k_w = k_w; q.out_c = out_c;
  q.stride_h = stride_h; q.stride_w = stride_w; q.dil_h = dil_h; q.dil_w = dil_w;
  q.groups = groups; q.shuffle_groups = shuffle_groups;
  ComputeConvOutputSize(h, k_h, stride_h, dil_h, same_padding, &q.out_h, &q.pad_top);
  ComputeConvOutputSize(w, k_w, stride_w, dil_w, same_padding, &q.out_w, &q.pad_left);
  *p = q;
  return std::string();
}

}  // namespace keras_cnns

#endif  // KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_PARAMS_H_
