// CUDA kernels of grouped depthwise convolution with a fused channel shuffle.
//
// Framework-free (CUDA runtime only): used by the TensorFlow GPU glue (grouped_conv_ops.cu.cc)
// and by the stand-alone check harness (gpu_check/). Tensors are NHWC, the filter
// [KH, KW, C / groups, C_out]; see grouped_conv_params.h for the exact semantics.
//
// The channel shuffle is pure index arithmetic: a thread walking the shuffled channels of its
// group keeps (j % g, j / g) incrementally, so no division sits in the inner loop and no
// shuffled copy of the input is ever materialised.
//
//  * grouped (C / groups > 1), all three ops: shared-memory tiled GEMMs per group with an
//    implicit im2col (grouped_conv_cuda_tiles.h, which tests/cuda_tiles_selftest.cc checks on
//    the CPU); the filter gradient splits its pixel reduction over blocks that add their tiles
//    atomically into the zeroed gradient.
//  * forward, depthwise (C / groups == 1, KW in {1, 3, 5, 7}): one thread per channel and strip of
//    4 output columns with the kernel row in registers; otherwise (and as the fallback when a
//    tiled grid would be too large) one thread per output element (channel fastest: coalesced
//    writes and filter reads).
//  * backprop input, depthwise: stride-1 multiplier-1 runs the depthwise forward kernel over dy
//    (flipped filter); otherwise one thread per input-gradient element in the ORIGINAL channel
//    order (the inverse shuffle applied to the thread's channel), gather form, no atomics.
//  * backprop filter, depthwise: threads over (filter element, chunk of output pixels); each
//    thread reduces its chunk in registers and adds it to the zeroed gradient with one atomicAdd.

#ifndef KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CUDA_CUH_
#define KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CUDA_CUH_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "grouped_conv_cuda_tiles.h"
#include "grouped_conv_params.h"

