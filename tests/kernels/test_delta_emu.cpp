// The Gated DeltaNet CUDA kernels (kernels/src/cuda/delta_rule.cu) compiled
// unchanged by the host compiler against the CUDA emulator, run on the CPU and
// compared with the plain-ATen references. Arguments come from the same plans
// the CUDA wrappers use. Covered: the register-resident state column (dk 64,
// 128) and the global-memory path (other dk), value dims split over several
// blocks, GQA, state pools with shuffled and padding rows, the conv's split of
// the sequence over blocks and its window update, the gated norm.
#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/delta_launch.hpp"
#include "delta_plan.hpp"
#include "delta_ref.hpp"
#include "emu_test_util.hpp"
#include "kernel_test_util.hpp"

namespace {

using namespace mmgen::testing;
namespace plan = mmgen::kernels::plan;
namespace emu = mmgen::cuda_kernels;

static_assert(std::is_same_v<decltype(&emu::gated_delta_rule),
                             decltype(&mmgen::cuda_kernels::emulated::gated_delta_rule)>);

const at::ScalarType kDtypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(EmulatedDeltaKernels, ChunkedDeltaRule) {
  struct Shape {
    std::int64_t B, T, Hk, Hv, dk, dv;
  };
  std::uint64_t seed = 1000;
  for (const Shape s : {Shape{2, 6, 1, 2, 128, 32}, Shape{1, 9, 2, 4, 64, 80}, Shape{2, 4, 2, 2, 48, 24}}) {
    for (auto dt : kDtypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " dk=" + std::to_string(s.dk) + " dv=" + std::to_string(s.dv));
      const std::int64_t kd = s.Hk * s.dk, vd = s.Hv * s.dv;
      const at::Tensor mixed = randn({s.B, s.T, 2 * kd + vd}, dt, seed++);
      const at::Tensor q = mixed.narrow(2, 0, kd).reshape({s.B, s.T, s.Hk, s.dk});
      const at::Tensor k = mixed.narrow(2, kd, kd).reshape({s.B, s.T, s.Hk, s.dk});
      const at::Tensor v = mixed.narrow(2, 2 * kd, vd).reshape({s.B, s.T, s.Hv, s.dv});
      const at::Tensor g = uniform({s.B, s.T, s.Hv}, at::kFloat, -1.5, -0.01, seed++);
      const at::Tensor beta = uniform({s.B, s.T, s.Hv}, dt, 0.05, 0.95, seed++);
      const at::Tensor init = randn({s.B, s.Hv, s.dk, s.dv}, at::kFloat, seed++) * 0.2;
      auto p = plan::delta_rule_chunked(q, k, v, g, beta, init, true);
      EXPECT_LAUNCH_OK(emu::gated_delta_rule(p.args, nullptr));
      const auto [ro, rst] = ref_recurrent_gated_delta_rule(q, k, v, g, beta, init, true);
      EXPECT_TRUE(all_close(p.out, ro));
      EXPECT_TRUE(all_close(p.state, rst, {2e-5, 2e-5}));
      if (dt == at::kFloat)
        std::printf("[ measure ] emulated delta rule f32 dk=%lld: out %.3g, state %.3g\n", (long long)s.dk,
                    max_abs(p.out, ro), max_abs(p.state, rst));
    }
  }
}

TEST(EmulatedDeltaKernels, StepOverAPoolWithPaddingAndBadRows) {
  const std::int64_t B = 4, Hk = 1, Hv = 2, dk = 64, dv = 64, N = 6;
  const at::Tensor q = randn({B, Hk, dk}, at::kFloat, 1), k = randn({B, Hk, dk}, at::kFloat, 2);
  const at::Tensor v = randn({B, Hv, dv}, at::kFloat, 3);
  const at::Tensor g = uniform({B, Hv}, at::kFloat, -1, -0.1, 4), beta = uniform({B, Hv}, at::kFloat, 0, 1, 5);
  at::Tensor pool = randn({N, Hv, dk, dv}, at::kFloat, 6) * 0.2;
  const at::Tensor before = pool.clone();
  // Row 99 cannot be checked on the device: that sequence's output is NaN, no write.
  const at::Tensor idx = at::tensor(std::vector<std::int64_t>{3, -1, 0, 99});
  auto p = plan::delta_rule_step(q, k, v, g, beta, pool, idx, true);
  EXPECT_LAUNCH_OK(emu::gated_delta_rule(p.args, nullptr));
  for (std::int64_t b : {0, 2}) {
    const std::int64_t row = idx[b].item<std::int64_t>();
    const auto [ro, rst] = ref_recurrent_gated_delta_rule(
        q.narrow(0, b, 1).unsqueeze(1), k.narrow(0, b, 1).unsqueeze(1), v.narrow(0, b, 1).unsqueeze(1),
        g.narrow(0, b, 1).unsqueeze(1), beta.narrow(0, b, 1).unsqueeze(1), before.narrow(0, row, 1), true);
    EXPECT_TRUE(all_close(p.out.narrow(0, b, 1), ro.select(1, 0)));
    EXPECT_TRUE(all_close(pool.narrow(0, row, 1), rst, {2e-5, 2e-5}));
  }
  EXPECT_TRUE(p.out[1].eq(0).all().item<bool>());
  EXPECT_TRUE(p.out[3].isnan().all().item<bool>());
  for (int r : {1, 2, 4, 5}) EXPECT_TRUE(bit_equal(pool[r], before[r])) << "row " << r;
}

