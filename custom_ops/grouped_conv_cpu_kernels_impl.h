// Template implementations of the CPU kernels declared in grouped_conv_cpu_kernels.h.
// Framework-free (C++17 with GCC/Clang vector extensions). See grouped_conv_cpu_kernels.h for the
// strategy.

#ifndef KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CPU_KERNELS_IMPL_H_
#define KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CPU_KERNELS_IMPL_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "grouped_conv_cpu_kernels.h"

namespace keras_cnns {
namespace cpu {

namespace internal {

// Width of the widest vector registers the build flags enable.
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

// Allocator for scratch buffers that the kernels read and write with vector loads and stores
// (packed GEMM weights, im2col and gather buffers, partial sums): 64-byte (cache line) aligned, so
// no vector access straddles two lines. With std::vector's 16-byte alignment every 64-byte load
// of the packed weights was a split load: measured on the 2-core Xeon, grouped 1x1 forward
// [32, 28, 28, 240], 3 groups (C++ harness), 3.1-3.3 ms with 16-byte aligned panels vs 3.0-3.1 ms
// aligned; the shuffled depthwise kernels read their gather ring the same way.
template <typename T>
struct CacheAlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheAlignedAllocator() = default;
  template <typename U>
  CacheAlignedAllocator(const CacheAlignedAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlign); }
  template <typename U>
  bool operator==(const CacheAlignedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const CacheAlignedAllocator<U>&) const { return false; }
};
template <typename T>
using AlignedVector = std::vector<T, CacheAlignedAllocator<T>>;

// One vector register of T (GCC/Clang vector extension), so the same source compiles to
// AVX-512, AVX2 or SSE code depending on the build flags. Accumulators are arrays of these with
// a compile-time length, which the compiler keeps in registers.
template <typename T>
struct Simd {
  typedef T V __attribute__((vector_size(kVectorBytes)));
  static constexpr int kLanes = kVectorBytes / sizeof(T);
  static inline V Load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static inline void Store(T* p, const V& v) { std::memcpy(p, &v, sizeof(V)); }
  static inline V Zero() { return V{}; }
  // All lanes = s: one broadcast (V{} + s would cost an extra add, since 0 + -0 != -0).
  static inline V Splat(T s) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) {
      return reinterpret_cast<V>(_mm512_set1_ps(s));
    } else {
      return reinterpret_cast<V>(_mm512_set1_pd(s));
    }
#elif defined(__AVX__)
    if constexpr (sizeof(T) == 4) {
      return reinterpret_cast<V>(_mm256_set1_ps(s));
    } else {
      return reinterpret_cast<V>(_mm256_set1_pd(s));
    }
#elif defined(__SSE2__)
    if constexpr (sizeof(T) == 4) {
      return reinterpret_cast<V>(_mm_set1_ps(s));
    } else {
      return reinterpret_cast<V>(_mm_set1_pd(s));
    }
#else
    V v = V{};
    for (int i = 0; i < kLanes; ++i) v[i] = s;
    return v;
#endif
  }
  // Non-temporal store (p aligned to the vector size): bypasses the cache and the read for
  // ownership, for outputs too big to be re-read from cache anyway. Needs StreamFence() before
  // other threads read the data.
  static inline void Stream(T* p, const V& v) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) {
      _mm512_stream_ps(p, reinterpret_cast<__m512>(v));
    } else {
      _mm512_stream_pd(p, reinterpret_cast<__m512d>(v));
    }
#elif defined(__AVX__)
    if constexpr (sizeof(T) == 4) {
      _mm256_stream_ps(p, reinterpret_cast<__m256>(v));
    } else {
      _mm256_stream_pd(p, reinterpret_cast<__m256d>(v));
    }
#else
    Store(p, v);
#endif
  }
  // The first n (0 < n <= kLanes) lanes of p; the other lanes read as zero and are not touched.
  static inline V LoadPartial(const T* p, int n) {
#if defined(__AVX512F__)
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    if constexpr (sizeof(T) == 4) {
      return reinterpret_cast<V>(_mm512_maskz_loadu_ps(m, p));
    } else {
      return reinterpret_cast<V>(_mm512_maskz_loadu_pd(static_cast<__mmask8>(m), p));
    }
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4) {
      return reinterpret_cast<V>(_mm256_maskload_ps(p, LaneMask(n)));
    } else {
      return reinterpret_cast<V>(_mm256_maskload_pd(p, LaneMask(n)));
    }
#else
    V v = V{};
    std::memcpy(&v, p, sizeof(T) * n);
    return v;
#endif
  }
  static inline void StorePartial(T* p, const V& v, int n) {
#if defined(__AVX512F__)
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    if constexpr (sizeof(T) == 4) {
      _mm512_mask_storeu_ps(p, m, reinterpret_cast<__m512>(v));
    } else {
      _mm512_mask_storeu_pd(p, static_cast<__mmask8>(m), reinterpret_cast<__m512d>(v));
    }
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4) {
      _mm256_maskstore_ps(p, LaneMask(n), reinterpret_cast<__m256>(v));
    } else {
      _mm256_maskstore_pd(p, LaneMask(n), reinterpret_cast<__m256d>(v));
    }
#else
    std::memcpy(p, &v, sizeof(T) * n);
#endif
  }
#if defined(__AVX2__) && !defined(__AVX512F__)
  // vmaskmov's mask: the sign bit set in the first n lanes of T (an AVX2 integer compare).
  static inline __m256i LaneMask(int n) {
    if constexpr (sizeof(T) == 4) {
      return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    } else {
      return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    }
  }
#endif
};

// Orders this thread's non-temporal stores before what follows (the end of a parallel task).
inline void StreamFence() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_sfence();
#endif
}

// Outputs at least this big use non-temporal stores. Default 1 GiB, i.e. practically never:
// measured on the 2-core Xeon (L3 reported as 480 MiB) with [32, 28, 28, 240] float32 (24 MB),
// non-temporal stores made our depthwise forward 4.0 ms instead of 3.3 ms, and the op that
// consumes the output (or reuses the buffer) slower still, since the data it reads was pushed
// out of a cache that would have held it. The self-test lowers it to cover the code path.
#ifndef KCNN_STREAMING_STORE_BYTES
#define KCNN_STREAMING_STORE_BYTES (int64_t{1} << 30)
#endif

// Whether an output of `elements` values starting at `out`, written as whole vectors at multiples
// of `channels`, should use non-temporal stores: only when it is far bigger than the caches
// (re-reading it would come from memory anyway) and every vector store is aligned.
template <typename T>
inline bool UseStreamingStores(const T* out, int64_t elements, int64_t channels) {
  constexpr int64_t kThresholdBytes = KCNN_STREAMING_STORE_BYTES;
  return elements * static_cast<int64_t>(sizeof(T)) >= kThresholdBytes &&
         reinterpret_cast<uintptr_t>(out) % kVectorBytes == 0 &&
         (channels * static_cast<int64_t>(sizeof(T))) % kVectorBytes == 0;
}

// Most vectors per channel block of the depthwise kernels (8 independent accumulators hide the
// FMA latency).
constexpr int kMaxBlockVectors = 8;

// Calls body(std::integral_constant<int, NV>, c0) over the whole vectors of [0, channels): blocks
// of kMaxBlockVectors vectors, then one block of exactly the remaining whole vectors (never a run
// of single-vector blocks). Returns the first channel not covered (the scalar tail).
template <typename T, typename Body>
inline int64_t ForVectorBlocks(int64_t channels, Body&& body) {
  constexpr int64_t kLanes = Simd<T>::kLanes;
  int64_t c0 = 0;
  for (; c0 + kMaxBlockVectors * kLanes <= channels; c0 += kMaxBlockVectors * kLanes) {
    body(std::integral_constant<int, kMaxBlockVectors>(), c0);
  }
  const int64_t rest = (channels - c0) / kLanes;
  switch (rest) {
    case 7: body(std::integral_constant<int, 7>(), c0); break;
    case 6: body(std::integral_constant<int, 6>(), c0); break;
    case 5: body(std::integral_constant<int, 5>(), c0); break;
    case 4: body(std::integral_constant<int, 4>(), c0); break;
    case 3: body(std::integral_constant<int, 3>(), c0); break;
    case 2: body(std::integral_constant<int, 2>(), c0); break;
    case 1: body(std::integral_constant<int, 1>(), c0); break;
    default: break;
  }
  return c0 + rest * kLanes;
}

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Shuffled channel -> original channel (identity without shuffle).
inline std::vector<int64_t> ShuffleSourceMap(const GroupedConvParams& p) {
  std::vector<int64_t> src(p.in_c);
  for (int64_t j = 0; j < p.in_c; ++j) {
    src[j] = p.shuffle_groups > 1 ? ShuffleSource(j, p.in_c, p.shuffle_groups) : j;
  }
  return src;
}

// Splits `rows` rows of each of `batch` images into blocks; unit u covers image u / blocks,
// rows [ (u % blocks) * rows_per_block, ... ).
struct RowBlocks {
  int64_t rows = 0, rows_per_block = 1, blocks = 0, units = 0;
  RowBlocks(int64_t batch, int64_t rows_, int concurrency) : rows(rows_) {
    if (batch <= 0 || rows <= 0) return;
    const int64_t target_units = 4 * static_cast<int64_t>(std::max(concurrency, 1));
    rows_per_block = std::min(rows, std::max<int64_t>(1, CeilDiv(batch * rows, target_units)));
    blocks = CeilDiv(rows, rows_per_block);
    units = batch * blocks;
  }
  void Range(int64_t unit, int64_t* n, int64_t* r0, int64_t* r1) const {
    *n = unit / blocks;
    *r0 = (unit % blocks) * rows_per_block;
    *r1 = std::min(rows, *r0 + rows_per_block);
  }
};

// Valid kernel taps [lo, hi) along one dimension for an output position whose first tap reads
// input index `start` (may be negative).
inline void ValidTaps(int64_t start, int64_t k, int64_t dil, int64_t in, int64_t* lo, int64_t* hi) {
  int64_t l = 0, h = k;
  if (start < 0) l = CeilDiv(-start, dil);
  const int64_t last = start + (k - 1) * dil;
  if (last >= in) h = start <= in - 1 ? (in - 1 - start) / dil + 1 : 0;
  if (h < l) h = l;
  *lo = l;
  *hi = h;
}

// Channel shuffle of `pixels` consecutive pixels of `c` channels: dst[a * G + b] = src[b * per + a]
// (per = c / G). A compile-time G lets the compiler vectorise the interleave with permutes.
template <typename T, int G>
inline void ShufflePixels(const T* __restrict__ src, T* __restrict__ dst, int64_t pixels,
                          int64_t c) {
  const int64_t per = c / G;
  for (int64_t i = 0; i < pixels; ++i, src += c, dst += c)
    for (int64_t a = 0; a < per; ++a)
      for (int b = 0; b < G; ++b) dst[a * G + b] = src[b * per + a];
}

// Inverse shuffle: dst[b * per + a] = src[a * G + b] (contiguous writes, strided reads: the
// faster order when dst is the big tensor).
template <typename T, int G>
inline void UnshufflePixels(const T* __restrict__ src, T* __restrict__ dst, int64_t pixels,
                            int64_t c) {
  const int64_t per = c / G;
  for (int64_t i = 0; i < pixels; ++i, src += c, dst += c)
    for (int b = 0; b < G; ++b)
      for (int64_t a = 0; a < per; ++a) dst[b * per + a] = src[a * G + b];
}

// ShufflePixels / UnshufflePixels for a runtime group count (specialised for 2, 3, 4, 8).
template <typename T>
void ChannelShuffle(const T* __restrict__ src, T* __restrict__ dst, int64_t pixels, int64_t c,
                    int64_t g, bool inverse) {
  switch (g) {
    case 2: return inverse ? UnshufflePixels<T, 2>(src, dst, pixels, c) : ShufflePixels<T, 2>(src, dst, pixels, c);
    case 3: return inverse ? UnshufflePixels<T, 3>(src, dst, pixels, c) : ShufflePixels<T, 3>(src, dst, pixels, c);
    case 4: return inverse ? UnshufflePixels<T, 4>(src, dst, pixels, c) : ShufflePixels<T, 4>(src, dst, pixels, c);
    case 8: return inverse ? UnshufflePixels<T, 8>(src, dst, pixels, c) : ShufflePixels<T, 8>(src, dst, pixels, c);
    default: break;
  }
  const int64_t per = c / g;
  for (int64_t i = 0; i < pixels; ++i, src += c, dst += c) {
    for (int64_t b = 0; b < g; ++b) {
      for (int64_t a = 0; a < per; ++a) {
        if (inverse) {
          dst[b * per + a] = src[a * g + b];
        } else {
          dst[a * g + b] = src[b * per + a];
        }
      }
    }
  }
}

// How a depthwise kernel's (gathered) input channel o is read from the input tensor.
struct ChannelMap {
  // Pure channel permutation (no multiplier): the shuffle with this many groups (or its inverse).
  int64_t shuffle_groups = 1;
  bool inverse = false;
  // Otherwise (channel multiplier > 1) an explicit map: channel o reads input channel index[o].
  std::vector<int32_t> index;
  bool identity() const { return shuffle_groups == 1 && index.empty(); }
};

