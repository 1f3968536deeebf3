// The project's .cu kernels, compiled unchanged by the host compiler against
// the CUDA emulator (mmgen_kernels_emulated), run on the CPU and compared
// with the plain-ATen references. Arguments come from the same plans the CUDA
// op wrappers use, so layout handling is exercised too. Sizes stay small: each
// thread block runs as real OS threads.
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <string>
#include <type_traits>
#include <vector>

#include "cuda/launch.hpp"
#include "emu_test_util.hpp"
#include "kernel_test_util.hpp"
#include "plan.hpp"

namespace {

using namespace mmgen::testing;
namespace plan = mmgen::kernels::plan;
namespace emu = mmgen::cuda_kernels;  // resolves to the emulated build here

static_assert(std::is_same_v<decltype(&emu::rms_norm), decltype(&mmgen::cuda_kernels::emulated::rms_norm)>);

const at::ScalarType kDtypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

TEST(EmulatedKernels, RmsNormPackedAndScalarPaths) {
  // cols 64, 96 and 1000 take 16-byte packs, 37 and 999 the one-element
  // path; short rows run a warp per row, long ones a block per row; the
  // per-head view has two strided row levels.
  std::uint64_t seed = 1;
  for (auto dt : kDtypes) {
    for (std::int64_t C : {64, 96, 37, 1000, 999}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " C=" + std::to_string(C));
      const at::Tensor x = randn({5, C}, dt, seed++), w = randn({C}, dt, seed++);
      auto p = plan::rms_norm(x, w, 1e-6, nullptr);
      EXPECT_LAUNCH_OK(emu::rms_norm(p.args, nullptr));
      EXPECT_TRUE(all_close(p.out, ref_rms_norm(x, w, 1e-6)));
    }
    const at::Tensor qkv = randn({3, 6 * 64}, dt, seed++);
    const at::Tensor q = qkv.slice(1, 0, 4 * 64).view({3, 4, 64});
    const at::Tensor w = randn({64}, at::kFloat, seed++);  // float32 weight: float32 output
    auto p = plan::rms_norm(q, w, 1e-6, nullptr);
    EXPECT_LAUNCH_OK(emu::rms_norm(p.args, nullptr));
    EXPECT_TRUE(all_close(p.out, ref_rms_norm(q, w, 1e-6), tolerance_for(dt)));
  }
}

TEST(EmulatedKernels, FusedAddRmsNorm) {
  for (auto dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    for (std::int64_t C : {128, 1024}) {  // warp per row, block per row
      const at::Tensor x = randn({3, C}, dt, 10), w = randn({C}, dt, 11);
      at::Tensor residual = randn({3, C}, dt, 12);
      const auto [ref_out, ref_res] = ref_fused_add_rms_norm(x, residual, w, 1e-6);
      auto p = plan::rms_norm(x, w, 1e-6, &residual);
      EXPECT_LAUNCH_OK(emu::rms_norm(p.args, nullptr));
      p.finish();
      EXPECT_TRUE(bit_equal(residual, ref_res)) << "C=" << C;
      EXPECT_TRUE(all_close(p.out, ref_out)) << "C=" << C;
    }
  }
}

TEST(EmulatedKernels, RopeBothStyles) {
  for (int style : {0, 1}) {
    for (auto dt : kDtypes) {
      SCOPED_TRACE("style " + std::to_string(style) + " " + dtype_name(dt));
      const at::Tensor qkv = randn({5, 7 * 64}, dt, 20);
      at::Tensor q = qkv.slice(1, 0, 4 * 64).view({5, 4, 64});
      at::Tensor k = qkv.slice(1, 4 * 64, 6 * 64).view({5, 2, 64});
      const at::Tensor ang = uniform({5, 24}, at::kFloat, -8, 8, 21);  // 48 of 64 dims rotate
      const at::Tensor c = ang.cos(), s = ang.sin();
      const auto [rq, rk] = ref_rope(q, k, c, s, style);
      auto p = plan::rope(q, k, c, s, style);
      EXPECT_LAUNCH_OK(emu::rope(p.args, nullptr));
      p.finish();
      EXPECT_TRUE(all_close(q, rq));
      EXPECT_TRUE(all_close(k, rk));
    }
  }
}

TEST(EmulatedKernels, Activations) {
  for (auto dt : kDtypes) {
    for (std::int64_t I : {72, 30}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " I=" + std::to_string(I));
      const at::Tensor x = randn({3, 2 * I}, dt, 30).mul(3.0);
      auto p = plan::silu_and_mul(x);
      EXPECT_LAUNCH_OK(emu::silu_and_mul(p.args, nullptr));
      EXPECT_TRUE(all_close(p.out, ref_silu_and_mul(x)));
      auto g = plan::gelu_tanh(x);
      EXPECT_LAUNCH_OK(emu::gelu_tanh(g.args, nullptr));
      EXPECT_TRUE(all_close(g.out, ref_gelu_tanh(x)));
    }
  }
}

