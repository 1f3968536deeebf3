#include "delta_plan.hpp"

#include <cmath>
#include <vector>

#include "plan.hpp"

namespace mmgen::kernels::plan {
namespace {

void same_device(const at::Tensor& a, const at::Tensor& ref, const char* op, const char* name, const char* ref_name) {
  TORCH_CHECK(a.device() == ref.device(), op, ": ", name, " is on ", a.device(), " but ", ref_name, " is on ",
              ref.device());
}

// Last dim contiguous (or trivially so); otherwise a contiguous copy.
at::Tensor inner_contiguous(const at::Tensor& t) {
  return (t.dim() == 0 || t.size(-1) <= 1 || t.stride(-1) == 1) ? t : t.contiguous();
}

// Optional per-sequence state rows as a contiguous int64 tensor [B] (undefined if absent).
at::Tensor index_tensor(const std::optional<at::Tensor>& idx, std::int64_t B, std::int64_t states,
                        const at::Tensor& ref, const char* op) {
  if (!idx.has_value() || !idx->defined()) {
    TORCH_CHECK(states >= B, op, ": without state_indices the state needs at least batch = ", B, " rows, got ",
                states);
    return {};
  }
  const at::Tensor& t = *idx;
  TORCH_CHECK(t.scalar_type() == at::kLong || t.scalar_type() == at::kInt, op,
              ": state_indices must be int32 or int64, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == B, op, ": state_indices must have shape [", B, "], got ", t.sizes());
  same_device(t, ref, op, "state_indices", "x");
  return t.to(at::kLong).contiguous();
}

DeltaRule delta_rule_common(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                            const at::Tensor& beta, bool l2norm, const char* op) {
  // Here every tensor has its token dim: q, k [B, T, Hk, dk], v [B, T, Hv, dv], g, beta [B, T, Hv].
  const DType qd = dtype_of(q, op, "q");
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(), op,
              ": q, k and v must share one dtype, got ", q.scalar_type(), ", ", k.scalar_type(), " and ",
              v.scalar_type());
  TORCH_CHECK(k.sizes() == q.sizes(), op, ": k must have q's shape ", q.sizes(), ", got ", k.sizes());
  const std::int64_t B = q.size(0), T = q.size(1), Hk = q.size(2), dk = q.size(3);
  TORCH_CHECK(v.size(0) == B && v.size(1) == T, op, ": v must share q's batch and token dims, got q ", q.sizes(),
              " and v ", v.sizes());
  const std::int64_t Hv = v.size(2), dv = v.size(3);
  TORCH_CHECK(Hk > 0 && Hv > 0 && Hv % Hk == 0, op, ": the value heads (", Hv,
              ") must be a positive multiple of the key heads (", Hk, ")");
  TORCH_CHECK(dk > 0 && dv > 0, op, ": head dims must be positive, got dk = ", dk, ", dv = ", dv);
  TORCH_CHECK(dk <= 1024 && dv <= 1024, op, ": head dims up to 1024 are supported, got dk = ", dk, ", dv = ", dv);
  for (const auto& [t, name] : {std::pair{&g, "g"}, std::pair{&beta, "beta"}}) {
    TORCH_CHECK(t->dim() == 3 && t->size(0) == B && t->size(1) == T && t->size(2) == Hv, op, ": ", name,
                " must have shape [", B, ", ", T, ", ", Hv, "] (per value head), got ", t->sizes());
    same_device(*t, q, op, name, "q");
  }
  same_device(k, q, op, "k", "q");
  same_device(v, q, op, "v", "q");

  DeltaRule p;
  p.q = inner_contiguous(q);
  p.k = inner_contiguous(k);
  p.v = inner_contiguous(v);
  p.g = g;
  p.beta = beta;
  p.out = q.new_empty({B, T, Hv, dv});
  DeltaRuleArgs& a = p.args;
  a.dtype = qd;
  a.g_dtype = dtype_of(g, op, "g");
  a.beta_dtype = dtype_of(beta, op, "beta");
  a.q = p.q.data_ptr();
  a.k = p.k.data_ptr();
  a.v = p.v.data_ptr();
  a.g = p.g.data_ptr();
  a.beta = p.beta.data_ptr();
  a.q_sb = p.q.stride(0), a.q_st = p.q.stride(1), a.q_sh = p.q.stride(2);
  a.k_sb = p.k.stride(0), a.k_st = p.k.stride(1), a.k_sh = p.k.stride(2);
  a.v_sb = p.v.stride(0), a.v_st = p.v.stride(1), a.v_sh = p.v.stride(2);
  a.g_sb = p.g.stride(0), a.g_st = p.g.stride(1), a.g_sh = p.g.stride(2);
  a.beta_sb = p.beta.stride(0), a.beta_st = p.beta.stride(1), a.beta_sh = p.beta.stride(2);
  a.batch = B, a.tokens = T, a.k_heads = Hk, a.v_heads = Hv, a.dk = dk, a.dv = dv;
  a.out = p.out.data_ptr();
  a.l2norm = l2norm;
  a.scale = float(1.0 / std::sqrt(double(dk)));
  return p;
}

}  // namespace

DeltaRule delta_rule_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                             const at::Tensor& beta, const std::optional<at::Tensor>& initial_state, bool l2norm) {
  const char* op = "gated_delta_rule_chunked";
  TORCH_CHECK(q.defined() && k.defined() && v.defined(), op, ": q, k and v must be defined");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op,
              ": q, k must be [B, T, Hk, dk] and v [B, T, Hv, dv], got ", q.sizes(), ", ", k.sizes(), ", ",
              v.sizes());
  DeltaRule p = delta_rule_common(q, k, v, g, beta, l2norm, op);
  const std::int64_t B = q.size(0), Hv = v.size(2), dk = q.size(3), dv = v.size(3);
  if (initial_state.has_value() && initial_state->defined()) {
    const at::Tensor& s = *initial_state;
    dtype_of(s, op, "initial_state");
    TORCH_CHECK(s.dim() == 4 && s.size(0) == B && s.size(1) == Hv && s.size(2) == dk && s.size(3) == dv, op,
                ": initial_state must have shape [", B, ", ", Hv, ", ", dk, ", ", dv, "], got ", s.sizes());
    same_device(s, q, op, "initial_state", "q");
    p.state = s.to(at::kFloat).contiguous();
    if (p.state.is_same(s)) p.state = p.state.clone();  // never update the caller's tensor
  } else {
    p.state = q.new_zeros({B, Hv, dk, dv}, q.options().dtype(at::kFloat));
  }
  p.args.state = p.state.data_ptr<float>();
  p.args.states = B;
  return p;
}

