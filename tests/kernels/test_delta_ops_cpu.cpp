// The Gated DeltaNet ops on the CPU (issue 7) against plain-ATen ports of the
// transformers functions (delta_ref.hpp): the chunked delta rule against both
// the recurrent and the chunked reference, the chunked op against the decode
// step run token by token over a state pool (1e-5 in float32), the causal conv
// with and without a state window, the gated RMSNorm, and the error messages.
#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "delta_ref.hpp"
#include "kernel_test_util.hpp"
#include "mmgen/ops.hpp"

namespace {

using namespace mmgen::testing;
namespace ops = mmgen::ops;

const at::ScalarType kDtypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// The model's layout: q, k, v are views into one projection [B, T, 2*Hk*dk + Hv*dv].
struct DeltaCase {
  at::Tensor q, k, v, g, beta, state;
};
DeltaCase make_delta_case(std::int64_t B, std::int64_t T, std::int64_t Hk, std::int64_t Hv, std::int64_t dk,
                          std::int64_t dv, at::ScalarType dt, std::uint64_t seed) {
  const std::int64_t kd = Hk * dk, vd = Hv * dv;
  const at::Tensor mixed = randn({B, T, 2 * kd + vd}, dt, seed);
  DeltaCase c;
  c.q = mixed.narrow(2, 0, kd).reshape({B, T, Hk, dk});
  c.k = mixed.narrow(2, kd, kd).reshape({B, T, Hk, dk});
  c.v = mixed.narrow(2, 2 * kd, vd).reshape({B, T, Hv, dv});
  c.g = uniform({B, T, Hv}, at::kFloat, -1.5, -0.01, seed + 1);  // -exp(A_log) * softplus(.) in float32
  c.beta = uniform({B, T, Hv}, dt, 0.05, 0.95, seed + 2);       // sigmoid(b) in the model dtype
  c.state = randn({B, Hv, dk, dv}, at::kFloat, seed + 3) * 0.2;
  return c;
}

TEST(DeltaOpsCpu, ChunkedMatchesRecurrentReference) {
  std::uint64_t seed = 100;
  struct Shape {
    std::int64_t B, T, Hk, Hv, dk, dv;
  };
  for (const Shape s : {Shape{2, 37, 2, 4, 32, 48}, Shape{1, 70, 3, 3, 128, 128}, Shape{3, 5, 1, 2, 64, 40}}) {
    for (auto dt : kDtypes) {
      for (bool with_state : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " T=" + std::to_string(s.T) + " dk=" + std::to_string(s.dk) +
                     (with_state ? " state" : ""));
        const auto c = make_delta_case(s.B, s.T, s.Hk, s.Hv, s.dk, s.dv, dt, seed += 10);
        std::optional<at::Tensor> init;
        if (with_state) init = c.state;
        const at::Tensor before = c.state.clone();
        const auto [o, st] = ops::gated_delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, init, true);
        const auto [ro, rst] = ref_recurrent_gated_delta_rule(c.q, c.k, c.v, c.g, c.beta, init, true);
        EXPECT_EQ(o.scalar_type(), dt);
        EXPECT_EQ(st.scalar_type(), at::kFloat);
        EXPECT_TRUE(all_close(o, ro));
        EXPECT_TRUE(all_close(st, rst, {2e-5, 2e-5}));
        EXPECT_TRUE(bit_equal(c.state, before)) << "the caller's initial_state was modified";
        if (dt == at::kFloat) {
          // The reference's own chunked form (UT transform, chunk 64): same math, reassociated.
          const auto [co, cst] = ref_chunk_gated_delta_rule(c.q, c.k, c.v, c.g, c.beta, init, true, 64);
          const double eo = max_abs(o, co), es = max_abs(st, cst);
          EXPECT_LT(eo, 1e-4);
          EXPECT_LT(es, 1e-4);
          std::printf("[ measure ] delta rule f32 T=%lld dk=%lld: vs recurrent ref %.3g (state %.3g), vs chunk ref %.3g (state %.3g)\n",
                      (long long)s.T, (long long)s.dk, max_abs(o, ro), max_abs(st, rst), eo, es);
        }
      }
    }
  }
}

TEST(DeltaOpsCpu, WithoutL2Norm) {
  const auto c = make_delta_case(2, 9, 2, 2, 16, 24, at::kFloat, 7);
  const at::Tensor q = c.q * 0.2, k = c.k * 0.2;  // keep the unnormalised recurrence bounded
  const auto [o, st] = ops::gated_delta_rule_chunked(q, k, c.v, c.g, c.beta, std::nullopt, false);
  const auto [ro, rst] = ref_recurrent_gated_delta_rule(q, k, c.v, c.g, c.beta, std::nullopt, false);
  EXPECT_TRUE(all_close(o, ro));
  EXPECT_TRUE(all_close(st, rst));
}