// The input map of the depthwise forward / filter gradient: output channel o reads shuffled
// channel o / multiplier.
inline ChannelMap DepthwiseInputMap(const GroupedConvParams& p) {
  ChannelMap map;
  const int64_t mult = p.out_per_group();
  if (mult == 1) {
    map.shuffle_groups = p.shuffle_groups;
    return map;
  }
  const std::vector<int64_t> src = ShuffleSourceMap(p);
  map.index.resize(p.out_c);
  for (int64_t o = 0; o < p.out_c; ++o) map.index[o] = static_cast<int32_t>(src[o / mult]);
  return map;
}

// Whether the depthwise forward uses the width tiles at all: only with AVX2 vectors. Measured
// on the 2-core Zen 4, C++ harness, [N, H, W, C] 3x3 float32 forwards on two threads, the old
// per-pixel path and the tiled one interleaved in one run (medians of 60): AVX2 1.13-1.33x
// faster for strides 1 and 2, 7- to 56-pixel rows and the shuffled input (e.g. [32, 28, 28,
// 240]: 4.96 -> 3.72 ms); AVX-512 0.9-1.05x with one-vector passes and 0.75-0.9x with two-vector
// passes, SSE 0.92-0.96x (a pass there reads a quarter of each cache line), so those keep the
// per-pixel path.
constexpr bool kDepthwiseTiles = kVectorBytes == 32;

// Input rows of one image as seen by a depthwise kernel with `out_c` channels per pixel: either
// the input itself (identity map) or rows gathered through the ChannelMap into a ring buffer of
// (KH - 1) * dil_h + 1 + stride_h rows. The ring holds every row the current output row reads
// plus the rows the next one adds, so the caller can gather those incrementally (GatherAhead)
// while it computes, spreading the memory reads over the compute instead of stalling on a burst.
template <typename T>
class DepthwiseRows {
 public:
  DepthwiseRows(const GroupedConvParams& p, const T* x, const ChannelMap& map)
      : p_(p), x_(x), map_(map), direct_(map.identity()) {
    if (!direct_) {
      ring_rows_ = (p.k_h - 1) * p.dil_h + 1 + p.stride_h;
      ring_.resize(static_cast<size_t>(ring_rows_ * p.in_w * p.out_c));
      slot_row_.assign(static_cast<size_t>(ring_rows_), -1);
    }
  }
  // Channels between consecutive pixels of a returned row.
  int64_t pixel_stride() const { return direct_ ? p_.in_c : p_.out_c; }
  // Whether rows are read in place (identity map) rather than gathered into the ring.
  bool direct() const { return direct_; }
  // Selects the image rows come from (cached rows stay valid while it is unchanged).
  void SetImage(int64_t n) {
    if (n == n_) return;
    n_ = n;
    std::fill(slot_row_.begin(), slot_row_.end(), -1);
    pending_row_ = -1;
  }
  // Gathers slice `part` of `parts` of row `ih` ahead of its use (no-op when in place, out of
  // range or already gathered).
  void GatherAhead(int64_t ih, int64_t part, int64_t parts) {
    // Read in place, the rows are only prefetched, and only for the AVX2 kernels (their
    // channel passes read the rows strided; the AVX-512 per-pixel kernels were up to 1.3x slower
    // with this prefetch: see kDepthwiseTiles).
    if (ih < 0 || ih >= p_.in_h || (direct_ && !kDepthwiseTiles)) return;
    if (!direct_) {
      if (slot_row_[ih % ring_rows_] == ih) return;
      if (pending_row_ != ih) {
        pending_row_ = ih;
        pending_done_ = 0;
      }
      const int64_t end = p_.in_w * (part + 1) / parts;
      if (end > pending_done_) GatherPixels(ih, pending_done_, end);
    }
    // Prefetch the source pixels two slices ahead, so the next gathers hit the cache rather than
    // stall the core on memory (they would not overlap with the compute otherwise). Read in
    // place, the row is first used by the next output row: prefetch this slice, so every slice
    // is fetched once, a whole output row ahead.
    const int64_t ahead = direct_ ? 0 : 2;
    const int64_t p0 = std::min(p_.in_w, p_.in_w * (part + ahead) / parts);
    const int64_t p1 = std::min(p_.in_w, p_.in_w * (part + ahead + 1) / parts);
    if (p1 > p0) {
      const T* src = x_ + ((n_ * p_.in_h + ih) * p_.in_w + p0) * p_.in_c;
      const char* c = reinterpret_cast<const char*>(src);
      const int64_t bytes = (p1 - p0) * p_.in_c * static_cast<int64_t>(sizeof(T));
      for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 0, 3);
    }
  }
  const T* Row(int64_t ih) {
    if (direct_) return x_ + (n_ * p_.in_h + ih) * p_.in_w * p_.in_c;
    if (slot_row_[ih % ring_rows_] != ih) {
      if (pending_row_ != ih) {
        pending_row_ = ih;
        pending_done_ = 0;
      }
      GatherPixels(ih, pending_done_, p_.in_w);
    }
    return ring_.data() + (ih % ring_rows_) * p_.in_w * p_.out_c;
  }

 private:
  // Gathers pixels [w0, w1) of row ih (the pending row) into its slot.
  void GatherPixels(int64_t ih, int64_t w0, int64_t w1) {
    const int64_t cout = p_.out_c, cin = p_.in_c, slot = ih % ring_rows_;
    const T* src = x_ + ((n_ * p_.in_h + ih) * p_.in_w + w0) * cin;
    T* dst = ring_.data() + (slot * p_.in_w + w0) * cout;
    slot_row_[slot] = -1;  // the slot's previous row is being overwritten
    if (map_.index.empty()) {
      ChannelShuffle(src, dst, w1 - w0, cin, map_.shuffle_groups, map_.inverse);
    } else {
      const int32_t* __restrict__ idx = map_.index.data();
      for (int64_t i = w0; i < w1; ++i, src += cin, dst += cout) {
        for (int64_t o = 0; o < cout; ++o) dst[o] = src[idx[o]];
      }
    }
    pending_done_ = w1;
    if (w1 == p_.in_w) {
      slot_row_[slot] = ih;
      pending_row_ = -1;
    }
  }

  const GroupedConvParams& p_;
  const T* x_;
  const ChannelMap& map_;
  const bool direct_;
  int64_t n_ = -1, ring_rows_ = 0, pending_row_ = -1, pending_done_ = 0;
  AlignedVector<T> ring_;
  std::vector<int64_t> slot_row_;
};

// out[c0 : c0 + NV * lanes) (or the scalar tail [c0, cout) when NV == 0) = sum over the taps of
// one output pixel.
template <typename T, int NV, bool kStream = false>
inline void DepthwisePixelBlock(const T* const* rows, const int64_t* khs, int64_t n_rows,
                                int64_t iw0, int64_t kw_lo, int64_t kw_hi, int64_t dil_w,
                                int64_t pix_stride, const T* filter, int64_t k_w, int64_t cout,
                                int64_t c0, T* out) {
  using S = Simd<T>;
  if constexpr (NV == 0 && kVectorBytes >= 32) {
    // The channel tail (fewer than a vector) in one masked vector: ShuffleNet g=3's 60- and
    // 120-channel depthwise layers leave 12 and 8 channels with AVX-512, 4 with AVX2, which the
    // scalar loop below took as long as the vectorised rest.
    const int n = static_cast<int>(cout - c0);
    typename S::V acc = S::Zero();
    for (int64_t t = 0; t < n_rows; ++t) {
      const T* xr = rows[t] + c0;
      const T* fr = filter + khs[t] * k_w * cout + c0;
      for (int64_t kw = kw_lo; kw < kw_hi; ++kw) {
        acc += S::LoadPartial(xr + (iw0 + kw * dil_w) * pix_stride, n) *
               S::LoadPartial(fr + kw * cout, n);
      }
    }
    S::StorePartial(out + c0, acc, n);
    return;
  }
  if (NV == 0) {
    for (int64_t c = c0; c < cout; ++c) out[c] = T(0);
  }
  typename S::V acc[NV > 0 ? NV : 1];
  for (int v = 0; v < NV; ++v) acc[v] = S::Zero();
  for (int64_t t = 0; t < n_rows; ++t) {
    const T* xr = rows[t] + c0;
    const T* fr = filter + khs[t] * k_w * cout + c0;
    for (int64_t kw = kw_lo; kw < kw_hi; ++kw) {
      const T* xp = xr + (iw0 + kw * dil_w) * pix_stride;
      const T* fp = fr + kw * cout;
      if (NV == 0) {
        for (int64_t c = 0; c < cout - c0; ++c) out[c0 + c] += xp[c] * fp[c];
      }
      for (int v = 0; v < NV; ++v) acc[v] += S::Load(xp + v * S::kLanes) * S::Load(fp + v * S::kLanes);
    }
  }
  for (int v = 0; v < NV; ++v) {
    if (kStream) {
      S::Stream(out + c0 + v * S::kLanes, acc[v]);
    } else {
      S::Store(out + c0 + v * S::kLanes, acc[v]);
    }
  }
}

// Calls f(std::integral_constant<int, I>()) for I = 0 .. N - 1, unrolled at compile time (GCC
// keeps arrays of accumulators indexed this way in registers; it did not for plain loops).
template <typename F, int... I>
inline void UnrollImpl(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>()), ...);
}
template <int N, typename F>
inline void Unroll(F&& f) {
  UnrollImpl(f, std::make_integer_sequence<int, N>());
}

// Width tile of the depthwise forward for KW = 3, dilation 1, stride S along the width: OWT
// consecutive output pixels (every tap inside the row) x NV vectors of channels [c0, ...). The
// three filter vectors of a kernel row stay in registers and every input vector loaded feeds all
// the outputs that read it (up to 3 with stride 1), so an FMA costs (OWT * S + 5) / (3 * OWT)
// loads instead of the per-pixel path's two (one input, one filter vector per FMA). Measured on
// the 2-core Zen 4 with the AVX2 build (C++ harness): see kDepthwiseTiles.
// With kPartial (NV == 1) only the first `lanes` channels from c0 are read and written (the
// channel tail, fewer than a vector), through masked loads and stores.
template <typename T, int OWT, int S, int NV, bool kStream, bool kPartial = false>
inline void DepthwiseTile3(const T* const* rows, const int64_t* khs, int64_t n_rows,
                           int64_t iw0, int64_t ps, const T* filter, int64_t cout, int64_t c0,
                           T* out, int lanes = 0) {
  static_assert(!kPartial || (NV == 1 && !kStream), "a partial tile is one vector, stored");
  using Sd = Simd<T>;
  using V = typename Sd::V;
  constexpr int L = Sd::kLanes;
  auto load = [lanes](const T* q) { return kPartial ? Sd::LoadPartial(q, lanes) : Sd::Load(q); };
  constexpr int kIn = (OWT - 1) * S + 3;
  V acc[OWT][NV];
  Unroll<OWT>([&](auto j) { Unroll<NV>([&](auto v) { acc[j][v] = Sd::Zero(); }); });
  for (int64_t t = 0; t < n_rows; ++t) {
    const T* xr = rows[t] + iw0 * ps + c0;
    const T* fr = filter + khs[t] * 3 * cout + c0;
    V f[3][NV];
    Unroll<3>([&](auto kw) {
      Unroll<NV>([&](auto v) { f[kw][v] = load(fr + kw * cout + v * L); });
    });
    Unroll<kIn>([&](auto i) {
      V xv[NV];
      Unroll<NV>([&](auto v) { xv[v] = load(xr + i * ps + v * L); });
      Unroll<3>([&](auto kw) {
        constexpr int d = decltype(i)::value - decltype(kw)::value;
        if constexpr (d >= 0 && d % S == 0 && d / S < OWT) {
          Unroll<NV>([&](auto v) { acc[d / S][v] += xv[v] * f[kw][v]; });
        }
      });
    });
  }
  Unroll<OWT>([&](auto j) {
    Unroll<NV>([&](auto v) {
      if constexpr (kPartial) {
        Sd::StorePartial(out + j * cout + c0, acc[j][v], lanes);
      } else if constexpr (kStream) {
        Sd::Stream(out + j * cout + c0 + v * L, acc[j][v]);
      } else {
        Sd::Store(out + j * cout + c0 + v * L, acc[j][v]);
      }
    });
  });
}

