#include "delta_ref.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/conv1d.h>
#include <ATen/ops/linalg_solve_triangular.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <vector>

namespace mmgen::testing {
namespace {

at::Tensor l2norm(const at::Tensor& x) { return x * ((x * x).sum(-1, true) + 1e-6).rsqrt(); }

// Shared head-up of both references: GQA repeat, [B, H, T, d] float32, l2norm.
struct Prepared {
  at::Tensor q, k, v, beta, g;
};
Prepared prepare(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                 const at::Tensor& beta, bool norm) {
  const std::int64_t Hk = k.size(2), Hv = v.size(2);
  at::Tensor qq = q, kk = k;
  if (Hk != Hv) {
    qq = qq.repeat_interleave(Hv / Hk, 2);
    kk = kk.repeat_interleave(Hv / Hk, 2);
  }
  auto f = [](const at::Tensor& t) { return t.transpose(1, 2).to(at::kFloat).contiguous(); };
  Prepared p{f(qq), f(kk), f(v), f(beta), f(g)};
  if (norm) {
    p.q = l2norm(p.q);
    p.k = l2norm(p.k);
  }
  return p;
}

}  // namespace

std::pair<at::Tensor, at::Tensor> ref_recurrent_gated_delta_rule(const at::Tensor& q, const at::Tensor& k,
                                                                 const at::Tensor& v, const at::Tensor& g,
                                                                 const at::Tensor& beta,
                                                                 const std::optional<at::Tensor>& initial_state,
                                                                 bool norm) {
  const auto dtype = q.scalar_type();
  const std::int64_t B = k.size(0), T = k.size(1), dk = k.size(3), Hv = v.size(2), dv = v.size(3);
  Prepared p = prepare(q, k, v, g, beta, norm);
  p.q = p.q / std::sqrt(double(dk));
  at::Tensor S = initial_state.has_value() && initial_state->defined()
                     ? initial_state->to(p.v)
                     : at::zeros({B, Hv, dk, dv}, p.v.options());
  at::Tensor out = at::zeros_like(p.v);
  for (std::int64_t i = 0; i < T; ++i) {
    const at::Tensor qt = p.q.select(2, i), kt = p.k.select(2, i), vt = p.v.select(2, i);
    S = S * p.g.select(2, i).exp().unsqueeze(-1).unsqueeze(-1);
    const at::Tensor bt = p.beta.select(2, i).unsqueeze(-1);
    const at::Tensor kv_mem = (S * kt.unsqueeze(-1)).sum(-2);
    const at::Tensor delta = (vt - kv_mem) * bt;
    S = S + kt.unsqueeze(-1) * delta.unsqueeze(-2);
    out.select(2, i).copy_((S * qt.unsqueeze(-1)).sum(-2));
  }
  return {out.transpose(1, 2).contiguous().to(dtype), S};
}

std::pair<at::Tensor, at::Tensor> ref_chunk_gated_delta_rule(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, const at::Tensor& g,
                                                             const at::Tensor& beta,
                                                             const std::optional<at::Tensor>& initial_state,
                                                             bool norm, std::int64_t C) {
  const auto dtype = q.scalar_type();
  const std::int64_t B = k.size(0), T = k.size(1), dk = k.size(3), Hv = v.size(2), dv = v.size(3);
  Prepared p = prepare(q, k, v, g, beta, norm);
  at::Tensor query = p.q * std::pow(double(dk), -0.5);
  const std::int64_t pad = (C - T % C) % C;
  query = at::constant_pad_nd(query, {0, 0, 0, pad});
  at::Tensor key = at::constant_pad_nd(p.k, {0, 0, 0, pad});
  at::Tensor value = at::constant_pad_nd(p.v, {0, 0, 0, pad});
  at::Tensor bt = at::constant_pad_nd(p.beta, {0, pad});
  at::Tensor decay = at::constant_pad_nd(p.g, {0, pad});
  const std::int64_t N = (T + pad) / C;
  at::Tensor v_beta = value * bt.unsqueeze(-1);
  at::Tensor k_beta = key * bt.unsqueeze(-1);
  auto chunked = [&](const at::Tensor& x) { return x.reshape({x.size(0), x.size(1), -1, C, x.size(-1)}); };
  query = chunked(query);
  key = chunked(key);
  k_beta = chunked(k_beta);
  v_beta = chunked(v_beta);
  decay = decay.reshape({decay.size(0), decay.size(1), -1, C});
  const at::Tensor upper = at::ones({C, C}, query.options().dtype(at::kBool)).triu(1);
  const at::Tensor cum = decay.cumsum(3);
  const at::Tensor pair = (cum.unsqueeze(4) - cum.unsqueeze(3)).masked_fill(upper, -INFINITY).exp();
  const at::Tensor ut = k_beta.matmul(key.transpose(-1, -2)) * pair;
  const at::Tensor intra = query.matmul(key.transpose(-1, -2)) * pair;
  const at::Tensor decayed_k_beta = k_beta * cum.exp().unsqueeze(-1);
  const at::Tensor new_values = at::linalg_solve_triangular(ut, v_beta, /*upper=*/false, /*left=*/true,
                                                            /*unitriangular=*/true);
  const at::Tensor k_cumdecay = at::linalg_solve_triangular(ut, decayed_k_beta, false, true, true);
  at::Tensor S = initial_state.has_value() && initial_state->defined()
                     ? initial_state->to(new_values)
                     : at::zeros({B, Hv, dk, dv}, new_values.options());
  at::Tensor out = at::zeros_like(new_values);
  query = query * cum.exp().unsqueeze(-1);
  key = key * (cum.narrow(-1, C - 1, 1) - cum).exp().unsqueeze(-1);
  const at::Tensor chunk_decay = cum.select(-1, C - 1).exp().unsqueeze(-1).unsqueeze(-1);
  for (std::int64_t i = 0; i < N; ++i) {
    const at::Tensor v_new = new_values.select(2, i) - k_cumdecay.select(2, i).matmul(S);
    const at::Tensor inter = query.select(2, i).matmul(S);
    out.select(2, i).copy_(inter + intra.select(2, i).matmul(v_new));
    S = S * chunk_decay.select(2, i) + key.select(2, i).transpose(-1, -2).matmul(v_new);
  }
  out = out.reshape({B, Hv, -1, dv}).narrow(2, 0, T);
  return {out.transpose(1, 2).contiguous().to(dtype), S};
}

at::Tensor ref_causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                             bool silu) {
  const std::int64_t C = x.size(1), S = x.size(2), K = weight.size(-1);
  at::Tensor out = at::conv1d(x.to(weight.scalar_type()), weight.unsqueeze(1), bias, {1}, {K - 1}, {1}, C)
                       .narrow(2, 0, S);
  if (silu) out = at::silu(out);
  return out.to(x.scalar_type());
}

