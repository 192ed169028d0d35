// CPU check of the tiled GEMM formulation the CUDA kernels use for grouped convolutions
// (../grouped_conv_cuda_tiles.h), for machines without a GPU: every block of every grid the CUDA
// launcher would start is emulated (each thread's load step, barrier, each thread's multiply
// step, ..., each thread's store) and the results are compared with a naive float64 reference
// of the forward pass and both gradients. Both tile widths (32 and 64 output columns) and the
// split reduction of the filter gradient are covered.
//
// Build: g++ -std=c++17 -O2 -I.. cuda_tiles_selftest.cc -o cuda_tiles_selftest
// Prints one line per configuration and PASS / FAIL; exit status 0 on PASS.

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "grouped_conv_cuda_tiles.h"
#include "grouped_conv_params.h"
#include "tests/naive_reference.h"

using keras_cnns::GroupedConvParams;
using keras_cnns::MakeGroupedConvParams;
namespace tiles = keras_cnns::cuda::tiles;
using keras_cnns::cuda::KernelParams;
using keras_cnns::cuda::ToKernelParams;
using keras_cnns::testing::Reference;

namespace {

// Runs every block of the grid LaunchTiled would use for `op` (split: reduction over blocks).
template <class Shape, class Op>
void EmulateGrid(Op op, int64_t groups, bool split) {
  using T = float;
  using Idx = int64_t;
  const tiles::GridPlan<Shape> plan(op.M(), op.N(), op.K(), groups, split);
  if (!plan.fits) std::printf("grid too large\n");
  if (plan.empty || !plan.fits) return;
  std::vector<T> as(Shape::kASize), bs(Shape::kBSize);
  std::vector<T[4][4]> acc(Shape::kThreads);
  for (int64_t bz = 0; bz < plan.splits; ++bz)
    for (int64_t by = 0; by < groups * plan.n_tiles; ++by)
      for (int64_t bx = 0; bx < plan.m_tiles; ++bx) {
        const tiles::BlockWork<Shape, Idx> work(bx, by, bz, plan.n_tiles, plan.k_chunk, op.K());
        op.g = work.g;
        tiles::EmulateBlock<Shape>(op, work, as.data(), bs.data(), acc.data());
      }
}

template <class Op>
void EmulateAnyWidth(const Op& op, int64_t groups, bool split, int force_width) {
  const int width = force_width ? force_width : tiles::ColumnsPerBlock(op.N());
  if (width == 32) {
    EmulateGrid<tiles::Tile<64, 32, 16>>(op, groups, split);
  } else {
    EmulateGrid<tiles::Tile<64, 64, 16>>(op, groups, split);
  }
}

double MaxRelErr(const std::vector<float>& a, const std::vector<double>& b) {
  double scale = 1.0, err = 0.0;
  for (double v : b) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    err = std::max(err, std::fabs(a[i] - b[i]));
  }
  return err / scale;
}

struct Config {
  int64_t n, h, w, c, k, s, d;
  bool same;
  int64_t groups, mult, shuffle;
};

bool Check(const Config& cfg, int force_width, std::mt19937* rng) {
  GroupedConvParams p;
  const int64_t cout = cfg.c * cfg.mult;
  const std::string err = MakeGroupedConvParams(cfg.n, cfg.h, cfg.w, cfg.c, cfg.k, cfg.k,
                                                cfg.c / cfg.groups, cout, cfg.s, cfg.s, cfg.d,
                                                cfg.d, cfg.same, cfg.groups, cfg.shuffle, &p);
  if (!err.empty()) {
    std::printf("bad config: %s\n", err.c_str());
    return false;
  }
  // Float operands; the reference sees exactly the same values in float64.
  std::normal_distribution<float> nd;
  std::vector<float> x(p.input_size()), f(p.filter_size()), dy(p.output_size());
  for (auto& v : x) v = nd(*rng);
  for (auto& v : f) v = nd(*rng);
  for (auto& v : dy) v = nd(*rng);
  std::vector<double> y_ref, dx_ref, df_ref;
  Reference(p, {x.begin(), x.end()}, {f.begin(), f.end()}, {dy.begin(), dy.end()}, &y_ref,
            &dx_ref, &df_ref);

  const KernelParams<int64_t> kp = ToKernelParams<int64_t>(p);
  std::vector<float> y(p.output_size(), NAN), dx(p.input_size(), NAN), df(p.filter_size(), 0.f);
  EmulateAnyWidth(tiles::ForwardOp<float, int64_t>{kp, x.data(), f.data(), y.data(), 0},
                  p.groups, false, force_width);
  EmulateAnyWidth(tiles::BackpropInputOp<float, int64_t>{kp, dy.data(), f.data(), dx.data(), 0},
                  p.groups, false, force_width);
  EmulateAnyWidth(tiles::BackpropFilterOp<float, int64_t>{kp, x.data(), dy.data(), df.data(), 0},
                  p.groups, true, force_width);
  const double ey = MaxRelErr(y, y_ref), edx = MaxRelErr(dx, dx_ref), edf = MaxRelErr(df, df_ref);
  const bool ok = ey < 1e-5 && edx < 1e-5 && edf < 1e-5;
  std::printf("N=%ld %ldx%ld C=%ld k=%ld s=%ld d=%ld %s groups=%ld mult=%ld shuffle=%ld width=%s: "
              "y %.1e dx %.1e df %.1e %s\n",
              long(cfg.n), long(cfg.h), long(cfg.w), long(cfg.c), long(cfg.k), long(cfg.s),
              long(cfg.d), cfg.same ? "SAME" : "VALID", long(cfg.groups), long(cfg.mult),
              long(cfg.shuffle), force_width == 32 ? "32" : force_width == 64 ? "64" : "auto", ey,
              edx, edf, ok ? "ok" : "FAIL");
  return ok;
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  const std::vector<Config> configs = {
      // The grouped configurations of gpu_check/check_cuda_kernels.py.
      {2, 8, 8, 24, 1, 1, 1, true, 3, 1, 3},
      {2, 8, 8, 32, 1, 1, 1, true, 8, 1, 1},
      {2, 9, 9, 16, 3, 2, 1, true, 4, 2, 2},
      {1, 12, 10, 12, 3, 1, 2, false, 2, 1, 3},
      {2, 6, 6, 6, 3, 1, 1, true, 1, 2, 1},
      {2, 7, 9, 10, 5, 2, 1, true, 5, 1, 5},
      // More: ragged tiles in every dimension, wide groups (two column tiles), long reductions
      // (several split blocks and several K slices per block), dilation + stride.
      {3, 11, 13, 40, 1, 1, 1, true, 2, 2, 4},
      {1, 5, 7, 130, 1, 1, 1, false, 1, 1, 1},
      {2, 10, 10, 48, 3, 2, 2, true, 3, 1, 2},
      {4, 17, 15, 18, 3, 1, 1, false, 3, 3, 3},
      {1, 28, 28, 240, 1, 1, 1, true, 3, 1, 1},
      {1, 28, 28, 240, 1, 1, 1, true, 8, 1, 3},
  };
  bool ok = true;
  for (const Config& cfg : configs) {
    for (int width : {0, 32, 64}) ok = Check(cfg, width, &rng) && ok;
  }
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
