// CPU kernels of grouped depthwise convolution with a fused channel shuffle.
//
// Framework-free: plain C++17 functions over raw NHWC pointers plus a GroupedConvParams.
// Parallelism is injected through ParallelRunner, which the TensorFlow glue implements with the
// op's intra-op thread pool and a test harness may implement serially. This header only
// declares; the templates live in grouped_conv_cpu_kernels_impl.h (C++17 and the compiler's
// vector extensions only) and are instantiated for float and double in
// grouped_conv_cpu_kernels.cc.
//
// Strategy
//  * depthwise (C / groups == 1, any channel multiplier): NHWC rows with the channel loop
//    innermost in fixed-size blocks that the compiler vectorises; when the input needs a gather
//    (channel shuffle and/or multiplier > 1) the input rows a task touches are gathered once into
//    a small ring buffer (cache resident, KH rows), never a full-tensor memory pass. AVX2 builds
//    run 3-wide kernels in 8-pixel width tiles (filter row in registers, each input vector
//    feeding every output that reads it, one pass per channel vector) and walk input pixels for
//    the stride-1 3x3 filter gradient; the channel tail is one masked vector (AVX2, AVX-512).
//  * grouped (C / groups > 1): per group a register-tiled GEMM (single threaded per task) on
//    strided maps of the NHWC tensors; 1x1 stride-1 convolutions without shuffle read the
//    tensors in place, everything else goes through a per-task im2col buffer built with the
//    shuffle as index arithmetic. Filters of 256 KiB and more are packed by all workers; a
//    one-group forward with fewer than 64 output pixels per worker (batch-1 inference) splits
//    the output channels across workers instead of the pixels.
//  * backprop to the input is computed in "gather" form per input row (no atomics, no zeroing
//    pass) and scattered through the inverse shuffle; backprop to the filter accumulates into one
//    partial filter per worker, summed at the end; where that partial is over 256 KiB, in
//    chunks of at least 128 pixels (across images), so each pass over it does enough FMAs.

#ifndef KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CPU_KERNELS_H_
#define KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CPU_KERNELS_H_

#include <cstdint>
#include <functional>

#include "grouped_conv_params.h"

namespace keras_cnns {
namespace cpu {

// Runs work on a pool of workers.
class ParallelRunner {
 public:
  virtual ~ParallelRunner() = default;
  // Worker ids passed to For's callback lie in [0, num_workers()).
  virtual int num_workers() const = 0;
  // How many callbacks may run at once (used to size the work split).
  virtual int concurrency() const = 0;
  // Calls fn(begin, end, worker_id) on disjoint ranges that cover [0, total), possibly
  // concurrently; one worker id is never used by two calls at the same time. Returns when done.
  virtual void For(int64_t total, const std::function<void(int64_t, int64_t, int)>& fn) const = 0;
};

// Runs everything on the calling thread.
class SerialRunner final : public ParallelRunner {
 public:
  int num_workers() const override { return 1; }
  int concurrency() const override { return 1; }
  void For(int64_t total, const std::function<void(int64_t, int64_t, int)>& fn) const override {
    if (total > 0) fn(0, total, 0);
  }
};

// y[N, OH, OW, C_out] = grouped convolution of shuffle(x[N, H, W, C]) with filter
// [KH, KW, C / groups, C_out]. Every output element is written.
template <typename T>
void GroupedConvForward(const GroupedConvParams& p, const T* x, const T* filter, T* y,
                        const ParallelRunner& runner);
// dx[N, H, W, C], the gradient w.r.t. the original (unshuffled) input, from dy[N, OH, OW, C_out].
// Every element of dx is written.
template <typename T>
void GroupedConvBackpropInput(const GroupedConvParams& p, const T* dy, const T* filter, T* dx,
                              const ParallelRunner& runner);
// dfilter[KH, KW, C / groups, C_out] from x and dy. Every element of dfilter is written.
template <typename T>
void GroupedConvBackpropFilter(const GroupedConvParams& p, const T* x, const T* dy, T* dfilter,
                               const ParallelRunner& runner);

}  // namespace cpu
}  // namespace keras_cnns

#endif  // KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CPU_KERNELS_H_
