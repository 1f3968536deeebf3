// The chunked gated delta rule CUDA kernel (kernels/src/cuda/delta_chunked.cu)
// compiled unchanged by the host compiler against the CUDA emulator, run on
// the CPU and compared with the plain-ATen recurrence (delta_ref) and with the
// op's token-by-token CPU path: lengths around the 64-token
// chunk, GQA, dk = dv = 128 and small head dims (a partial 32-column tile),
// with and without an initial state and the l2 norm, float32 within 1e-5 and
// bfloat16 within the dtype's tolerance; state pools with padding and bad rows.
#include <ATen/TensorOperators.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda/delta_chunked_launch.hpp"
#include "delta_plan.hpp"
#include "delta_ref.hpp"
#include "emu_test_util.hpp"
#include "kernel_test_util.hpp"
#include "mmgen/ops.hpp"

namespace {

using namespace mmgen::testing;
namespace plan = mmgen::kernels::plan;
namespace emu = mmgen::cuda_kernels;

static_assert(std::is_same_v<decltype(&emu::gated_delta_rule_by_chunks),
                             decltype(&mmgen::cuda_kernels::emulated::gated_delta_rule_by_chunks)>);

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

struct Case {
  at::Tensor q, k, v, g, beta;
  std::optional<at::Tensor> init;
};
Case make_case(std::int64_t B, std::int64_t T, std::int64_t Hk, std::int64_t Hv, std::int64_t dk, std::int64_t dv,
               at::ScalarType dt, bool with_state, bool l2norm, std::uint64_t seed) {
  const std::int64_t kd = Hk * dk, vd = Hv * dv;
  at::Tensor mixed = randn({B, T, 2 * kd + vd}, at::kFloat, seed);
  if (!l2norm) mixed.narrow(2, 0, 2 * kd).mul_(0.8 / std::sqrt(double(dk)));  // |k| near 0.8
  mixed = mixed.to(dt);
  Case c;
  c.q = mixed.narrow(2, 0, kd).reshape({B, T, Hk, dk});
  c.k = mixed.narrow(2, kd, kd).reshape({B, T, Hk, dk});
  c.v = mixed.narrow(2, 2 * kd, vd).reshape({B, T, Hv, dv});
  c.g = uniform({B, T, Hv}, at::kFloat, -1.5, -0.01, seed + 1);
  c.beta = uniform({B, T, Hv}, dt, 0.05, 0.95, seed + 2);
  if (with_state) c.init = randn({B, Hv, dk, dv}, at::kFloat, seed + 3) * 0.2;
  return c;
}

TEST(EmulatedDeltaChunked, MatchesTheRecurrenceAndTheTokenKernel) {
  struct Dims {
    std::int64_t B, Hk, dk, dv;
  };
  std::uint64_t seed = 7000;
  double worst_ref = 0, worst_tok = 0, worst_bf16_state = 0;
  int n = 0;
  for (const Dims d : {Dims{1, 1, 128, 128}, Dims{2, 1, 24, 40}}) {
    for (std::int64_t ratio : {1, 2}) {
      for (std::int64_t T : {1, 7, 63, 64, 65, 200}) {
        for (auto dt : {at::kFloat, at::kBFloat16}) {
          // State and l2norm cycle over the lengths (all four combinations per dims and dtype).
          const int combo = (n / 2) % 4;
          const bool with_state = (combo & 1) != 0, l2norm = (combo & 2) == 0;
          ++n;
          const std::int64_t Hv = d.Hk * ratio;
          SCOPED_TRACE(std::string(dtype_name(dt)) + " T=" + std::to_string(T) + " dk=" + std::to_string(d.dk) +
                       " dv=" + std::to_string(d.dv) + " Hv/Hk=" + std::to_string(ratio) +
                       (with_state ? " state" : "") + (l2norm ? " l2norm" : ""));
          const Case c = make_case(d.B, T, d.Hk, Hv, d.dk, d.dv, dt, with_state, l2norm, seed += 10);
          auto p = plan::delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, c.init, l2norm);
          ASSERT_TRUE(emu::delta_rule_chunked_fits(p.args));
          // The production block of 256 threads on single-chunk lengths; 64 threads
          // (same code, same result, a quarter of the emulator's OS threads) elsewhere.
          const int threads = (T == 1 || T == 64) ? 256 : 64;
          EXPECT_LAUNCH_OK(emu::gated_delta_rule_by_chunks(p.args, nullptr, threads));
          // The token-by-token path: the CPU op forced to it (the emulated token
          // kernel is held to the same recurrence in test_delta_emu.cpp).
          setenv("MMGEN_DELTA_CPU_PATH", "token", 1);
          const auto [tok_out, tok_state] = mmgen::ops::gated_delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, c.init, l2norm);
          unsetenv("MMGEN_DELTA_CPU_PATH");
          const auto [ro, rst] = ref_recurrent_gated_delta_rule(c.q, c.k, c.v, c.g, c.beta, c.init, l2norm);
          if (dt == at::kFloat) {
            const double e_ref = std::max(max_abs(p.out, ro), max_abs(p.state, rst));
            const double e_tok = std::max(max_abs(p.out, tok_out), max_abs(p.state, tok_state));
            EXPECT_LE(e_ref, 1e-5);
            EXPECT_LE(e_tok, 1e-5);
            worst_ref = std::max(worst_ref, e_ref);
            worst_tok = std::max(worst_tok, e_tok);
          } else {
            EXPECT_TRUE(all_close(p.out, ro, tolerance_for(dt)));
            EXPECT_TRUE(all_close(p.out, tok_out, tolerance_for(dt)));
            const double es = std::max(max_abs(p.state, rst), max_abs(p.state, tok_state));
            EXPECT_LE(es, 1e-5);
            worst_bf16_state = std::max(worst_bf16_state, es);
          }
        }
      }
    }
  }
  std::printf("[ measure ] emulated chunked kernel, float32, worst max-abs over out and state: vs ATen recurrence "
              "%.3g, vs the token path %.3g; bf16 inputs, state: %.3g\n",
              worst_ref, worst_tok, worst_bf16_state);
}

