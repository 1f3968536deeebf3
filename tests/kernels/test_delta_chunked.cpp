// The chunked CPU path of gated_delta_rule_chunked (issue 7: "the chunked
// prefill path equal to step-by-step recurrence within 1e-5"): every ISA build
// of the chunked loop that this CPU can run, against the plain-ATen recurrence
// (delta_ref), the reference's own chunked form, and the token-by-token loop,
// over sequence lengths around the chunk size, GQA, head dims that are and are
// not whole vectors, with and without an initial state and the l2 norm, in
// float32 (1e-5) and bfloat16 (the dtype's tolerance on the output). Then the
// op's CPU dispatch: which path runs at which length, and the override.
#include <ATen/TensorOperators.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/delta_loops.hpp"
#include "delta_plan.hpp"
#include "delta_ref.hpp"
#include "kernel_test_util.hpp"
#include "mmgen/ops.hpp"

namespace {

using namespace mmgen::testing;
namespace cpu = mmgen::kernels::cpu;
namespace plan = mmgen::kernels::plan;
namespace ops = mmgen::ops;

std::vector<const cpu::DeltaLoops*> runnable_tables() {
  std::vector<const cpu::DeltaLoops*> t = {&cpu::delta_loops_baseline()};
#if defined(__x86_64__)
  if (cpu_runs_avx2_build()) t.push_back(&cpu::delta_loops_avx2());
  if (cpu_runs_avx512_build()) t.push_back(&cpu::delta_loops_avx512());
#endif
  return t;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

struct Case {
  at::Tensor q, k, v, g, beta, state;
  std::optional<at::Tensor> init;
};
// q, k, v are views into one projection [B, T, 2*Hk*dk + Hv*dv], as in the model.
Case make_case(std::int64_t B, std::int64_t T, std::int64_t Hk, std::int64_t Hv, std::int64_t dk, std::int64_t dv,
               at::ScalarType dt, bool with_state, bool l2norm, std::uint64_t seed) {
  const std::int64_t kd = Hk * dk, vd = Hv * dv;
  at::Tensor mixed = randn({B, T, 2 * kd + vd}, at::kFloat, seed);
  if (!l2norm) {  // keep |k| near 0.8 so the unnormalised recurrence stays bounded
    mixed.narrow(2, 0, 2 * kd).mul_(0.8 / std::sqrt(double(dk)));
  }
  mixed = mixed.to(dt);
  Case c;
  c.q = mixed.narrow(2, 0, kd).reshape({B, T, Hk, dk});
  c.k = mixed.narrow(2, kd, kd).reshape({B, T, Hk, dk});
  c.v = mixed.narrow(2, 2 * kd, vd).reshape({B, T, Hv, dv});
  c.g = uniform({B, T, Hv}, at::kFloat, -1.5, -0.01, seed + 1);
  c.beta = uniform({B, T, Hv}, dt, 0.05, 0.95, seed + 2);
  c.state = randn({B, Hv, dk, dv}, at::kFloat, seed + 3) * 0.2;
  if (with_state) c.init = c.state;
  return c;
}

// Runs one loop of a table on a fresh plan: (out, final state).
std::pair<at::Tensor, at::Tensor> run(const cpu::DeltaLoops& L, const Case& c, bool l2norm, std::int64_t chunk) {
  auto p = plan::delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, c.init, l2norm);
  const std::int64_t items = p.args.batch * p.args.v_heads;
  if (chunk > 0) {
    L.delta_rule_chunked(p.args, chunk, 0, items);
  } else {
    L.delta_rule(p.args, 0, items);
  }
  return {p.out, p.state};
}

struct Worst {
  double ref = 0, token = 0, chunk_ref = 0, state = 0;
};

TEST(DeltaChunkedCpu, EveryIsaBuildMatchesTheRecurrence) {
  const auto tables = runnable_tables();
  RecordProperty("isa_builds_tested", int(tables.size()));
  struct Dims {
    std::int64_t B, dk, dv;
  };
  std::uint64_t seed = 5000;
  Worst worst_f32;
  int n = 0;
  for (const Dims d : {Dims{1, 128, 128}, Dims{2, 24, 40}}) {
    for (std::int64_t ratio : {1, 2}) {
      for (std::int64_t T : {1, 7, 63, 64, 65, 200}) {
        for (auto dt : {at::kFloat, at::kBFloat16}) {
          // State and l2norm cycle over the lengths (all four combinations per dims, GQA and dtype).
          const int combo = (n++ / 2) % 4;
          const bool with_state = (combo & 1) != 0, l2norm = (combo & 2) == 0;
          const std::int64_t Hk = 2, Hv = Hk * ratio;
          SCOPED_TRACE(std::string(dtype_name(dt)) + " T=" + std::to_string(T) + " dk=" + std::to_string(d.dk) +
                       " dv=" + std::to_string(d.dv) + " Hv/Hk=" + std::to_string(ratio) +
                       (with_state ? " state" : "") + (l2norm ? " l2norm" : ""));
          const Case c = make_case(d.B, T, Hk, Hv, d.dk, d.dv, dt, with_state, l2norm, seed += 10);
          const auto [ro, rst] = ref_recurrent_gated_delta_rule(c.q, c.k, c.v, c.g, c.beta, c.init, l2norm);
          at::Tensor co, cst;
          if (dt == at::kFloat)
            std::tie(co, cst) = ref_chunk_gated_delta_rule(c.q, c.k, c.v, c.g, c.beta, c.init, l2norm, 64);
          for (const cpu::DeltaLoops* L : tables) {
            SCOPED_TRACE(L->isa);
            const auto [o, st] = run(*L, c, l2norm, 64);
            const auto [to, tst] = run(*L, c, l2norm, 0);
            EXPECT_EQ(o.scalar_type(), dt);
            EXPECT_EQ(st.scalar_type(), at::kFloat);
            if (dt == at::kFloat) {
              const double e_ref = std::max(max_abs(o, ro), max_abs(st, rst));
              const double e_tok = std::max(max_abs(o, to), max_abs(st, tst));
              const double e_cref = std::max(max_abs(o, co), max_abs(st, cst));
              EXPECT_LE(e_ref, 1e-5);
              EXPECT_LE(e_tok, 1e-5);
              EXPECT_LE(e_cref, 1e-5);
              worst_f32.ref = std::max(worst_f32.ref, e_ref);
              worst_f32.token = std::max(worst_f32.token, e_tok);
              worst_f32.chunk_ref = std::max(worst_f32.chunk_ref, e_cref);
            } else {
              // Inputs are rounded the same way everywhere; the output rounds once to bf16.
              EXPECT_TRUE(all_close(o, ro, tolerance_for(dt)));
              EXPECT_TRUE(all_close(o, to, tolerance_for(dt)));
              EXPECT_LE(max_abs(st, rst), 1e-5);
              EXPECT_LE(max_abs(st, tst), 1e-5);
              worst_f32.state = std::max(worst_f32.state, std::max(max_abs(st, rst), max_abs(st, tst)));
            }
          }
        }
      }
    }
  }
  std::printf("[ measure ] chunked CPU loop, float32, worst max-abs over out and state: vs ATen recurrence %.3g, "
              "vs token loop %.3g, vs ATen chunked form %.3g; bf16 inputs, state: %.3g\n",
              worst_f32.ref, worst_f32.token, worst_f32.chunk_ref, worst_f32.state);
}

TEST(DeltaChunkedCpu, ChunkSizeIsAParameter) {
  // Any chunk length gives the same recurrence (the op uses 64).
  const Case c = make_case(2, 100, 1, 2, 64, 48, at::kFloat, true, true, 77);
  const auto [ro, rst] = ref_recurrent_gated_delta_rule(c.q, c.k, c.v, c.g, c.beta, c.init, true);
  for (const cpu::DeltaLoops* L : runnable_tables()) {
    for (std::int64_t chunk : {1, 5, 16, 32, 64, 128}) {
      SCOPED_TRACE(std::string(L->isa) + " chunk " + std::to_string(chunk));
      const auto [o, st] = run(*L, c, true, chunk);
      EXPECT_LE(max_abs(o, ro), 1e-5);
      EXPECT_LE(max_abs(st, rst), 1e-5);
    }
  }
}

TEST(DeltaChunkedCpu, StatePoolRowsAndPadding) {
  // The loop honours state rows like the token loop (the step op's pool layout).
  const std::int64_t B = 3, Hv = 2, dk = 32, dv = 32;
  const Case c = make_case(B, 9, 1, Hv, dk, dv, at::kFloat, false, true, 88);
  const at::Tensor pool0 = randn({5, Hv, dk, dv}, at::kFloat, 89) * 0.2;
  const at::Tensor idx = at::tensor(std::vector<std::int64_t>{4, -1, 1});
  for (const cpu::DeltaLoops* L : runnable_tables()) {
    SCOPED_TRACE(L->isa);
    at::Tensor pool = pool0.clone(), pool_tok = pool0.clone();
    // All 9 tokens through the pool: the chunked op's plan pointed at the pool rows.
    auto widen = [&](plan::DeltaRule& pl, at::Tensor& st) {
      pl = plan::delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, std::nullopt, true);
      pl.args.state = st.data_ptr<float>();
      pl.args.states = st.size(0);
      pl.args.state_indices = idx.data_ptr<std::int64_t>();
    };
    plan::DeltaRule pc, pt;
    widen(pc, pool);
    widen(pt, pool_tok);
    L->delta_rule_chunked(pc.args, 4, 0, B * Hv);
    L->delta_rule(pt.args, 0, B * Hv);
    EXPECT_LE(max_abs(pc.out, pt.out), 1e-5);
    EXPECT_LE(max_abs(pool, pool_tok), 1e-5);
    EXPECT_TRUE(pc.out[1].eq(0).all().item<bool>());
    for (int r : {0, 2, 3}) EXPECT_TRUE(bit_equal(pool[r], pool0[r])) << "row " << r;
    const auto [ro, rst] = ref_recurrent_gated_delta_rule(c.q.narrow(0, 2, 1), c.k.narrow(0, 2, 1),
                                                          c.v.narrow(0, 2, 1), c.g.narrow(0, 2, 1),
                                                          c.beta.narrow(0, 2, 1), pool0.narrow(0, 1, 1), true);
    EXPECT_LE(max_abs(pc.out.narrow(0, 2, 1), ro), 1e-5);
    EXPECT_LE(max_abs(pool.narrow(0, 1, 1), rst), 1e-5);
  }
}