DeltaRule delta_rule_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                          const at::Tensor& beta, const at::Tensor& state,
                          const std::optional<at::Tensor>& state_indices, bool l2norm) {
  const char* op = "gated_delta_rule_step";
  TORCH_CHECK(q.defined() && k.defined() && v.defined() && g.defined() && beta.defined(), op,
              ": q, k, v, g and beta must be defined");
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, op,
              ": q, k must be [B, Hk, dk] and v [B, Hv, dv] (one token per sequence), got ", q.sizes(), ", ",
              k.sizes(), ", ", v.sizes());
  TORCH_CHECK(g.dim() == 2 && beta.dim() == 2, op, ": g and beta must be [B, Hv], got ", g.sizes(), " and ",
              beta.sizes());
  DeltaRule p = delta_rule_common(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), g.unsqueeze(1),
                                  beta.unsqueeze(1), l2norm, op);
  const std::int64_t B = q.size(0), Hv = v.size(1), dk = q.size(2), dv = v.size(2);
  TORCH_CHECK(state.defined() && state.scalar_type() == at::kFloat, op, ": state must be float32");
  TORCH_CHECK(state.dim() == 4 && state.size(1) == Hv && state.size(2) == dk && state.size(3) == dv, op,
              ": state must have shape [N, ", Hv, ", ", dk, ", ", dv, "], got ", state.sizes());
  TORCH_CHECK(state.is_contiguous(), op, ": state must be contiguous (it is updated in place)");
  same_device(state, q, op, "state", "q");
  p.state = state;
  p.indices = index_tensor(state_indices, B, state.size(0), q, op);
  p.args.state = state.data_ptr<float>();
  p.args.states = state.size(0);
  p.args.state_indices = p.indices.defined() ? p.indices.data_ptr<std::int64_t>() : nullptr;
  p.out = p.out.squeeze(1);
  return p;
}

void check_state_indices(const at::Tensor& indices, std::int64_t states, const char* op) {
  if (!indices.defined()) return;
  const std::int64_t* idx = indices.data_ptr<std::int64_t>();
  std::vector<bool> seen(size_t(states), false);
  for (std::int64_t b = 0; b < indices.size(0); ++b) {
    const std::int64_t i = idx[b];
    if (i < 0) continue;  // padding entry: skipped
    TORCH_CHECK(i < states, op, ": state_indices[", b, "] = ", i, " is outside the state's ", states, " rows");
    TORCH_CHECK(!seen[size_t(i)], op, ": state_indices[", b, "] = ", i,
                " appears twice; each sequence needs its own state row");
    seen[size_t(i)] = true;
  }
}

at::Tensor CausalConv::out() const { return out_mem.permute({0, 2, 1}); }

