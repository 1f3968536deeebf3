#include "linear_ref.hpp"

#include <ATen/ops/linear.h>

namespace mmgen::testing {

at::Tensor ref_linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  std::optional<at::Tensor> b;
  if (bias.has_value() && bias->defined()) b = bias->to(at::kCPU, at::kDouble);
  return at::linear(x.to(at::kCPU, at::kDouble), weight.to(at::kCPU, at::kDouble), b).to(x.scalar_type());
}

Tolerance linear_tolerance(at::ScalarType dtype, std::int64_t k) {
  const double acc = 1e-6 * double(k > 0 ? k : 1);
  switch (dtype) {
    case at::kBFloat16: return {acc, 2.0 / 256};
    case at::kHalf: return {acc, 2.0 / 2048};
    default: return {acc, 1e-5};
  }
}

std::vector<LinearShape> odd_linear_shapes() {
  return {{1, 1, 1},   {1, 7, 5},    {1, 19, 33},  {2, 9, 16},   {3, 33, 17},   {4, 12, 64},
          {5, 9, 100}, {7, 41, 31},  {8, 8, 129},  {13, 5, 47},  {16, 37, 129}, {17, 64, 200},
          {1, 70, 768}, {6, 70, 300}};
}

}  // namespace mmgen::testing
