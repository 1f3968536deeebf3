// The CPU kernels of every op against the plain-ATen references, over dtypes,
// odd shapes and the strided views the models pass; plus input validation
// and the torch registration.
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kernel_test_util.hpp"
#include "mmgen/ops.hpp"

namespace {

using namespace mmgen::testing;
namespace ops = mmgen::ops;

const at::ScalarType kDtypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

// Expects fn() to throw c10::Error whose message contains `needle`.
template <class F> void expect_error(F&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing \"" << needle << "\"";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// ---- registration ----------------------------------------------------------------------------
TEST(KernelsCpu, OpsAreRegisteredWithTorch) {
  for (const char* name : {"mmgen::rms_norm", "mmgen::fused_add_rms_norm", "mmgen::rope", "mmgen::silu_and_mul",
                           "mmgen::gelu_tanh", "mmgen::adaln_modulate", "mmgen::gated_residual",
                           "mmgen::paged_attention_decode", "mmgen::reshape_and_cache"}) {
    auto op = c10::Dispatcher::singleton().findSchema({name, ""});
    ASSERT_TRUE(op.has_value()) << name;
    EXPECT_TRUE(op->hasKernelForDispatchKey(c10::DispatchKey::CPU)) << name;
#if defined(MMGEN_WITH_CUDA_KERNELS)
    EXPECT_TRUE(op->hasKernelForDispatchKey(c10::DispatchKey::CUDA)) << name;
#endif
  }
  EXPECT_NE(std::string(ops::build_info()).find("cpu:"), std::string::npos);
}

// ---- rms_norm -----------------------------------------------------------------------------------
TEST(KernelsCpu, RmsNormMatchesReference) {
  const std::vector<std::vector<std::int64_t>> shapes = {{7, 64}, {3, 5, 128}, {4096}, {2, 3, 4, 100}, {33, 4096}};
  std::uint64_t seed = 1;
  for (auto dt : kDtypes) {
    for (const auto& shape : shapes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + c10::str(c10::IntArrayRef(shape)));
      const at::Tensor x = randn(shape, dt, seed++);
      const at::Tensor w = randn({shape.back()}, dt, seed++);
      EXPECT_TRUE(all_close(ops::rms_norm(x, w, 1e-6), ref_rms_norm(x, w, 1e-6)));
    }
  }
}

TEST(KernelsCpu, RmsNormFloat32WeightPromotesTheOutput) {
  for (auto dt : {at::kBFloat16, at::kHalf}) {
    const at::Tensor x = randn({5, 96}, dt, 11), w = randn({96}, at::kFloat, 12);
    const at::Tensor out = ops::rms_norm(x, w, 1e-5);
    EXPECT_EQ(out.scalar_type(), at::kFloat);
    EXPECT_TRUE(all_close(out, ref_rms_norm(x, w, 1e-5), tolerance_for(dt)));
  }
}

TEST(KernelsCpu, RmsNormOnPerHeadViewsOfAFusedProjection) {
  // Qwen3 q_norm: q = qkv[:, :Hq*D].view(T, Hq, D), rows not evenly spaced.
  const std::int64_t T = 9, Hq = 4, Hkv = 2, D = 128;
  for (auto dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const at::Tensor qkv = randn({T, (Hq + 2 * Hkv) * D}, dt, 21);
    const at::Tensor q = qkv.slice(1, 0, Hq * D).view({T, Hq, D});
    const at::Tensor k = qkv.slice(1, Hq * D, (Hq + Hkv) * D).view({T, Hkv, D});
    const at::Tensor w = randn({D}, dt, 22);
    EXPECT_TRUE(all_close(ops::rms_norm(q, w, 1e-6), ref_rms_norm(q, w, 1e-6)));
    EXPECT_TRUE(all_close(ops::rms_norm(k, w, 1e-6), ref_rms_norm(k, w, 1e-6)));
    // Three strided levels cannot be addressed directly: the op copies first.
    const at::Tensor x4 = randn({3, 4, 5, 2 * D}, dt, 23).slice(3, 0, D).transpose(0, 1);
    EXPECT_TRUE(all_close(ops::rms_norm(x4, w, 1e-6), ref_rms_norm(x4, w, 1e-6)));
  }
}

TEST(KernelsCpu, FusedAddRmsNormUpdatesTheResidualInPlace) {
  for (auto dt : kDtypes) {
    for (std::int64_t C : {64, 100, 4096}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " C=" + std::to_string(C));
      const at::Tensor x = randn({6, C}, dt, 31), w = randn({C}, dt, 32);
      at::Tensor residual = randn({6, C}, dt, 33);
      const auto [ref_out, ref_res] = ref_fused_add_rms_norm(x, residual, w, 1e-6);
      const at::Tensor out = ops::fused_add_rms_norm(x, residual, w, 1e-6);
      EXPECT_TRUE(bit_equal(residual, ref_res)) << "residual = x + residual, rounded once to the dtype";
      EXPECT_TRUE(all_close(out, ref_out));
    }
  }
  // A residual view the kernel cannot address is updated through a copy.
  const at::Tensor x = randn({2, 3, 4, 64}, at::kBFloat16, 34), w = randn({64}, at::kBFloat16, 35);
  const at::Tensor base = randn({3, 2, 4, 128}, at::kBFloat16, 36);
  at::Tensor residual = base.slice(3, 0, 64).transpose(0, 1);
  const auto [ref_out, ref_res] = ref_fused_add_rms_norm(x, residual, w, 1e-6);
  const at::Tensor out = ops::fused_add_rms_norm(x, residual, w, 1e-6);
  EXPECT_TRUE(bit_equal(residual.contiguous(), ref_res));
  EXPECT_TRUE(all_close(out, ref_out));
}