// Prefetches, in `parts` even slices a few lines each, what the next output row of a depthwise
// kernel reads in place: the input rows it adds (the last one, next_ih, and with stride 2 the one
// before it: consecutive in memory) and, given `second_row` (output row oh of image n, or of a
// tensor shaped like the output), the row after it when the tensor has one (the next output row,
// for writing, in the forward; the next output gradient row, for reading, in the filter
// gradient). A next_ih below 0 prefetches no input. So the memory reads overlap the compute in a
// steady trickle instead of a burst the core waits on. Measured on the 2-core Zen 3, AVX2 (C++ harness, [32, 28, 28, 240]
// 3x3 float32 on two threads, interleaved medians of 21): the forward took 3.9-4.4 ms instead of
// 4.3-4.9 ms with the next input row prefetched in pixel slices once per channel pass and each
// pass prefetching the next pass's lines (those prefetches cost 0.6 ms of 2.3 with the tensors in
// cache, and the output lines missed the cache when first written); prefetching two rows ahead,
// or the lines in the order the passes read them, was slower.
template <typename T>
class RowAhead {
 public:
  RowAhead(const GroupedConvParams& p, const T* x, int64_t n, int64_t oh, int64_t next_ih,
           const T* second_row, bool write_second) : write_(write_second) {
    constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(T));
    const int64_t first_ih =
        std::max<int64_t>(0, next_ih - std::min<int64_t>(p.stride_h, 2) + 1);
    const int64_t last_ih = std::min(next_ih, p.in_h - 1);
    in_ = reinterpret_cast<const char*>(x + (n * p.in_h + first_ih) * p.in_w * p.in_c);
    in_lines_ = last_ih >= first_ih ? CeilDiv((last_ih - first_ih + 1) * p.in_w * p.in_c, line) : 0;
    const int64_t row_values = p.out_w * p.out_c;
    if (second_row && n * p.out_h + oh + 1 < p.batch * p.out_h) {
      second_ = reinterpret_cast<const char*>(second_row + row_values);
      second_lines_ = CeilDiv(row_values, line);
    }
  }
  // Prefetches slice `part` of `parts` (the same `parts` for a whole row).
  void Part(int64_t part, int64_t parts) {
    if (parts != steps_for_) {  // once per row: no division per call
      steps_for_ = parts;
      in_step_ = CeilDiv(in_lines_, parts);
      second_step_ = CeilDiv(second_lines_, parts);
    }
    const int64_t in_end = std::min(in_lines_, (part + 1) * in_step_);
    for (int64_t l = part * in_step_; l < in_end; ++l) __builtin_prefetch(in_ + l * 64, 0, 3);
    const int64_t second_end = std::min(second_lines_, (part + 1) * second_step_);
    for (int64_t l = part * second_step_; l < second_end; ++l) {
      if (write_) {
        __builtin_prefetch(second_ + l * 64, 1, 3);
      } else {
        __builtin_prefetch(second_ + l * 64, 0, 3);
      }
    }
  }

 private:
  const bool write_;
  const char* in_ = nullptr;
  const char* second_ = nullptr;
  int64_t in_lines_ = 0, second_lines_ = 0, steps_for_ = 0, in_step_ = 0, second_step_ = 0;
};

// Output pixels per tile of DepthwiseTile3: the 8 accumulators, 3 filter and 1 input vectors of
// a one-vector tile fit AVX2's 16 vector registers.
constexpr int kTile3Pixels = 8;

// `pixels` output pixels from `out` of one row (all their taps inside the row, the first reading
// input column iw0) through DepthwiseTile3, channels outermost: one pass per channel vector walks
// the row in tiles of 8 pixels (then 4, 2, 1), so a pass touches one vector of each input pixel
// (3 rows x the row's pixels, a few KiB) instead of a tile's every channel (tens of KiB, more
// than L1). The channel tail is one more pass of masked tiles.
// `ahead(part, parts)` lets the caller gather or prefetch the next output row's data:
// - kPerTile false (rows gathered into a ring): once per pass, and each pass prefetches the next
//   pass's input and output lines;
// - kPerTile true (rows read in place): once before every tile, with no per-pass prefetch, so the
//   caller can spread its prefetches of the next row a few lines per tile (see DepthwiseForward).
template <typename T, int S, bool kStream, bool kPerTile, typename Ahead>
inline void DepthwiseTile3Run(const T* const* rows, const int64_t* khs, int64_t n_rows,
                              int64_t iw0, int64_t ps, const T* filter, int64_t cout,
                              int64_t pixels, T* out, Ahead&& ahead) {
  constexpr int kOwt = kTile3Pixels;
  static_assert(kOwt == 8, "the remainder is covered by tiles of 4, 2 and 1");
  constexpr int64_t L = Simd<T>::kLanes;
  const int64_t passes = cout / L, c_vec = passes * L;
  const int64_t in_pixels = (pixels - 1) * S + 3;
  // Calls tile(std::integral_constant<int, OWT>(), j) for tiles covering pixels [0, pixels).
  auto walk = [pixels](auto&& tile) {
    int64_t j = 0;
    for (; j + kOwt <= pixels; j += kOwt) tile(std::integral_constant<int, kOwt>(), j);
    const int64_t rest = pixels - j;
    if (rest & 4) tile(std::integral_constant<int, 4>(), j), j += 4;
    if (rest & 2) tile(std::integral_constant<int, 2>(), j), j += 2;
    if (rest & 1) tile(std::integral_constant<int, 1>(), j);
  };
  const int64_t tiles = pixels / kOwt + __builtin_popcountll(static_cast<uint64_t>(pixels % kOwt));
  const int64_t parts = (passes + (c_vec < cout ? 1 : 0)) * tiles;
  int64_t part = 0;
  for (int64_t pass = 0; pass < passes; ++pass) {
    if (!kPerTile) ahead(pass, passes);
    const int64_t c0 = pass * L, next = c0 + L;
    if (!kPerTile && next < c_vec) {
      for (int64_t t = 0; t < n_rows; ++t) {
        const T* xr = rows[t] + iw0 * ps + next;
        for (int64_t i = 0; i < in_pixels; ++i) __builtin_prefetch(xr + i * ps, 0, 3);
      }
      if (!kStream) {
        for (int64_t j = 0; j < pixels; ++j) __builtin_prefetch(out + j * cout + next, 1, 3);
      }
    }
    walk([&](auto owt, int64_t j) {
      if (kPerTile) ahead(part++, parts);
      DepthwiseTile3<T, decltype(owt)::value, S, 1, kStream>(rows, khs, n_rows, iw0 + j * S, ps,
                                                             filter, cout, c0, out + j * cout);
    });
  }
  if (!kPerTile && passes == 0) ahead(0, 1);
  if (c_vec < cout) {
    const int lanes = static_cast<int>(cout - c_vec);
    walk([&](auto owt, int64_t j) {
      if (kPerTile) ahead(part++, parts);
      DepthwiseTile3<T, decltype(owt)::value, S, 1, false, true>(
          rows, khs, n_rows, iw0 + j * S, ps, filter, cout, c_vec, out + j * cout, lanes);
    });
  }
}

// The input rows (through `source`) that the output row whose first tap reads input row ih0
// touches, and their kernel rows; returns how many are inside the image.
template <typename T>
inline int64_t ValidRows(const GroupedConvParams& p, DepthwiseRows<T>& source, int64_t ih0,
                         const T** rows, int64_t* khs) {
  int64_t n_rows = 0;
  for (int64_t kh = 0; kh < p.k_h; ++kh) {
    const int64_t ih = ih0 + kh * p.dil_h;
    if (ih < 0 || ih >= p.in_h) continue;
    rows[n_rows] = source.Row(ih);
    khs[n_rows++] = kh;
  }
  return n_rows;
}

// Calls row(n, oh, rows, khs, n_rows, next_ih) for every output row of the units [begin, end) of
// `blocks`: `source` is set to the row's image, rows / khs hold the n_rows input rows (through
// source) the output row reads and their kernel rows, and next_ih is the first new input row of
// output row oh + 1 (which the caller gathers while it computes this one).
template <typename T, typename RowFn>
void ForEachOutputRow(const GroupedConvParams& p, const RowBlocks& blocks, int64_t begin,
                      int64_t end, DepthwiseRows<T>& source, RowFn&& row) {
  std::vector<const T*> rows(p.k_h);
  std::vector<int64_t> khs(p.k_h);
  for (int64_t u = begin; u < end; ++u) {
    int64_t n, oh0, oh1;
    blocks.Range(u, &n, &oh0, &oh1);
    source.SetImage(n);
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const int64_t ih0 = oh * p.stride_h - p.pad_top;
      const int64_t n_rows = ValidRows(p, source, ih0, rows.data(), khs.data());
      const T* const* row_ptrs = rows.data();
      const int64_t* row_khs = khs.data();
      row(n, oh, row_ptrs, row_khs, n_rows, ih0 + p.stride_h + (p.k_h - 1) * p.dil_h);
    }
  }
}

// Depthwise forward; `map` says how the (gathered) input channels are read.
template <typename T>
void DepthwiseForward(const GroupedConvParams& p, const T* x, const T* f, T* y,
                      const ParallelRunner& runner, const ChannelMap& map) {
  const int64_t cout = p.out_c;
  const bool stream = UseStreamingStores(y, p.output_size(), cout);
  const RowBlocks blocks(p.batch, p.out_h, runner.concurrency());
  // Width tiles (DepthwiseTile3) for 3-wide kernels, dilation 1, stride 1 or 2 along the width,
  // over the output columns [tile_lo, tile_hi) whose taps all lie inside the row; the border
  // columns and the remainder take the per-pixel path.
  const bool tiled = kDepthwiseTiles && p.k_w == 3 && p.dil_w == 1 && (p.stride_w == 1 || p.stride_w == 2);
  const int64_t tile_lo = CeilDiv(p.pad_left, p.stride_w);
  const int64_t tile_hi =
      p.in_w + p.pad_left >= 3 ? std::min(p.out_w, (p.in_w - 3 + p.pad_left) / p.stride_w + 1) : 0;
  const int64_t tile_end = tiled ? std::max(tile_lo, tile_hi) : tile_lo;
  runner.For(blocks.units, [&](int64_t begin, int64_t end, int) {
    DepthwiseRows<T> source(p, x, map);
    const int64_t ps = source.pixel_stride();
    ForEachOutputRow(p, blocks, begin, end, source, [&](int64_t n, int64_t oh,
                                                        const T* const* rows, const int64_t* khs,
                                                        int64_t n_rows, int64_t next_ih) {
      T* yrow = y + (n * p.out_h + oh) * p.out_w * cout;
      for (int64_t ow = 0; ow < p.out_w; ++ow) {
        if constexpr (kDepthwiseTiles) {  // not instantiated for the other ISAs
          if (tile_end > tile_lo && ow == tile_lo) {
            const int64_t iw0 = ow * p.stride_w - p.pad_left;
            auto run = [&](auto stride, auto streaming, auto per_tile, auto&& ahead) {
              DepthwiseTile3Run<T, decltype(stride)::value, decltype(streaming)::value,
                                decltype(per_tile)::value>(rows, khs, n_rows, iw0, ps, f, cout,
                                                           tile_end - tile_lo, yrow + ow * cout,
                                                           ahead);
            };
            auto run_strided = [&](auto per_tile, auto&& ahead) {
              using One = std::integral_constant<int, 1>;
              using Two = std::integral_constant<int, 2>;
              if (stream) {
                p.stride_w == 1 ? run(One(), std::true_type(), per_tile, ahead)
                                : run(Two(), std::true_type(), per_tile, ahead);
              } else {
                p.stride_w == 1 ? run(One(), std::false_type(), per_tile, ahead)
                                : run(Two(), std::false_type(), per_tile, ahead);
              }
            };
            if (source.direct()) {
              // Read in place: the next output row's new input rows and (unless streaming) its
              // output lines, a slice before each tile (see RowAhead).
              RowAhead<T> row_ahead(p, x, n, oh, next_ih, stream ? nullptr : yrow, true);
              auto ahead = [&](int64_t part, int64_t parts) { row_ahead.Part(part, parts); };
              run_strided(std::true_type(), ahead);
            } else {
              // The next output row's input for pixels [tile_lo, tile_end), gathered into the
              // ring a slice per pass.
              int64_t gathered = tile_lo;
              auto ahead = [&](int64_t part, int64_t parts) {
                const int64_t upto = tile_lo + (tile_end - tile_lo) * (part + 1) / parts;
                for (; gathered < upto; ++gathered) source.GatherAhead(next_ih, gathered, p.out_w);
              };
              run_strided(std::false_type(), ahead);
            }
            ow = tile_end - 1;
            continue;
          }
        }
        source.GatherAhead(next_ih, ow, p.out_w);
        const int64_t iw0 = ow * p.stride_w - p.pad_left;
        int64_t kw_lo, kw_hi;
        ValidTaps(iw0, p.k_w, p.dil_w, p.in_w, &kw_lo, &kw_hi);
        T* out = yrow + ow * cout;
        const int64_t tail = ForVectorBlocks<T>(cout, [&](auto nv, int64_t c0) {
          if (stream) {
            DepthwisePixelBlock<T, decltype(nv)::value, true>(
                rows, khs, n_rows, iw0, kw_lo, kw_hi, p.dil_w, ps, f, p.k_w, cout, c0, out);
          } else {
            DepthwisePixelBlock<T, decltype(nv)::value>(rows, khs, n_rows, iw0, kw_lo, kw_hi,
                                                        p.dil_w, ps, f, p.k_w, cout, c0, out);
          }
        });
        if (tail < cout) {
          DepthwisePixelBlock<T, 0>(rows, khs, n_rows, iw0, kw_lo, kw_hi, p.dil_w, ps, f,
                                    p.k_w, cout, tail, out);
        }
      }
    });
    if (stream) StreamFence();
  });
}

