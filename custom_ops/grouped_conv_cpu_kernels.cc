// Explicit instantiations of the framework-free CPU kernels (grouped_conv_cpu_kernels_impl.h).
//
// Built as its own translation unit, without TensorFlow headers, so it can take the CPU's
// vector ISA flags (-mavx2 -mfma, chosen at build time from /proc/cpuinfo) and hidden
// visibility (its template instantiations never clash with TensorFlow's own symbols).

#include "grouped_conv_cpu_kernels_impl.h"

namespace keras_cnns {
namespace cpu {

#define KCNN_INSTANTIATE(T)                                                                    \
  template void GroupedConvForward<T>(const GroupedConvParams&, const T*, const T*, T*,        \
                                      const ParallelRunner&);                                  \
  template void GroupedConvBackpropInput<T>(const GroupedConvParams&, const T*, const T*, T*,  \
                                            const ParallelRunner&);                            \
  template void GroupedConvBackpropFilter<T>(const GroupedConvParams&, const T*, const T*, T*, \
                                             const ParallelRunner&);

KCNN_INSTANTIATE(float)
KCNN_INSTANTIATE(double)

#undef KCNN_INSTANTIATE

}  // namespace cpu
}  // namespace keras_cnns
