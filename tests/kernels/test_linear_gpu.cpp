// linear_small_m on a real GPU (label gpu): device tensors against the float64
// reference over the odd shapes. Skips, saying why, without CUDA kernels in
// the build or a CUDA device.
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <string>

#include "kernel_test_util.hpp"
#include "linear_ref.hpp"
#include "mmgen/ops.hpp"

namespace {

using namespace mmgen::testing;

class LinearSmallMGpu : public GpuTest {};

TEST_F(LinearSmallMGpu, MatchesReferenceOverOddShapes) {
  std::uint64_t seed = 1;
  for (auto dt : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const LinearShape& s : odd_linear_shapes()) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) +
                   " k=" + std::to_string(s.k));
      const at::Tensor x = randn({s.m, s.k}, dt, seed++), w = randn({s.n, s.k}, dt, seed++);
      const at::Tensor b = randn({s.n}, dt, seed++);
      const at::Tensor out = mmgen::ops::linear_small_m(x.to(at::kCUDA), w.to(at::kCUDA), b.to(at::kCUDA));
      ASSERT_TRUE(out.is_cuda());
      EXPECT_TRUE(all_close(out.cpu(), ref_linear(x, w, b), linear_tolerance(dt, s.k)));
    }
  }
}

}  // namespace