// Kernel taps (ks) and output positions (os) that read input index i along one dimension;
// returns their count.
inline int64_t GradTaps(int64_t i, int64_t pad, int64_t k, int64_t dil, int64_t stride,
                        int64_t out, int64_t* ks, int64_t* os) {
  int64_t n = 0;
  for (int64_t kk = 0; kk < k; ++kk) {
    const int64_t t = i + pad - kk * dil;
    if (t < 0 || t % stride != 0) continue;
    const int64_t o = t / stride;
    if (o >= out) continue;
    ks[n] = kk;
    os[n++] = o;
  }
  return n;
}

// For stride 1 and multiplier 1 the input gradient is a depthwise forward pass over dy with the
// spatially flipped filter and complementary padding. With a shuffle, original channel c gets
// shuffled channel j = ShuffleDestination(c): dy is gathered through the inverse shuffle and the
// filter permuted likewise, so dx is written directly in its own channel order.
template <typename T>
void DepthwiseBackpropInputAsForward(const GroupedConvParams& p, const T* dy, const T* f, T* dx,
                                     const ParallelRunner& runner) {
  const GroupedConvParams q = InputGradientAsForward(p);
  const int64_t taps = p.k_h * p.k_w, c = p.out_c, g = p.shuffle_groups;
  AlignedVector<T> flipped(static_cast<size_t>(taps * c));
  for (int64_t t = 0; t < taps; ++t) {
    const T* s = f + t * c;
    T* d = flipped.data() + (taps - 1 - t) * c;
    for (int64_t ch = 0; ch < c; ++ch) d[ch] = s[g > 1 ? ShuffleDestination(ch, c, g) : ch];
  }
  ChannelMap map;
  map.shuffle_groups = g;
  map.inverse = true;
  DepthwiseForward(q, dy, flipped.data(), dx, runner, map);
}

template <typename T>
void DepthwiseBackpropInput(const GroupedConvParams& p, const T* dy, const T* f, T* dx,
                            const ParallelRunner& runner) {
  const int64_t cin = p.in_c, cout = p.out_c, mult = p.out_per_group();
  if (p.stride_h == 1 && p.stride_w == 1 && mult == 1) {
    DepthwiseBackpropInputAsForward(p, dy, f, dx, runner);
    return;
  }
  const bool direct = p.shuffle_groups == 1 && mult == 1;
  const std::vector<int64_t> src = ShuffleSourceMap(p);
  // Columns: for each input column, the (kw, ow) pairs that read it.
  std::vector<int64_t> kw_n(p.in_w), kw_k(p.in_w * p.k_w), kw_o(p.in_w * p.k_w);
  for (int64_t iw = 0; iw < p.in_w; ++iw) {
    kw_n[iw] = GradTaps(iw, p.pad_left, p.k_w, p.dil_w, p.stride_w, p.out_w, &kw_k[iw * p.k_w],
                        &kw_o[iw * p.k_w]);
  }
  const RowBlocks blocks(p.batch, p.in_h, runner.concurrency());
  runner.For(blocks.units, [&](int64_t begin, int64_t end, int) {
    std::vector<int64_t> kh_k(p.k_h), kh_o(p.k_h);
    AlignedVector<T> pix(direct ? 0 : cout);
    std::vector<const T*> dyp(p.k_h * p.k_w);
    std::vector<const T*> fp(p.k_h * p.k_w);
    for (int64_t u = begin; u < end; ++u) {
      int64_t n, ih0, ih1;
      blocks.Range(u, &n, &ih0, &ih1);
      for (int64_t ih = ih0; ih < ih1; ++ih) {
        const int64_t nh = GradTaps(ih, p.pad_top, p.k_h, p.dil_h, p.stride_h, p.out_h,
                                    kh_k.data(), kh_o.data());
        for (int64_t iw = 0; iw < p.in_w; ++iw) {
          int64_t taps = 0;
          for (int64_t a = 0; a < nh; ++a) {
            for (int64_t b = 0; b < kw_n[iw]; ++b) {
              const int64_t kw = kw_k[iw * p.k_w + b], ow = kw_o[iw * p.k_w + b];
              dyp[taps] = dy + ((n * p.out_h + kh_o[a]) * p.out_w + ow) * cout;
              fp[taps++] = f + (kh_k[a] * p.k_w + kw) * cout;
            }
          }
          T* dxp = dx + ((n * p.in_h + ih) * p.in_w + iw) * cin;
          T* acc_out = direct ? dxp : pix.data();
          const T* const* dyt = dyp.data();
          const T* const* ft = fp.data();
          using S = Simd<T>;
          const int64_t tail = ForVectorBlocks<T>(cout, [&](auto nv, int64_t c0) {
            constexpr int NV = decltype(nv)::value;
            typename S::V acc[NV];
            for (int v = 0; v < NV; ++v) acc[v] = S::Zero();
            for (int64_t t = 0; t < taps; ++t) {
              const T* a = dyt[t] + c0;
              const T* b = ft[t] + c0;
              for (int v = 0; v < NV; ++v) {
                acc[v] += S::Load(a + v * S::kLanes) * S::Load(b + v * S::kLanes);
              }
            }
            for (int v = 0; v < NV; ++v) S::Store(acc_out + c0 + v * S::kLanes, acc[v]);
          });
          if constexpr (kVectorBytes >= 32) {
            // The channel tail in one masked vector (see DepthwisePixelBlock).
            if (tail < cout) {
              const int lanes = static_cast<int>(cout - tail);
              typename S::V acc = S::Zero();
              for (int64_t t = 0; t < taps; ++t) {
                acc += S::LoadPartial(dyt[t] + tail, lanes) * S::LoadPartial(ft[t] + tail, lanes);
              }
              S::StorePartial(acc_out + tail, acc, lanes);
            }
          } else {
            for (int64_t c = tail; c < cout; ++c) {
              T acc = T(0);
              for (int64_t t = 0; t < taps; ++t) acc += dyt[t][c] * ft[t][c];
              acc_out[c] = acc;
            }
          }
          if (!direct) {
            if (mult == 1) {
              ChannelShuffle(pix.data(), dxp, 1, cin, p.shuffle_groups, /*inverse=*/true);
            } else {
              for (int64_t j = 0; j < cin; ++j) {
                T s = T(0);
                for (int64_t m = 0; m < mult; ++m) s += pix[j * mult + m];
                dxp[src[j]] = s;
              }
            }
          }
        }
      }
    }
  });
}

// A filter gradient is a sum over work units (row blocks or pixel chunks). The units are split
// into a fixed number of contiguous slots; a slot adds its units in order into its own partial
// sum, and the partials are added into `out` (overwritten) in slot order. So the result depends
// only on the shape and the runner's worker count, never on which thread ran which slot: two runs
// agree bit for bit (a training run and its resumed copy, or TensorFlow's op determinism). Units
// went to per-worker partials as threads took them before: with three workers (the op's runner
// on 2 cores), a resumed run's weights differed from the uninterrupted run's by up to 1.4e-5.
// The slot count trades balance against the partials' cost (each slot zeroes its partial and
// the final sum reads it): up to four slots per worker, at least two units each, and partials of
// at most 16 MiB in all, but never fewer slots than workers (when there are that many units).
// Slot 0 sums straight into `out`, and the other slots are added into it by all workers, each
// over its own range of `out`. Measured in TensorFlow's pool against the per-worker partials
// (2-core Zen 3, oneDNN off, interleaved, both orders): 0.93-1.08x on filter gradients from 7x7
// to 32x32 maps (3x3 16 to 512 channels, grouped 1x1, depthwise), and 1.22-1.33x where the
// units are many and small ([32, 14, 14, 480] -> 120, 3 groups: a callback per slot, not per
// unit).
// `fn(begin, end, part)` adds units [begin, end) into `part`, which starts zeroed.
constexpr int64_t kPartialBudgetBytes = int64_t{16} << 20;
constexpr int64_t kSumBlock = int64_t{1} << 14;  // values per task of the final sum

inline int64_t FilterGradientSlots(int64_t units, int64_t partial_bytes, int workers) {
  if (workers <= 1 || units <= 1) return 1;
  const int64_t by_memory =
      std::max<int64_t>(1, kPartialBudgetBytes / std::max<int64_t>(partial_bytes, 1));
  const int64_t wanted = std::min({int64_t{4} * workers, units / 2, by_memory});
  return std::min(units, std::max<int64_t>(workers, wanted));
}

template <typename T, typename F>
void SumOverUnits(const ParallelRunner& runner, int64_t units, int64_t size, T* out, F&& fn) {
  const int64_t slots =
      FilterGradientSlots(units, size * static_cast<int64_t>(sizeof(T)), runner.num_workers());
  std::vector<AlignedVector<T>> parts(static_cast<size_t>(slots));
  runner.For(slots, [&](int64_t begin, int64_t end, int) {
    for (int64_t s = begin; s < end; ++s) {
      T* part = out;
      if (s > 0) {
        parts[static_cast<size_t>(s)].assign(static_cast<size_t>(size), T(0));
        part = parts[static_cast<size_t>(s)].data();
      } else {
        std::fill(out, out + size, T(0));
      }
      fn(s * units / slots, (s + 1) * units / slots, part);
    }
  });
  if (slots == 1) return;
  auto add = [&](int64_t i0, int64_t i1) {
    for (int64_t s = 1; s < slots; ++s) {
      const T* src = parts[static_cast<size_t>(s)].data();
      for (int64_t i = i0; i < i1; ++i) out[i] += src[i];
    }
  };
  if (size < 2 * kSumBlock) {
    add(0, size);
    return;
  }
  runner.For(CeilDiv(size, kSumBlock), [&](int64_t begin, int64_t end, int) {
    add(begin * kSumBlock, std::min(size, end * kSumBlock));
  });
}

// Filter gradient of one output row for channels [c0, c0 + NV * lanes) of a KH x KW depthwise
// kernel: the KH * KW * NV accumulators stay in registers across the whole row (one load per FMA)
// and are added to the partial filter gradient once at the end.
// With kPartial (NV == 1), only the first `lanes` channels from c0 (the channel tail, fewer than
// a vector) are read and written, through masked loads and stores.
template <typename T, int KH, int KW, int NV, bool kPartial = false>
inline void DepthwiseFilterRow(const GroupedConvParams& p, const T* const* rows,
                               const int64_t* khs, int64_t n_rows, const T* dyrow, int64_t ps,
                               int64_t c0, T* part, int lanes = 0) {
  static_assert(!kPartial || NV == 1, "a partial row is one vector wide");
  using S = Simd<T>;
  auto load = [lanes](const T* q) { return kPartial ? S::LoadPartial(q, lanes) : S::Load(q); };
  const int64_t cout = p.out_c, dil_w = p.dil_w;
  typename S::V acc[KH][KW][NV];
  for (int t = 0; t < KH; ++t)
    for (int kw = 0; kw < KW; ++kw)
      for (int v = 0; v < NV; ++v) acc[t][kw][v] = S::Zero();
  for (int64_t ow = 0; ow < p.out_w; ++ow) {
    const int64_t iw0 = ow * p.stride_w - p.pad_left;
    const bool interior = iw0 >= 0 && iw0 + (KW - 1) * dil_w < p.in_w;
    typename S::V g[NV];
    for (int v = 0; v < NV; ++v) g[v] = load(dyrow + ow * cout + c0 + v * S::kLanes);
    for (int t = 0; t < KH; ++t) {
      if (t >= n_rows) break;
      const T* xr = rows[t] + c0;
      for (int kw = 0; kw < KW; ++kw) {
        const int64_t iw = iw0 + kw * dil_w;
        if (!interior && (iw < 0 || iw >= p.in_w)) continue;
        const T* xp = xr + iw * ps;
        for (int v = 0; v < NV; ++v) acc[t][kw][v] += load(xp + v * S::kLanes) * g[v];
      }
    }
  }
  for (int t = 0; t < KH; ++t) {
    if (t >= n_rows) break;
    for (int kw = 0; kw < KW; ++kw) {
      T* pp = part + (khs[t] * KW + kw) * cout + c0;
      for (int v = 0; v < NV; ++v) {
        if constexpr (kPartial) {
          S::StorePartial(pp, S::LoadPartial(pp, lanes) + acc[t][kw][v], lanes);
        } else {
          S::Store(pp + v * S::kLanes, S::Load(pp + v * S::kLanes) + acc[t][kw][v]);
        }
      }
    }
  }
}

// Whether the 3x3 filter gradient at stride 1 walks input pixels (DepthwiseFilterRow3S1) and
// prefetches the next channel pass: only with AVX2 vectors, like the forward's width tiles.
// Measured on the 2-core Zen 4, C++ harness, float32 on two threads, old / new medians
// interleaved in one run: AVX2 1.06-1.27x faster ([32, 28, 28, 240] 4.60 -> 4.02 ms, shuffled
// 3.87 -> 3.42, [32, 56, 56, 120] 9.38 -> 7.40); AVX-512 0.99-1.06x at batch 32 and slower in
// cache (0.7-0.9x at batch 2), so it keeps DepthwiseFilterRow.
constexpr bool kFilterRowS1 = kVectorBytes == 32;

