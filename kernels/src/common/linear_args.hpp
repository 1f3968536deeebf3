// Argument struct of the skinny linear op (mmgen::ops::linear_small_m): the
// decode-time matmuls, where a handful of token rows meet a whole weight
// matrix and the cost is reading that matrix once. Same conventions as
// op_args.hpp: raw pointers, sizes and strides in elements, no torch and no
// CUDA; filled by src/linear_plan.cpp and read by the CPU loops
// (cpu/linear_loops_impl.cpp) and the CUDA kernel (cuda/linear.cu).
#pragma once

#include <cstdint>

#include "common/op_args.hpp"

namespace mmgen::kernels {

// out[i, j] = round(sum_k x[i, k] * weight[j, k] + bias[j]) for i < m, j < n:
// products and sums in float32, one rounding to dtype at the end.
struct LinearArgs {
  DType dtype = DType::f32;       // x, weight, bias and out
  const void* x = nullptr;        // [m, k], rows x_stride apart, each contiguous
  std::int64_t x_stride = 0;
  const void* weight = nullptr;   // [n, k], rows w_stride apart, each contiguous
  std::int64_t w_stride = 0;
  const void* bias = nullptr;     // [n] contiguous, or nullptr
  void* out = nullptr;            // [m, n], contiguous
  std::int64_t m = 0, n = 0, k = 0;
};

}  // namespace mmgen::kernels
