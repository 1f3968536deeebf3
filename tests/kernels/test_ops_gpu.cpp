// The CUDA kernels on a real GPU (label gpu): each op on device tensors,
// including strided views made on the device, against the plain-ATen
// references (computed on the CPU) and against the CPU kernels. Skips, saying
// why, when the build has no CUDA kernels or the machine has no CUDA device.
#include <ATen/Context.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernel_test_util.hpp"
#include "mmgen/ops.hpp"

namespace {

using namespace mmgen::testing;
namespace ops = mmgen::ops;

const at::ScalarType kDtypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

class KernelsGpu : public GpuTest {};

at::Tensor gpu(const at::Tensor& t) { return t.to(at::kCUDA); }

TEST_F(KernelsGpu, RmsNormAndFusedAdd) {
  std::uint64_t seed = 1;
  for (auto dt : kDtypes) {
    for (const auto& shape : std::vector<std::vector<std::int64_t>>{{7, 64}, {3, 5, 128}, {33, 4096}, {4, 100}, {2, 37}}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + c10::str(c10::IntArrayRef(shape)));
      const at::Tensor x = randn(shape, dt, seed++), w = randn({shape.back()}, dt, seed++);
      const at::Tensor out = ops::rms_norm(gpu(x), gpu(w), 1e-6);
      EXPECT_TRUE(out.is_cuda());
      EXPECT_TRUE(all_close(out, ref_rms_norm(x, w, 1e-6)));
      EXPECT_TRUE(all_close(out, ops::rms_norm(x, w, 1e-6)));
      at::Tensor res_cpu = randn(shape, dt, seed++);
      at::Tensor res = gpu(res_cpu);
      const auto [ref_out, ref_res] = ref_fused_add_rms_norm(x, res_cpu, w, 1e-6);
      const at::Tensor fout = ops::fused_add_rms_norm(gpu(x), res, gpu(w), 1e-6);
      EXPECT_TRUE(bit_equal(res.cpu(), ref_res));
      EXPECT_TRUE(all_close(fout, ref_out));
    }
    // Per-head q-norm view made on the device, float32 weight.
    const at::Tensor qkv = gpu(randn({9, 8 * 128}, dt, seed++));
    const at::Tensor q = qkv.slice(1, 0, 4 * 128).view({9, 4, 128});
    const at::Tensor w = randn({128}, at::kFloat, seed++);
    EXPECT_TRUE(all_close(ops::rms_norm(q, gpu(w), 1e-6), ref_rms_norm(q.cpu(), w, 1e-6), tolerance_for(dt)));
  }
}

TEST_F(KernelsGpu, RopeBothStylesOnStridedViews) {
  for (int style : {0, 1}) {
    for (auto dt : kDtypes) {
      for (std::int64_t D : {64, 128, 256}) {
        SCOPED_TRACE("style " + std::to_string(style) + " " + dtype_name(dt) + " D=" + std::to_string(D));
        const std::int64_t T = 11, Hq = 8, Hk = 2, R = D == 256 ? 64 : D;
        const at::Tensor qkv = gpu(randn({T, (Hq + 2 * Hk) * D}, dt, 10 + D));
        at::Tensor q = qkv.slice(1, 0, Hq * D).view({T, Hq, D});
        at::Tensor k = qkv.slice(1, Hq * D, (Hq + Hk) * D).view({T, Hk, D});
        const at::Tensor ang = uniform({T, R / 2}, at::kFloat, -20, 20, 11);
        const at::Tensor c = ang.cos(), s = ang.sin();
        const auto [rq, rk] = ref_rope(q.cpu(), k.cpu(), c, s, style);
        ops::rope(q, k, gpu(c), gpu(s), style == 0 ? ops::RopeStyle::NeoX : ops::RopeStyle::Interleaved);
        EXPECT_TRUE(all_close(q, rq));
        EXPECT_TRUE(all_close(k, rk));
      }
    }
  }
  // [B, S, H, D] with a per-(batch, position) table
  at::Tensor q = gpu(randn({2, 5, 3, 128}, at::kBFloat16, 12)), k = gpu(randn({2, 5, 3, 128}, at::kBFloat16, 13));
  const at::Tensor ang = uniform({2, 5, 64}, at::kFloat, -5, 5, 14);
  const auto [rq, rk] = ref_rope(q.cpu(), k.cpu(), ang.cos(), ang.sin(), 1);
  ops::rope(q, k, gpu(ang.cos()), gpu(ang.sin()), ops::RopeStyle::Interleaved);
  EXPECT_TRUE(all_close(q, rq));
  EXPECT_TRUE(all_close(k, rk));
}