TEST(EmulatedDeltaKernels, CausalConv1d) {
  std::uint64_t seed = 2000;
  for (auto dt : kDtypes) {
    for (auto wdt : {dt, at::kFloat}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " w " + dtype_name(wdt));
      const std::int64_t B = 2, S = 70, C = 130, K = 4;  // 2 blocks of channels, 2 of tokens
      const at::Tensor x = randn({B, S, C}, dt, seed++).transpose(1, 2);
      const at::Tensor w = randn({C, K}, wdt, seed++), bias = randn({C}, wdt, seed++);
      auto p = plan::causal_conv1d(x, w, bias, true, nullptr, std::nullopt);
      EXPECT_LAUNCH_OK(emu::causal_conv1d(p.args, nullptr));
      EXPECT_TRUE(all_close(p.out(), ref_causal_conv1d(x, w, bias, true), tolerance_for(dt)));

      // With a window over a pool: rows shuffled, one padding entry.
      const at::Tensor init = randn({B, C, K}, dt, seed++);
      const auto [rout, rstate] = ref_causal_conv1d_update(x, init, w, bias, true);
      at::Tensor pool = randn({3, C, K}, dt, seed++);
      pool[2].copy_(init[0]);
      const at::Tensor pool_before = pool.clone();
      const at::Tensor idx = at::tensor(std::vector<std::int64_t>{2, -1});
      auto pu = plan::causal_conv1d(x, w, bias, true, &pool, idx);
      EXPECT_LAUNCH_OK(emu::causal_conv1d(pu.args, nullptr));
      EXPECT_TRUE(all_close(pu.out()[0], rout[0], tolerance_for(dt)));
      EXPECT_TRUE(pu.out()[1].eq(0).all().item<bool>());
      EXPECT_TRUE(bit_equal(pool[2], rstate[0]));
      EXPECT_TRUE(bit_equal(pool[0], pool_before[0]));
      EXPECT_TRUE(bit_equal(pool[1], pool_before[1]));
    }
  }
  // Decode: one token, window of K - 1.
  const at::Tensor x = randn({3, 1, 40}, at::kBFloat16, 7).transpose(1, 2);
  const at::Tensor w = randn({40, 4}, at::kBFloat16, 8);
  const at::Tensor init = randn({3, 40, 3}, at::kBFloat16, 9);
  const auto [rout, rstate] = ref_causal_conv1d_update(x, init, w, std::nullopt, true);
  at::Tensor state = init.clone();
  auto p = plan::causal_conv1d(x, w, std::nullopt, true, &state, std::nullopt);
  EXPECT_LAUNCH_OK(emu::causal_conv1d(p.args, nullptr));
  EXPECT_TRUE(all_close(p.out(), rout));
  EXPECT_TRUE(bit_equal(state, rstate));
}

TEST(EmulatedDeltaKernels, GatedRmsNorm) {
  std::uint64_t seed = 3000;
  for (auto dt : kDtypes) {
    for (auto wdt : {dt, at::kFloat}) {
      for (std::int64_t D : {128, 37}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " w " + dtype_name(wdt) + " D=" + std::to_string(D));
        const at::Tensor x = randn({11, D}, dt, seed++), z = randn({11, D}, at::kFloat, seed++);
        const at::Tensor w = randn({D}, wdt, seed++);
        auto p = plan::gated_rms_norm(x, z, w, 1e-6);
        EXPECT_LAUNCH_OK(emu::gated_rms_norm(p.args, nullptr));
        EXPECT_TRUE(all_close(p.out, ref_gated_rms_norm(x, z, w, 1e-6), tolerance_for(dt)));
      }
    }
  }
}

}  // namespace