// DepthwiseFilterRow for a 3x3 kernel at stride 1 and dilation 1 along the width, walking the
// input pixels instead of the output pixels: input pixel iw of kernel row t feeds the taps
// (t, kw) of outputs ow = iw + pad_left - kw, so one load of it serves three FMAs, with the last
// three output gradients kept in registers (zero outside the row, which also covers the border
// columns without a branch). One input and one output gradient load per 3 * n_rows FMAs instead
// of one load per FMA. Rows gathered into a ring (kInPlace false): it prefetches the next channel
// pass's lines. Rows read in place: it calls ahead() before every kFilterAheadPixels input
// pixels, with which the caller prefetches the next row (see RowAhead).
constexpr int64_t kFilterAheadPixels = 8;
template <typename T, int NV, bool kInPlace, typename Ahead>
inline void DepthwiseFilterRow3S1(const GroupedConvParams& p, const T* const* rows,
                                  const int64_t* khs, int64_t n_rows, const T* dyrow, int64_t ps,
                                  int64_t c0, T* part, Ahead&& ahead) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int L = S::kLanes;
  const int64_t cout = p.out_c;
  V acc[3][3][NV];
  V g[3][NV];  // g[k]: output gradient of ow = iw + pad_left - k
  Unroll<3>([&](auto t) {
    Unroll<3>([&](auto kw) { Unroll<NV>([&](auto v) { acc[t][kw][v] = S::Zero(); }); });
  });
  Unroll<3>([&](auto k) { Unroll<NV>([&](auto v) { g[k][v] = S::Zero(); }); });
  // Before the first input pixel's shift, g[0] and g[1] hold outputs pad_left - 1 and - 2.
  for (int k = 0; k < 2; ++k) {
    const int64_t ow = p.pad_left - 1 - k;
    if (ow >= 0 && ow < p.out_w) {
      for (int v = 0; v < NV; ++v) g[k][v] = S::Load(dyrow + ow * cout + c0 + v * L);
    }
  }
  const T* x0 = rows[0] + c0;
  const T* x1 = rows[n_rows > 1 ? 1 : 0] + c0;
  const T* x2 = rows[n_rows > 2 ? 2 : 0] + c0;
  if (!kInPlace && c0 + NV * L < cout) {
    // The next channel pass's lines of this row, into L1 while this pass computes.
    const int64_t next = NV * L;
    for (int64_t iw = 0; iw < p.in_w; ++iw) {
      for (int64_t t = 0; t < n_rows; ++t) __builtin_prefetch(rows[t] + c0 + next + iw * ps, 0, 3);
    }
    for (int64_t ow = 0; ow < p.out_w; ++ow) __builtin_prefetch(dyrow + ow * cout + c0 + next, 0, 3);
  }
  auto pixel = [&](int64_t iw) {
    const int64_t ow = iw + p.pad_left;
    Unroll<NV>([&](auto v) {
      g[2][v] = g[1][v];
      g[1][v] = g[0][v];
      g[0][v] = ow < p.out_w ? S::Load(dyrow + ow * cout + c0 + v * L) : S::Zero();
    });
    const T* xs[3] = {x0 + iw * ps, x1 + iw * ps, x2 + iw * ps};
    Unroll<3>([&](auto t) {
      if (t < n_rows) {
        Unroll<NV>([&](auto v) {
          const V xv = S::Load(xs[t] + v * L);
          Unroll<3>([&](auto kw) { acc[t][kw][v] += xv * g[kw][v]; });
        });
      }
    });
  };
  if constexpr (kInPlace) {
    for (int64_t iw0 = 0; iw0 < p.in_w; iw0 += kFilterAheadPixels) {
      ahead();
      const int64_t iw1 = std::min(p.in_w, iw0 + kFilterAheadPixels);
      for (int64_t iw = iw0; iw < iw1; ++iw) pixel(iw);
    }
  } else {
    for (int64_t iw = 0; iw < p.in_w; ++iw) pixel(iw);
  }
  for (int t = 0; t < 3; ++t) {
    if (t >= n_rows) break;
    for (int kw = 0; kw < 3; ++kw) {
      T* pp = part + (khs[t] * 3 + kw) * cout + c0;
      for (int v = 0; v < NV; ++v) {
        S::Store(pp + v * L, S::Load(pp + v * L) + acc[t][kw][v]);
      }
    }
  }
}