TEST(EmulatedDeltaChunked, StatePoolWithPaddingAndBadRows) {
  const std::int64_t B = 4, T = 70, Hv = 2, dk = 32, dv = 48, N = 6;
  const Case c = make_case(B, T, 1, Hv, dk, dv, at::kFloat, false, true, 31);
  const at::Tensor pool0 = randn({N, Hv, dk, dv}, at::kFloat, 32) * 0.2;
  at::Tensor pool = pool0.clone();
  // Row 99 cannot be checked on the device: that sequence's output is NaN, no write.
  const at::Tensor idx = at::tensor(std::vector<std::int64_t>{3, -1, 0, 99});
  auto p = plan::delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, std::nullopt, true);
  p.args.state = pool.data_ptr<float>();
  p.args.states = N;
  p.args.state_indices = idx.data_ptr<std::int64_t>();
  EXPECT_LAUNCH_OK(emu::gated_delta_rule_by_chunks(p.args, nullptr));
  for (std::int64_t b : {0, 2}) {
    const std::int64_t row = idx[b].item<std::int64_t>();
    const auto [ro, rst] = ref_recurrent_gated_delta_rule(c.q.narrow(0, b, 1), c.k.narrow(0, b, 1),
                                                          c.v.narrow(0, b, 1), c.g.narrow(0, b, 1),
                                                          c.beta.narrow(0, b, 1), pool0.narrow(0, row, 1), true);
    EXPECT_LE(max_abs(p.out.narrow(0, b, 1), ro), 1e-5);
    EXPECT_LE(max_abs(pool.narrow(0, row, 1), rst), 1e-5);
  }
  EXPECT_TRUE(p.out[1].eq(0).all().item<bool>());
  EXPECT_TRUE(p.out[3].isnan().all().item<bool>());
  for (int r : {1, 2, 4, 5}) EXPECT_TRUE(bit_equal(pool[r], pool0[r])) << "row " << r;
}

TEST(EmulatedDeltaChunked, BlockSizesAgree) {
  // The block size changes only which thread does what: bit-identical results.
  const Case c = make_case(1, 130, 1, 2, 64, 40, at::kFloat, true, true, 55);
  at::Tensor out0, state0;
  for (int threads : {64, 96, 256}) {
    auto p = plan::delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, c.init, true);
    EXPECT_LAUNCH_OK(emu::gated_delta_rule_by_chunks(p.args, nullptr, threads));
    if (!out0.defined()) {
      out0 = p.out;
      state0 = p.state;
    } else {
      EXPECT_TRUE(bit_equal(p.out, out0)) << threads;
      EXPECT_TRUE(bit_equal(p.state, state0)) << threads;
    }
  }
  auto p = plan::delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, c.init, true);
  EXPECT_NE(emu::gated_delta_rule_by_chunks(p.args, nullptr, 32), 0);  // fewer threads than a chunk's tokens
}

TEST(EmulatedDeltaChunked, SharedMemoryBound) {
  // dk 128 (Qwen3.5, Qwen3-Next) needs 133 KB, more than the default 48 KB: the
  // launch opts in (checked by the emulator against sm_80's 163 KB). Past dk 176
  // the kernel does not fit and refuses; the op then runs the token kernel.
  for (std::int64_t dk : {128, 176, 177, 256}) {
    const Case c = make_case(1, 3, 1, 1, dk, 32, at::kFloat, false, true, 40 + dk);
    auto p = plan::delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, std::nullopt, true);
    const bool fits = dk <= 176;
    EXPECT_EQ(emu::delta_rule_chunked_fits(p.args), fits) << "dk " << dk;
    const int err = emu::gated_delta_rule_by_chunks(p.args, nullptr);
    if (fits) {
      EXPECT_EQ(err, 0) << emu::error_string(err);
      const auto [ro, rst] = ref_recurrent_gated_delta_rule(c.q, c.k, c.v, c.g, c.beta, std::nullopt, true);
      EXPECT_LE(max_abs(p.out, ro), 1e-5);
    } else {
      EXPECT_NE(err, 0);
    }
  }
}

}  // namespace
