// Framework-free self-test of the CPU kernels against a naive reference, for any ISA flags:
//
//   g++ -std=c++17 -O2 [-mavx2 -mfma | -mavx512f ... | nothing] -I.. cpu_kernels_selftest.cc
//   ./a.out            # prints one line per configuration, exits 1 on a mismatch
//
// tests/ops runs it built with the baseline ISA, with AVX2 and (where the CPU has it) AVX-512,
// so every vector width's code path (tile sizes, partial vectors, streaming stores) is covered
// whatever machine the suite runs on.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

// Production builds use non-temporal stores only for outputs of 1 GiB and more; lower the
// threshold so that the > 16 MiB cases below take (and check) that code path.
#define KCNN_STREAMING_STORE_BYTES (int64_t{16} << 20)
#include "grouped_conv_cpu_kernels_impl.h"
#include "tests/naive_reference.h"

using keras_cnns::GroupedConvParams;
using keras_cnns::testing::Reference;

namespace {

// Two real threads, to exercise the per-worker partial sums and the task split.
class TwoThreads final : public keras_cnns::cpu::ParallelRunner {
 public:
  int num_workers() const override { return 2; }
  int concurrency() const override { return 2; }
  void For(int64_t total, const std::function<void(int64_t, int64_t, int)>& fn) const override {
    if (total <= 0) return;
    const int64_t half = total / 2;
    std::thread t([&] { if (half > 0) fn(0, half, 1); });
    fn(half, total, 0);
    t.join();
  }
};

// Three workers that take the units one at a time in a shuffled order (on the calling thread):
// which worker runs which unit changes with the seed, as thread timing changes it in a real pool.
class ShuffledRunner final : public keras_cnns::cpu::ParallelRunner {
 public:
  explicit ShuffledRunner(uint32_t seed) : seed_(seed) {}
  int num_workers() const override { return 3; }
  int concurrency() const override { return 2; }
  void For(int64_t total, const std::function<void(int64_t, int64_t, int)>& fn) const override {
    std::vector<int64_t> order(static_cast<size_t>(std::max<int64_t>(total, 0)));
    for (int64_t i = 0; i < total; ++i) order[i] = i;
    std::mt19937 rng(seed_);
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t i = 0; i < total; ++i) {
      fn(order[i], order[i] + 1, static_cast<int>(rng() % num_workers()));
    }
  }

 private:
  uint32_t seed_;
};

// 64-byte aligned storage, like TensorFlow's tensors (so the streaming-store paths are taken).
template <typename T>
struct Aligned {
  explicit Aligned(const std::vector<double>& v) : Aligned(v.size(), T(0)) {
    for (size_t i = 0; i < v.size(); ++i) ptr[i] = static_cast<T>(v[i]);
  }
  Aligned(size_t n, T fill) : n(n) {
    ptr = static_cast<T*>(std::aligned_alloc(64, ((n * sizeof(T) + 63) / 64) * 64 + 64));
    for (size_t i = 0; i < n; ++i) ptr[i] = fill;
  }
  ~Aligned() { std::free(ptr); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  T* data() const { return ptr; }
  size_t size() const { return n; }
  T operator[](size_t i) const { return ptr[i]; }
  T* ptr;
  size_t n;
};

template <typename Buf>
double MaxError(const Buf& got, const std::vector<double>& want) {
  double err = 0.0, scale = 1.0;
  for (double v : want) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  return err / scale;
}

template <typename T>
bool Check(const GroupedConvParams& p, const char* name, double tol, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::vector<double> x(p.input_size()), f(p.filter_size()), dy(p.output_size());
  for (auto& v : x) v = nd(rng);
  for (auto& v : f) v = nd(rng);
  for (auto& v : dy) v = nd(rng);
  std::vector<double> y_ref, dx_ref, df_ref;
  Reference(p, x, f, dy, &y_ref, &dx_ref, &df_ref);
  Aligned<T> xt(x), ft(f), dyt(dy);
  // Outputs start as NaN: every element must be written by the kernels.
  Aligned<T> y(p.output_size(), NAN), dx(p.input_size(), NAN), df(p.filter_size(), NAN);
  TwoThreads runner;
  keras_cnns::cpu::GroupedConvForward<T>(p, xt.data(), ft.data(), y.data(), runner);
  keras_cnns::cpu::GroupedConvBackpropInput<T>(p, dyt.data(), ft.data(), dx.data(), runner);
  keras_cnns::cpu::GroupedConvBackpropFilter<T>(p, xt.data(), dyt.data(), df.data(), runner);
  const double e[3] = {MaxError(y, y_ref), MaxError(dx, dx_ref), MaxError(df, df_ref)};
  const bool ok = e[0] < tol && e[1] < tol && e[2] < tol;
  std::printf("%-6s %-44s y %.1e dx %.1e df %.1e %s\n", sizeof(T) == 4 ? "float" : "double", name,
              e[0], e[1], e[2], ok ? "ok" : "FAIL");
  return ok;
}

// The filter gradient must not depend on which worker ran which unit: bit-identical results
// from differently shuffled runners (same worker count).
template <typename T>
bool CheckDeterministic(const GroupedConvParams& p, const char* name, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::vector<double> x(p.input_size()), dy(p.output_size());
  for (auto& v : x) v = nd(rng);
  for (auto& v : dy) v = nd(rng);
  Aligned<T> xt(x), dyt(dy), first(p.filter_size(), NAN);
  keras_cnns::cpu::GroupedConvBackpropFilter<T>(p, xt.data(), dyt.data(), first.data(),
                                                ShuffledRunner(1));
  bool ok = true;
  for (uint32_t s = 2; s <= 4; ++s) {
    Aligned<T> again(p.filter_size(), NAN);
    keras_cnns::cpu::GroupedConvBackpropFilter<T>(p, xt.data(), dyt.data(), again.data(),
                                                  ShuffledRunner(s));
    ok &= std::memcmp(first.data(), again.data(), sizeof(T) * p.filter_size()) == 0;
  }
  std::printf("%-6s %-44s df bit-identical across schedules %s\n", "float", name,
              ok ? "ok" : "FAIL");
  return ok;
}

}  // namespace