TEST(DeltaOpsCpu, ChunkedEqualsStepByStepOverAStatePool) {
  // Prefill with the chunked op vs decode steps over a pool whose rows are
  // shuffled (state_indices), float32: within 1e-5 as the issue requires.
  const std::int64_t B = 3, T = 45, Hk = 2, Hv = 4, dk = 64, dv = 64, N = 7;
  const auto c = make_delta_case(B, T, Hk, Hv, dk, dv, at::kFloat, 21);
  const auto [o, st] = ops::gated_delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, c.state, true);

  at::Tensor pool = randn({N, Hv, dk, dv}, at::kFloat, 22);
  const at::Tensor rows = at::tensor(std::vector<std::int64_t>{5, 0, 3});
  for (std::int64_t b = 0; b < B; ++b) pool[rows[b].item<std::int64_t>()].copy_(c.state[b]);
  const at::Tensor untouched = pool.index_select(0, at::tensor(std::vector<std::int64_t>{1, 2, 4, 6}));
  std::vector<at::Tensor> outs;
  for (std::int64_t t = 0; t < T; ++t) {
    outs.push_back(ops::gated_delta_rule_step(c.q.select(1, t), c.k.select(1, t), c.v.select(1, t),
                                              c.g.select(1, t), c.beta.select(1, t), pool, rows, true));
  }
  const at::Tensor so = at::stack(outs, 1);
  const at::Tensor sst = pool.index_select(0, rows);
  const double eo = max_abs(so, o), es = max_abs(sst, st);
  std::printf("[ measure ] chunked vs step (f32, T=%lld): out %.3g, state %.3g\n", (long long)T, eo, es);
  EXPECT_LE(eo, 1e-5);
  EXPECT_LE(es, 1e-5);
  EXPECT_TRUE(bit_equal(pool.index_select(0, at::tensor(std::vector<std::int64_t>{1, 2, 4, 6})), untouched));
  // The step against the reference recurrence for a single token.
  const auto [ro, rst] = ref_recurrent_gated_delta_rule(c.q.narrow(1, 0, 1), c.k.narrow(1, 0, 1),
                                                        c.v.narrow(1, 0, 1), c.g.narrow(1, 0, 1),
                                                        c.beta.narrow(1, 0, 1), c.state, true);
  at::Tensor pool2 = c.state.clone();
  const at::Tensor o1 = ops::gated_delta_rule_step(c.q.select(1, 0), c.k.select(1, 0), c.v.select(1, 0),
                                                   c.g.select(1, 0), c.beta.select(1, 0), pool2);
  EXPECT_TRUE(all_close(o1, ro.select(1, 0)));
  EXPECT_TRUE(all_close(pool2, rst));
}

TEST(DeltaOpsCpu, StepSkipsNegativeIndicesAndBf16) {
  const std::int64_t B = 2, Hk = 1, Hv = 2, dk = 32, dv = 32;
  for (auto dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const auto c = make_delta_case(B, 1, Hk, Hv, dk, dv, dt, 31);
    at::Tensor pool = randn({3, Hv, dk, dv}, at::kFloat, 32);
    const at::Tensor before = pool.clone();
    const at::Tensor idx = at::tensor(std::vector<std::int32_t>{-1, 2});
    const at::Tensor o = ops::gated_delta_rule_step(c.q.select(1, 0), c.k.select(1, 0), c.v.select(1, 0),
                                                    c.g.select(1, 0), c.beta.select(1, 0), pool, idx, true);
    EXPECT_EQ(o.sizes(), (std::vector<std::int64_t>{B, Hv, dv}));
    EXPECT_TRUE(o[0].eq(0).all().item<bool>());
    EXPECT_TRUE(bit_equal(pool.narrow(0, 0, 2), before.narrow(0, 0, 2)));
    const auto [ro, rst] = ref_recurrent_gated_delta_rule(c.q.narrow(0, 1, 1), c.k.narrow(0, 1, 1),
                                                          c.v.narrow(0, 1, 1), c.g.narrow(0, 1, 1),
                                                          c.beta.narrow(0, 1, 1), before.narrow(0, 2, 1), true);
    EXPECT_TRUE(all_close(o.narrow(0, 1, 1), ro.select(1, 0)));
    EXPECT_TRUE(all_close(pool.narrow(0, 2, 1), rst, {2e-5, 2e-5}));
  }
}

