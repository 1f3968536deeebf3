// Builders of the cos/sin tables that rope() takes, following the references'
// arithmetic (dtype of the angle computation, order of operations).
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/pow.h>

#include <algorithm>
#include <vector>

#include "mmgen/ops.hpp"

namespace mmgen::ops {
namespace {

void check_compute(at::ScalarType compute, const char* fn) {
  TORCH_CHECK(compute == at::kFloat || compute == at::kDouble, fn, ": compute must be float32 or float64, got ",
              compute);
}

// 1 / theta^(arange(0, d, 2) / d) in `compute` precision.
at::Tensor inv_freq_in(std::int64_t rot_dim, double theta, at::ScalarType compute, const char* fn) {
  TORCH_CHECK(rot_dim > 0 && rot_dim % 2 == 0, fn, ": rotary dims must be positive and even, got ", rot_dim);
  TORCH_CHECK(theta > 0.0, fn, ": theta must be positive, got ", theta);
  const at::Tensor idx = at::arange(0, rot_dim, 2, at::TensorOptions().dtype(at::kLong)).to(compute);
  return at::pow(theta, idx.div(double(rot_dim))).reciprocal();
}

at::Tensor angles_of(const at::Tensor& positions, const at::Tensor& inv_freq, at::ScalarType compute) {
  // outer(pos, inv_freq): one multiplication per element, as transformers' matmul with K = 1.
  return positions.to(inv_freq.device(), compute).unsqueeze(-1).mul(inv_freq);
}

RopeTables tables_of(const at::Tensor& angles) {
  return RopeTables{angles.cos().to(at::kFloat).contiguous(), angles.sin().to(at::kFloat).contiguous()};
}

}  // namespace

at::Tensor rope_inv_freq(std::int64_t rot_dim, double theta, at::ScalarType compute) {
  check_compute(compute, "rope_inv_freq");
  return inv_freq_in(rot_dim, theta, compute, "rope_inv_freq").to(at::kFloat);
}

RopeTables rope_tables(const at::Tensor& positions, std::int64_t rot_dim, double theta, at::ScalarType compute) {
  check_compute(compute, "rope_tables");
  TORCH_CHECK(positions.dim() == 1, "rope_tables: positions must be [N], got ", positions.sizes());
  const at::Tensor inv = inv_freq_in(rot_dim, theta, compute, "rope_tables").to(positions.device());
  return tables_of(angles_of(positions, inv, compute));
}

RopeTables rope_tables_multi_axis(const at::Tensor& positions, c10::IntArrayRef axes_dims, double theta,
                                  at::ScalarType compute) {
  const char* fn = "rope_tables_multi_axis";
  check_compute(compute, fn);
  TORCH_CHECK(positions.dim() == 2 && positions.size(1) == std::int64_t(axes_dims.size()), fn,
              ": positions must be [N, A] with A = ", axes_dims.size(), " axes, got ", positions.sizes());
  std::vector<at::Tensor> parts;
  for (std::size_t a = 0; a < axes_dims.size(); ++a) {
    const at::Tensor inv = inv_freq_in(axes_dims[a], theta, compute, fn).to(positions.device());
    parts.push_back(angles_of(positions.select(1, std::int64_t(a)), inv, compute));
  }
  return tables_of(at::cat(parts, 1));
}

RopeTables rope_tables_mrope(const at::Tensor& positions, std::int64_t rot_dim, double theta,
                             c10::IntArrayRef sections, bool interleaved, at::ScalarType compute) {
  const char* fn = "rope_tables_mrope";
  check_compute(compute, fn);
  TORCH_CHECK(positions.dim() == 2 && positions.size(0) == 3, fn, ": positions must be [3, N], got ",
              positions.sizes());
  TORCH_CHECK(sections.size() == 3, fn, ": sections must have 3 entries (t, h, w), got ", sections.size());
  const std::int64_t F = rot_dim / 2;
  TORCH_CHECK(sections[0] >= 0 && sections[1] >= 0 && sections[2] >= 0 && sections[0] + sections[1] + sections[2] == F,
              fn, ": sections ", sections, " must sum to rot_dim / 2 = ", F);
  const at::Tensor inv = inv_freq_in(rot_dim, theta, compute, fn).to(positions.device());
  const at::Tensor freqs = angles_of(positions, inv, compute);  // [3, N, F]
  at::Tensor out;
  if (!interleaved) {
    const std::int64_t s0 = sections[0], s1 = s0 + sections[1];
    out = at::cat({freqs.select(0, 0).slice(1, 0, s0), freqs.select(0, 1).slice(1, s0, s1),
                   freqs.select(0, 2).slice(1, s1, F)},
                  1);
  } else {
    out = freqs.select(0, 0).clone();
    for (std::int64_t axis = 1; axis <= 2; ++axis) {
      const std::int64_t end = std::min<std::int64_t>(3 * sections[std::size_t(axis)], F);
      if (end > axis) out.slice(1, axis, end, 3).copy_(freqs.select(0, axis).slice(1, axis, end, 3));
    }
  }
  return tables_of(out);
}

}  // namespace mmgen::ops