TEST(DeltaChunkedCpu, OpDispatch) {
  // The op runs the token loop below 6 tokens and the chunked loop from 6 on
  // (ops.hpp); MMGEN_DELTA_CPU_PATH=token|chunked forces one.
  const cpu::DeltaLoops& L = cpu::delta_loops();
  for (std::int64_t T : {1, 5, 6, 70}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    const Case c = make_case(1, T, 2, 4, 64, 64, at::kFloat, true, true, 900 + T);
    const auto chunked = run(L, c, true, 64), token = run(L, c, true, 0);
    const auto [o, st] = ops::gated_delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, c.init, true);
    const auto& expect = T >= 6 ? chunked : token;
    EXPECT_TRUE(bit_equal(o, expect.first));
    EXPECT_TRUE(bit_equal(st, expect.second));
    for (const char* path : {"token", "chunked"}) {
      setenv("MMGEN_DELTA_CPU_PATH", path, 1);
      const auto [fo, fst] = ops::gated_delta_rule_chunked(c.q, c.k, c.v, c.g, c.beta, c.init, true);
      unsetenv("MMGEN_DELTA_CPU_PATH");
      const auto& forced = std::string(path) == "token" ? token : chunked;
      EXPECT_TRUE(bit_equal(fo, forced.first)) << path;
      EXPECT_TRUE(bit_equal(fst, forced.second)) << path;
    }
  }
}

}  // namespace