// ---- rope ----------------------------------------------------------------------------------
struct RopeShape {
  std::vector<std::int64_t> lead;  // [T] or [B, S]
  std::int64_t hq, hk, d, r;
  bool per_batch_table;
};

void check_rope(const RopeShape& s, at::ScalarType dt, at::ScalarType table_dt, int style, bool strided,
                std::uint64_t seed) {
  const std::int64_t positions = s.lead.back();
  auto with = [&](std::int64_t heads) {
    auto v = s.lead;
    v.push_back(heads);
    v.push_back(s.d);
    return v;
  };
  at::Tensor q, k;
  if (strided) {  // q and k as views into one fused projection output
    auto fused = s.lead;
    fused.push_back((s.hq + s.hk + 1) * s.d);
    const at::Tensor qkv = randn(fused, dt, seed);
    q = qkv.slice(-1, 0, s.hq * s.d).view(with(s.hq));
    k = qkv.slice(-1, s.hq * s.d, (s.hq + s.hk) * s.d).view(with(s.hk));
  } else {
    q = randn(with(s.hq), dt, seed);
    k = randn(with(s.hk), dt, seed + 1);
  }
  std::vector<std::int64_t> table_shape = {positions, s.r / 2};
  if (s.per_batch_table) table_shape = {s.lead[0], positions, s.r / 2};
  const at::Tensor angles = uniform(table_shape, at::kFloat, -10.0, 10.0, seed + 2);
  const at::Tensor cos = angles.cos().to(table_dt), sin = angles.sin().to(table_dt);
  const auto [rq, rk] = ref_rope(q, k, cos, sin, style);
  ops::rope(q, k, cos, sin, style == 0 ? ops::RopeStyle::NeoX : ops::RopeStyle::Interleaved);
  EXPECT_TRUE(all_close(q, rq)) << "q";
  EXPECT_TRUE(all_close(k, rk)) << "k";
  if (s.r < s.d) {
    EXPECT_TRUE(bit_equal(q.slice(-1, s.r), rq.slice(-1, s.r))) << "features past R untouched";
  }
}

TEST(KernelsCpu, RopeBothStylesMatchReference) {
  const std::vector<RopeShape> shapes = {
      {{7}, 8, 2, 128, 128, false},     // Qwen3 decode/prefill tokens, GQA 4
      {{5}, 4, 4, 64, 64, false},       // head_dim 64
      {{6}, 4, 1, 256, 64, false},      // Qwen3.5: 64 rotary dims of 256
      {{2, 9}, 3, 3, 128, 128, false},  // DiT [B, S, H, D], table per position
      {{2, 5}, 2, 2, 128, 128, true},   // table per (batch, position)
  };
  std::uint64_t seed = 100;
  for (int style : {0, 1}) {
    for (auto dt : kDtypes) {
      for (const auto& s : shapes) {
        for (bool strided : {false, true}) {
          SCOPED_TRACE("style " + std::to_string(style) + " " + dtype_name(dt) + " D=" + std::to_string(s.d) +
                       " R=" + std::to_string(s.r) + (strided ? " strided" : ""));
          check_rope(s, dt, at::kFloat, style, strided, seed += 3);
        }
      }
      SCOPED_TRACE("tables in the model dtype");
      check_rope(shapes[0], dt, dt, style, false, seed += 3);
    }
  }
}