std::pair<at::Tensor, at::Tensor> ref_causal_conv1d_update(const at::Tensor& x, const at::Tensor& conv_state,
                                                           const at::Tensor& weight,
                                                           const std::optional<at::Tensor>& bias, bool silu) {
  const std::int64_t C = x.size(1), S = x.size(2), L = conv_state.size(-1);
  at::Tensor state = conv_state.clone();
  const at::Tensor cat = at::cat({state, x}, -1).to(weight.scalar_type());
  state.copy_(cat.narrow(-1, cat.size(-1) - L, L));
  at::Tensor out = at::conv1d(cat, weight.unsqueeze(1), bias, {1}, at::IntArrayRef(std::vector<std::int64_t>{0}), {1}, C);
  out = out.narrow(2, out.size(2) - S, S);
  if (silu) out = at::silu(out);
  return {out.to(x.scalar_type()), state};
}

at::Tensor ref_gated_rms_norm(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, double eps) {
  const auto in = x.scalar_type();
  at::Tensor h = x.to(at::kFloat);
  const at::Tensor var = h.pow(2).mean(-1, true);
  h = h * (var + eps).rsqrt();
  h = weight * h.to(in);
  h = h * at::silu(z.to(at::kFloat));
  return h.to(in);
}

}  // namespace mmgen::testing