TEST_F(KernelsGpu, PointwiseAndModulation) {
  std::uint64_t seed = 100;
  for (auto dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    for (std::int64_t I : {96, 1000, 13}) {
      const at::Tensor x = randn({6, 2 * I}, dt, seed++).mul(3.0);
      EXPECT_TRUE(all_close(ops::silu_and_mul(gpu(x)), ref_silu_and_mul(x)));
      EXPECT_TRUE(all_close(ops::gelu_tanh(gpu(x)), ref_gelu_tanh(x)));
    }
    for (std::int64_t D : {3072, 96, 30}) {
      for (auto mdt : {dt, at::kFloat}) {
        const at::Tensor xb = gpu(randn({17, 2, D}, dt, seed++).add(20.0));
        const at::Tensor x = xb.transpose(0, 1);  // [2, 17, D] strided, on the device
        const at::Tensor shift = randn({2, D}, mdt, seed++), scale = randn({2, 17, D}, mdt, seed++);
        EXPECT_TRUE(all_close(ops::adaln_modulate(x, gpu(shift), gpu(scale), 1e-6),
                              ref_adaln_modulate(x.cpu(), shift, scale, 1e-6)));
        const at::Tensor y = randn({2, 17, D}, dt, seed++), gate = randn({2, 1, D}, mdt, seed++);
        EXPECT_TRUE(all_close(ops::gated_residual(x, gpu(y), gpu(gate)), ref_gated_residual(x.cpu(), y, gate)));
      }
    }
  }
}

TEST_F(KernelsGpu, PagedAttentionDecode) {
  struct Cfg {
    std::int64_t hq, hkv, d;
  };
  const std::vector<Cfg> cfgs = {{4, 4, 64}, {8, 4, 128}, {16, 2, 128}, {32, 4, 128}, {64, 4, 128}, {8, 2, 256}};
  // Contexts across 0, 1, block edges and several 512-token partitions.
  const std::vector<std::int64_t> lens = {1, 15, 16, 17, 0, 513, 1100, 300};
  std::uint64_t seed = 200;
  for (auto dt : kDtypes) {
    for (const auto& c : cfgs) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " Hq=" + std::to_string(c.hq) + " Hkv=" + std::to_string(c.hkv) +
                   " D=" + std::to_string(c.d));
      const PagedCase pc = make_paged_case(std::int64_t(lens.size()), c.hq, c.hkv, c.d, 16, lens, dt, seed += 5);
      const at::Tensor qb = gpu(randn({std::int64_t(lens.size()), c.hq + 3, c.d}, dt, seed + 1));
      const at::Tensor q = qb.slice(1, 2, 2 + c.hq);
      const at::Tensor out = ops::paged_attention_decode(q, gpu(pc.k_cache), gpu(pc.v_cache), gpu(pc.block_tables),
                                                         gpu(pc.context_lens), pc.scale);
      EXPECT_TRUE(all_close(out, ref_paged_attention(q.cpu(), pc.k_cache, pc.v_cache, pc.block_tables,
                                                     pc.context_lens, pc.scale)));
    }
  }
}

TEST_F(KernelsGpu, PagedAttentionBadBlockIdGivesNaN) {
  PagedCase pc = make_paged_case(2, 4, 2, 128, 16, {40, 9}, at::kBFloat16, 300);
  pc.block_tables.select(0, 0).select(0, 1).fill_(-3);
  const at::Tensor out = ops::paged_attention_decode(gpu(pc.q), gpu(pc.k_cache), gpu(pc.v_cache),
                                                     gpu(pc.block_tables), gpu(pc.context_lens), pc.scale)
                             .cpu();
  EXPECT_TRUE(out[0].isnan().all().item<bool>());
  EXPECT_FALSE(out[1].isnan().any().item<bool>());
}

TEST_F(KernelsGpu, ReshapeAndCache) {
  for (auto dt : kDtypes) {
    for (std::int64_t D : {128, 6}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " D=" + std::to_string(D));
      const std::int64_t T = 9, Hkv = 4;
      const at::Tensor kv = gpu(randn({T, 3 * Hkv * D}, dt, 400));
      const at::Tensor k = kv.slice(1, 0, Hkv * D).view({T, Hkv, D});
      const at::Tensor v = kv.slice(1, 2 * Hkv * D, 3 * Hkv * D).view({T, Hkv, D});
      const at::Tensor kc0 = randn({6, 16, Hkv, D}, dt, 401), vc0 = randn({6, 16, Hkv, D}, dt, 402);
      const at::Tensor slots = at::tensor(std::vector<std::int64_t>{3, 95, -1, 0, 17, 16, -1, 50, 94});
      const auto [rk, rv] = ref_reshape_and_cache(k.cpu(), v.cpu(), kc0, vc0, slots);
      at::Tensor kc = gpu(kc0), vc = gpu(vc0);
      ops::reshape_and_cache(k, v, kc, vc, gpu(slots));
      EXPECT_TRUE(bit_equal(kc.cpu(), rk));
      EXPECT_TRUE(bit_equal(vc.cpu(), rv));
    }
  }
}

}  // namespace