// ---- activations ----------------------------------------------------------------------------
TEST(KernelsCpu, SiluAndMulMatchesReference) {
  std::uint64_t seed = 200;
  for (auto dt : kDtypes) {
    for (const auto& shape : std::vector<std::vector<std::int64_t>>{{5, 192}, {3, 7, 2000}, {1, 2 * 13}}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + c10::str(c10::IntArrayRef(shape)));
      const at::Tensor x = randn(shape, dt, seed++).mul(4.0);
      EXPECT_TRUE(all_close(ops::silu_and_mul(x), ref_silu_and_mul(x)));
    }
    // strided rows: a slice of a wider buffer
    const at::Tensor wide = randn({6, 3 * 96}, dt, seed++);
    const at::Tensor x = wide.slice(1, 96, 3 * 96);
    EXPECT_TRUE(all_close(ops::silu_and_mul(x), ref_silu_and_mul(x)));
  }
}

TEST(KernelsCpu, GeluTanhMatchesReferenceIncludingTails) {
  std::uint64_t seed = 300;
  for (auto dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const at::Tensor x = randn({9, 1000}, dt, seed++).mul(3.0);
    EXPECT_TRUE(all_close(ops::gelu_tanh(x), ref_gelu_tanh(x)));
    const at::Tensor extremes =
        at::tensor(std::vector<float>{-100.f, -30.f, -9.f, -1e-4f, 0.f, 1e-4f, 5.f, 30.f, 100.f}).to(dt).view({1, 9});
    EXPECT_TRUE(all_close(ops::gelu_tanh(extremes), ref_gelu_tanh(extremes)));
    const at::Tensor t = randn({64, 3, 96}, dt, seed++).transpose(0, 1);
    EXPECT_TRUE(all_close(ops::gelu_tanh(t), ref_gelu_tanh(t)));
  }
}

// ---- adaln_modulate / gated_residual ---------------------------------------------------------
TEST(KernelsCpu, AdalnModulateMatchesReference) {
  const std::int64_t B = 2, S = 17, D = 96;
  std::uint64_t seed = 400;
  for (auto dt : kDtypes) {
    for (auto mod_dt : {dt, at::kFloat}) {
      for (const auto& mshape : std::vector<std::vector<std::int64_t>>{{B, D}, {B, 1, D}, {B, S, D}}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " mod " + dtype_name(mod_dt) + " " +
                     c10::str(c10::IntArrayRef(mshape)));
        // x as a transposed view; a large mean tests the centred variance
        const at::Tensor x = randn({S, B, D}, dt, seed++).add(30.0).transpose(0, 1);
        const at::Tensor shift = randn(mshape, mod_dt, seed++), scale = randn(mshape, mod_dt, seed++);
        EXPECT_TRUE(all_close(ops::adaln_modulate(x, shift, scale, 1e-6), ref_adaln_modulate(x, shift, scale, 1e-6)));
      }
    }
    // Qwen-Image style chunk of a [B, 6D] modulation vector: strided [B, D]
    const at::Tensor mod = randn({B, 6 * D}, dt, seed++);
    const at::Tensor x = randn({B, S, D}, dt, seed++);
    const at::Tensor shift = mod.slice(1, 0, D), scale = mod.slice(1, D, 2 * D);
    EXPECT_TRUE(all_close(ops::adaln_modulate(x, shift, scale, 1e-6), ref_adaln_modulate(x, shift, scale, 1e-6)));
  }
}

TEST(KernelsCpu, GatedResidualMatchesReference) {
  const std::int64_t B = 3, S = 11, D = 200;
  std::uint64_t seed = 500;
  for (auto dt : kDtypes) {
    for (auto gate_dt : {dt, at::kFloat}) {
      for (const auto& gshape : std::vector<std::vector<std::int64_t>>{{B, D}, {B, 1, D}, {B, S, D}}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " gate " + dtype_name(gate_dt));
        const at::Tensor x = randn({B, S, D}, dt, seed++);
        const at::Tensor y = randn({S, B, D}, dt, seed++).transpose(0, 1);
        const at::Tensor gate = randn(gshape, gate_dt, seed++);
        EXPECT_TRUE(all_close(ops::gated_residual(x, y, gate), ref_gated_residual(x, y, gate)));
      }
    }
  }
}

