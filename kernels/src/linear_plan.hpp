// Validation and argument building for linear_small_m, shared by the CPU and
// CUDA wrappers the way plan.hpp is for the other ops. The plan owns the
// output and any contiguous copy it had to make.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "common/linear_args.hpp"

namespace mmgen::kernels::plan {

struct Linear {
  LinearArgs args;
  at::Tensor x, weight, bias, out;
};
// x [..., K]; weight [N, K] (rows contiguous, any row stride); bias [N] or
// none; all of one dtype and device. out [..., N] of x's dtype.
Linear linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias);

}  // namespace mmgen::kernels::plan