namespace keras_cnns {
namespace cuda {

// Whether every index of the problem fits in int32.
inline bool FitsInt32(const GroupedConvParams& p) {
  const int64_t lim = std::numeric_limits<int32_t>::max() / 2;
  return p.input_size() < lim && p.output_size() < lim && p.filter_size() < lim &&
         p.batch * p.out_h * p.out_w < lim;
}

template <typename T, typename Idx>
__global__ void GroupedConvForwardKernel(KernelParams<Idx> p, const T* __restrict__ x,
                                         const T* __restrict__ f, T* __restrict__ y, Idx total) {
  for (Idx i = static_cast<Idx>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<Idx>(blockDim.x) * gridDim.x) {
    const Idx o = i % p.cout;
    Idx t = i / p.cout;
    const Idx ow = t % p.ow;
    t /= p.ow;
    const Idx oh = t % p.oh;
    const Idx n = t / p.oh;
    const Idx j0 = (o / p.opg) * p.cpg;  // first shuffled channel of the group
    const Idx r0 = j0 % p.sg, q0 = j0 / p.sg;
    const Idx ih0 = oh * p.sh - p.pt, iw0 = ow * p.sw - p.pl;
    T acc = T(0);
    for (Idx kh = 0; kh < p.kh; ++kh) {
      const Idx ih = ih0 + kh * p.dh;
      if (ih < 0 || ih >= p.h) continue;
      for (Idx kw = 0; kw < p.kw; ++kw) {
        const Idx iw = iw0 + kw * p.dw;
        if (iw < 0 || iw >= p.w) continue;
        const T* xp = x + ((n * p.h + ih) * p.w + iw) * p.c;
        const T* fp = f + (kh * p.kw + kw) * p.cpg * p.cout + o;
        Idx r = r0, q = q0;  // shuffled channel j = q * sg + r reads original r * cs + q
        for (Idx ci = 0; ci < p.cpg; ++ci) {
          acc += xp[r * p.cs + q] * fp[ci * p.cout];
          if (++r == p.sg) {
            r = 0;
            ++q;
          }
        }
      }
    }
    y[i] = acc;
  }
}

// Depthwise forward (C / groups == 1): thread = one output channel x a strip of kStrip output
// columns of one output row. blockIdx.x covers channels (no division by C_out per element),
// blockIdx.y the (n, oh, strip) triples. The strip shares the input row segment it reads, so a
// thread loads each input value once per kernel row instead of once per tap.
constexpr int kDepthwiseStrip = 4;

//
// kFlip: the stride-1 input gradient of a multiplier-1 depthwise convolution, run as this forward
// over dy (p holds the swapped geometry: input = dy, output = dx, complementary padding): the
// filter is read spatially flipped, and output channel c (original order) reads dy channel
// j = ShuffleDestination(c) with filter channel j.
template <typename T, typename Idx, int KW, bool kFlip>
__global__ void DepthwiseForwardKernel(KernelParams<Idx> p, const T* __restrict__ x,
                                       const T* __restrict__ f, T* __restrict__ y, Idx strips_w,
                                       Idx rows_total) {
  const Idx o = static_cast<Idx>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= p.cout) return;
  Idx src, fch;
  if (kFlip) {
    src = (o % p.cs) * p.sg + o / p.cs;
    fch = src;
  } else {
    const Idx j = o / p.opg;  // shuffled input channel (cpg == 1)
    src = tiles::ShuffleSource(p, j);
    fch = o;
  }
  for (Idx r = blockIdx.y; r < rows_total; r += gridDim.y) {
    const Idx strip = r % strips_w;
    const Idx t = r / strips_w;
    const Idx oh = t % p.oh, n = t / p.oh;
    const Idx ow0 = strip * kDepthwiseStrip;
    T acc[kDepthwiseStrip];
#pragma unroll
    for (int s = 0; s < kDepthwiseStrip; ++s) acc[s] = T(0);
    for (Idx kh = 0; kh < p.kh; ++kh) {
      const Idx ih = oh * p.sh - p.pt + kh * p.dh;
      if (ih < 0 || ih >= p.h) continue;
      const T* xrow = x + ((n * p.h + ih) * p.w) * p.c + src;
      const T* frow = f + (kFlip ? p.kh - 1 - kh : kh) * KW * p.cout + fch;
      T fk[KW];
#pragma unroll
      for (int kw = 0; kw < KW; ++kw) fk[kw] = frow[(kFlip ? KW - 1 - kw : kw) * p.cout];
#pragma unroll
      for (int s = 0; s < kDepthwiseStrip; ++s) {
        const Idx iw0 = (ow0 + s) * p.sw - p.pl;
#pragma unroll
        for (int kw = 0; kw < KW; ++kw) {
          const Idx iw = iw0 + kw * p.dw;
          if (iw >= 0 && iw < p.w) acc[s] += xrow[iw * p.c] * fk[kw];
        }
      }
    }
    T* yp = y + ((n * p.oh + oh) * p.ow + ow0) * p.cout + o;
#pragma unroll
    for (int s = 0; s < kDepthwiseStrip; ++s) {
      if (ow0 + s < p.ow) yp[s * p.cout] = acc[s];
    }
  }
}

template <typename T, typename Idx>
__global__ void GroupedConvBackpropInputKernel(KernelParams<Idx> p, const T* __restrict__ dy,
                                               const T* __restrict__ f, T* __restrict__ dx,
                                               Idx total) {
  for (Idx i = static_cast<Idx>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<Idx>(blockDim.x) * gridDim.x) {
    const Idx c = i % p.c;  // original channel
    Idx t = i / p.c;
    const Idx iw = t % p.w;
    t /= p.w;
    const Idx ih = t % p.h;
    const Idx n = t / p.h;
    const Idx j = (c % p.cs) * p.sg + c / p.cs;  // its shuffled position
    const Idx g = j / p.cpg, ci = j % p.cpg;
    T acc = T(0);
    for (Idx kh = 0; kh < p.kh; ++kh) {
      const Idx th = ih + p.pt - kh * p.dh;
      if (th < 0 || th % p.sh != 0) continue;
      const Idx oh = th / p.sh;
      if (oh >= p.oh) continue;
      for (Idx kw = 0; kw < p.kw; ++kw) {
        const Idx tw = iw + p.pl - kw * p.dw;
        if (tw < 0 || tw % p.sw != 0) continue;
        const Idx ow = tw / p.sw;
        if (ow >= p.ow) continue;
        const T* dyp = dy + ((n * p.oh + oh) * p.ow + ow) * p.cout + g * p.opg;
        const T* fp = f + ((kh * p.kw + kw) * p.cpg + ci) * p.cout + g * p.opg;
        for (Idx o = 0; o < p.opg; ++o) acc += dyp[o] * fp[o];
      }
    }
    dx[i] = acc;
  }
}

template <typename T, typename Idx>
__global__ void GroupedConvBackpropFilterKernel(KernelParams<Idx> p, const T* __restrict__ x,
                                                const T* __restrict__ dy, T* __restrict__ df,
                                                Idx filter_total, Idx pixels, Idx chunk) {
  const Idx fi = static_cast<Idx>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (fi >= filter_total) return;
  const Idx p_begin = static_cast<Idx>(blockIdx.y) * chunk;
  if (p_begin >= pixels) return;
  const Idx p_end = p_begin + chunk < pixels ? p_begin + chunk : pixels;
  const Idx o = fi % p.cout;
  Idx t = fi / p.cout;
  const Idx ci = t % p.cpg;
  t /= p.cpg;
  const Idx kw = t % p.kw;
  const Idx kh = t / p.kw;
  const Idx j = (o / p.opg) * p.cpg + ci;
  const Idx src = tiles::ShuffleSource(p, j);
  Idx ow = p_begin % p.ow;
  Idx rest = p_begin / p.ow;
  Idx oh = rest % p.oh;
  Idx n = rest / p.oh;
  const Idx kh_off = kh * p.dh - p.pt, kw_off = kw * p.dw - p.pl;
  T acc = T(0);
  for (Idx q = p_begin; q < p_end; ++q) {
    const Idx ih = oh * p.sh + kh_off, iw = ow * p.sw + kw_off;
    if (ih >= 0 && ih < p.h && iw >= 0 && iw < p.w) {
      acc += x[((n * p.h + ih) * p.w + iw) * p.c + src] * dy[q * p.cout + o];
    }
    if (++ow == p.ow) {
      ow = 0;
      if (++oh == p.oh) {
        oh = 0;
        ++n;
      }
    }
  }
  atomicAdd(df + fi, acc);
}

// One block of a tiled GEMM (see grouped_conv_cuda_tiles.h): op's group is the block's.
template <class Shape, class Op, typename T = typename Op::Value, typename Idx = typename Op::Index>
__global__ void __launch_bounds__(Shape::kThreads)
    TiledGemmKernel(Op op, Idx n_tiles, Idx k_chunk) {
  __shared__ T as[Shape::kASize];
  __shared__ T bs[Shape::kBSize];
  const tiles::BlockWork<Shape, Idx> work(static_cast<Idx>(blockIdx.x),
                                          static_cast<Idx>(blockIdx.y),
                                          static_cast<Idx>(blockIdx.z), n_tiles, k_chunk, op.K());
  op.g = work.g;
  const int tid = static_cast<int>(threadIdx.x);
  T acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
  }
  for (Idx k0 = work.k_begin; k0 < work.k_end; k0 += Shape::kBK) {
    tiles::LoadSlice<Shape>(op, tid, work.m0, work.n0, k0, work.k_end, as, bs);
    __syncthreads();
    tiles::MultiplySlice<Shape>(tid, as, bs, acc);
    __syncthreads();
  }
  tiles::StoreTile<Shape>(op, tid, work.m0, work.n0, acc);
}

