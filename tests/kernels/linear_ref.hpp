// Shared by the linear_small_m tests: the float64 reference and its tolerance,
// and the odd shapes every implementation is run over.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "kernel_test_util.hpp"

namespace mmgen::testing {

// at::linear in float64, rounded once to x's dtype.
at::Tensor ref_linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias);

// Float32 accumulation over K terms of size ~1 (K * 1e-6 absolute) plus, for
// 16-bit outputs, two units in the last place of the one rounding.
Tolerance linear_tolerance(at::ScalarType dtype, std::int64_t k);

struct LinearShape {
  std::int64_t m, n, k;
};
// Row counts 1..17 (register tiles of 1..4 rows plus remainders), N not a
// multiple of the 4- and 8-row weight blocks, K with vector tails.
std::vector<LinearShape> odd_linear_shapes();

}  // namespace mmgen::testing