CausalConv causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                         bool silu, at::Tensor* conv_state, const std::optional<at::Tensor>& state_indices) {
  const char* op = conv_state ? "causal_conv1d_update" : "causal_conv1d";
  const DType xd = dtype_of(x, op, "x");
  TORCH_CHECK(x.dim() == 3, op, ": x must be [B, C, S] (channels before time, as transformers passes it), got ",
              x.sizes());
  const std::int64_t B = x.size(0), C = x.size(1), S = x.size(2);
  const DType wd = dtype_of(weight, op, "weight");
  TORCH_CHECK(wd == xd || wd == DType::f32, op, ": weight must have x's dtype (", x.scalar_type(),
              ") or float32, got ", weight.scalar_type());
  at::Tensor w = weight;
  if (w.dim() == 3 && w.size(1) == 1) w = w.squeeze(1);  // nn.Conv1d's [C, 1, K]
  TORCH_CHECK(w.dim() == 2 && w.size(0) == C && w.size(1) >= 1, op, ": weight must be [", C, ", K] or [", C,
              ", 1, K], got ", weight.sizes());
  same_device(weight, x, op, "weight", "x");
  const std::int64_t K = w.size(1);

  CausalConv p;
  p.x = x;
  p.weight = w.contiguous();
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->scalar_type() == weight.scalar_type(), op, ": bias must have weight's dtype (",
                weight.scalar_type(), "), got ", bias->scalar_type());
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == C, op, ": bias must have shape [", C, "], got ",
                bias->sizes());
    same_device(*bias, x, op, "bias", "x");
    p.bias = bias->contiguous();
  }
  p.out_mem = x.new_empty({B, S, C});
  CausalConvArgs& a = p.args;
  a.dtype = xd;
  a.w_dtype = wd;
  a.x = p.x.data_ptr();
  a.x_sb = x.stride(0), a.x_sc = x.stride(1), a.x_ss = x.stride(2);
  a.weight = p.weight.data_ptr();
  a.bias = p.bias.defined() ? p.bias.data_ptr() : nullptr;
  a.out = p.out_mem.data_ptr();
  a.batch = B, a.channels = C, a.seq = S, a.width = K;
  a.silu = silu;
  if (conv_state) {
    const at::Tensor& st = *conv_state;
    TORCH_CHECK(st.defined() && st.scalar_type() == x.scalar_type(), op, ": conv_state must have x's dtype (",
                x.scalar_type(), ")");
    TORCH_CHECK(st.dim() == 3 && st.size(1) == C && st.size(2) >= K - 1, op, ": conv_state must be [N, ", C,
                ", L] with L >= K - 1 = ", K - 1, ", got ", st.sizes());
    same_device(st, x, op, "conv_state", "x");
    p.indices = index_tensor(state_indices, B, st.size(0), x, op);
    a.state = st.data_ptr();
    a.st_sb = st.stride(0), a.st_sc = st.stride(1), a.st_sl = st.stride(2);
    a.states = st.size(0);
    a.state_len = st.size(2);
    a.state_indices = p.indices.defined() ? p.indices.data_ptr<std::int64_t>() : nullptr;
  } else {
    TORCH_CHECK(!state_indices.has_value() || !state_indices->defined(), op,
                ": state_indices given without a conv_state");
  }
  return p;
}

GatedRmsNorm gated_rms_norm(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, double eps) {
  const char* op = "gated_rms_norm";
  const DType xd = dtype_of(x, op, "x");
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension");
  const DType zd = dtype_of(z, op, "z");
  TORCH_CHECK(z.sizes() == x.sizes(), op, ": z must have x's shape ", x.sizes(), ", got ", z.sizes());
  const DType wd = dtype_of(weight, op, "weight");
  TORCH_CHECK(wd == xd || wd == DType::f32, op, ": weight must have x's dtype (", x.scalar_type(),
              ") or float32, got ", weight.scalar_type());
  const std::int64_t C = x.size(-1);
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == C, op, ": weight must have shape [", C, "], got ",
              weight.sizes());
  TORCH_CHECK(std::isfinite(eps) && eps >= 0.0, op, ": eps must be finite and >= 0, got ", eps);
  same_device(z, x, op, "z", "x");
  same_device(weight, x, op, "weight", "x");

  GatedRmsNorm p;
  p.x = x;
  p.z = z;
  auto xr = rows_of(p.x);
  if (!xr) {
    p.x = p.x.contiguous();
    xr = rows_of(p.x);
  }
  auto zr = rows_of(p.z);
  if (!zr) {
    p.z = p.z.contiguous();
    zr = rows_of(p.z);
  }
  p.weight = weight.contiguous();
  p.out = x.new_empty(x.sizes());
  GatedRmsNormArgs& a = p.args;
  a.dtype = xd;
  a.z_dtype = zd;
  a.w_dtype = wd;
  a.x = p.x.data_ptr();
  a.x_rows = *xr;
  a.z = p.z.data_ptr();
  a.z_rows = *zr;
  a.weight = p.weight.data_ptr();
  a.out = p.out.data_ptr();
  a.cols = C;
  a.eps = float(eps);
  return p;
}

}  // namespace mmgen::kernels::plan
