// CPU implementations: validate (plan), then split the rows/items over
// libtorch's intra-op thread pool and run the ISA-specific loops.
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/amax.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/isinf.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>

#include "cpu/loops.hpp"
#include "op_impls.hpp"
#include "plan.hpp"

namespace mmgen::kernels::cpu {
namespace {

// Below this many tokens per range a context is not split (the merge costs a
// few ATen calls).
constexpr std::int64_t kMinTokensPerPartition = 512;

// Grain: ~32K elements per task, so small inputs stay on the calling thread.
template <class F> void parallel_rows(std::int64_t rows, std::int64_t elems_per_row, const F& f) {
  const std::int64_t grain = std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(1, elems_per_row));
  at::parallel_for(0, rows, grain, [&](std::int64_t b, std::int64_t e) { f(b, e); });
}

}  // namespace

const char* isa_name() { return cpu_loops().isa; }

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  auto p = plan::rms_norm(x, weight, eps, nullptr);
  parallel_rows(p.args.x_rows.count(), p.args.cols,
                [&](std::int64_t b, std::int64_t e) { cpu_loops().rms_norm(p.args, b, e); });
  return p.out;
}

at::Tensor fused_add_rms_norm(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight, double eps) {
  auto p = plan::rms_norm(x, weight, eps, &residual);
  parallel_rows(p.args.x_rows.count(), p.args.cols,
                [&](std::int64_t b, std::int64_t e) { cpu_loops().rms_norm(p.args, b, e); });
  p.finish();
  return p.out;
}

void rope(at::Tensor& q, at::Tensor& k, const at::Tensor& cos, const at::Tensor& sin, std::int64_t style) {
  auto p = plan::rope(q, k, cos, sin, style);
  parallel_rows(p.args.tokens, (p.args.q_heads + p.args.k_heads) * p.args.rot_dim,
                [&](std::int64_t b, std::int64_t e) { cpu_loops().rope(p.args, b, e); });
  p.finish();
}

at::Tensor silu_and_mul(const at::Tensor& gate_up) {
  auto p = plan::silu_and_mul(gate_up);
  parallel_rows(p.args.x_rows.count(), 2 * p.args.cols,
                [&](std::int64_t b, std::int64_t e) { cpu_loops().silu_and_mul(p.args, b, e); });
  return p.out;
}

at::Tensor gelu_tanh(const at::Tensor& x) {
  auto p = plan::gelu_tanh(x);
  parallel_rows(p.args.x_rows.count(), p.args.cols,
                [&](std::int64_t b, std::int64_t e) { cpu_loops().gelu_tanh(p.args, b, e); });
  return p.out;
}

at::Tensor adaln_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps) {
  auto p = plan::adaln_modulate(x, shift, scale, eps);
  parallel_rows(p.args.x_rows.count(), p.args.cols,
                [&](std::int64_t b, std::int64_t e) { cpu_loops().adaln_modulate(p.args, b, e); });
  return p.out;
}

at::Tensor gated_residual(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate) {
  auto p = plan::gated_residual(x, y, gate);
  parallel_rows(p.args.x_rows.count(), p.args.cols,
                [&](std::int64_t b, std::int64_t e) { cpu_loops().gated_residual(p.args, b, e); });
  return p.out;
}

at::Tensor paged_attention_decode(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                  const at::Tensor& block_tables, const at::Tensor& context_lens, double scale) {
  auto p = plan::paged_attention(q, k_cache, v_cache, block_tables, context_lens, scale);
  plan::check_paged_attention_indices(p);
  // One item = a sequence and a run of its kv heads. Whole sequences stream
  // their cache blocks best; split the heads only when there are too few
  // sequences to keep every thread busy.
  const std::int64_t B = p.args.batch, H = p.args.kv_heads, threads = at::get_num_threads();
  // A long context at a batch too small for the threads is split by tokens
  // instead (flash-decoding): each item then streams whole cache rows, where
  // a head split reads one head's slice of every row and loses the
  // prefetcher (Qwen3 100 M, one sequence at 4,096 tokens: ~2x faster).
  std::int64_t longest = 0;  // the plan checked the lengths and holds them on the CPU
  if (B < 2 * threads && threads > 1)
    for (std::int64_t b = 0; b < B; ++b) longest = std::max<std::int64_t>(longest, p.args.context_lens[b]);
  const std::int64_t P = longest >= kMinTokensPerPartition * 2
                             ? std::min<std::int64_t>((2 * threads + B - 1) / B, longest / kMinTokensPerPartition)
                             : 1;
  if (P > 1) {
    const auto f32 = p.out.options().dtype(at::kFloat);
    at::Tensor tmp = at::empty({B, p.args.q_heads, P, p.args.head_dim}, f32);
    at::Tensor maxes = at::empty({B, p.args.q_heads, P}, f32);
    at::Tensor sums = at::empty({B, p.args.q_heads, P}, f32);
    p.args.partitions = P;
    p.args.tmp_out = tmp.data_ptr<float>();
    p.args.max_logits = maxes.data_ptr<float>();
    p.args.exp_sums = sums.data_ptr<float>();
    at::parallel_for(0, B * P, 1, [&](std::int64_t b, std::int64_t e) { cpu_loops().paged_attention(p.args, b, e); });
    // Merge: each range's sums and outputs rescaled to the overall maximum.
    at::Tensor top = maxes.amax(-1, /*keepdim=*/true);
    top = at::where(at::isinf(top), at::zeros_like(top), top);  // every range empty: weights 0
    at::Tensor w = at::exp(maxes - top);                          // [B, Hq, P]
    at::Tensor den = (sums * w).sum(-1, /*keepdim=*/true);        // [B, Hq, 1]
    at::Tensor num = (tmp * w.unsqueeze(-1)).sum(2);              // [B, Hq, D]
    at::Tensor merged = at::where(den > 0, num / den, at::zeros_like(num));  // empty context: zeros
    p.out.copy_(merged);
    return p.out;
  }
  std::int64_t per = H;
  while (per > 1 && B * ((H + per - 1) / per) < 4 * threads) per = (per + 1) / 2;
  p.args.cpu_kv_heads_per_item = per;
  at::parallel_for(0, B * ((H + per - 1) / per), 1,
                   [&](std::int64_t b, std::int64_t e) { cpu_loops().paged_attention(p.args, b, e); });
  return p.out;
}

void reshape_and_cache(const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache, at::Tensor& v_cache,
                       const at::Tensor& slot_mapping) {
  auto p = plan::reshape_and_cache(k, v, k_cache, v_cache, slot_mapping);
  plan::check_slots(p);  // before any write: a bad slot leaves the caches untouched
  parallel_rows(p.args.tokens, 2 * p.args.kv_heads * p.args.head_dim,
                [&](std::int64_t b, std::int64_t e) { cpu_loops().reshape_and_cache(p.args, b, e); });
}

}  // namespace mmgen::kernels::cpu