TEST(DeltaOpsCpu, DeltaRuleErrors) {
  const auto c = make_delta_case(2, 3, 2, 4, 16, 16, at::kFloat, 41);
  auto msg = [](auto&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const auto c3 = make_delta_case(2, 3, 3, 4, 16, 16, at::kFloat, 42);
  EXPECT_NE(msg([&] { ops::gated_delta_rule_chunked(c3.q, c3.k, c3.v, c3.g, c3.beta, std::nullopt); })
                .find("multiple of the key heads"),
            std::string::npos);
  EXPECT_NE(msg([&] { ops::gated_delta_rule_chunked(c.q, c.k, c.v, c.g.narrow(2, 0, 2), c.beta, std::nullopt); })
                .find("g must have shape"),
            std::string::npos);
  at::Tensor pool = at::zeros({4, 4, 16, 16});
  auto step = [&](at::Tensor& st, const std::optional<at::Tensor>& idx) {
    ops::gated_delta_rule_step(c.q.select(1, 0), c.k.select(1, 0), c.v.select(1, 0), c.g.select(1, 0),
                               c.beta.select(1, 0), st, idx);
  };
  EXPECT_NE(msg([&] { step(pool, at::tensor(std::vector<std::int64_t>{1, 1})); }).find("appears twice"),
            std::string::npos);
  EXPECT_NE(msg([&] { step(pool, at::tensor(std::vector<std::int64_t>{0, 4})); }).find("outside the state"),
            std::string::npos);
  at::Tensor half_pool = at::zeros({4, 4, 16, 16}, at::kHalf);
  EXPECT_NE(msg([&] { step(half_pool, std::nullopt); }).find("state must be float32"), std::string::npos);
  at::Tensor small = at::zeros({1, 4, 16, 16});
  EXPECT_NE(msg([&] { step(small, std::nullopt); }).find("at least batch"), std::string::npos);
}

// ---- causal conv1d ---------------------------------------------------------------------
TEST(DeltaOpsCpu, CausalConv1dPrefill) {
  std::uint64_t seed = 200;
  for (auto dt : kDtypes) {
    for (auto wdt : {dt, at::kFloat}) {
      for (bool with_bias : {false, true}) {
        for (bool silu : {true, false}) {
          SCOPED_TRACE(std::string(dtype_name(dt)) + " w " + dtype_name(wdt) + (with_bias ? " bias" : "") +
                       (silu ? " silu" : ""));
          const std::int64_t B = 2, S = 19, C = 40, K = 4;
          const at::Tensor x = randn({B, S, C}, dt, seed++).transpose(1, 2);  // [B, C, S], as the model passes it
          const at::Tensor w = randn({C, K}, wdt, seed++);
          std::optional<at::Tensor> bias;
          if (with_bias) bias = randn({C}, wdt, seed++);
          const at::Tensor out = ops::causal_conv1d(x, w, bias, silu);
          EXPECT_EQ(out.sizes(), x.sizes());
          EXPECT_TRUE(out.transpose(1, 2).is_contiguous());
          EXPECT_TRUE(all_close(out, ref_causal_conv1d(x, w, bias, silu), tolerance_for(dt)));
          // x contiguous as [B, C, S] (time innermost): the general-stride path, same sums.
          EXPECT_TRUE(bit_equal(ops::causal_conv1d(x.contiguous(), w, bias, silu), out));
        }
      }
    }
  }
}

TEST(DeltaOpsCpu, CausalConv1dUpdateDecodeAndChunks) {
  std::uint64_t seed = 300;
  for (auto dt : kDtypes) {
    for (std::int64_t L : {4, 3}) {  // transformers' cache keeps K entries; K - 1 suffice
      for (std::int64_t S : {1, 5}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " L=" + std::to_string(L) + " S=" + std::to_string(S));
        const std::int64_t B = 3, C = 24, K = 4;
        const at::Tensor x = randn({B, S, C}, dt, seed++).transpose(1, 2);
        const at::Tensor w = randn({C, K}, dt, seed++), bias = randn({C}, dt, seed++);
        const at::Tensor init = randn({B, C, L}, dt, seed++);
        const auto [rout, rstate] = ref_causal_conv1d_update(x, init, w, bias, true);
        at::Tensor state = init.clone();
        const at::Tensor out = ops::causal_conv1d_update(x, state, w, bias, true);
        EXPECT_TRUE(all_close(out, rout, tolerance_for(dt)));
        EXPECT_TRUE(bit_equal(state, rstate));
        at::Tensor state2 = init.clone();
        EXPECT_TRUE(bit_equal(ops::causal_conv1d_update(x.contiguous(), state2, w, bias, true), out));
        EXPECT_TRUE(bit_equal(state2, rstate));
        // The same through a pool with shuffled rows and a padding entry.
        at::Tensor pool = randn({5, C, L}, dt, seed++);
        const at::Tensor idx = at::tensor(std::vector<std::int64_t>{4, -1, 1});
        pool[4].copy_(init[0]);
        pool[1].copy_(init[2]);
        const at::Tensor pool_before = pool.clone();
        const at::Tensor pout = ops::causal_conv1d_update(x, pool, w, bias, true, idx);
        EXPECT_TRUE(bit_equal(pout[0], out[0]));
        EXPECT_TRUE(bit_equal(pout[2], out[2]));
        EXPECT_TRUE(pout[1].eq(0).all().item<bool>());
        EXPECT_TRUE(bit_equal(pool[4], rstate[0]));
        EXPECT_TRUE(bit_equal(pool[1], rstate[2]));
        for (int r : {0, 2, 3}) EXPECT_TRUE(bit_equal(pool[r], pool_before[r]));
      }
    }
  }
  // Prefill in chunks through the update op from a zero window equals one prefill.
  const std::int64_t B = 2, S = 23, C = 16, K = 4;
  const at::Tensor x = randn({B, S, C}, at::kFloat, 399).transpose(1, 2);
  const at::Tensor w = randn({C, K}, at::kFloat, 398);
  const at::Tensor whole = ops::causal_conv1d(x, w, std::nullopt, true);
  at::Tensor state = at::zeros({B, C, K});
  std::vector<at::Tensor> parts;
  for (std::int64_t s0 = 0; s0 < S;) {
    const std::int64_t n = s0 == 0 ? 7 : (s0 < 10 ? 1 : 5);
    const std::int64_t len = std::min<std::int64_t>(n, S - s0);
    parts.push_back(ops::causal_conv1d_update(x.narrow(2, s0, len), state, w, std::nullopt, true));
    s0 += len;
  }
  EXPECT_TRUE(bit_equal(at::cat(parts, 2), whole));
  EXPECT_TRUE(bit_equal(state, x.narrow(2, S - K, K)));
}

