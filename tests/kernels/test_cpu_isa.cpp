// Every ISA build of the CPU loops (baseline x86-64, AVX2, AVX-512) that this
// CPU can run computes the same ops: each table is driven directly with the
// same plans the op wrappers make, and compared with the references.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cpu/loops.hpp"
#include "kernel_test_util.hpp"
#include "plan.hpp"

namespace {

using namespace mmgen::testing;
namespace cpu = mmgen::kernels::cpu;
namespace plan = mmgen::kernels::plan;

std::vector<const cpu::CpuLoops*> runnable_tables() {
  std::vector<const cpu::CpuLoops*> t = {&cpu::cpu_loops_baseline()};
#if defined(__x86_64__)
  if (cpu_runs_avx2_build()) t.push_back(&cpu::cpu_loops_avx2());
  if (cpu_runs_avx512_build()) t.push_back(&cpu::cpu_loops_avx512());
#endif
  return t;
}

TEST(KernelsCpuIsa, EveryRunnableBuildMatchesTheReference) {
  const auto tables = runnable_tables();
  RecordProperty("isa_builds_tested", int(tables.size()));
  for (const cpu::CpuLoops* L : tables) {
    for (auto dt : {at::kFloat, at::kBFloat16, at::kHalf}) {
      SCOPED_TRACE(std::string(L->isa) + " " + dtype_name(dt));
      {
        const at::Tensor x = randn({5, 200}, dt, 1), w = randn({200}, dt, 2);
        auto p = plan::rms_norm(x, w, 1e-6, nullptr);
        L->rms_norm(p.args, 0, p.args.x_rows.count());
        EXPECT_TRUE(all_close(p.out, ref_rms_norm(x, w, 1e-6)));
      }
      {
        const at::Tensor x = randn({4, 2 * 77}, dt, 3).mul(3.0);
        auto p = plan::silu_and_mul(x);
        L->silu_and_mul(p.args, 0, p.args.x_rows.count());
        EXPECT_TRUE(all_close(p.out, ref_silu_and_mul(x)));
        auto g = plan::gelu_tanh(x);
        L->gelu_tanh(g.args, 0, g.args.x_rows.count());
        EXPECT_TRUE(all_close(g.out, ref_gelu_tanh(x)));
      }
      {
        const at::Tensor x = randn({2, 3, 72}, dt, 4), sh = randn({2, 72}, at::kFloat, 5), sc = randn({2, 72}, at::kFloat, 6);
        auto p = plan::adaln_modulate(x, sh, sc, 1e-6);
        L->adaln_modulate(p.args, 0, p.args.x_rows.count());
        EXPECT_TRUE(all_close(p.out, ref_adaln_modulate(x, sh, sc, 1e-6)));
        auto g = plan::gated_residual(x, x, sc);
        L->gated_residual(g.args, 0, g.args.x_rows.count());
        EXPECT_TRUE(all_close(g.out, ref_gated_residual(x, x, sc)));
      }
      for (int style : {0, 1}) {
        at::Tensor q = randn({5, 4, 64}, dt, 7), k = randn({5, 2, 64}, dt, 8);
        const at::Tensor ang = uniform({5, 24}, at::kFloat, -5, 5, 9);
        const at::Tensor c = ang.cos(), s = ang.sin();
        const auto [rq, rk] = ref_rope(q, k, c, s, style);
        auto p = plan::rope(q, k, c, s, style);
        L->rope(p.args, 0, p.args.tokens);
        EXPECT_TRUE(all_close(q, rq)) << "style " << style;
        EXPECT_TRUE(all_close(k, rk)) << "style " << style;
      }
      // Rotary widths of 4 and 8 full vectors take the interleaved register
      // path in some build (16..128 lanes); the others the general loop, with
      // a partial last vector for 24 and 40.
      for (std::int64_t r : {16, 24, 32, 40, 48, 64, 128}) {
        at::Tensor q = randn({3, 3, 128}, dt, 11), k = randn({3, 2, 128}, dt, 12);
        const at::Tensor ang = uniform({3, r / 2}, at::kFloat, -5, 5, 13);
        const auto [rq, rk] = ref_rope(q, k, ang.cos(), ang.sin(), 1);
        auto p = plan::rope(q, k, ang.cos(), ang.sin(), 1);
        L->rope(p.args, 0, p.args.tokens);
        EXPECT_TRUE(all_close(q, rq)) << "interleaved, rot_dim " << r;
        EXPECT_TRUE(all_close(k, rk)) << "interleaved, rot_dim " << r;
      }
      {
        const PagedCase pc = make_paged_case(3, 12, 3, 80, 16, {33, 1, 50}, dt, 10);  // D=80: a vector tail
        const at::Tensor ref =
            ref_paged_attention(pc.q, pc.k_cache, pc.v_cache, pc.block_tables, pc.context_lens, pc.scale);
        for (std::int64_t per : {0, 1, 2}) {  // items of all, one and two kv heads
          auto p = plan::paged_attention(pc.q, pc.k_cache, pc.v_cache, pc.block_tables, pc.context_lens, pc.scale);
          p.args.cpu_kv_heads_per_item = per;
          const std::int64_t n = per == 0 ? p.args.kv_heads : per;
          L->paged_attention(p.args, 0, p.args.batch * ((p.args.kv_heads + n - 1) / n));
          EXPECT_TRUE(all_close(p.out, ref)) << "kv heads per item " << per;
        }
      }
    }
  }
}

}  // namespace