namespace detail {

constexpr int kThreads = 256;

// Launches the tiled GEMM of `op` for every group; `split` spreads the reduction over blocks
// (atomic stores). Returns false (nothing launched) when the grid would exceed CUDA's limits.
template <class Shape, class Op>
bool LaunchTiled(const Op& op, int64_t groups, bool split, cudaStream_t s, cudaError_t* err) {
  using Idx = typename Op::Index;
  const tiles::GridPlan<Shape> plan(op.M(), op.N(), op.K(), groups, split);
  if (!plan.fits) return false;
  *err = cudaSuccess;
  if (plan.empty) return true;
  const dim3 grid(static_cast<unsigned int>(plan.m_tiles),
                  static_cast<unsigned int>(groups * plan.n_tiles),
                  static_cast<unsigned int>(plan.splits));
  TiledGemmKernel<Shape, Op><<<grid, Shape::kThreads, 0, s>>>(
      op, static_cast<Idx>(plan.n_tiles), static_cast<Idx>(plan.k_chunk));
  *err = cudaGetLastError();
  return true;
}

// LaunchTiled with 64 or 32 output columns per block, whichever wastes fewer.
template <class Op>
bool LaunchTiledAnyWidth(const Op& op, int64_t groups, bool split, cudaStream_t s,
                         cudaError_t* err) {
  if (tiles::ColumnsPerBlock(op.N()) == 32) {
    return LaunchTiled<tiles::Tile<64, 32, 16>>(op, groups, split, s, err);
  }
  return LaunchTiled<tiles::Tile<64, 64, 16>>(op, groups, split, s, err);
}

inline unsigned int GridFor(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 1 << 20));
}

