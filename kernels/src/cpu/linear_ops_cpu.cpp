// CPU implementation of linear_small_m: validate (linear_plan), widen x to
// float32 once, then split the output features over libtorch's intra-op
// thread pool, one contiguous range of weight rows per thread. This file is
// built with OpenMP (kernels/CMakeLists.txt): without it at::parallel_for runs
// everything on the calling thread.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "cpu/linear_loops.hpp"
#include "linear_plan.hpp"
#include "op_impls.hpp"

namespace mmgen::kernels::cpu {

at::Tensor linear_small_m(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  auto p = plan::linear(x, weight, bias);
  const LinearArgs& a = p.args;
  if (a.m == 0 || a.n == 0) return p.out;
  const LinearLoops& loops = linear_loops();
  const float* x32 = static_cast<const float*>(a.x);
  std::int64_t xs = a.x_stride;
  thread_local std::vector<float> widened;  // reused: decode calls this ~100 times a step
  if (a.dtype == DType::f16 || (a.dtype == DType::bf16 && !loops.native_bf16)) {
    widened.resize(std::size_t(a.m * a.k));
    loops.widen(a, widened.data());
    x32 = widened.data();
    xs = a.k;
  }
  // Work items of 16 weight rows (the loops' reduction group); ~32K weight
  // elements per task at least, so small matrices stay on one thread.
  constexpr std::int64_t rows_per_item = 16;
  const std::int64_t items = (a.n + rows_per_item - 1) / rows_per_item;
  const std::int64_t grain = std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(1, rows_per_item * a.k));
  at::parallel_for(0, items, grain, [&](std::int64_t b, std::int64_t e) {
    loops.linear(a, x32, xs, b * rows_per_item, std::min(e * rows_per_item, a.n));
  });
  return p.out;
}

}  // namespace mmgen::kernels::cpu