TEST(DeltaOpsCpu, CausalConv1dErrors) {
  const at::Tensor x = randn({2, 8, 5}, at::kFloat, 1);
  auto msg = [](auto&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg([&] { ops::causal_conv1d(x, randn({7, 4}, at::kFloat, 2), std::nullopt); }).find("weight must be"),
            std::string::npos);
  at::Tensor short_state = at::zeros({2, 8, 2});
  EXPECT_NE(msg([&] { ops::causal_conv1d_update(x, short_state, randn({8, 4}, at::kFloat, 3), std::nullopt); })
                .find("L >= K - 1"),
            std::string::npos);
  at::Tensor half_state = at::zeros({2, 8, 4}, at::kHalf);
  EXPECT_NE(msg([&] { ops::causal_conv1d_update(x, half_state, randn({8, 4}, at::kFloat, 3), std::nullopt); })
                .find("conv_state must have x's dtype"),
            std::string::npos);
}

// ---- gated rms norm ----------------------------------------------------------------------
TEST(DeltaOpsCpu, GatedRmsNorm) {
  std::uint64_t seed = 500;
  for (auto dt : kDtypes) {
    for (auto wdt : {dt, at::kFloat}) {
      for (std::int64_t D : {128, 37}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " w " + dtype_name(wdt) + " D=" + std::to_string(D));
        const at::Tensor x = randn({6, D}, dt, seed++), z = randn({6, D}, dt, seed++);
        const at::Tensor w = randn({D}, wdt, seed++);
        const at::Tensor out = ops::gated_rms_norm(x, z, w, 1e-6);
        EXPECT_EQ(out.scalar_type(), dt);
        EXPECT_TRUE(all_close(out, ref_gated_rms_norm(x, z, w, 1e-6), tolerance_for(dt)));
      }
    }
    // Strided rows: per-head views of [T, Hv * dv].
    const at::Tensor x = randn({5, 3 * 64 + 8}, dt, seed++).narrow(1, 0, 3 * 64).view({5, 3, 64});
    const at::Tensor z = randn({5, 3, 64}, dt, seed++);
    const at::Tensor w = randn({64}, dt, seed++);
    EXPECT_TRUE(all_close(ops::gated_rms_norm(x, z, w, 1e-6), ref_gated_rms_norm(x, z, w, 1e-6)));
  }
  EXPECT_THROW(ops::gated_rms_norm(randn({2, 8}, at::kFloat, 1), randn({2, 7}, at::kFloat, 2),
                                   randn({8}, at::kFloat, 3), 1e-6),
               std::exception);
}

}  // namespace
