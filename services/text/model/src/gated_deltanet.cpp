// Gated DeltaNet (gated_deltanet.hpp). Read beside transformers'
// modeling_qwen3_5.py (Qwen3_5GatedDeltaNet, torch_chunk_gated_delta_rule,
// torch_recurrent_gated_delta_rule, causal_conv1d_*, Qwen3_5RMSNormGated) and
// modeling_qwen3_next.py (fix_query_key_value_ordering): same op order, the
// delta rule in float32, the conv and the projections in the model dtype.
#include "mmgen/text/gated_deltanet.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linalg_solve_triangular.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/softplus.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "mmgen/ops.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::text {

namespace {

[[noreturn]] void bad_input(const std::string& what) {
  throw proto::ProtocolError(proto::ErrorCode::invalid_request, what);
}

at::Tensor long_tensor(const std::vector<std::int64_t>& v, c10::Device device) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong)).to(device);
}

}  // namespace

// ============================== the delta rule ==============================

at::Tensor l2norm(const at::Tensor& x, double eps) { return x * at::rsqrt((x * x).sum(-1, true) + eps); }

at::Tensor chunk_gated_delta_rule(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                  const at::Tensor& beta, at::Tensor& state, std::int64_t chunk_size) {
  if (chunk_size <= 0) throw std::invalid_argument("chunk_gated_delta_rule: chunk_size must be positive");
  const std::int64_t T = q.size(0), H = q.size(1), dv = v.size(2);
  // Heads first: [H, T, d] and [H, T].
  const at::Tensor qh = q.permute({1, 0, 2}), kh = k.permute({1, 0, 2}), vh = v.permute({1, 0, 2});
  const at::Tensor gh = g.t(), bh = beta.t();
  at::Tensor out = at::empty({H, T, dv}, v.options());
  const auto bool_opts = at::TensorOptions().dtype(at::kBool).device(q.device());
  at::Tensor strictly_upper;  // [C, C], rebuilt only for a shorter last chunk
  for (std::int64_t s = 0; s < T; s += chunk_size) {
    const std::int64_t L = std::min(chunk_size, T - s);
    const at::Tensor Q = qh.narrow(1, s, L), K = kh.narrow(1, s, L), V = vh.narrow(1, s, L);
    const at::Tensor B = bh.narrow(1, s, L).unsqueeze(-1);  // [H, L, 1]
    // Cumulative log-decay inside the chunk; decay[i, j] = exp(cum_i - cum_j)
    // for j <= i, 0 above the diagonal (masked to -inf before exp, so no overflow).
    const at::Tensor cum = gh.narrow(1, s, L).cumsum(-1);  // [H, L]
    if (!strictly_upper.defined() || strictly_upper.size(0) != L) {
      strictly_upper = at::ones({L, L}, bool_opts).triu(1);
    }
    const at::Tensor decay = (cum.unsqueeze(-1) - cum.unsqueeze(-2))
                                 .masked_fill(strictly_upper, -std::numeric_limits<double>::infinity())
                                 .exp();  // [H, L, L]
    const at::Tensor Kt = K.transpose(-1, -2);
    const at::Tensor k_beta = K * B, v_beta = V * B;
    const at::Tensor ut_system = at::matmul(k_beta, Kt) * decay;  // strictly lower part used
    const at::Tensor intra = at::matmul(Q, Kt) * decay;           // causal, diagonal included
    const at::Tensor cum_exp = cum.exp().unsqueeze(-1);           // [H, L, 1]
    // (I + strictly_lower(ut_system))^-1 applied to beta*v and to the decayed beta*k:
    // the UT transform that folds the chunk's delta updates into matmuls.
    const at::Tensor new_values = at::linalg_solve_triangular(ut_system, v_beta, /*upper=*/false, /*left=*/true,
                                                              /*unitriangular=*/true);
    const at::Tensor k_cumdecay = at::linalg_solve_triangular(ut_system, k_beta * cum_exp, false, true, true);
    // The part of the new values the carried-in state already predicts is removed.
    const at::Tensor v_new = new_values - at::matmul(k_cumdecay, state);  // [H, L, dv]
    out.narrow(1, s, L).copy_(at::matmul(Q * cum_exp, state) + at::matmul(intra, v_new));
    const at::Tensor last = cum.narrow(1, L - 1, 1);  // [H, 1]
    state = state * last.exp().unsqueeze(-1) +
            at::matmul((K * (last - cum).exp().unsqueeze(-1)).transpose(-1, -2), v_new);
  }
  return out.permute({1, 0, 2}).contiguous();  // [T, H, dv]
}