int main() {
  struct Case {
    int64_t n, h, w, c, k, cout, s, d, groups, shuffle;
    bool same;
  };
  const Case cases[] = {
      {2, 9, 7, 24, 3, 24, 1, 1, 24, 1, true},     // depthwise
      {2, 9, 7, 24, 3, 24, 1, 1, 24, 3, true},     // + shuffle (bi as forward, inverse map)
      {2, 9, 8, 40, 3, 40, 2, 1, 40, 4, true},     // strided, 2.5 AVX-512 vectors
      {1, 10, 9, 12, 5, 36, 1, 2, 12, 2, false},   // multiplier 3, dilation
      {2, 8, 8, 70, 3, 70, 1, 1, 70, 7, true},     // odd group count, scalar tail
      {2, 7, 7, 48, 1, 48, 1, 1, 3, 3, true},      // grouped 1x1 + shuffle
      {2, 7, 7, 240, 1, 240, 1, 1, 8, 1, true},    // grouped 1x1, partial vectors (30 / group)
      {2, 9, 9, 24, 3, 48, 2, 1, 4, 2, true},      // grouped 3x3, strided
      {1, 8, 9, 6, 3, 10, 1, 2, 2, 3, false},      // grouped, dilated, VALID
      {1, 6, 6, 5, 3, 7, 1, 1, 1, 1, true},        // plain convolution
      // The depthwise width tiles (3-wide kernels, dilation 1): 8-pixel tiles and the 4 / 2 / 1
      // remainders, two-vector and one-vector passes, strides 1 and 2, VALID rows of 3 and 2.
      {2, 6, 23, 40, 3, 40, 1, 1, 40, 1, true},    // 21 interior pixels: 8 + 8 + 4 + 1
      {2, 5, 35, 56, 3, 56, 2, 1, 56, 2, true},    // strided + shuffle, 3.5 AVX-512 vectors
      {1, 5, 16, 24, 3, 48, 1, 1, 24, 1, false},   // multiplier 2, VALID: 14 = 8 + 4 + 2
      {1, 4, 3, 16, 3, 16, 1, 1, 16, 1, false},    // one output pixel per row
      {1, 4, 2, 16, 3, 16, 1, 1, 16, 1, true},     // no interior pixel
      {2, 6, 9, 60, 3, 60, 1, 1, 60, 3, true},     // ShuffleNet g=3's 60 channels: masked tail
      // One-group forwards with few pixels split the output channels (ColumnSlices); filters of
      // 256 KiB and more are packed by both workers (PackWeights).
      {1, 4, 4, 72, 1, 200, 1, 1, 1, 1, true},     // pointwise, partial last panel
      {1, 5, 6, 20, 3, 100, 2, 1, 1, 1, true},     // 3x3 strided (im2col)
      // Strided input gradients go per phase class (StridedBackpropInput): 4, 2, 2 and 1 taps at
      // 3x3 stride 2; none for three quarters of the pixels of a 1x1 at stride 2; stride 3;
      // dilation.
      {2, 11, 11, 16, 3, 24, 2, 1, 1, 1, false},   // WRN-16-8's padded-then-VALID downsampling
      {2, 8, 9, 12, 1, 20, 2, 1, 1, 1, false},     // 1x1 stride 2: pixels no tap reaches
      {1, 10, 7, 8, 3, 8, 3, 1, 1, 1, true},       // stride 3
      {1, 9, 10, 12, 5, 18, 2, 1, 3, 1, true},     // 5x5 grouped
      {1, 11, 12, 8, 3, 16, 2, 2, 2, 1, true},     // stride 2 and dilation 2: one class only
      {1, 13, 13, 8, 3, 16, 2, 1, 2, 2, true},     // with a shuffle: the all-taps path
      {1, 4, 4, 512, 1, 136, 1, 1, 1, 1, true},    // both: few pixels, parallel packing
      {3, 8, 8, 520, 1, 130, 1, 1, 1, 1, true},    // parallel packing, the pixel split
      // Partial filter gradients over 256 KiB take chunks of >= 128 pixels (FilterGradientChunk),
      // across image boundaries.
      {2, 5, 5, 64, 3, 128, 1, 1, 1, 1, true},     // one chunk
      {6, 7, 7, 64, 3, 128, 1, 1, 1, 1, false},    // VALID, three chunks over six images
      // Large enough (> 16 MiB) for the streaming-store paths of the forward and input gradient.
      {24, 28, 28, 240, 3, 240, 1, 1, 240, 3, true},
      {24, 28, 28, 240, 1, 240, 1, 1, 3, 1, true},
  };
  bool ok = true;
  uint32_t seed = 1;
  for (const Case& c : cases) {
    GroupedConvParams p;
    const std::string err = keras_cnns::MakeGroupedConvParams(
        c.n, c.h, c.w, c.c, c.k, c.k, c.c / c.groups, c.cout, c.s, c.s, c.d, c.d, c.same,
        c.groups, c.shuffle, &p);
    if (!err.empty()) {
      std::printf("bad case: %s\n", err.c_str());
      return 2;
    }
    char name[128];
    std::snprintf(name, sizeof(name), "%ldx%ldx%ldx%ld k%ld->%ld s%ld d%ld g%ld sh%ld %s",
                  (long)c.n, (long)c.h, (long)c.w, (long)c.c, (long)c.k, (long)c.cout, (long)c.s,
                  (long)c.d, (long)c.groups, (long)c.shuffle, c.same ? "SAME" : "VALID");
    const bool big = c.n > 4;
    ok &= Check<float>(p, name, big ? 2e-4 : 1e-4, seed++);
    if (!big) ok &= Check<double>(p, name, 1e-10, seed++);
  }
  {
    // Depthwise rows, grouped and plain pixel chunks; the last two filters are big enough for the
    // final sum to be split over the workers.
    const Case det[] = {{8, 9, 7, 24, 3, 24, 1, 1, 24, 1, true},
                        {16, 14, 14, 48, 1, 48, 1, 1, 3, 3, true},
                        {16, 7, 7, 64, 3, 128, 1, 1, 1, 1, false},
                        {12, 6, 6, 384, 3, 384, 1, 1, 1, 1, true}};
    for (const Case& c : det) {
      GroupedConvParams p;
      keras_cnns::MakeGroupedConvParams(c.n, c.h, c.w, c.c, c.k, c.k, c.c / c.groups, c.cout, c.s,
                                        c.s, c.d, c.d, c.same, c.groups, c.shuffle, &p);
      char name[128];
      std::snprintf(name, sizeof(name), "%ldx%ldx%ldx%ld k%ld->%ld g%ld", (long)c.n, (long)c.h,
                    (long)c.w, (long)c.c, (long)c.k, (long)c.cout, (long)c.groups);
      ok &= CheckDeterministic<float>(p, name, seed++);
    }
  }
  {
    // The large cases above must have taken the streaming-store path.
    Aligned<float> probe(size_t{24} * 28 * 28 * 240, 0.f);
    if (keras_cnns::cpu::internal::kVectorBytes > 16 &&
        !keras_cnns::cpu::internal::UseStreamingStores(probe.data(), probe.size(), 240)) {
      std::printf("streaming stores were not exercised\n");
      ok = false;
    }
  }
  std::printf("%s (vector width %d bytes)\n", ok ? "PASS" : "FAIL",
              keras_cnns::cpu::internal::kVectorBytes);
  return ok ? 0 : 1;
}