template <typename T, typename Idx, int KW, bool kFlip = false>
cudaError_t DepthwiseForward(const GroupedConvParams& p, const T* x, const T* f, T* y,
                             cudaStream_t s) {
  const int64_t strips_w = (p.out_w + kDepthwiseStrip - 1) / kDepthwiseStrip;
  const int64_t rows = p.batch * p.out_h * strips_w;
  const int threads = static_cast<int>(std::min<int64_t>(256, ((p.out_c + 31) / 32) * 32));
  const dim3 grid(static_cast<unsigned int>((p.out_c + threads - 1) / threads),
                  static_cast<unsigned int>(std::min<int64_t>(rows, 65535)));
  DepthwiseForwardKernel<T, Idx, KW, kFlip><<<grid, threads, 0, s>>>(
      ToKernelParams<Idx>(p), x, f, y, static_cast<Idx>(strips_w), static_cast<Idx>(rows));
  return cudaGetLastError();
}

template <typename T, typename Idx>
cudaError_t Forward(const GroupedConvParams& p, const T* x, const T* f, T* y, cudaStream_t s) {
  const int64_t total = p.output_size();
  if (total == 0) return cudaSuccess;
  if (p.in_per_group() == 1) {  // depthwise: the strip kernel, specialised on common widths
    switch (p.k_w) {
      case 1: return DepthwiseForward<T, Idx, 1>(p, x, f, y, s);
      case 3: return DepthwiseForward<T, Idx, 3>(p, x, f, y, s);
      case 5: return DepthwiseForward<T, Idx, 5>(p, x, f, y, s);
      case 7: return DepthwiseForward<T, Idx, 7>(p, x, f, y, s);
      default: break;
    }
  } else {
    const tiles::ForwardOp<T, Idx> op{ToKernelParams<Idx>(p), x, f, y, 0};
    cudaError_t err;
    if (LaunchTiledAnyWidth(op, p.groups, false, s, &err)) return err;
  }
  GroupedConvForwardKernel<T, Idx><<<GridFor(total), kThreads, 0, s>>>(
      ToKernelParams<Idx>(p), x, f, y, static_cast<Idx>(total));
  return cudaGetLastError();
}

template <typename T, typename Idx>
cudaError_t BackpropInput(const GroupedConvParams& p, const T* dy, const T* f, T* dx,
                          cudaStream_t s) {
  const int64_t total = p.input_size();
  if (total == 0) return cudaSuccess;
  if (p.in_per_group() == 1 && p.out_per_group() == 1 && p.stride_h == 1 && p.stride_w == 1 &&
      p.output_size() > 0) {
    // Depthwise, multiplier 1, stride 1: a flipped-filter forward pass over dy (swapped geometry).
    const GroupedConvParams q = InputGradientAsForward(p);
    switch (p.k_w) {
      case 1: return DepthwiseForward<T, Idx, 1, true>(q, dy, f, dx, s);
      case 3: return DepthwiseForward<T, Idx, 3, true>(q, dy, f, dx, s);
      case 5: return DepthwiseForward<T, Idx, 5, true>(q, dy, f, dx, s);
      case 7: return DepthwiseForward<T, Idx, 7, true>(q, dy, f, dx, s);
      default: break;
    }
  }
  if (p.in_per_group() > 1) {
    const tiles::BackpropInputOp<T, Idx> op{ToKernelParams<Idx>(p), dy, f, dx, 0};
    cudaError_t err;
    if (LaunchTiledAnyWidth(op, p.groups, false, s, &err)) return err;
  }
  GroupedConvBackpropInputKernel<T, Idx><<<GridFor(total), kThreads, 0, s>>>(
      ToKernelParams<Idx>(p), dy, f, dx, static_cast<Idx>(total));
  return cudaGetLastError();
}