at::Tensor recurrent_gated_delta_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      const at::Tensor& g, const at::Tensor& beta, at::Tensor& state) {
  state.mul_(g.exp().unsqueeze(-1).unsqueeze(-1));                      // S <- S * exp(g)
  const at::Tensor kv_mem = (state * k.unsqueeze(-1)).sum(-2);           // S^T k: [N, H, dv]
  const at::Tensor delta = (v - kv_mem) * beta.unsqueeze(-1);
  state.add_(k.unsqueeze(-1) * delta.unsqueeze(-2));                     // S <- S + k delta^T
  return (state * q.unsqueeze(-1)).sum(-2);                              // S^T q: [N, H, dv]
}

// ============================== states ==============================

HybridStates::HybridStates(std::int64_t num_linear_layers, std::int64_t slots, std::int64_t conv_dim,
                           std::int64_t kernel, std::int64_t num_v_heads, std::int64_t k_head_dim,
                           std::int64_t v_head_dim, c10::ScalarType dtype, c10::Device device) {
  if (num_linear_layers < 0 || slots < 0 || kernel < 1) throw std::invalid_argument("HybridStates: bad dimensions");
  conv_ = at::zeros({num_linear_layers, slots, conv_dim, kernel - 1}, at::TensorOptions().dtype(dtype).device(device));
  recurrent_ = at::zeros({num_linear_layers, slots, num_v_heads, k_head_dim, v_head_dim},
                         at::TensorOptions().dtype(at::kFloat).device(device));
}

void HybridStates::reset_slot(std::int64_t slot) {
  if (slot < 0 || slot >= slots()) throw std::invalid_argument("HybridStates::reset_slot: slot out of range");
  conv_.select(1, slot).zero_();
  recurrent_.select(1, slot).zero_();
}

std::int64_t HybridStates::bytes_per_slot() const {
  if (!conv_.defined() || slots() == 0) return 0;
  return (conv_.numel() * std::int64_t(conv_.element_size()) +
          recurrent_.numel() * std::int64_t(recurrent_.element_size())) /
         slots();
}

// ============================== the layer ==============================

at::Tensor GatedRMSNorm::operator()(const at::Tensor& x, const at::Tensor& gate) const {
  // The reference's dtype steps: the norm in float32, rounded to x's dtype,
  // times the weight (in their promoted dtype), times silu(gate) in float32,
  // back to x's dtype. ops::gated_rms_norm rounds at the same points.
  return ops::gated_rms_norm(x, gate, weight, eps);
}

GatedDeltaNet GatedDeltaNet::load(const Qwen3_5Config& cfg, io::WeightLoader& w, const std::string& p) {
  GatedDeltaNet l;
  const std::int64_t H = cfg.hidden_size;
  l.num_k_heads = cfg.linear_num_key_heads;
  l.num_v_heads = cfg.linear_num_value_heads;
  l.head_k_dim = cfg.linear_key_head_dim;
  l.head_v_dim = cfg.linear_value_head_dim;
  l.kernel = cfg.linear_conv_kernel_dim;
  const std::int64_t Kd = cfg.linear_key_dim(), Vd = cfg.linear_value_dim(), Hv = l.num_v_heads;
  if (cfg.architecture == HybridArchitecture::qwen3_next) {
    // Stored per key head g: [q_g (dk) | k_g (dk) | v_g (r*dv) | z_g (r*dv)] and
    // [b_g (r) | a_g (r)], r = Hv / Hk; value head g*r + j is the j-th of group g.
    // Concatenating each part over the groups gives the flat layout.
    const std::int64_t Hk = l.num_k_heads, dk = l.head_k_dim, r = Hv / Hk, rv = r * l.head_v_dim;
    at::Tensor qkvz = w.take(p + "in_proj_qkvz.weight", {2 * Kd + 2 * Vd, H}).view({Hk, 2 * dk + 2 * rv, H});
    at::Tensor ba = w.take(p + "in_proj_ba.weight", {2 * Hv, H}).view({Hk, 2 * r, H});
    l.in_proj_qkvz.weight = at::cat({qkvz.narrow(1, 0, dk).reshape({Kd, H}), qkvz.narrow(1, dk, dk).reshape({Kd, H}),
                                     qkvz.narrow(1, 2 * dk, rv).reshape({Vd, H}),
                                     qkvz.narrow(1, 2 * dk + rv, rv).reshape({Vd, H})},
                                    0);  // [q | k | v | z]
    l.in_proj_ba.weight = at::cat({ba.narrow(1, 0, r).reshape({Hv, H}), ba.narrow(1, r, r).reshape({Hv, H})}, 0);
    l.fused = true;
  } else {
    l.in_proj_qkv.weight = w.take(p + "in_proj_qkv.weight", {2 * Kd + Vd, H});
    l.in_proj_z.weight = w.take(p + "in_proj_z.weight", {Vd, H});
    l.in_proj_b.weight = w.take(p + "in_proj_b.weight", {Hv, H});
    l.in_proj_a.weight = w.take(p + "in_proj_a.weight", {Hv, H});
  }
  l.conv1d_weight = w.take(p + "conv1d.weight", {cfg.conv_dim(), 1, l.kernel});
  l.dt_bias = w.take(p + "dt_bias", {Hv});
  l.A_log = w.take(p + "A_log", {Hv});
  l.norm = GatedRMSNorm{w.take(p + "norm.weight", {l.head_v_dim}), cfg.rms_norm_eps};
  l.out_proj.weight = w.take(p + "out_proj.weight", {H, Vd});
  return l;
}

