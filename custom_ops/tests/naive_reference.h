// Naive float64 reference of the op shared by the C++ self-tests: y = conv(shuffle(x)) and both
// gradients for the output gradient dy, straight from the definition (no tiling, no shortcuts).

#ifndef KERAS_CNNS_CUSTOM_OPS_TESTS_NAIVE_REFERENCE_H_
#define KERAS_CNNS_CUSTOM_OPS_TESTS_NAIVE_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "grouped_conv_params.h"

namespace keras_cnns {
namespace testing {

inline void Reference(const GroupedConvParams& p, const std::vector<double>& x,
                      const std::vector<double>& f, const std::vector<double>& dy,
                      std::vector<double>* y, std::vector<double>* dx, std::vector<double>* df) {
  const int64_t cpg = p.in_per_group(), opg = p.out_per_group();
  y->assign(p.output_size(), 0.0);
  dx->assign(p.input_size(), 0.0);
  df->assign(p.filter_size(), 0.0);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.out_h; ++oh)
      for (int64_t ow = 0; ow < p.out_w; ++ow)
        for (int64_t o = 0; o < p.out_c; ++o) {
          const int64_t out = ((n * p.out_h + oh) * p.out_w + ow) * p.out_c + o;
          for (int64_t kh = 0; kh < p.k_h; ++kh)
            for (int64_t kw = 0; kw < p.k_w; ++kw) {
              const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
              const int64_t iw = ow * p.stride_w - p.pad_left + kw * p.dil_w;
              if (ih < 0 || ih >= p.in_h || iw < 0 || iw >= p.in_w) continue;
              for (int64_t ci = 0; ci < cpg; ++ci) {
                const int64_t j = (o / opg) * cpg + ci;
                const int64_t c = ShuffleSource(j, p.in_c, p.shuffle_groups);
                const int64_t xi = ((n * p.in_h + ih) * p.in_w + iw) * p.in_c + c;
                const int64_t fi = ((kh * p.k_w + kw) * cpg + ci) * p.out_c + o;
                (*y)[out] += x[xi] * f[fi];
                (*dx)[xi] += dy[out] * f[fi];
                (*df)[fi] += dy[out] * x[xi];
              }
            }
        }
}

}  // namespace testing
}  // namespace keras_cnns

#endif  // KERAS_CNNS_CUSTOM_OPS_TESTS_NAIVE_REFERENCE_H_
