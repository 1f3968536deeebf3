// The linear_small_m CUDA kernel (kernels/src/cuda/linear.cu) compiled
// unchanged by the host compiler against the CUDA emulator, run on the CPU
// and compared with the float64 reference over odd shapes (row counts past
// one 8-row pass included, K not a multiple of the warp), strided rows, bias.
// Smaller than the CPU test's shapes: the emulator runs every lane as a thread.
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <string>
#include <type_traits>

#include "cuda/linear_launch.hpp"
#include "kernel_test_util.hpp"
#include "linear_plan.hpp"
#include "linear_ref.hpp"

namespace {

using namespace mmgen::testing;
namespace plan = mmgen::kernels::plan;
namespace emu = mmgen::cuda_kernels;

static_assert(std::is_same_v<decltype(&emu::linear_small_m), decltype(&mmgen::cuda_kernels::emulated::linear_small_m)>);

TEST(EmulatedLinearKernel, MatchesReferenceOverOddShapes) {
  std::uint64_t seed = 1;
  for (auto dt : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const LinearShape& s : {LinearShape{1, 1, 1}, LinearShape{1, 7, 5}, LinearShape{3, 9, 17},
                                 LinearShape{5, 9, 100}, LinearShape{9, 11, 40}, LinearShape{17, 3, 33}}) {
      for (bool with_bias : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) +
                     " k=" + std::to_string(s.k) + (with_bias ? " bias" : ""));
        // x rows inside a wider buffer: the kernel reads x_stride.
        const at::Tensor x = randn({s.m, s.k + 3}, dt, seed++).narrow(1, 2, s.k);
        const at::Tensor w = randn({s.n, s.k}, dt, seed++);
        std::optional<at::Tensor> b;
        if (with_bias) b = randn({s.n}, dt, seed++);
        auto p = plan::linear(x, w, b);
        const int err = emu::linear_small_m(p.args, nullptr);
        ASSERT_EQ(err, 0) << emu::error_string(err);
        EXPECT_TRUE(all_close(p.out, ref_linear(x, w, b), linear_tolerance(dt, s.k)));
      }
    }
  }
}

}  // namespace