at::Tensor GatedDeltaNet::forward(const at::Tensor& x, const AttentionMetadata& meta, const at::Tensor& conv_state,
                                  const at::Tensor& recurrent_state) const {
  const std::int64_t T = x.size(0);
  const std::int64_t Kd = num_k_heads * head_k_dim, Vd = num_v_heads * head_v_dim, C = 2 * Kd + Vd;
  const std::int64_t Hv = num_v_heads, rep = num_v_heads / num_k_heads;

  // Projections: mixed [T, C] = [q | k | v] (the conv input), z [T, Vd], b / a [T, Hv].
  at::Tensor mixed, z, b, a;
  if (fused) {
    const at::Tensor qkvz = in_proj_qkvz(x);
    mixed = qkvz.narrow(1, 0, C);
    z = qkvz.narrow(1, C, Vd);
    const at::Tensor ba = in_proj_ba(x);
    b = ba.narrow(1, 0, Hv);
    a = ba.narrow(1, Hv, Hv);
  } else {
    mixed = in_proj_qkv(x);
    z = in_proj_z(x);
    b = in_proj_b(x);
    a = in_proj_a(x);
  }

  // Sequences with one new token after a cached prefix decode in one batch;
  // the rest (prompts, prompt chunks) go one by one.
  std::vector<std::int64_t> decode_rows, decode_slots;
  std::vector<std::size_t> prefill;
  for (std::size_t i = 0; i < meta.seqs.size(); ++i) {
    const SequenceSlice& s = meta.seqs[i];
    if (s.cache_slot < 0 || s.cache_slot >= conv_state.size(0)) {
      bad_input("sequence state slot " + std::to_string(s.cache_slot) + " is outside the " +
                std::to_string(conv_state.size(0)) + " recurrent-state slots");
    }
    if (s.query_len == 1 && s.context_len > 0) {
      decode_rows.push_back(s.query_start);
      decode_slots.push_back(s.cache_slot);
    } else if (s.query_len > 0) {
      prefill.push_back(i);
    }
  }
  const bool any_decode = !decode_rows.empty();
  const at::Tensor rows = any_decode ? long_tensor(decode_rows, x.device()) : at::Tensor();
  const at::Tensor slots = any_decode ? long_tensor(decode_slots, x.device()) : at::Tensor();

  // Depthwise causal conv1d + SiLU continuing from each sequence's window of
  // the last kernel-1 inputs, which the op advances in place; a new sequence
  // starts from a zero window (the reference's left zero padding).
  at::Tensor conv_pool = conv_state;  // a handle: the ops update the pool in place
  at::Tensor conv_out = at::empty({T, C}, mixed.options());
  if (any_decode) {
    conv_out.index_copy_(0, rows, ops::causal_conv1d_update(mixed.index_select(0, rows).unsqueeze(-1), conv_pool,
                                                            conv1d_weight, std::nullopt, true, slots)
                                      .squeeze(-1));
  }
  for (std::size_t i : prefill) {
    const SequenceSlice& s = meta.seqs[i];
    if (s.context_len == 0) conv_pool[s.cache_slot].zero_();
    const at::Tensor slot = long_tensor({s.cache_slot}, x.device());
    // [1, C, n] as a view of the [n, C] rows; the op's [1, C, n] result is laid out [1, n, C].
    conv_out.narrow(0, s.query_start, s.query_len)
        .copy_(ops::causal_conv1d_update(mixed.narrow(0, s.query_start, s.query_len).t().unsqueeze(0), conv_pool,
                                         conv1d_weight, std::nullopt, true, slot)[0]
                   .t());
  }

  // The delta-rule ops take q, k, v as the conv gives them: they l2-normalise
  // q and k in float32, scale q by dk^-0.5 and share each key head among its
  // Hv / Hk value heads themselves. beta = sigmoid(b) stays in the model dtype
  // (the ops read it in float32, as the reference casts it);
  // g = -exp(A_log) * softplus(a + dt_bias) in float32.
  const at::Tensor q = conv_out.narrow(1, 0, Kd).reshape({T, num_k_heads, head_k_dim});
  const at::Tensor k = conv_out.narrow(1, Kd, Kd).reshape({T, num_k_heads, head_k_dim});
  const at::Tensor v = conv_out.narrow(1, 2 * Kd, Vd).reshape({T, Hv, head_v_dim});
  const at::Tensor beta = b.sigmoid();                                                          // [T, Hv]
  const at::Tensor g = -A_log.to(at::kFloat).exp() * at::softplus(a.to(at::kFloat) + dt_bias);  // [T, Hv]

  // Core output in the model dtype, as the reference casts it back before the norm.
  at::Tensor core = at::empty({T, Hv, head_v_dim}, conv_out.options());
  at::Tensor state_pool = recurrent_state;  // a handle: updated in place
  if (any_decode) {
    core.index_copy_(0, rows,
                     ops::gated_delta_rule_step(q.index_select(0, rows), k.index_select(0, rows),
                                                v.index_select(0, rows), g.index_select(0, rows),
                                                beta.index_select(0, rows), state_pool, slots, true));
  }
  for (std::size_t i : prefill) {
    const SequenceSlice& s = meta.seqs[i];
    const std::int64_t r0 = s.query_start, n = s.query_len;
    at::Tensor S = state_pool[s.cache_slot];  // [Hv, dk, dv], a view into the pool
    // The op is the default. It is itself chunked (64-token chunks, the UT
    // transform, as torch_chunk_gated_delta_rule) from 6 tokens on on the CPU
    // and from 16 on CUDA, token by token below (see ops.hpp): one thread,
    // 512-token prompt, 16 key / 16 value heads of 128, 15 ms for the op's
    // chunked path, 21 ms for its token path, ~70 ms for the ATen chunked
    // form below (float32).
    if (prefill_path == DeltaPrefill::kernel_op) {
      auto [o, last] = ops::gated_delta_rule_chunked(
          q.narrow(0, r0, n).unsqueeze(0), k.narrow(0, r0, n).unsqueeze(0), v.narrow(0, r0, n).unsqueeze(0),
          g.narrow(0, r0, n).unsqueeze(0), beta.narrow(0, r0, n).unsqueeze(0),
          s.context_len > 0 ? std::optional<at::Tensor>(S.unsqueeze(0)) : std::nullopt, true);
      core.narrow(0, r0, n).copy_(o[0]);
      S.copy_(last[0]);
    } else {
      // The same preparation the op does internally, then the chunked form.
      const double scale = 1.0 / std::sqrt(double(head_k_dim));
      at::Tensor qf = l2norm(q.narrow(0, r0, n).to(at::kFloat)) * scale;
      at::Tensor kf = l2norm(k.narrow(0, r0, n).to(at::kFloat));
      if (rep > 1) {
        qf = qf.repeat_interleave(rep, 1);
        kf = kf.repeat_interleave(rep, 1);
      }
      at::Tensor state = s.context_len > 0 ? S.clone() : at::zeros_like(S);
      core.narrow(0, r0, n).copy_(chunk_gated_delta_rule(qf, kf, v.narrow(0, r0, n).to(at::kFloat),
                                                         g.narrow(0, r0, n), beta.narrow(0, r0, n).to(at::kFloat),
                                                         state));
      S.copy_(state);
    }
  }

  // Gated RMSNorm per value head, then out_proj.
  const at::Tensor normed = norm(core.reshape({-1, head_v_dim}), z.reshape({-1, head_v_dim}));
  return out_proj(normed.reshape({T, Vd}));
}

}  // namespace mmgen::text