template <typename T>
void DepthwiseBackpropFilter(const GroupedConvParams& p, const T* x, const T* dy, T* df,
                             const ParallelRunner& runner) {
  const int64_t cout = p.out_c;
  const ChannelMap map = DepthwiseInputMap(p);
  const int64_t fsize = p.k_h * p.k_w * cout;
  const RowBlocks blocks(p.batch, p.out_h, runner.concurrency());
  SumOverUnits<T>(runner, blocks.units, fsize, df, [&](int64_t begin, int64_t end, T* part) {
    DepthwiseRows<T> source(p, x, map);
    const int64_t ps = source.pixel_stride();
    ForEachOutputRow(p, blocks, begin, end, source, [&](int64_t n, int64_t oh,
                                                        const T* const* rows, const int64_t* khs,
                                                        int64_t n_rows, int64_t next_ih) {
      const T* dyrow = dy + (n * p.out_h + oh) * p.out_w * cout;
      int64_t c_done = 0;  // channels handled by the register-tiled 3x3 path
      if (p.k_h == 3 && p.k_w == 3) {
        // 2 vectors with AVX-512 (18 + 2 of 32 registers), 1 with AVX2/SSE (10 of 16).
        constexpr int kNV = kVectorBytes == 64 ? 2 : 1;
        constexpr int64_t kL = Simd<T>::kLanes;
        const int64_t chunks = std::max<int64_t>(1, cout / (kNV * kL));
        static_assert(!kFilterRowS1 || kNV == 1, "the input walk covers every whole vector");
        const bool s1 = kFilterRowS1 && p.stride_w == 1 && p.dil_w == 1;
        // With the AVX2 kernels, rows read in place: the next output row's new input rows and
        // its output gradient row are prefetched a slice per kFilterAheadPixels input pixels of
        // each pass (per pass without the input walk; see RowAhead), and the passes do not
        // prefetch each other's lines.
        const bool in_place = kFilterRowS1 && source.direct();
        RowAhead<T> row_ahead(p, x, n, oh, in_place ? next_ih : -1, in_place ? dyrow : nullptr,
                              false);
        // slices: one per kFilterAheadPixels input pixels of each pass with the input walk,
        // else one per pass
        const int64_t per_pass = s1 ? CeilDiv(p.in_w, kFilterAheadPixels) : 1;
        int64_t slice = 0;
        auto ahead = [&] { row_ahead.Part(slice++, chunks * per_pass); };
        for (; c_done + kNV * kL <= cout; c_done += kNV * kL) {
          if (!in_place) {
            source.GatherAhead(next_ih, c_done / (kNV * kL), chunks);
          } else if (!s1) {
            ahead();
          }
          if constexpr (kFilterRowS1) {
            if (s1) {
              if (in_place) {
                DepthwiseFilterRow3S1<T, kNV, true>(p, rows, khs, n_rows, dyrow, ps, c_done,
                                                    part, ahead);
              } else {
                DepthwiseFilterRow3S1<T, kNV, false>(p, rows, khs, n_rows, dyrow, ps, c_done,
                                                     part, ahead);
              }
              continue;
            }
          }
          DepthwiseFilterRow<T, 3, 3, kNV>(p, rows, khs, n_rows, dyrow, ps, c_done, part);
        }
        for (; c_done + kL <= cout; c_done += kL) {  // AVX-512: the odd last vector
          DepthwiseFilterRow<T, 3, 3, 1>(p, rows, khs, n_rows, dyrow, ps, c_done, part);
        }
        if constexpr (kVectorBytes >= 32) {
          // The channel tail in one masked vector (see DepthwisePixelBlock).
          if (c_done < cout) {
            DepthwiseFilterRow<T, 3, 3, 1, true>(p, rows, khs, n_rows, dyrow, ps, c_done, part,
                                                 static_cast<int>(cout - c_done));
            c_done = cout;
          }
        }
      }
      for (int64_t ow = 0; ow < p.out_w && c_done < cout; ++ow) {
        source.GatherAhead(next_ih, ow, p.out_w);
        const int64_t iw0 = ow * p.stride_w - p.pad_left;
        int64_t kw_lo, kw_hi;
        ValidTaps(iw0, p.k_w, p.dil_w, p.in_w, &kw_lo, &kw_hi);
        const T* g = dyrow + ow * cout + c_done;
        using S = Simd<T>;
        const int64_t tail = c_done + ForVectorBlocks<T>(cout - c_done, [&](auto nv, int64_t c0) {
          constexpr int NV = decltype(nv)::value;
          typename S::V gb[NV];
          for (int v = 0; v < NV; ++v) gb[v] = S::Load(g + c0 + v * S::kLanes);
          for (int64_t t = 0; t < n_rows; ++t) {
            for (int64_t kw = kw_lo; kw < kw_hi; ++kw) {
              const T* xp = rows[t] + (iw0 + kw * p.dil_w) * ps + c_done + c0;
              T* pp = part + (khs[t] * p.k_w + kw) * cout + c_done + c0;
              for (int v = 0; v < NV; ++v) {
                S::Store(pp + v * S::kLanes, S::Load(pp + v * S::kLanes) +
                                                 S::Load(xp + v * S::kLanes) * gb[v]);
              }
            }
          }
        });
        if (tail < cout) {
          for (int64_t t = 0; t < n_rows; ++t) {
            for (int64_t kw = kw_lo; kw < kw_hi; ++kw) {
              const T* xp = rows[t] + (iw0 + kw * p.dil_w) * ps;
              T* pp = part + (khs[t] * p.k_w + kw) * cout;
              for (int64_t c = tail; c < cout; ++c) pp[c] += xp[c] * g[c - c_done];
            }
          }
        }
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Small GEMM for the grouped path: C[M, N] (+)= A[M, K] * B[K, N], single threaded (it runs
// inside one task). A is read in place through strides, B is packed once into zero-padded panels
// of kPanelVectors vectors, and an MR x (NV vectors) register tile of C is accumulated over the
// whole K (K is at most KH * KW * C / groups, or the pixels of one task).

// Register tile: TileRows<NV>() rows x NV vectors of accumulators (NV <= kPanelVectors), plus the
// NV B vectors and a broadcast, within the 32 (AVX-512) or 16 (AVX2/SSE) vector registers.
#if defined(__AVX512F__)
// One panel covers 80 columns (a ShuffleNet group of 240 / 3 channels) with a 5 x 5 tile, every
// broadcast feeding 5 FMAs; narrower panels keep 8 rows (24 or 16 accumulators). Measured on the
// 2-core Xeon (grouped 1x1, [32, 28, 28, 240], 3 groups, C++ harness): 8 x 3 plus an 8 x 2 tile
// for the last 32 columns took 4.15-4.24 ms, 5 x 5 3.5-3.8 ms; 5 rows for the 2-vector panels of
// 8 groups (30 columns) made their backward passes slower, hence the per-width rows.
constexpr int kPanelVectors = 5;  // 80 floats
template <int NV>
constexpr int TileRows() { return NV >= 5 ? 5 : (NV == 4 ? 6 : 8); }
#else
constexpr int kPanelVectors = 2;
template <int NV>
constexpr int TileRows() { return 6; }  // 12 accumulators
#endif
// The fewest rows any tile has (pass and chunk sizes are multiples of it).
constexpr int kTileRows = TileRows<kPanelVectors>();

// B packed into panels of kPanelVectors * lanes columns: panel j holds columns
// [j * kWidth, (j + 1) * kWidth) of every row k, zero padded to whole vectors past N. The last
// panel's rows are only as wide as the vectors it needs (its row stride is NV * lanes, which
// GemmTile assumes), so a narrow B (e.g. 30 columns) is not padded to a full panel.
template <typename T>
class PackedB {
 public:
  static constexpr int64_t kWidth = kPanelVectors * Simd<T>::kLanes;
  // B(k, n) = b[k * row_stride + n * col_stride].
  void Pack(const T* b, int64_t k, int64_t n, int64_t row_stride, int64_t col_stride) {
    Allocate(k, n);
    PackPanels(b, row_stride, col_stride, 0, panels_);
  }
  // The two halves of Pack, so that the panels of a big B can be packed by several workers:
  // Allocate sizes the (uninitialised) buffer, PackPanels fills panels [j0, j1), their zero
  // padding included.
  void Allocate(int64_t k, int64_t n) {
    constexpr int64_t kL = Simd<T>::kLanes;
    k_ = k;
    n_ = n;
    panels_ = (n + kWidth - 1) / kWidth;
    last_ = panels_ > 0 ? (n - (panels_ - 1) * kWidth + kL - 1) / kL * kL : 0;
    size_ = std::max<int64_t>(0, panels_ - 1) * k * kWidth + k * last_;
    const int64_t size = size_;
    // No value-initialisation: every element is written by PackPanels (a zeroed std::vector
    // wrote the whole buffer twice, which for a 1024 x 1024 filter was most of a batch-1
    // pointwise convolution's time).
    if (size > capacity_) {  // a PackedB reused in a loop keeps its buffer
      data_.reset(static_cast<T*>(::operator new(size * sizeof(T), kAlign)));
      capacity_ = size;
    }
  }
  // Rows may come in blocks: with block_rows > 0, row k starts at
  // b + (k / block_rows) * block_stride + (k % block_rows) * row_stride (a filter read
  // transposed tap by tap); a column-strided B is read with the rows inner, so the lines of a
  // panel's columns are reused across rows.
  void PackPanels(const T* b, int64_t row_stride, int64_t col_stride, int64_t j0, int64_t j1,
                  int64_t block_rows = 0, int64_t block_stride = 0) {
    if (block_rows <= 0) block_rows = std::max<int64_t>(1, k_);
    for (int64_t j = j0; j < j1; ++j) {
      T* d = data_.get() + j * k_ * kWidth;
      const int64_t n0 = j * kWidth, w = std::min(kWidth, n_ - n0);
      const int64_t stride = j + 1 < panels_ ? kWidth : last_;
      for (int64_t kk = 0; kk < k_; ++kk) {
        const T* s = b + (kk / block_rows) * block_stride + (kk % block_rows) * row_stride +
                     n0 * col_stride;
        T* dr = d + kk * stride;
        if (col_stride == 1) {
          std::memcpy(dr, s, sizeof(T) * w);
        } else {
          for (int64_t i = 0; i < w; ++i) dr[i] = s[i * col_stride];
        }
        for (int64_t i = w; i < stride; ++i) dr[i] = T(0);
      }
    }
  }
  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  int64_t panels() const { return panels_; }
  const T* panel(int64_t j) const { return data_.get() + j * k_ * kWidth; }
  int64_t bytes() const { return size_ * static_cast<int64_t>(sizeof(T)); }

 private:
  static constexpr std::align_val_t kAlign{64};
  struct Free {
    void operator()(T* p) const { ::operator delete(p, kAlign); }
  };
  int64_t k_ = 0, n_ = 0, panels_ = 0, last_ = 0, size_ = 0, capacity_ = 0;
  std::unique_ptr<T, Free> data_;
};

// One MR x (NV vectors) tile: C rows [0, MR), columns [0, ncols) (ncols <= NV * lanes).
// Every loop over the tile is unrolled explicitly: GCC's own heuristics stop short of the 25
// accumulators of the 5 x 5 tile, and then keep the whole array in memory (zeroed, spilled and
// reloaded around the K loop); unrolled, they stay in registers (5 x 5 tile, 3 groups, C++
// harness: 3.0-3.1 -> 2.8-2.9 ms).
constexpr int64_t kPrefetchRowBytes = 1024;

template <typename T, int MR, int NV>
inline void GemmTile(int64_t k, const T* a, int64_t a_rs, int64_t a_cs, const T* panel,
                     T* c, int64_t c_rs, int64_t ncols, bool accumulate, bool stream) {
  using S = Simd<T>;
  constexpr int64_t kL = S::kLanes, kW = NV * kL;  // the panel's row stride (see PackedB)
  typename S::V acc[MR][NV];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[m][v] = S::Zero();
  }
  const T* ap[MR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) ap[m] = a + m * a_rs;
#if !defined(__AVX512F__)  // (not measured on an AVX-512 machine)
  if (accumulate && c_rs * static_cast<int64_t>(sizeof(T)) >= kPrefetchRowBytes) {
    // The C tile is read back after the K loop: fetch its lines now, so they arrive while the
    // loop runs. A filter gradient accumulates into a partial sum of KH*KW*C_in x C_out (9
    // MiB for 3x3 512 -> 512, out of cache) whose tile rows are 2 KiB apart, which the
    // hardware prefetchers do not follow: every tile waited for its rows' misses. Measured
    // (C++ harness, two threads, 2-core Zen 3, batch 64, best of 8): 3x3 filter gradients
    // 512 -> 512 at 8x8 1.19x faster, 256 -> 256 at 16x16 1.32x, 128 and 64 channels level,
    // 16 channels 0.91-0.94x: only for rows at least kPrefetchRowBytes apart.
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      __builtin_prefetch(c + m * c_rs, 1, 3);
      if (NV * kL > 64 / static_cast<int64_t>(sizeof(T))) {
        __builtin_prefetch(c + m * c_rs + (NV * kL - 1), 1, 3);
      }
    }
  }
#endif
#pragma GCC unroll 2
  for (int64_t kk = 0; kk < k; ++kk) {
    typename S::V bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = S::Load(panel + kk * kW + v * kL);
    const int64_t off = kk * a_cs;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const typename S::V av = S::Splat(ap[m][off]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[m][v] += av * bv[v];
    }
  }
  // Full vectors, then (when ncols is not a multiple of the lanes) one partial vector.
  const int full = static_cast<int>(ncols / kL), rest = static_cast<int>(ncols % kL);
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
    T* cr = c + m * c_rs;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (v < full) {
        if (stream) {
          S::Stream(cr + v * kL, acc[m][v]);
        } else {
          S::Store(cr + v * kL, accumulate ? S::Load(cr + v * kL) + acc[m][v] : acc[m][v]);
        }
      } else if (v == full && rest > 0) {
        S::StorePartial(cr + v * kL,
                        accumulate ? S::LoadPartial(cr + v * kL, rest) + acc[m][v] : acc[m][v],
                        rest);
      }
    }
  }
}

// Memory a GEMM prefetches while it runs, a slice of each range before every register tile:
// lines the caller reads next, or writes next (prefetched for ownership). The grouped kernels
// walk their tensors in group-sized slices of each pixel, which the hardware prefetchers follow
// poorly; each GEMM of a chunk prefetches its share of the next chunk's operands, and spread over
// the tiles those memory reads overlap the arithmetic. (Measured, C++ harness, [32, 28, 28, 240],
// 1x1, interleaved A/B over 60-200 calls, vs one burst of prefetches at the start of each chunk:
// forward with 8 groups 2.25 -> 1.85 ms, 3 groups ~2% faster than the previous group-by-group
// order; filter gradient 3 groups 4.1 -> 3.6 ms, 8 groups 2.65 -> 2.3 ms.)
struct TilePrefetch {
  struct Range {
    const char* next = nullptr;
    int64_t left = 0;  // bytes still to prefetch
    int64_t step = 0;  // bytes per tile
    bool write = false;
  };
  Range ranges[2];

  // Share `part` of `parts` of the bytes [p, p + bytes), in whole cache lines.
  static Range Share(const void* p, int64_t bytes, int64_t part, int64_t parts, bool write) {
    Range r;
    r.write = write;
    const int64_t share = CeilDiv(bytes, parts * 64) * 64;
    if (bytes > 0 && part * share < bytes) {
      r.next = static_cast<const char*>(p) + part * share;
      r.left = std::min(share, bytes - part * share);
    }
    return r;
  }
  // Spreads what is left over `tiles` tiles.
  void Plan(int64_t tiles) {
    for (Range& r : ranges) r.step = CeilDiv(r.left, std::max<int64_t>(1, tiles) * 64) * 64;
  }
  void Tile() {
    for (Range& r : ranges) {
      if (r.left <= 0) continue;
      const int64_t n = std::min(r.left, r.step);
      if (r.write) {
        for (int64_t b = 0; b < n; b += 64) __builtin_prefetch(r.next + b, 1, 3);
      } else {
        for (int64_t b = 0; b < n; b += 64) __builtin_prefetch(r.next + b, 0, 3);
      }
      r.next += n;
      r.left -= n;
    }
  }
};

template <typename T, int NV>
inline void GemmRows(int64_t m, int64_t k, const T* a, int64_t a_rs, int64_t a_cs,
                     const T* panel, T* c, int64_t c_rs, int64_t ncols, bool accumulate,
                     bool stream, TilePrefetch* prefetch) {
  int64_t i = 0;
  constexpr int kRows = TileRows<NV>();
  for (; i + kRows <= m; i += kRows) {
    if (prefetch != nullptr) prefetch->Tile();
    GemmTile<T, kRows, NV>(k, a + i * a_rs, a_rs, a_cs, panel, c + i * c_rs, c_rs, ncols,
                               accumulate, stream);
  }
  const T* ar = a + i * a_rs;
  T* cr = c + i * c_rs;
  switch (m - i) {
#if defined(__AVX512F__)
    case 7: GemmTile<T, 7, NV>(k, ar, a_rs, a_cs, panel, cr, c_rs, ncols, accumulate, stream); break;
    case 6: GemmTile<T, 6, NV>(k, ar, a_rs, a_cs, panel, cr, c_rs, ncols, accumulate, stream); break;
#endif
    case 5: GemmTile<T, 5, NV>(k, ar, a_rs, a_cs, panel, cr, c_rs, ncols, accumulate, stream); break;
    case 4: GemmTile<T, 4, NV>(k, ar, a_rs, a_cs, panel, cr, c_rs, ncols, accumulate, stream); break;
    case 3: GemmTile<T, 3, NV>(k, ar, a_rs, a_cs, panel, cr, c_rs, ncols, accumulate, stream); break;
    case 2: GemmTile<T, 2, NV>(k, ar, a_rs, a_cs, panel, cr, c_rs, ncols, accumulate, stream); break;
    case 1: GemmTile<T, 1, NV>(k, ar, a_rs, a_cs, panel, cr, c_rs, ncols, accumulate, stream); break;
    default: break;
  }
}

// C[M, N] = A * B (or C += A * B). A(m, k) = a[m * a_rs + k * a_cs]; C row m at c + m * c_rs.
// `stream` (only without `accumulate`, with C rows and column panels vector-aligned) writes the
// full vectors of C with non-temporal stores. `prefetch` (optional) is spread over the tiles.
template <typename T>
void Gemm(int64_t m, const T* a, int64_t a_rs, int64_t a_cs, const PackedB<T>& b, T* c,
          int64_t c_rs, bool accumulate, bool stream = false, TilePrefetch* prefetch = nullptr,
          int64_t j_begin = 0, int64_t j_end = -1) {
  // Only panels [j_begin, j_end) (all by default): the columns they hold.
  constexpr int64_t kL = Simd<T>::kLanes, kW = PackedB<T>::kWidth;
  if (j_end < 0) j_end = b.panels();
  if (prefetch != nullptr) prefetch->Plan((j_end - j_begin) * (m / kTileRows));
  // Rows per pass, so one pass of A stays in L1/L2 while the panels cycle.
  int64_t rows_per_pass = std::max<int64_t>(kTileRows, ((int64_t{1} << 15) / sizeof(T)) /
                                                           std::max<int64_t>(1, b.k()));
#if !defined(__AVX512F__)
  // In whole register tiles: a 3x3 convolution of 128 channels (K = 1152) made 7-row passes,
  // one 6-row tile and one 1-row tile each, and a 1-row tile loads two B vectors for two FMAs.
  // Measured (C++ harness, one thread, 2-core Zen 3, interleaved, best of 8): [16, 32, 32, 128]
  // 3x3 -> 128 forward and input gradient 1.24-1.27x faster; 64 channels (K = 576, 14-row
  // passes) 1.09-1.11x. (The AVX-512 build, with 5- to 8-row tiles, is not measured since.)
  rows_per_pass = rows_per_pass / kTileRows * kTileRows;
#endif
  for (int64_t r0 = 0; r0 < m; r0 += rows_per_pass) {
    const int64_t rows = std::min(rows_per_pass, m - r0);
    for (int64_t j = j_begin; j < j_end; ++j) {
      const int64_t n0 = j * kW, ncols = std::min(kW, b.n() - n0);
      const T* ar = a + r0 * a_rs;
      T* cr = c + r0 * c_rs + n0;
      // As few vectors as the panel's columns need (the last panel may be narrower).
      switch ((ncols + kL - 1) / kL) {
        case 1:
          GemmRows<T, 1>(rows, b.k(), ar, a_rs, a_cs, b.panel(j), cr, c_rs, ncols, accumulate,
                         stream, prefetch);
          break;
        case 2:
          GemmRows<T, 2>(rows, b.k(), ar, a_rs, a_cs, b.panel(j), cr, c_rs, ncols, accumulate,
                         stream, prefetch);
          break;
#if defined(__AVX512F__)
        case 3:
          GemmRows<T, 3>(rows, b.k(), ar, a_rs, a_cs, b.panel(j), cr, c_rs, ncols, accumulate,
                         stream, prefetch);
          break;
        case 4:
          GemmRows<T, 4>(rows, b.k(), ar, a_rs, a_cs, b.panel(j), cr, c_rs, ncols, accumulate,
                         stream, prefetch);
          break;
#endif
        default:
          GemmRows<T, kPanelVectors>(rows, b.k(), ar, a_rs, a_cs, b.panel(j), cr, c_rs, ncols,
                                     accumulate, stream, prefetch);
          break;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Grouped (C / groups > 1): per-group GEMMs.

// Whether input pixels map 1:1 onto output pixels (1x1 kernel, stride 1, no padding).
inline bool IsPointwise(const GroupedConvParams& p) {
  return p.k_h == 1 && p.k_w == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
         p.pad_left == 0;
}

// im2col of output pixels [q0, q1) (flat over N * OH * OW) for group g: buf[q1 - q0, KH*KW*cpg],
// the shuffle and the zero padding applied as index arithmetic.
template <typename T>
void Im2Col(const GroupedConvParams& p, const T* x, const int64_t* src, int64_t q0, int64_t q1,
            int64_t g, T* buf) {
  const int64_t cpg = p.in_per_group(), kc = p.k_h * p.k_w * cpg;
  const int64_t* gsrc = src + g * cpg;
  const bool contiguous = p.shuffle_groups == 1;
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t ow = q % p.out_w, t = q / p.out_w, oh = t % p.out_h, n = t / p.out_h;
    const int64_t ih0 = oh * p.stride_h - p.pad_top, iw0 = ow * p.stride_w - p.pad_left;
    T* d = buf + (q - q0) * kc;
    for (int64_t kh = 0; kh < p.k_h; ++kh) {
      const int64_t ih = ih0 + kh * p.dil_h;
      for (int64_t kw = 0; kw < p.k_w; ++kw, d += cpg) {
        const int64_t iw = iw0 + kw * p.dil_w;
        if (ih < 0 || ih >= p.in_h || iw < 0 || iw >= p.in_w) {
          std::fill(d, d + cpg, T(0));
          continue;
        }
        const T* s = x + ((n * p.in_h + ih) * p.in_w + iw) * p.in_c;
        if (contiguous) {
          std::memcpy(d, s + g * cpg, sizeof(T) * cpg);
        } else {
          for (int64_t ci = 0; ci < cpg; ++ci) d[ci] = s[gsrc[ci]];
        }
      }
    }
  }
}

// Prefetches [p, p + bytes) for reading, all at once (the im2col path of the filter gradient,
// whose GEMMs read a gathered buffer; the in-place paths spread theirs with TilePrefetch).
inline void PrefetchForRead(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 0, 3);
}

// Packed filters at least this big are packed by all workers (see PackGroups).
constexpr int64_t kParallelPackBytes = int64_t{1} << 18;
// Below this many output pixels per worker a one-group forward splits its output channels
// (see ColumnSlices).
constexpr int64_t kFewPixelsPerWorker = 64;

// Pixels per chunk of the grouped kernels: a multiple of the GEMM tile rows, with the chunk's
// operands (`cols` values per pixel) around 64 KiB, so a chunk's input pixels stay in L1/L2
// while every group consumes them.
template <typename T>
int64_t PixelChunk(int64_t cols) {
  const int64_t budget = (int64_t{1} << 16) / static_cast<int64_t>(sizeof(T));
  const int64_t rows = std::max<int64_t>(1, budget / std::max<int64_t>(1, cols));
  return std::max<int64_t>(kTileRows, std::min<int64_t>(512, rows) / kTileRows * kTileRows);
}

// Packs every group's B; big ones (a 1024 x 1024 pointwise filter is 4 MiB) with their panels
// spread over the workers, small ones on the calling thread (a parallel call costs more).
// `pack_panel(g, j)` packs panel j of w[g] (each w[g] a k x n B).
template <typename T, typename PackPanel>
void PackGroups(std::vector<PackedB<T>>& w, int64_t k, int64_t n, const ParallelRunner& runner,
                const PackPanel& pack_panel) {
  int64_t bytes = 0, panels = 0;
  for (PackedB<T>& b : w) {
    b.Allocate(k, n);
    bytes += b.bytes();
    panels += b.panels();
  }
  const int64_t per_group = w.empty() ? 0 : w[0].panels();
  auto pack = [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) pack_panel(i / per_group, i % per_group);
  };
  if (bytes >= kParallelPackBytes && runner.concurrency() > 1 && per_group > 0) {
    runner.For(panels, pack);
  } else if (per_group > 0) {
    pack(0, panels, 0);
  }
}

// How many column slices a forward pass splits its one group's output channels into (1: split
// the pixels, the usual way). A worker of the pixel split streams the whole packed filter for
// its few rows, so with fewer than kFewPixelsPerWorker pixels per worker the output channels are
// split instead (batch-1 inference, 4x4 maps at small batches).
inline int64_t ColumnSlices(int64_t groups, int64_t pixels, int64_t panels, int concurrency) {
  if (groups != 1 || concurrency <= 1 || panels < 2 ||
      pixels >= kFewPixelsPerWorker * concurrency) {
    return 1;
  }
  return std::min<int64_t>(panels, 2 * static_cast<int64_t>(concurrency));
}

template <typename T>
void GroupedForward(const GroupedConvParams& p, const T* x, const T* f, T* y,
                    const ParallelRunner& runner) {
  const int64_t cin = p.in_c, cout = p.out_c, cpg = p.in_per_group(), opg = p.out_per_group();
  const int64_t kc = p.k_h * p.k_w * cpg;
  const std::vector<int64_t> src = ShuffleSourceMap(p);
  const bool in_place = IsPointwise(p) && p.shuffle_groups == 1;
  // W_g[(kh, kw, ci), o] = f[kh, kw, ci, g * opg + o].
  std::vector<PackedB<T>> w(p.groups);
  PackGroups(w, kc, opg, runner, [&](int64_t g, int64_t j) {
    w[g].PackPanels(f + g * opg, cout, 1, j, j + 1);
  });
  const int64_t chunk = PixelChunk<T>(in_place ? cin + cout : kc + cout);
  const bool stream = UseStreamingStores(y, p.output_size(), cout) &&
                      (opg * static_cast<int64_t>(sizeof(T))) % kVectorBytes == 0;
  const int64_t pixels = p.batch * p.out_h * p.out_w;
  const int64_t slices = ColumnSlices(p.groups, pixels, w[0].panels(), runner.concurrency());
  if (slices > 1) {
    // Few pixels (batch-1 inference, 4x4 maps): split the output channels instead of the
    // pixels, so each worker streams its share of the weights once rather than all of them
    // for a few rows. One group here (ColumnSlices).
    const PackedB<T>& b = w[0];
    runner.For(slices, [&](int64_t begin, int64_t end, int) {
      AlignedVector<T> buf;
      for (int64_t s = begin; s < end; ++s) {
        const int64_t j0 = s * b.panels() / slices, j1 = (s + 1) * b.panels() / slices;
        for (int64_t q = 0; q < pixels; q += chunk) {
          const int64_t m = std::min(chunk, pixels - q);
          if (in_place) {
            Gemm<T>(m, x + q * cin, cin, 1, b, y + q * cout, cout, false, stream, nullptr, j0,
                    j1);
          } else {
            buf.resize(static_cast<size_t>(m * kc));
            Im2Col(p, x, src.data(), q, q + m, 0, buf.data());
            Gemm<T>(m, buf.data(), kc, 1, b, y + q * cout, cout, false, stream, nullptr, j0, j1);
          }
        }
      }
      if (stream) StreamFence();
    });
    return;
  }
  const RowBlocks blocks(p.batch, p.out_h, runner.concurrency());
  runner.For(blocks.units, [&](int64_t begin, int64_t end, int) {
    AlignedVector<T> buf;
    for (int64_t u = begin; u < end; ++u) {
      int64_t n, r0, r1;
      blocks.Range(u, &n, &r0, &r1);
      const int64_t q_begin = (n * p.out_h + r0) * p.out_w;
      const int64_t q_end = (n * p.out_h + r1) * p.out_w;
      for (int64_t q = q_begin; q < q_end; q += chunk) {
        const int64_t m = std::min(chunk, q_end - q);
        const int64_t next = in_place ? std::min(chunk, q_end - q - m) : 0;
        for (int64_t g = 0; g < p.groups; ++g) {
          T* yg = y + q * cout + g * opg;
          if (in_place) {
            TilePrefetch prefetch;  // the next chunk's share of x and (unless streaming) y
            prefetch.ranges[0] = TilePrefetch::Share(x + (q + m) * cin, next * cin * sizeof(T), g,
                                                     p.groups, false);
            if (!stream) {
              prefetch.ranges[1] = TilePrefetch::Share(y + (q + m) * cout,
                                                       next * cout * sizeof(T), g, p.groups, true);
            }
            Gemm<T>(m, x + q * cin + g * cpg, cin, 1, w[g], yg, cout, false, stream, &prefetch);
          } else {
            buf.resize(static_cast<size_t>(m * kc));
            Im2Col(p, x, src.data(), q, q + m, g, buf.data());
            Gemm<T>(m, buf.data(), kc, 1, w[g], yg, cout, false, stream);
          }
        }
      }
    }
    if (stream) StreamFence();
  });
}

// The input gradient of a strided convolution (stride above 1 along either side, no shuffle),
// per phase: an input row ih receives only from the kernel rows kh with
// kh * dil_h = ih + pad_top (mod stride_h), and likewise along the width, so the input pixels
// fall into stride_h * stride_w classes, each with its own fixed set of taps (3x3, stride 2:
// 4, 2, 2 and 1 of the 9). Each class's pixels are gathered against only its taps and multiplied
// by a filter packed for them: the all-taps GEMM (GroupedBackpropInput) multiplied zeros for
// three quarters of its K at stride 2. Measured (C++ harness, batch 64, two threads, 2-core
// Zen 3, AVX2): 3x3 128 -> 256 from 34x34 at stride 2 (WRN-16-8) 285 -> 84 ms, 256 -> 512 from
// 18x18 531 -> 124 ms, 1x1 128 -> 256 from 32x32 30.5 -> 12.0 ms. Each pixel's taps are summed in
// the same order as there, so the two agree exactly. Pixels no tap reaches (1x1, stride 2: three
// quarters of them) are zeroed. With a shuffle the all-taps path stays.
template <typename T>
void StridedBackpropInput(const GroupedConvParams& p, const T* dy, const T* f, T* dx,
                          const ParallelRunner& runner) {
  const int64_t cin = p.in_c, cout = p.out_c, cpg = p.in_per_group(), opg = p.out_per_group();
  const int64_t sh = p.stride_h, sw = p.stride_w, classes = sh * sw;
  // Taps of each phase along one side: kk with kk * dil = r (mod stride).
  auto phase_taps = [](int64_t k, int64_t dil, int64_t stride) {
    std::vector<std::vector<int64_t>> taps(stride);
    for (int64_t kk = 0; kk < k; ++kk) taps[(kk * dil) % stride].push_back(kk);
    return taps;
  };
  const auto taps_h = phase_taps(p.k_h, p.dil_h, sh), taps_w = phase_taps(p.k_w, p.dil_w, sw);
  // Per class (rh, rw): the filter rows (a, b, o) of its taps, packed per group:
  // W_g[(a, b, o), ci] = f[taps_h[rh][a], taps_w[rw][b], ci, g * opg + o].
  std::vector<std::vector<PackedB<T>>> wt(classes);
  std::vector<int64_t> class_k(classes);
  for (int64_t rh = 0; rh < sh; ++rh) {
    for (int64_t rw = 0; rw < sw; ++rw) {
      const int64_t cls = rh * sw + rw;
      const auto& th = taps_h[rh];
      const auto& tw = taps_w[rw];
      const int64_t ntaps = static_cast<int64_t>(th.size() * tw.size());
      class_k[cls] = ntaps * opg;
      if (ntaps == 0) continue;
      // The class's taps copied together ([ntaps, cpg, cout], a slice of f each), so the packing
      // reads them at one block stride.
      AlignedVector<T> fc(static_cast<size_t>(ntaps * cpg * cout));
      int64_t t = 0;
      for (int64_t kh : th) {
        for (int64_t kw : tw) {
          std::memcpy(fc.data() + t * cpg * cout, f + (kh * p.k_w + kw) * cpg * cout,
                      sizeof(T) * cpg * cout);
          ++t;
        }
      }
      wt[cls].resize(p.groups);
      PackGroups(wt[cls], class_k[cls], cpg, runner, [&](int64_t g, int64_t j) {
        wt[cls][g].PackPanels(fc.data() + g * opg, 1, cout, j, j + 1, opg, cpg * cout);
      });
    }
  }
  // Per input column / row and tap of its class: the output column / row it reads, or -1.
  auto source_index = [](int64_t in, int64_t pad, int64_t dil, int64_t stride, int64_t out,
                         const std::vector<std::vector<int64_t>>& taps) {
    std::vector<std::vector<int64_t>> src(in);
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t kk : taps[(i + pad) % stride]) {
        const int64_t t = i + pad - kk * dil;
        src[i].push_back(t >= 0 && t / stride < out ? t / stride : -1);
      }
    }
    return src;
  };
  const auto src_h = source_index(p.in_h, p.pad_top, p.dil_h, sh, p.out_h, taps_h);
  const auto src_w = source_index(p.in_w, p.pad_left, p.dil_w, sw, p.out_w, taps_w);
  int64_t max_k = 0;
  for (int64_t k : class_k) max_k = std::max(max_k, k);
  const int64_t chunk = PixelChunk<T>(max_k + cin);
  const RowBlocks blocks(p.batch, p.in_h, runner.concurrency());
  runner.For(blocks.units, [&](int64_t begin, int64_t end, int) {
    AlignedVector<T> col, res;
    std::vector<int64_t> pix;  // the chunk's input pixels (flat over N * H * W)
    for (int64_t u = begin; u < end; ++u) {
      int64_t n, r0, r1;
      blocks.Range(u, &n, &r0, &r1);
      for (int64_t cls = 0; cls < classes; ++cls) {
        const int64_t rh = cls / sw, rw = cls % sw, kc = class_k[cls];
        // The class's first row and column at or after r0 / 0.
        const int64_t ih0 = r0 + ((rh - (r0 + p.pad_top) % sh) % sh + sh) % sh;
        const int64_t iw0 = ((rw - p.pad_left % sw) % sw + sw) % sw;
        int64_t ih = ih0, iw = iw0;
        while (ih < r1 && iw < p.in_w) {
          pix.clear();
          for (; ih < r1 && static_cast<int64_t>(pix.size()) < chunk;) {
            pix.push_back((n * p.in_h + ih) * p.in_w + iw);
            iw += sw;
            if (iw >= p.in_w) iw = iw0, ih += sh;
          }
          const int64_t m = static_cast<int64_t>(pix.size());
          if (kc == 0) {  // no tap reaches these pixels
            for (int64_t i = 0; i < m; ++i) {
              std::fill(dx + pix[i] * cin, dx + (pix[i] + 1) * cin, T(0));
            }
            continue;
          }
          col.resize(static_cast<size_t>(m * kc));
          res.resize(static_cast<size_t>(m * cin));
          for (int64_t g = 0; g < p.groups; ++g) {
            for (int64_t i = 0; i < m; ++i) {
              const int64_t q = pix[i], pw = q % p.in_w, ph = (q / p.in_w) % p.in_h;
              T* d = col.data() + i * kc;
              for (int64_t oh : src_h[ph]) {
                for (int64_t ow : src_w[pw]) {
                  if (oh < 0 || ow < 0) {
                    std::fill(d, d + opg, T(0));
                  } else {
                    std::memcpy(d, dy + ((n * p.out_h + oh) * p.out_w + ow) * cout + g * opg,
                                sizeof(T) * opg);
                  }
                  d += opg;
                }
              }
            }
            Gemm<T>(m, col.data(), kc, 1, wt[cls][g], res.data() + g * cpg, cin, false);
          }
          for (int64_t i = 0; i < m; ++i) {
            std::memcpy(dx + pix[i] * cin, res.data() + i * cin, sizeof(T) * cin);
          }
        }
      }
    }
  });
}

template <typename T>
void GroupedBackpropInput(const GroupedConvParams& p, const T* dy, const T* f, T* dx,
                          const ParallelRunner& runner) {
  const int64_t cin = p.in_c, cout = p.out_c, cpg = p.in_per_group(), opg = p.out_per_group();
  const int64_t taps = p.k_h * p.k_w, kc = taps * opg;
  const bool pointwise = IsPointwise(p);
  const bool direct_out = p.shuffle_groups == 1;
  if (direct_out && (p.stride_h > 1 || p.stride_w > 1)) {
    StridedBackpropInput(p, dy, f, dx, runner);
    return;
  }
  // Wt_g[(kh, kw, o), ci] = f[kh, kw, ci, g * opg + o].
  // Read straight from f, tap by tap (rows o at stride 1, columns ci at stride cout): a
  // transpose through a scratch copy walked f a line per element (a 1024 x 1024 pointwise
  // filter took 6.9 ms at batch 1).
  std::vector<PackedB<T>> wt(p.groups);
  PackGroups(wt, kc, cpg, runner, [&](int64_t g, int64_t j) {
    wt[g].PackPanels(f + g * opg, 1, cout, j, j + 1, opg, cpg * cout);
  });
  std::vector<int64_t> kw_n(p.in_w), kw_k(p.in_w * p.k_w), kw_o(p.in_w * p.k_w);
  for (int64_t iw = 0; iw < p.in_w; ++iw) {
    kw_n[iw] = GradTaps(iw, p.pad_left, p.k_w, p.dil_w, p.stride_w, p.out_w, &kw_k[iw * p.k_w],
                        &kw_o[iw * p.k_w]);
  }
  const RowBlocks blocks(p.batch, p.in_h, runner.concurrency());
  const int64_t chunk = PixelChunk<T>(pointwise ? cin + cout : kc + cin);
  const bool stream = direct_out && UseStreamingStores(dx, p.input_size(), cin) &&
                      (cpg * static_cast<int64_t>(sizeof(T))) % kVectorBytes == 0;
  runner.For(blocks.units, [&](int64_t begin, int64_t end, int) {
    AlignedVector<T> col, out;
    std::vector<int64_t> kh_k(p.k_h), kh_o(p.k_h);
    for (int64_t u = begin; u < end; ++u) {
      int64_t n, r0, r1;
      blocks.Range(u, &n, &r0, &r1);
      const int64_t q_end = (n * p.in_h + r1) * p.in_w;
      for (int64_t q = (n * p.in_h + r0) * p.in_w; q < q_end; q += chunk) {
        const int64_t m = std::min(chunk, q_end - q);
        const int64_t next = pointwise ? std::min(chunk, q_end - q - m) : 0;
        // Result in shuffled channel order: written in place when there is no shuffle.
        T* res = dx + q * cin;
        if (!direct_out) {
          out.resize(static_cast<size_t>(m * cin));
          res = out.data();
        }
        for (int64_t g = 0; g < p.groups; ++g) {
          T* dxg = res + g * cpg;
          if (pointwise) {
            TilePrefetch prefetch;  // the next chunk's share of dy and (unless streaming) dx
            prefetch.ranges[0] = TilePrefetch::Share(dy + (q + m) * cout,
                                                     next * cout * sizeof(T), g, p.groups, false);
            if (!stream) {
              prefetch.ranges[1] = TilePrefetch::Share(dx + (q + m) * cin, next * cin * sizeof(T),
                                                       g, p.groups, true);
            }
            Gemm<T>(m, dy + q * cout + g * opg, cout, 1, wt[g], dxg, cin, false, stream,
                    &prefetch);
            continue;
          }
          // col[pixel, (kh, kw, o)] = dy at the output pixel that tap (kh, kw) of this input
          // pixel feeds, or 0.
          col.resize(static_cast<size_t>(m * kc));
          int64_t cur_ih = -1, nh = 0;
          for (int64_t i = 0; i < m; ++i) {
            const int64_t iw = (q + i) % p.in_w, ih = ((q + i) / p.in_w) % p.in_h;
            if (ih != cur_ih) {
              nh = GradTaps(ih, p.pad_top, p.k_h, p.dil_h, p.stride_h, p.out_h, kh_k.data(),
                            kh_o.data());
              cur_ih = ih;
            }
            T* d = col.data() + i * kc;
            std::fill(d, d + kc, T(0));
            for (int64_t a = 0; a < nh; ++a) {
              for (int64_t j = 0; j < kw_n[iw]; ++j) {
                const int64_t kw = kw_k[iw * p.k_w + j], ow = kw_o[iw * p.k_w + j];
                const T* s = dy + ((n * p.out_h + kh_o[a]) * p.out_w + ow) * cout + g * opg;
                std::memcpy(d + (kh_k[a] * p.k_w + kw) * opg, s, sizeof(T) * opg);
              }
            }
          }
          Gemm<T>(m, col.data(), kc, 1, wt[g], dxg, cin, false, stream);
        }
        if (!direct_out) {
          ChannelShuffle(out.data(), dx + q * cin, m, cin, p.shuffle_groups, /*inverse=*/true);
        }
      }
    }
    if (stream) StreamFence();
  });
}

// Pixels per chunk of the filter gradient (`cols` operand values per pixel, a partial filter
// gradient of `partial` values). Every chunk reads and writes the worker's whole partial sum, so
// where that is bigger than L2 (256 KiB: a 3x3 convolution of 128 channels or more) a chunk is at
// least kBigFilterChunk pixels, for KH*KW*C_in * C_out * chunk FMAs per pass over it. With
// PixelChunk's 6 pixels (the 64 KiB operand budget) a 3x3 512 -> 512 gradient streamed its 9 MiB
// partial sum once per 6 pixels: measured in WRN-16-8's training step (oneDNN off, batch 64, 2-core
// Zen 3), 830-870 ms per call against 300 ms for TensorFlow's kernel.
constexpr int64_t kBigFilterChunk = 128;

template <typename T>
int64_t FilterGradientChunk(int64_t cols, int64_t partial) {
  const int64_t chunk = PixelChunk<T>(cols);
  if (partial * static_cast<int64_t>(sizeof(T)) <= (int64_t{1} << 18)) return chunk;
  return std::max(chunk, CeilDiv(kBigFilterChunk, kTileRows) * kTileRows);
}

template <typename T>
void GroupedBackpropFilter(const GroupedConvParams& p, const T* x, const T* dy, T* df,
                           const ParallelRunner& runner) {
  const int64_t cin = p.in_c, cout = p.out_c, cpg = p.in_per_group(), opg = p.out_per_group();
  const int64_t kc = p.k_h * p.k_w * cpg;
  const std::vector<int64_t> src = ShuffleSourceMap(p);
  const bool in_place = IsPointwise(p) && p.shuffle_groups == 1;
  const int64_t pixels = p.batch * p.out_h * p.out_w;
  const int64_t chunk = FilterGradientChunk<T>(in_place ? cin + cout : kc + cout, kc * cout);
  // Work units are chunks of the flat output pixels (across images: a chunk may be longer than
  // one image's 8x8 map).
  SumOverUnits<T>(runner, CeilDiv(pixels, chunk), kc * cout, df,
                  [&](int64_t begin, int64_t end, T* part) {
    AlignedVector<T> buf;
    PackedB<T> dyg;
    const int64_t q_end = std::min(pixels, end * chunk);
    for (int64_t q = begin * chunk; q < q_end; q += chunk) {
      const int64_t m = std::min(chunk, q_end - q);
      const int64_t next = std::min(chunk, q_end - q - m);
      if (next > 0 && !in_place) {
        PrefetchForRead(dy + (q + m) * cout, next * cout * sizeof(T));
      }
      for (int64_t g = 0; g < p.groups; ++g) {
        // dW_g[(kh, kw, ci), o] += sum over the chunk's pixels of A[pixel, (kh, kw, ci)] *
        // dY[pixel, o]: a GEMM with M = KH*KW*cpg, K = pixels, N = opg.
        dyg.Pack(dy + q * cout + g * opg, m, opg, cout, 1);
        T* dwg = part + g * opg;
        if (in_place) {
          TilePrefetch prefetch;  // the next chunk's share of x and dy
          prefetch.ranges[0] = TilePrefetch::Share(x + (q + m) * cin, next * cin * sizeof(T), g,
                                                   p.groups, false);
          prefetch.ranges[1] = TilePrefetch::Share(dy + (q + m) * cout,
                                                   next * cout * sizeof(T), g, p.groups, false);
          Gemm<T>(kc, x + q * cin + g * cpg, 1, cin, dyg, dwg, cout, true, false, &prefetch);
        } else {
          buf.resize(static_cast<size_t>(m * kc));
          Im2Col(p, x, src.data(), q, q + m, g, buf.data());
          Gemm<T>(kc, buf.data(), 1, kc, dyg, dwg, cout, true);
        }
      }
    }
  });
}

}  // namespace internal

template <typename T>
void GroupedConvForward(const GroupedConvParams& p, const T* x, const T* filter, T* y,
                        const ParallelRunner& runner) {
  if (p.output_size() == 0) return;
  if (p.in_per_group() == 1) {
    internal::DepthwiseForward(p, x, filter, y, runner, internal::DepthwiseInputMap(p));
  } else {
    internal::GroupedForward(p, x, filter, y, runner);
  }
}

template <typename T>
void GroupedConvBackpropInput(const GroupedConvParams& p, const T* dy, const T* filter, T* dx,
                              const ParallelRunner& runner) {
  if (p.input_size() == 0) return;
  if (p.in_per_group() == 1) {
    internal::DepthwiseBackpropInput(p, dy, filter, dx, runner);
  } else {
    internal::GroupedBackpropInput(p, dy, filter, dx, runner);
  }
}

template <typename T>
void GroupedConvBackpropFilter(const GroupedConvParams& p, const T* x, const T* dy, T* dfilter,
                               const ParallelRunner& runner) {
  if (p.output_size() == 0) {
    std::fill(dfilter, dfilter + p.filter_size(), T(0));
    return;
  }
  if (p.in_per_group() == 1) {
    internal::DepthwiseBackpropFilter(p, x, dy, dfilter, runner);
  } else {
    internal::GroupedBackpropFilter(p, x, dy, dfilter, runner);
  }
}

}  // namespace cpu
}  // namespace keras_cnns

#endif  // KERAS_CNNS_CUSTOM_OPS_GROUPED_CONV_CPU_KERNELS_IMPL_H_
