// Gated DeltaNet (gated_deltanet.hpp). Read beside transformers'
// modeling_qwen3_5.py (Qwen3_5GatedDeltaNet, torch_chunk_gated_delta_rule,
// torch_recurrent_gated_delta_rule, causal_conv1d_*, Qwen3_5RMSNormGated) and
// modeling_qwen3_next.py (fix_query_key_value_ordering): same op order, the
// delta rule in float32, the conv and the projections in the model dtype.
#include "mmgen/text/gated_deltanet.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/conv1d.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linalg_solve_triangular.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/softplus.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

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
  // Norm in float32, back to the input dtype, times the weight, then the gate in float32.
  const auto input_dtype = x.scalar_type();
  at::Tensor h = x.to(at::kFloat);
  h = h * at::rsqrt(h.pow(2).mean(-1, true) + eps);
  h = weight * h.to(input_dtype);
  h = h * at::silu(gate.to(at::kFloat));
  return h.to(input_dtype);
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
    } else {
      prefill.push_back(i);
    }
  }
  const bool any_decode = !decode_rows.empty();
  const at::Tensor rows = any_decode ? long_tensor(decode_rows, x.device()) : at::Tensor();
  const at::Tensor slots = any_decode ? long_tensor(decode_slots, x.device()) : at::Tensor();

  // Depthwise causal conv1d + SiLU over [conv window | new inputs]; the window
  // keeps the last kernel-1 inputs (zeros before the first token).
  const std::int64_t W = kernel - 1;
  at::Tensor conv_out = at::empty({T, C}, mixed.options());
  auto conv = [&](const at::Tensor& full) {  // [B, C, W + n] -> [B, C, n]
    const std::int64_t one = 1, zero = 0;
    return at::silu(at::conv1d(full, conv1d_weight, std::optional<at::Tensor>(), at::IntArrayRef(one),
                               at::IntArrayRef(zero), at::IntArrayRef(one), C));
  };
  if (any_decode) {
    const at::Tensor full = at::cat({conv_state.index_select(0, slots), mixed.index_select(0, rows).unsqueeze(-1)}, -1);
    conv_out.index_copy_(0, rows, conv(full).squeeze(-1));
    conv_state.index_copy_(0, slots, full.narrow(-1, 1, W));
  }
  for (std::size_t i : prefill) {
    const SequenceSlice& s = meta.seqs[i];
    at::Tensor window = s.context_len > 0 ? conv_state[s.cache_slot] : at::zeros({C, W}, mixed.options());
    const at::Tensor full = at::cat({window, mixed.narrow(0, s.query_start, s.query_len).t()}, -1).unsqueeze(0);
    conv_out.narrow(0, s.query_start, s.query_len).copy_(conv(full)[0].t());
    conv_state[s.cache_slot].copy_(full[0].narrow(-1, full.size(-1) - W, W));
  }

  // q, k l2-normalised in float32 (q scaled by dk^-0.5), key heads repeated
  // for their value heads; beta = sigmoid(b); g = -exp(A_log) * softplus(a + dt_bias).
  const double scale = 1.0 / std::sqrt(double(head_k_dim));
  at::Tensor q = l2norm(conv_out.narrow(1, 0, Kd).reshape({T, num_k_heads, head_k_dim}).to(at::kFloat)) * scale;
  at::Tensor k = l2norm(conv_out.narrow(1, Kd, Kd).reshape({T, num_k_heads, head_k_dim}).to(at::kFloat));
  if (rep > 1) {
    q = q.repeat_interleave(rep, 1);
    k = k.repeat_interleave(rep, 1);
  }
  const at::Tensor v = conv_out.narrow(1, 2 * Kd, Vd).reshape({T, Hv, head_v_dim}).to(at::kFloat);
  const at::Tensor beta = b.sigmoid().to(at::kFloat);                                     // [T, Hv]
  const at::Tensor g = -A_log.to(at::kFloat).exp() * at::softplus(a.to(at::kFloat) + dt_bias);  // [T, Hv]

  at::Tensor core = at::empty({T, Hv, head_v_dim}, v.options());  // float32
  if (any_decode) {
    at::Tensor S = recurrent_state.index_select(0, slots);  // [B, Hv, dk, dv]
    at::Tensor o = recurrent_gated_delta_step(q.index_select(0, rows), k.index_select(0, rows),
                                              v.index_select(0, rows), g.index_select(0, rows),
                                              beta.index_select(0, rows), S);
    recurrent_state.index_copy_(0, slots, S);
    core.index_copy_(0, rows, o);
  }
  for (std::size_t i : prefill) {
    const SequenceSlice& s = meta.seqs[i];
    at::Tensor S = s.context_len > 0 ? recurrent_state[s.cache_slot].clone()
                                     : at::zeros({Hv, head_k_dim, head_v_dim}, v.options());
    const std::int64_t r0 = s.query_start, n = s.query_len;
    core.narrow(0, r0, n).copy_(chunk_gated_delta_rule(q.narrow(0, r0, n), k.narrow(0, r0, n), v.narrow(0, r0, n),
                                                       g.narrow(0, r0, n), beta.narrow(0, r0, n), S));
    recurrent_state[s.cache_slot].copy_(S);
  }

  // Gated RMSNorm per value head, then out_proj.
  const at::Tensor normed = norm(core.to(x.scalar_type()).reshape({-1, head_v_dim}), z.reshape({-1, head_v_dim}));
  return out_proj(normed.reshape({T, Vd}));
}

}  // namespace mmgen::text
