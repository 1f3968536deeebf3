// Shared helpers of the scheduler tests: the fixture folder, the reference
// tensors, and error measures that also print what they measured so a run
// shows the parity figures.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/equal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <string>

#include "mmgen/io/checkpoint.hpp"

namespace mmgen::diffusion::test {

inline std::filesystem::path fixtures() { return MMGEN_SCHEDULER_FIXTURES; }

inline const io::Checkpoint& reference() {
  static const io::Checkpoint ckpt = io::Checkpoint::open(fixtures() / "reference.safetensors");
  return ckpt;
}

inline at::Tensor golden(const std::string& name) { return reference().tensor(name); }

// Largest |a - b| over all elements, in double; NaN in the same places counts
// as equal, NaN in different places as infinity. Shapes must agree.
inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return std::numeric_limits<double>::infinity();
  const at::Tensor x = a.to(at::kDouble).contiguous();
  const at::Tensor y = b.to(at::kDouble).contiguous();
  const double* px = x.data_ptr<double>();
  const double* py = y.data_ptr<double>();
  double worst = 0.0;
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const bool nx = std::isnan(px[i]), ny = std::isnan(py[i]);
    if (nx || ny) {
      if (nx != ny) return std::numeric_limits<double>::infinity();
      continue;
    }
    if (std::isinf(px[i]) || std::isinf(py[i])) {
      if (px[i] != py[i]) return std::numeric_limits<double>::infinity();
      continue;
    }
    worst = std::max(worst, std::fabs(px[i] - py[i]));
  }
  return worst;
}

// Running maxima per group, printed at exit: "[parity] <group> max_abs=<e>".
struct ErrorLog {
  std::map<std::string, double> worst;
  void note(const std::string& group, double e) {
    double& w = worst[group];
    w = std::max(w, e);
  }
  ~ErrorLog() {
    for (const auto& [g, e] : worst) std::printf("[parity] %-34s max_abs=%.3g\n", g.c_str(), e);
  }
};
inline ErrorLog& errors() {
  static ErrorLog log;
  return log;
}

// Bitwise equality of dtype, shape and contents.
inline bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && at::equal(a.contiguous(), b.contiguous());
}

}  // namespace mmgen::diffusion::test
