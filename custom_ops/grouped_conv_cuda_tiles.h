// Shared-memory tiled GEMM formulation of the grouped (C / groups > 1) convolution kernels, for
// the CUDA kernels in grouped_conv_cuda.cuh.
//
// Framework-free and not CUDA-specific: the per-thread steps of a block are plain functions of
// (thread index, tile origin), marked host+device, so tests/cuda_tiles_selftest.cc runs exactly
// this code on the CPU by emulating the blocks (every thread's load step, the barrier, every
// thread's multiply step, ...) against a naive reference, on machines without a GPU.
//
// Each of the three ops is one GEMM per group with an implicit im2col (the channel shuffle, the
// padding, strides and dilations are index arithmetic in the operand loaders):
//  * forward:        y[pixel, o]  = sum over k = (kh, kw, ci) of x(pixel, k) * f[k, o]
//  * backprop input: dx[pixel, ci] = sum over k = (kh, kw, o) of dy(pixel, k) * f[(kh, kw, ci), o]
//                    (gather form: dy at the output pixel that tap (kh, kw) of this input pixel
//                    feeds, or 0), stored through the inverse shuffle;
//  * backprop filter: df[(kh, kw, ci), o] = sum over output pixels of x(pixel, k) * dy[pixel, o],
//                    the pixel (reduction) range split over blocks that add their partial tiles
//                    with atomics into the zeroed gradient.
// A block computes a kBM x kBN tile of one group's output with kBM / 4 x kBN / 4 threads, each
// holding a 4 x 4 register tile, over kBK-deep slices of the reduction staged in shared memory.

#ifndef KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CUDA_TILES_H_
#define KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CUDA_TILES_H_

#include <cstdint>

#include "grouped_conv_params.h"

#if defined(__CUDACC__)
#define KCNN_HD __host__ __device__
#else
#define KCNN_HD
#endif