// ---- paged attention -------------------------------------------------------------------------
TEST(KernelsCpu, PagedAttentionMatchesReference) {
  struct Cfg {
    std::int64_t hq, hkv, d;
  };
  // GQA ratios 1, 2 and 8; head_dim 64 and 128; block 16; mixed lengths incl.
  // 1, block-1, block, block+1 and an empty context.
  const std::vector<Cfg> cfgs = {{4, 4, 64}, {8, 4, 128}, {16, 2, 128}, {8, 1, 64}};
  const std::vector<std::int64_t> lens = {1, 15, 16, 17, 100, 0, 257};
  std::uint64_t seed = 600;
  for (auto dt : kDtypes) {
    for (const auto& c : cfgs) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " Hq=" + std::to_string(c.hq) + " Hkv=" + std::to_string(c.hkv) +
                   " D=" + std::to_string(c.d));
      const PagedCase pc = make_paged_case(std::int64_t(lens.size()), c.hq, c.hkv, c.d, 16, lens, dt, seed += 5);
      const at::Tensor out =
          ops::paged_attention_decode(pc.q, pc.k_cache, pc.v_cache, pc.block_tables, pc.context_lens, pc.scale);
      EXPECT_TRUE(all_close(out, ref_paged_attention(pc.q, pc.k_cache, pc.v_cache, pc.block_tables,
                                                     pc.context_lens, pc.scale)));
    }
  }
}

// A long context at a batch smaller than twice the threads is split by tokens
// (flash-decoding) and merged: ranges of whole cache blocks, a range that is
// empty for the shorter sequence, an empty context, lengths not multiple of
// the block size.
TEST(KernelsCpu, PagedAttentionSplitByTokensMatchesReference) {
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  for (auto dt : kDtypes) {
    for (const std::vector<std::int64_t>& lens :
         {std::vector<std::int64_t>{4096}, std::vector<std::int64_t>{1500, 0, 37}, std::vector<std::int64_t>{2049}}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " batch " + std::to_string(lens.size()) + " first length " +
                   std::to_string(lens[0]));
      const PagedCase pc = make_paged_case(std::int64_t(lens.size()), 12, 4, 64, 16, lens, dt, 660 + lens[0]);
      const at::Tensor out =
          ops::paged_attention_decode(pc.q, pc.k_cache, pc.v_cache, pc.block_tables, pc.context_lens, pc.scale);
      EXPECT_TRUE(all_close(out, ref_paged_attention(pc.q, pc.k_cache, pc.v_cache, pc.block_tables,
                                                     pc.context_lens, pc.scale)));
    }
  }
  at::set_num_threads(threads);
}

TEST(KernelsCpu, PagedAttentionRejectsBadIndices) {
  PagedCase pc = make_paged_case(2, 4, 2, 64, 16, {20, 5}, at::kFloat, 650);
  auto call = [&] {
    ops::paged_attention_decode(pc.q, pc.k_cache, pc.v_cache, pc.block_tables, pc.context_lens, pc.scale);
  };
  at::Tensor lens = pc.context_lens.clone();
  pc.context_lens.fill_(int(pc.block_tables.size(1) * 16 + 1));
  expect_error(call, "context_lens[0]");
  pc.context_lens.copy_(lens);
  pc.block_tables.select(0, 1).select(0, 0).fill_(int(pc.k_cache.size(0)));
  expect_error(call, "block_tables[1][0]");
  pc.block_tables.select(0, 1).select(0, 0).fill_(-1);
  expect_error(call, "block_tables[1][0] = -1");
  expect_error([&] { ops::paged_attention_decode(pc.q.slice(1, 0, 3), pc.k_cache, pc.v_cache, pc.block_tables,
                                                 pc.context_lens, pc.scale); },
               "multiple of kv heads");
  expect_error([&] { ops::paged_attention_decode(pc.q, pc.k_cache, pc.v_cache, pc.block_tables.to(at::kLong),
                                                 pc.context_lens, pc.scale); },
               "block_tables must be int32");
}