template <typename T, typename Idx>
cudaError_t BackpropFilter(const GroupedConvParams& p, const T* x, const T* dy, T* df,
                           cudaStream_t s) {
  const int64_t ftotal = p.filter_size();
  cudaError_t err = cudaMemsetAsync(df, 0, sizeof(T) * ftotal, s);
  if (err != cudaSuccess) return err;
  const int64_t pixels = p.batch * p.out_h * p.out_w;
  if (pixels == 0 || ftotal == 0) return cudaSuccess;
  if (p.in_per_group() > 1) {
    const tiles::BackpropFilterOp<T, Idx> op{ToKernelParams<Idx>(p), x, dy, df, 0};
    if (LaunchTiledAnyWidth(op, p.groups, true, s, &err)) return err;
  }
  // About 2M threads in all, at most 65535 pixel chunks of at least 16 pixels.
  int64_t chunks = std::max<int64_t>(1, (int64_t{1} << 21) / ftotal);
  chunks = std::min<int64_t>({chunks, 65535, (pixels + 15) / 16});
  chunks = std::max<int64_t>(chunks, 1);
  const int64_t chunk = (pixels + chunks - 1) / chunks;
  chunks = (pixels + chunk - 1) / chunk;
  const dim3 grid(static_cast<unsigned int>((ftotal + kThreads - 1) / kThreads),
                  static_cast<unsigned int>(chunks));
  GroupedConvBackpropFilterKernel<T, Idx><<<grid, kThreads, 0, s>>>(
      ToKernelParams<Idx>(p), x, dy, df, static_cast<Idx>(ftotal), static_cast<Idx>(pixels),
      static_cast<Idx>(chunk));
  return cudaGetLastError();
}

}  // namespace detail

// y[N, OH, OW, C_out] = grouped conv of shuffle(x). Launches on `stream`; returns the launch error.
template <typename T>
cudaError_t LaunchGroupedConvForward(const GroupedConvParams& p, const T* x, const T* filter,
                                     T* y, cudaStream_t stream) {
  return FitsInt32(p) ? detail::Forward<T, int32_t>(p, x, filter, y, stream)
                      : detail::Forward<T, int64_t>(p, x, filter, y, stream);
}

// dx[N, H, W, C] (w.r.t. the original, unshuffled x) from dy[N, OH, OW, C_out].
template <typename T>
cudaError_t LaunchGroupedConvBackpropInput(const GroupedConvParams& p, const T* dy,
                                           const T* filter, T* dx, cudaStream_t stream) {
  return FitsInt32(p) ? detail::BackpropInput<T, int32_t>(p, dy, filter, dx, stream)
                      : detail::BackpropInput<T, int64_t>(p, dy, filter, dx, stream);
}

// dfilter[KH, KW, C / groups, C_out] from x and dy (overwrites dfilter).
template <typename T>
cudaError_t LaunchGroupedConvBackpropFilter(const GroupedConvParams& p, const T* x, const T* dy,
                                            T* dfilter, cudaStream_t stream) {
  return FitsInt32(p) ? detail::BackpropFilter<T, int32_t>(p, x, dy, dfilter, stream)
                      : detail::BackpropFilter<T, int64_t>(p, x, dy, dfilter, stream);
}

}  // namespace cuda
}  // namespace keras_cnns

#endif  // KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CUDA_CUH_