TEST(EmulatedKernels, AdalnModulateAndGatedResidual) {
  for (auto dt : kDtypes) {
    for (std::int64_t D : {64, 30}) {
      for (auto mdt : {dt, at::kFloat}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " D=" + std::to_string(D) + " mod " + dtype_name(mdt));
        const at::Tensor x = randn({3, 2, D}, dt, 40).add(10.0).transpose(0, 1);  // [2, 3, D] strided
        const at::Tensor shift = randn({2, D}, mdt, 41), scale = randn({2, 3, D}, mdt, 42);
        auto p = plan::adaln_modulate(x, shift, scale, 1e-6);
        EXPECT_LAUNCH_OK(emu::adaln_modulate(p.args, nullptr));
        EXPECT_TRUE(all_close(p.out, ref_adaln_modulate(x, shift, scale, 1e-6)));
        const at::Tensor y = randn({2, 3, D}, dt, 43), gate = randn({2, 1, D}, mdt, 44);
        auto g = plan::gated_residual(x, y, gate);
        EXPECT_LAUNCH_OK(emu::gated_residual(g.args, nullptr));
        EXPECT_TRUE(all_close(g.out, ref_gated_residual(x, y, gate)));
      }
    }
  }
}

// Runs the emulated paged attention with the workspace ops_cuda.cpp would allocate.
at::Tensor run_paged(const PagedCase& pc, int partition_size) {
  auto p = plan::paged_attention(pc.q, pc.k_cache, pc.v_cache, pc.block_tables, pc.context_lens, pc.scale);
  const std::int64_t parts = emu::paged_attention_partitions(p.args.max_blocks * p.args.block_size, partition_size);
  const std::int64_t B = p.args.batch, H = p.args.q_heads, D = p.args.head_dim;
  at::Tensor ws = pc.q.new_empty({B * H * parts * (D + 2)}, pc.q.options().dtype(at::kFloat));
  p.args.tmp_out = ws.data_ptr<float>();
  p.args.max_logits = p.args.tmp_out + B * H * parts * D;
  p.args.exp_sums = p.args.max_logits + B * H * parts;
  p.args.partitions = parts;
  p.out.fill_(-12345.0);  // poison: every element must be written
  const int err = emu::paged_attention(p.args, partition_size, nullptr);
  EXPECT_EQ(err, 0) << emu::error_string(err);
  return p.out;
}

TEST(EmulatedKernels, PagedAttentionGqaAndPartitions) {
  struct Cfg {
    std::int64_t hq, hkv, d;
    at::ScalarType dt;
    int partition;  // 32: several partitions and the merge kernel; 0: the default (one)
  };
  const std::vector<Cfg> cfgs = {
      {2, 2, 64, at::kFloat, 0},     {4, 2, 128, at::kBFloat16, 0}, {8, 1, 64, at::kHalf, 32},
      {4, 4, 128, at::kFloat, 32},   {12, 1, 64, at::kBFloat16, 32},  // 12 heads per kv head: two head chunks
      {2, 1, 256, at::kBFloat16, 0},
  };
  const std::vector<std::int64_t> lens = {1, 17, 0, 70};
  std::uint64_t seed = 50;
  for (const auto& c : cfgs) {
    SCOPED_TRACE(std::string(dtype_name(c.dt)) + " Hq=" + std::to_string(c.hq) + " Hkv=" + std::to_string(c.hkv) +
                 " D=" + std::to_string(c.d) + " partition=" + std::to_string(c.partition));
    const PagedCase pc = make_paged_case(std::int64_t(lens.size()), c.hq, c.hkv, c.d, 16, lens, c.dt, seed += 7);
    const at::Tensor out = run_paged(pc, c.partition);
    EXPECT_TRUE(all_close(out, ref_paged_attention(pc.q, pc.k_cache, pc.v_cache, pc.block_tables, pc.context_lens,
                                                   pc.scale)));
  }
}

TEST(EmulatedKernels, PagedAttentionBadBlockIdGivesNaNNotAnOutOfBoundsRead) {
  PagedCase pc = make_paged_case(2, 2, 1, 64, 16, {20, 5}, at::kFloat, 77);
  pc.block_tables.select(0, 0).select(0, 1).fill_(int(pc.k_cache.size(0)) + 5);
  const at::Tensor out = run_paged(pc, 0);
  EXPECT_TRUE(out[0].isnan().all().item<bool>()) << "sequence 0 reads a bad block";
  pc.block_tables.select(0, 0).select(0, 1).fill_(0);
  const at::Tensor ok = ref_paged_attention(pc.q, pc.k_cache, pc.v_cache, pc.block_tables, pc.context_lens, pc.scale);
  EXPECT_TRUE(all_close(out[1], ok[1])) << "sequence 1 is unaffected";
}

TEST(EmulatedKernels, ReshapeAndCache) {
  for (auto dt : kDtypes) {
    for (std::int64_t D : {64, 6}) {  // 6: no 16-byte packs
      SCOPED_TRACE(std::string(dtype_name(dt)) + " D=" + std::to_string(D));
      const at::Tensor kv = randn({5, 3 * 2 * D}, dt, 60);
      const at::Tensor k = kv.slice(1, 0, 2 * D).view({5, 2, D}), v = kv.slice(1, 2 * D, 4 * D).view({5, 2, D});
      at::Tensor kc = randn({3, 4, 2, D}, dt, 61), vc = randn({3, 4, 2, D}, dt, 62);
      std::vector<std::int64_t> slots = {11, -1, 0, 5, 6};
      const at::Tensor sm = at::tensor(slots);
      const auto [rk, rv] = ref_reshape_and_cache(k, v, kc, vc, sm);
      auto p = plan::reshape_and_cache(k, v, kc, vc, sm);
      EXPECT_LAUNCH_OK(emu::reshape_and_cache(p.args, nullptr));
      EXPECT_TRUE(bit_equal(kc, rk));
      EXPECT_TRUE(bit_equal(vc, rv));
    }
  }
}

}  // namespace