// ---- reshape_and_cache -----------------------------------------------------------------------
TEST(KernelsCpu, ReshapeAndCacheWritesSlotsAndSkipsMinusOne) {
  const std::int64_t T = 7, Hkv = 2, D = 64, NB = 5, BS = 4;
  for (auto dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const at::Tensor kv = randn({T, 3 * Hkv * D}, dt, 700);  // k and v as views of a fused buffer
    const at::Tensor k = kv.slice(1, Hkv * D, 2 * Hkv * D).view({T, Hkv, D});
    const at::Tensor v = kv.slice(1, 2 * Hkv * D, 3 * Hkv * D).view({T, Hkv, D});
    at::Tensor kc = randn({NB, BS, Hkv, D}, dt, 701), vc = randn({NB, BS, Hkv, D}, dt, 702);
    const at::Tensor slots = at::tensor(std::vector<std::int64_t>{3, 19, -1, 0, 7, -1, 12});
    const auto [rk, rv] = ref_reshape_and_cache(k, v, kc, vc, slots);
    ops::reshape_and_cache(k, v, kc, vc, slots);
    EXPECT_TRUE(bit_equal(kc, rk));
    EXPECT_TRUE(bit_equal(vc, rv));
  }
}

TEST(KernelsCpu, ReshapeAndCacheRejectsOutOfRangeSlotsBeforeWriting) {
  at::Tensor kc = randn({2, 4, 1, 8}, at::kFloat, 710), vc = randn({2, 4, 1, 8}, at::kFloat, 711);
  const at::Tensor k = randn({2, 1, 8}, at::kFloat, 712), v = randn({2, 1, 8}, at::kFloat, 713);
  const at::Tensor before = kc.clone();
  expect_error([&] { ops::reshape_and_cache(k, v, kc, vc, at::tensor(std::vector<std::int64_t>{0, 8})); },
               "slot_mapping[1] = 8");
  EXPECT_TRUE(bit_equal(kc, before)) << "nothing written when a slot is bad";
  expect_error([&] { ops::reshape_and_cache(k, v, kc, vc, at::tensor(std::vector<std::int64_t>{-2, 0})); },
               "slot_mapping[0] = -2");
}

// ---- validation messages ----------------------------------------------------------------------
TEST(KernelsCpu, BadInputsRaiseTypedErrorsNamingTheArgument) {
  const at::Tensor x = randn({4, 64}, at::kFloat, 800);
  expect_error([&] { ops::rms_norm(x.to(at::kInt), randn({64}, at::kFloat, 1), 1e-6); },
               "rms_norm: x must be float32, bfloat16 or float16");
  expect_error([&] { ops::rms_norm(x, randn({63}, at::kFloat, 1), 1e-6); }, "weight must have shape [64]");
  expect_error([&] { ops::rms_norm(x, randn({64}, at::kHalf, 1), 1e-6); }, "weight must have x's dtype");
  expect_error([&] { ops::rms_norm(x, randn({64}, at::kFloat, 1), -1.0); }, "eps must be finite");
  expect_error([&] { ops::silu_and_mul(randn({4, 63}, at::kFloat, 1)); }, "even last dim");
  expect_error([&] { ops::adaln_modulate(x, x, x, 1e-6); }, "x must be [B, S, D]");
  const at::Tensor x3 = randn({2, 3, 64}, at::kFloat, 801);
  expect_error([&] { ops::adaln_modulate(x3, randn({2, 2, 64}, at::kFloat, 1), randn({2, 64}, at::kFloat, 1), 1e-6); },
               "shift must have shape");
  at::Tensor q = randn({3, 2, 64}, at::kFloat, 802), k = randn({3, 2, 64}, at::kFloat, 803);
  expect_error([&] { ops::rope(q, k, randn({3, 40}, at::kFloat, 1), randn({3, 40}, at::kFloat, 1), ops::RopeStyle::NeoX); },
               "rotary dims");
  expect_error([&] { ops::rope(q, k, randn({4, 32}, at::kFloat, 1), randn({4, 32}, at::kFloat, 1), ops::RopeStyle::NeoX); },
               "rows but q has 3 positions");
}

TEST(KernelsCpu, EmptyInputsGiveEmptyOutputs) {
  const at::Tensor x = randn({0, 64}, at::kBFloat16, 900);
  EXPECT_EQ(ops::rms_norm(x, randn({64}, at::kBFloat16, 1), 1e-6).numel(), 0);
  EXPECT_EQ(ops::silu_and_mul(randn({0, 64}, at::kFloat, 1)).sizes(), (std::vector<std::int64_t>{0, 32}));
  EXPECT_EQ(ops::gelu_tanh(randn({3, 0}, at::kFloat, 1)).numel(), 0);
}

}  // namespace