namespace keras_cnns {
namespace cuda {

// Geometry in the kernel's index type (int32 when every tensor is small enough).
template <typename Idx>
struct KernelParams {
  Idx n, h, w, c, kh, kw, cout, oh, ow, sh, sw, dh, dw, pt, pl, cpg, opg, sg, cs;
};

template <typename Idx>
inline KernelParams<Idx> ToKernelParams(const GroupedConvParams& p) {
  KernelParams<Idx> k;
  k.n = static_cast<Idx>(p.batch);
  k.h = static_cast<Idx>(p.in_h);
  k.w = static_cast<Idx>(p.in_w);
  k.c = static_cast<Idx>(p.in_c);
  k.kh = static_cast<Idx>(p.k_h);
  k.kw = static_cast<Idx>(p.k_w);
  k.cout = static_cast<Idx>(p.out_c);
  k.oh = static_cast<Idx>(p.out_h);
  k.ow = static_cast<Idx>(p.out_w);
  k.sh = static_cast<Idx>(p.stride_h);
  k.sw = static_cast<Idx>(p.stride_w);
  k.dh = static_cast<Idx>(p.dil_h);
  k.dw = static_cast<Idx>(p.dil_w);
  k.pt = static_cast<Idx>(p.pad_top);
  k.pl = static_cast<Idx>(p.pad_left);
  k.cpg = static_cast<Idx>(p.in_per_group());
  k.opg = static_cast<Idx>(p.out_per_group());
  k.sg = static_cast<Idx>(p.shuffle_groups);
  k.cs = static_cast<Idx>(p.in_c / p.shuffle_groups);
  return k;
}

namespace tiles {

// Original input channel read by shuffled channel j.
template <typename Idx>
KCNN_HD inline Idx ShuffleSource(const KernelParams<Idx>& p, Idx j) {
  return (j % p.sg) * p.cs + j / p.sg;
}

// The im2col element of group g that the forward pass and the filter gradient share: input x at
// output pixel `pixel` (flat over N, OH, OW) and row `row` = (kh, kw, ci) of the group's filter,
// through the shuffle; 0 in the padding.
template <typename T, typename Idx>
KCNN_HD inline T Im2ColInput(const KernelParams<Idx>& p, const T* x, Idx g, Idx pixel, Idx row) {
  const Idx ow = pixel % p.ow, t = pixel / p.ow, oh = t % p.oh, n = t / p.oh;
  const Idx ci = row % p.cpg, tap = row / p.cpg, kw = tap % p.kw, kh = tap / p.kw;
  const Idx ih = oh * p.sh - p.pt + kh * p.dh, iw = ow * p.sw - p.pl + kw * p.dw;
  if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) return T(0);
  return x[((n * p.h + ih) * p.w + iw) * p.c + ShuffleSource(p, g * p.cpg + ci)];
}

// Operands of the forward GEMM of group g: M = output pixels, N = opg, K = KH * KW * cpg.
template <typename T, typename Idx>
struct ForwardOp {
  using Value = T;
  using Index = Idx;
  static constexpr bool kAMajorM = false;  // A's contiguous index is k (input channels)
  static constexpr bool kBMajorK = false;  // B's contiguous index is n (output channels)
  static constexpr bool kAtomicStore = false;
  KernelParams<Idx> p;
  const T* x;
  const T* f;
  T* y;
  Idx g;
  KCNN_HD Idx M() const { return p.n * p.oh * p.ow; }
  KCNN_HD Idx N() const { return p.opg; }
  KCNN_HD Idx K() const { return p.kh * p.kw * p.cpg; }
  KCNN_HD T A(Idx m, Idx k) const { return Im2ColInput(p, x, g, m, k); }
  KCNN_HD T B(Idx k, Idx nn) const { return f[k * p.cout + g * p.opg + nn]; }
  KCNN_HD void Store(Idx m, Idx nn, T v) const { y[m * p.cout + g * p.opg + nn] = v; }
};

// Backprop input of group g: M = input pixels, N = cpg, K = KH * KW * opg.
template <typename T, typename Idx>
struct BackpropInputOp {
  using Value = T;
  using Index = Idx;
  static constexpr bool kAMajorM = false;  // k = (tap, o): o contiguous in dy
  static constexpr bool kBMajorK = true;   // B(k, ci) = f[(tap, ci), o]: o (in k) contiguous
  static constexpr bool kAtomicStore = false;
  KernelParams<Idx> p;
  const T* dy;
  const T* f;
  T* dx;
  Idx g;
  KCNN_HD Idx M() const { return p.n * p.h * p.w; }
  KCNN_HD Idx N() const { return p.cpg; }
  KCNN_HD Idx K() const { return p.kh * p.kw * p.opg; }
  KCNN_HD T A(Idx m, Idx k) const {
    const Idx iw = m % p.w, t = m / p.w, ih = t % p.h, n = t / p.h;
    const Idx o = k % p.opg, tap = k / p.opg, kw = tap % p.kw, kh = tap / p.kw;
    const Idx th = ih + p.pt - kh * p.dh, tw = iw + p.pl - kw * p.dw;
    if (th < 0 || tw < 0 || th % p.sh != 0 || tw % p.sw != 0) return T(0);
    const Idx oh = th / p.sh, ow = tw / p.sw;
    if (oh >= p.oh || ow >= p.ow) return T(0);
    return dy[((n * p.oh + oh) * p.ow + ow) * p.cout + g * p.opg + o];
  }
  KCNN_HD T B(Idx k, Idx ci) const {
    const Idx o = k % p.opg, tap = k / p.opg;
    return f[(tap * p.cpg + ci) * p.cout + g * p.opg + o];
  }
  KCNN_HD void Store(Idx m, Idx ci, T v) const {
    dx[m * p.c + ShuffleSource(p, g * p.cpg + ci)] = v;
  }
};

// Backprop filter of group g: M = KH * KW * cpg, N = opg, K = output pixels (split over blocks).
template <typename T, typename Idx>
struct BackpropFilterOp {
  using Value = T;
  using Index = Idx;
  static constexpr bool kAMajorM = true;   // m = (tap, ci): ci contiguous in x
  static constexpr bool kBMajorK = false;  // dy[pixel, o]: o contiguous
  static constexpr bool kAtomicStore = true;
  KernelParams<Idx> p;
  const T* x;
  const T* dy;
  T* df;
  Idx g;
  KCNN_HD Idx M() const { return p.kh * p.kw * p.cpg; }
  KCNN_HD Idx N() const { return p.opg; }
  KCNN_HD Idx K() const { return p.n * p.oh * p.ow; }
  KCNN_HD T A(Idx m, Idx k) const { return Im2ColInput(p, x, g, k, m); }
  KCNN_HD T B(Idx k, Idx nn) const { return dy[k * p.cout + g * p.opg + nn]; }
  KCNN_HD T* StoreAddress(Idx m, Idx nn) const { return df + m * p.cout + g * p.opg + nn; }
};

// Tile shape: kBM x kBN outputs per block, kBK-deep reduction slices, a 4 x 4 register tile per
// thread. The A slice is stored transposed ([kBK][kBM + 1], padded against bank conflicts).
template <int BM, int BN, int BK>
struct Tile {
  static constexpr int kBM = BM, kBN = BN, kBK = BK;
  static constexpr int kThreads = (BM / 4) * (BN / 4);
  static constexpr int kAStride = BM + 1;
  static constexpr int kASize = BK * kAStride;
  static constexpr int kBSize = BK * BN;
  static_assert(BM % 4 == 0 && BN % 4 == 0, "4 x 4 register tiles");
};

// Thread `tid`'s share of loading the reduction slice [k0, k0 + kBK) (clipped to k_end) of the
// tile at (m0, n0) into shared memory; elements outside the problem are zero.
template <class Shape, class Op, typename T, typename Idx>
KCNN_HD inline void LoadSlice(const Op& op, int tid, Idx m0, Idx n0, Idx k0, Idx k_end, T* as,
                              T* bs) {
  const Idx m_size = op.M(), n_size = op.N();
  for (int e = tid; e < Shape::kBM * Shape::kBK; e += Shape::kThreads) {
    // Consecutive threads walk A's contiguous index (coalesced global reads).
    const int mm = Op::kAMajorM ? e % Shape::kBM : e / Shape::kBK;
    const int kk = Op::kAMajorM ? e / Shape::kBM : e % Shape::kBK;
    const Idx m = m0 + mm, k = k0 + kk;
    as[kk * Shape::kAStride + mm] = (m < m_size && k < k_end) ? op.A(m, k) : T(0);
  }
  for (int e = tid; e < Shape::kBK * Shape::kBN; e += Shape::kThreads) {
    const int nn = Op::kBMajorK ? e / Shape::kBK : e % Shape::kBN;
    const int kk = Op::kBMajorK ? e % Shape::kBK : e / Shape::kBN;
    const Idx nidx = n0 + nn, k = k0 + kk;
    bs[kk * Shape::kBN + nn] = (nidx < n_size && k < k_end) ? op.B(k, nidx) : T(0);
  }
}

// Thread `tid` accumulates the slice in shared memory into its 4 x 4 register tile: rows
// ty + i * kBM / 4, columns tx + j * kBN / 4.
template <class Shape, typename T>
KCNN_HD inline void MultiplySlice(int tid, const T* as, const T* bs, T acc[4][4]) {
  const int tx = tid % (Shape::kBN / 4), ty = tid / (Shape::kBN / 4);
  for (int kk = 0; kk < Shape::kBK; ++kk) {
    T a[4], b[4];
#if defined(__CUDACC__)
#pragma unroll
#endif
    for (int i = 0; i < 4; ++i) a[i] = as[kk * Shape::kAStride + ty + i * (Shape::kBM / 4)];
#if defined(__CUDACC__)
#pragma unroll
#endif
    for (int j = 0; j < 4; ++j) b[j] = bs[kk * Shape::kBN + tx + j * (Shape::kBN / 4)];
#if defined(__CUDACC__)
#pragma unroll
#endif
    for (int i = 0; i < 4; ++i) {
#if defined(__CUDACC__)
#pragma unroll
#endif
      for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
  }
}

// Writes thread `tid`'s register tile (atomically added for split reductions).
template <class Shape, class Op, typename T, typename Idx>
KCNN_HD inline void StoreTile(const Op& op, int tid, Idx m0, Idx n0, const T acc[4][4]) {
  const int tx = tid % (Shape::kBN / 4), ty = tid / (Shape::kBN / 4);
  const Idx m_size = op.M(), n_size = op.N();
  for (int i = 0; i < 4; ++i) {
    const Idx m = m0 + ty + i * (Shape::kBM / 4);
    if (m >= m_size) continue;
    for (int j = 0; j < 4; ++j) {
      const Idx nidx = n0 + tx + j * (Shape::kBN / 4);
      if (nidx >= n_size) continue;
      if constexpr (Op::kAtomicStore) {
#if defined(__CUDA_ARCH__)
        atomicAdd(op.StoreAddress(m, nidx), acc[i][j]);
#else
        *op.StoreAddress(m, nidx) += acc[i][j];
#endif
      } else {
        op.Store(m, nidx, acc[i][j]);
      }
    }
  }
}

// The piece of work of block (bx, by, bz): group g, tile origin (m0, n0) and reduction range
// [k_begin, k_end). Grid: x = M tiles, y = groups x N tiles, z = reduction splits of k_chunk.
template <class Shape, typename Idx>
struct BlockWork {
  Idx g, m0, n0, k_begin, k_end;
  KCNN_HD BlockWork(Idx bx, Idx by, Idx bz, Idx n_tiles, Idx k_chunk, Idx k_size) {
    g = by / n_tiles;
    n0 = (by % n_tiles) * Shape::kBN;
    m0 = bx * Shape::kBM;
    k_begin = bz * k_chunk;
    k_end = k_begin + k_chunk < k_size ? k_begin + k_chunk : k_size;
  }
};

// One block's whole computation, for an emulator that runs the block's threads one after the
// other between the barriers (`as`, `bs` stand for the block's shared memory, `acc` for the
// threads' registers). The CUDA kernel is the same sequence with __syncthreads() as barriers.
template <class Shape, class Op, typename T, typename Idx>
inline void EmulateBlock(const Op& op, const BlockWork<Shape, Idx>& work, T* as, T* bs,
                         T (*acc)[4][4]) {
  for (int t = 0; t < Shape::kThreads; ++t)
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) acc[t][i][j] = T(0);
  for (Idx k0 = work.k_begin; k0 < work.k_end; k0 += Shape::kBK) {
    for (int t = 0; t < Shape::kThreads; ++t)
      LoadSlice<Shape>(op, t, work.m0, work.n0, k0, work.k_end, as, bs);
    for (int t = 0; t < Shape::kThreads; ++t) MultiplySlice<Shape>(t, as, bs, acc[t]);
  }
  for (int t = 0; t < Shape::kThreads; ++t) StoreTile<Shape>(op, t, work.m0, work.n0, acc[t]);
}

// Blocks along the reduction for the filter gradient (each adds its partial tile atomically):
// enough to fill the GPU, each reducing at least 256 pixels.
inline int64_t ReductionSplits(int64_t k, int64_t tile_blocks) {
  const int64_t want = (2048 + tile_blocks - 1) / tile_blocks;  // ~2048 blocks in all
  const int64_t most = (k + 255) / 256;
  int64_t s = want < most ? want : most;
  if (s > 65535) s = 65535;
  return s < 1 ? 1 : s;
}

// The grid of a tiled GEMM (M x N per group, reduction K): x = M tiles, y = groups x N tiles,
// z = reduction splits of k_chunk (a multiple of kBK; 1 split unless `split`). `fits` is false
// when CUDA's grid limits would be exceeded (the caller then uses the direct kernels).
template <class Shape>
struct GridPlan {
  int64_t m_tiles = 0, n_tiles = 0, splits = 1, k_chunk = 0;
  bool fits = true, empty = false;
  GridPlan(int64_t m, int64_t n, int64_t k, int64_t groups, bool split) {
    m_tiles = (m + Shape::kBM - 1) / Shape::kBM;
    n_tiles = (n + Shape::kBN - 1) / Shape::kBN;
    k_chunk = k;
    empty = m_tiles == 0 || n_tiles == 0 || k == 0;
    fits = groups * n_tiles <= 65535 && m_tiles <= 0x7fffffff;
    if (split && !empty) {
      splits = ReductionSplits(k, m_tiles * groups * n_tiles);
      k_chunk = ((k + splits - 1) / splits + Shape::kBK - 1) / Shape::kBK * Shape::kBK;
      splits = (k + k_chunk - 1) / k_chunk;
    }
  }
};

// Output columns per block for an N-wide GEMM: 64, or 32 when that wastes fewer columns.
inline int ColumnsPerBlock(int64_t n) {
  const int64_t waste64 = (n + 63) / 64 * 64 - n, waste32 = (n + 31) / 32 * 32 - n;
  return waste32 < waste64 ? 32 : 64;
}

}  // namespace tiles
}  // namespace cuda
}  // namespace keras_cnns

#endif  // KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CUDA_TILES_H_
