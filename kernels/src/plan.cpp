#include "plan.hpp"

#include <cmath>

namespace mmgen::kernels::plan {
namespace {

void same_device(const at::Tensor& a, const at::Tensor& ref, const char* op, const char* name, const char* ref_name) {
  TORCH_CHECK(a.device() == ref.device(), op, ": ", name, " is on ", a.device(), " but ", ref_name, " is on ",
              ref.device());
}

void check_eps(double eps, const char* op) {
  TORCH_CHECK(std::isfinite(eps) && eps >= 0.0, op, ": eps must be finite and >= 0, got ", eps);
}

// Rows of t, making t contiguous first if its strides cannot be addressed.
Rows rows_or_contiguous(at::Tensor& t) {
  if (auto r = rows_of(t)) return *r;
  t = t.contiguous();
  return *rows_of(t);
}

// Last dim contiguous (or trivially so); otherwise a contiguous copy.
at::Tensor inner_contiguous(const at::Tensor& t) {
  return (t.dim() == 0 || t.size(-1) <= 1 || t.stride(-1) == 1) ? t : t.contiguous();
}

// Stride between consecutive tokens of q/k [T, H, D] or [B, S, H, D] if the
// token dims collapse to one stride.
std::optional<std::int64_t> token_stride(const at::Tensor& t) {
  if (t.size(-1) > 1 && t.stride(-1) != 1) return std::nullopt;
  if (t.dim() == 3) return t.stride(0);
  if (t.size(1) == 1) return t.stride(0);
  if (t.size(0) == 1 || t.stride(0) == t.stride(1) * t.size(1)) return t.stride(1);
  return std::nullopt;
}

// Rows of a modulation/gate operand against x [B, S, D]: [B, D], [B, 1, D] or [B, S, D].
Rows modulation_rows(const at::Tensor& m, std::int64_t B, std::int64_t S) {
  Rows r;
  r.outer = B;
  r.inner = S;
  r.stride_outer = m.stride(0);
  r.stride_inner = (m.dim() == 3 && m.size(1) != 1) ? m.stride(1) : 0;
  return r;
}

at::Tensor check_modulation(const at::Tensor& m, const at::Tensor& x, DType xd, const char* op, const char* name) {
  const auto B = x.size(0), S = x.size(1), D = x.size(2);
  const bool ok = (m.dim() == 2 && m.size(0) == B && m.size(1) == D) ||
                  (m.dim() == 3 && m.size(0) == B && (m.size(1) == 1 || m.size(1) == S) && m.size(2) == D);
  TORCH_CHECK(ok, op, ": ", name, " must have shape [B, D], [B, 1, D] or [B, S, D] for x of shape ", x.sizes(),
              ", got ", m.sizes());
  const DType md = dtype_of(m, op, name);
  TORCH_CHECK(md == xd || md == DType::f32, op, ": ", name, " must have x's dtype or float32, got ",
              m.scalar_type());
  same_device(m, x, op, name, "x");
  return inner_contiguous(m);
}

}  // namespace

DType dtype_of(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  switch (t.scalar_type()) {
    case at::kFloat: return DType::f32;
    case at::kBFloat16: return DType::bf16;
    case at::kHalf: return DType::f16;
    default: break;
  }
  TORCH_CHECK(false, op, ": ", name, " must be float32, bfloat16 or float16, got ", t.scalar_type());
}

std::optional<Rows> rows_of(const at::Tensor& t) {
  if (t.dim() == 0) return std::nullopt;
  if (t.numel() == 0) return Rows{0, 1, 0, 0};
  if (t.size(-1) > 1 && t.stride(-1) != 1) return std::nullopt;
  std::int64_t sizes[2] = {1, 1}, strides[2] = {0, 0};
  int n = 0;
  for (std::int64_t d = 0; d + 1 < t.dim(); ++d) {
    const std::int64_t s = t.size(d), st = t.stride(d);
    if (s == 1) continue;
    if (n > 0 && strides[n - 1] == st * s) {  // merges into the group before it
      sizes[n - 1] *= s;
      strides[n - 1] = st;
      continue;
    }
    if (n == 2) return std::nullopt;
    sizes[n] = s;
    strides[n] = st;
    ++n;
  }
  if (n == 1) return Rows{sizes[0], 1, strides[0], 0};
  return Rows{sizes[0], sizes[1], strides[0], strides[1]};
}

// ---- rms_norm ------------------------------------------------------------------------
void RmsNorm::finish() {
  if (residual_user.defined()) residual_user.copy_(residual);
}

RmsNorm rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor* residual) {
  const char* op = residual ? "fused_add_rms_norm" : "rms_norm";
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension");
  const DType xd = dtype_of(x, op, "x");
  const DType wd = dtype_of(weight, op, "weight");
  TORCH_CHECK(wd == xd || wd == DType::f32, op, ": weight must have x's dtype (", x.scalar_type(),
              ") or float32, got ", weight.scalar_type());
  const std::int64_t C = x.size(-1);
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == C, op, ": weight must have shape [", C, "], got ",
              weight.sizes());
  same_device(weight, x, op, "weight", "x");
  check_eps(eps, op);

  RmsNorm p;
  p.x = x;
  const Rows xr = rows_or_contiguous(p.x);
  p.weight = weight.contiguous();
  p.out = x.new_empty(x.sizes(), x.options().dtype(wd == xd ? x.scalar_type() : at::kFloat));
  RmsNormArgs& a = p.args;
  a.x_dtype = xd;
  a.w_dtype = wd;
  a.out_dtype = wd;
  a.x = p.x.data_ptr();
  a.x_rows = xr;
  a.weight = p.weight.data_ptr();
  a.out = p.out.data_ptr();
  a.cols = C;
  a.eps = float(eps);
  if (residual) {
    TORCH_CHECK(residual->sizes() == x.sizes(), op, ": residual must have x's shape ", x.sizes(), ", got ",
                residual->sizes());
    TORCH_CHECK(residual->scalar_type() == x.scalar_type(), op, ": residual must have x's dtype (",
                x.scalar_type(), "), got ", residual->scalar_type());
    same_device(*residual, x, op, "residual", "x");
    p.residual = *residual;
    if (auto rr = rows_of(p.residual)) {
      a.res_rows = *rr;
    } else {
      p.residual_user = *residual;
      p.residual = residual->contiguous();
      a.res_rows = *rows_of(p.residual);
    }
    a.residual = p.residual.data_ptr();
  }
  return p;
}

// ---- rope ----------------------------------------------------------------------------
void Rope::finish() {
  if (q_user.defined()) q_user.copy_(q);
  if (k_user.defined()) k_user.copy_(k);
}

Rope rope(at::Tensor& q, at::Tensor& k, const at::Tensor& cos, const at::Tensor& sin, std::int64_t style) {
  const char* op = "rope";
  TORCH_CHECK(style == int(RopeStyleCode::neox) || style == int(RopeStyleCode::interleaved), op,
              ": style must be 0 (NeoX) or 1 (interleaved), got ", style);
  TORCH_CHECK(q.dim() == 3 || q.dim() == 4, op, ": q must be [T, H, D] or [B, S, H, D], got ", q.sizes());
  TORCH_CHECK(k.dim() == q.dim(), op, ": k must have q's rank, got q ", q.sizes(), " and k ", k.sizes());
  for (std::int64_t d = 0; d + 2 < q.dim(); ++d)
    TORCH_CHECK(k.size(d) == q.size(d), op, ": q and k must share their token dims, got q ", q.sizes(), " and k ",
                k.sizes());
  TORCH_CHECK(k.size(-1) == q.size(-1), op, ": q and k must have one head_dim, got ", q.size(-1), " and ",
              k.size(-1));
  const DType qd = dtype_of(q, op, "q");
  TORCH_CHECK(k.scalar_type() == q.scalar_type(), op, ": k must have q's dtype (", q.scalar_type(), "), got ",
              k.scalar_type());
  same_device(k, q, op, "k", "q");
  same_device(cos, q, op, "cos", "q");
  same_device(sin, q, op, "sin", "q");
  TORCH_CHECK(cos.sizes() == sin.sizes(), op, ": cos and sin must have one shape, got ", cos.sizes(), " and ",
              sin.sizes());
  TORCH_CHECK(cos.dim() == 2 || (cos.dim() == 3 && q.dim() == 4), op,
              ": cos/sin must be [positions, R/2] (or [B, S, R/2] for 4-D q), got ", cos.sizes());
  const DType cd = dtype_of(cos, op, "cos");
  TORCH_CHECK(sin.scalar_type() == cos.scalar_type(), op, ": cos and sin must have one dtype");
  const std::int64_t D = q.size(-1);
  const std::int64_t R = 2 * cos.size(-1);
  TORCH_CHECK(R > 0 && R <= D, op, ": rotary dims 2 * cos.size(-1) = ", R, " must be in [2, head_dim = ", D, "]");
  TORCH_CHECK(R <= 1024, op, ": at most 1024 rotary dims are supported, got ", R);

  const bool four = q.dim() == 4;
  const std::int64_t B = four ? q.size(0) : 1;
  const std::int64_t S = four ? q.size(1) : q.size(0);
  Rope p;
  p.cos = (cd == qd || cd == DType::f32) ? cos : cos.to(at::kFloat);
  p.sin = (cd == qd || cd == DType::f32) ? sin : sin.to(at::kFloat);
  std::int64_t table_rows = S;
  if (p.cos.dim() == 2) {
    TORCH_CHECK(p.cos.size(0) == S, op, ": cos/sin have ", p.cos.size(0), " rows but q has ", S, " positions");
  } else {
    TORCH_CHECK(p.cos.size(0) == B && p.cos.size(1) == S, op, ": cos/sin of shape ", p.cos.sizes(),
                " do not match q's [B, S] = [", B, ", ", S, "]");
    table_rows = B * S;
    p.cos = p.cos.reshape({B * S, R / 2});
    p.sin = p.sin.reshape({B * S, R / 2});
  }
  p.cos = inner_contiguous(p.cos);
  p.sin = inner_contiguous(p.sin);

  p.q = q;
  p.k = k;
  auto qs = token_stride(q);
  if (!qs) {
    p.q_user = q;
    p.q = q.contiguous();
    qs = token_stride(p.q);
  }
  auto ks = token_stride(k);
  if (!ks) {
    p.k_user = k;
    p.k = k.contiguous();
    ks = token_stride(p.k);
  }
  RopeArgs& a = p.args;
  a.dtype = qd;
  a.table_dtype = p.cos.scalar_type() == q.scalar_type() ? qd : DType::f32;
  a.style = int(style);
  a.q = p.q.data_ptr();
  a.k = p.k.data_ptr();
  a.tokens = B * S;
  a.q_heads = q.size(-2);
  a.k_heads = k.size(-2);
  a.head_dim = D;
  a.rot_dim = R;
  a.q_stride_tok = *qs;
  a.q_stride_head = p.q.stride(-2);
  a.k_stride_tok = *ks;
  a.k_stride_head = p.k.stride(-2);
  a.cos = p.cos.data_ptr();
  a.sin = p.sin.data_ptr();
  a.table_rows = table_rows;
  a.cos_stride = p.cos.stride(0);
  a.sin_stride = p.sin.stride(0);
  return p;
}

// ---- activations ----------------------------------------------------------------------
Act silu_and_mul(const at::Tensor& gate_up) {
  const char* op = "silu_and_mul";
  TORCH_CHECK(gate_up.dim() >= 1 && gate_up.size(-1) % 2 == 0, op,
              ": gate_up must be [..., 2 * I] with an even last dim, got ", gate_up.sizes());
  Act p;
  p.args.dtype = dtype_of(gate_up, op, "gate_up");
  p.x = gate_up;
  p.args.x_rows = rows_or_contiguous(p.x);
  auto sizes = gate_up.sizes().vec();
  sizes.back() /= 2;
  p.out = gate_up.new_empty(sizes);
  p.args.x = p.x.data_ptr();
  p.args.out = p.out.data_ptr();
  p.args.cols = sizes.back();
  return p;
}

Act gelu_tanh(const at::Tensor& x) {
  const char* op = "gelu_tanh";
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension");
  Act p;
  p.args.dtype = dtype_of(x, op, "x");
  p.x = x;
  p.args.x_rows = rows_or_contiguous(p.x);
  p.out = x.new_empty(x.sizes());
  p.args.x = p.x.data_ptr();
  p.args.out = p.out.data_ptr();
  p.args.cols = x.size(-1);
  return p;
}

// ---- adaln_modulate / gated_residual -----------------------------------------------------
Modulate adaln_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps) {
  const char* op = "adaln_modulate";
  TORCH_CHECK(x.dim() == 3, op, ": x must be [B, S, D], got ", x.sizes());
  const DType xd = dtype_of(x, op, "x");
  check_eps(eps, op);
  Modulate p;
  p.x = inner_contiguous(x);
  p.shift = check_modulation(shift, x, xd, op, "shift");
  p.scale = check_modulation(scale, x, xd, op, "scale");
  TORCH_CHECK(shift.scalar_type() == scale.scalar_type(), op, ": shift and scale must have one dtype");
  p.out = x.new_empty(x.sizes());
  const auto B = x.size(0), S = x.size(1);
  ModulateArgs& a = p.args;
  a.dtype = xd;
  a.mod_dtype = dtype_of(shift, op, "shift");
  a.x = p.x.data_ptr();
  a.x_rows = Rows{B, S, p.x.stride(0), p.x.stride(1)};
  a.shift = p.shift.data_ptr();
  a.shift_rows = modulation_rows(p.shift, B, S);
  a.scale = p.scale.data_ptr();
  a.scale_rows = modulation_rows(p.scale, B, S);
  a.out = p.out.data_ptr();
  a.cols = x.size(2);
  a.eps = float(eps);
  return p;
}

GatedResidual gated_residual(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate) {
  const char* op = "gated_residual";
  TORCH_CHECK(x.dim() == 3, op, ": x must be [B, S, D], got ", x.sizes());
  TORCH_CHECK(y.sizes() == x.sizes(), op, ": y must have x's shape ", x.sizes(), ", got ", y.sizes());
  const DType xd = dtype_of(x, op, "x");
  TORCH_CHECK(y.scalar_type() == x.scalar_type(), op, ": y must have x's dtype (", x.scalar_type(), "), got ",
              y.scalar_type());
  same_device(y, x, op, "y", "x");
  GatedResidual p;
  p.x = inner_contiguous(x);
  p.y = inner_contiguous(y);
  p.gate = check_modulation(gate, x, xd, op, "gate");
  p.out = x.new_empty(x.sizes());
  const auto B = x.size(0), S = x.size(1);
  GatedResidualArgs& a = p.args;
  a.dtype = xd;
  a.gate_dtype = dtype_of(gate, op, "gate");
  a.x = p.x.data_ptr();
  a.x_rows = Rows{B, S, p.x.stride(0), p.x.stride(1)};
  a.y = p.y.data_ptr();
  a.y_rows = Rows{B, S, p.y.stride(0), p.y.stride(1)};
  a.gate = p.gate.data_ptr();
  a.gate_rows = modulation_rows(p.gate, B, S);
  a.out = p.out.data_ptr();
  a.cols = x.size(2);
  return p;
}

// ---- paged attention --------------------------------------------------------------------
PagedAttention paged_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                               const at::Tensor& block_tables, const at::Tensor& context_lens, double scale) {
  const char* op = "paged_attention_decode";
  TORCH_CHECK(q.dim() == 3, op, ": q must be [B, Hq, D], got ", q.sizes());
  TORCH_CHECK(k_cache.dim() == 4, op, ": k_cache must be [num_blocks, block_size, Hkv, D], got ", k_cache.sizes());
  TORCH_CHECK(v_cache.sizes() == k_cache.sizes(), op, ": v_cache must have k_cache's shape ", k_cache.sizes(),
              ", got ", v_cache.sizes());
  const DType qd = dtype_of(q, op, "q");
  TORCH_CHECK(k_cache.scalar_type() == q.scalar_type() && v_cache.scalar_type() == q.scalar_type(), op,
              ": k_cache and v_cache must have q's dtype (", q.scalar_type(), ")");
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), op, ": k_cache and v_cache must be contiguous");
  const auto B = q.size(0), Hq = q.size(1), D = q.size(2);
  const auto Hkv = k_cache.size(2);
  TORCH_CHECK(k_cache.size(3) == D, op, ": cache head_dim ", k_cache.size(3), " differs from q's ", D);
  TORCH_CHECK(Hkv > 0 && Hq % Hkv == 0, op, ": q heads (", Hq, ") must be a multiple of kv heads (", Hkv, ")");
  TORCH_CHECK(k_cache.size(1) > 0, op, ": block_size must be positive");
  TORCH_CHECK(block_tables.dim() == 2 && block_tables.size(0) == B && block_tables.scalar_type() == at::kInt, op,
              ": block_tables must be int32 [B = ", B, ", max_blocks], got ", block_tables.scalar_type(), " ",
              block_tables.sizes());
  TORCH_CHECK(context_lens.dim() == 1 && context_lens.size(0) == B && context_lens.scalar_type() == at::kInt, op,
              ": context_lens must be int32 [B = ", B, "], got ", context_lens.scalar_type(), " ",
              context_lens.sizes());
  TORCH_CHECK(std::isfinite(scale), op, ": scale must be finite");
  same_device(k_cache, q, op, "k_cache", "q");
  same_device(v_cache, q, op, "v_cache", "q");
  same_device(block_tables, q, op, "block_tables", "q");
  same_device(context_lens, q, op, "context_lens", "q");

  PagedAttention p;
  p.q = inner_contiguous(q);
  p.block_tables = inner_contiguous(block_tables);
  p.context_lens = context_lens.contiguous();
  p.out = q.new_empty({B, Hq, D});
  PagedAttentionArgs& a = p.args;
  a.dtype = qd;
  a.q = p.q.data_ptr();
  a.q_stride_b = p.q.stride(0);
  a.q_stride_h = p.q.stride(1);
  a.out = p.out.data_ptr();
  a.k_cache = k_cache.data_ptr();
  a.v_cache = v_cache.data_ptr();
  a.batch = B;
  a.q_heads = Hq;
  a.kv_heads = Hkv;
  a.head_dim = D;
  a.num_blocks = k_cache.size(0);
  a.block_size = k_cache.size(1);
  a.block_tables = p.block_tables.data_ptr<std::int32_t>();
  a.bt_stride = p.block_tables.stride(0);
  a.max_blocks = p.block_tables.size(1);
  a.context_lens = p.context_lens.data_ptr<std::int32_t>();
  a.scale = float(scale);
  return p;
}

void check_paged_attention_indices(const PagedAttention& p) {
  const PagedAttentionArgs& a = p.args;
  const std::int64_t cap = a.max_blocks * a.block_size;
  for (std::int64_t b = 0; b < a.batch; ++b) {
    const std::int64_t L = a.context_lens[b];
    TORCH_CHECK(L >= 0 && L <= cap, "paged_attention_decode: context_lens[", b, "] = ", L, " is outside [0, ", cap,
                "] (max_blocks x block_size)");
    for (std::int64_t j = 0; j < (L + a.block_size - 1) / a.block_size; ++j) {
      const std::int64_t id = a.block_tables[b * a.bt_stride + j];
      TORCH_CHECK(id >= 0 && id < a.num_blocks, "paged_attention_decode: block_tables[", b, "][", j, "] = ", id,
                  " is outside [0, num_blocks = ", a.num_blocks, ")");
    }
  }
}

// ---- reshape_and_cache --------------------------------------------------------------------
ReshapeAndCache reshape_and_cache(const at::Tensor& k, const at::Tensor& v, const at::Tensor& k_cache,
                                  const at::Tensor& v_cache, const at::Tensor& slot_mapping) {
  const char* op = "reshape_and_cache";
  TORCH_CHECK(k.dim() == 3, op, ": k must be [T, Hkv, D], got ", k.sizes());
  TORCH_CHECK(v.sizes() == k.sizes(), op, ": v must have k's shape ", k.sizes(), ", got ", v.sizes());
  TORCH_CHECK(k_cache.dim() == 4 && v_cache.sizes() == k_cache.sizes(), op,
              ": k_cache and v_cache must be [num_blocks, block_size, Hkv, D] of one shape, got ", k_cache.sizes(),
              " and ", v_cache.sizes());
  TORCH_CHECK(k_cache.size(2) == k.size(1) && k_cache.size(3) == k.size(2), op, ": caches hold [Hkv, D] = [",
              k_cache.size(2), ", ", k_cache.size(3), "] per slot but k is ", k.sizes());
  TORCH_CHECK(v.scalar_type() == k.scalar_type() && k_cache.scalar_type() == k.scalar_type() &&
                  v_cache.scalar_type() == k.scalar_type(),
              op, ": k, v, k_cache and v_cache must have one dtype");
  const auto es = k.element_size();
  TORCH_CHECK(es == 2 || es == 4, op, ": elements of 2 or 4 bytes are supported, got ", k.scalar_type());
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), op, ": k_cache and v_cache must be contiguous");
  TORCH_CHECK(slot_mapping.dim() == 1 && slot_mapping.size(0) == k.size(0) &&
                  slot_mapping.scalar_type() == at::kLong,
              op, ": slot_mapping must be int64 [T = ", k.size(0), "], got ", slot_mapping.scalar_type(), " ",
              slot_mapping.sizes());
  same_device(v, k, op, "v", "k");
  same_device(k_cache, k, op, "k_cache", "k");
  same_device(v_cache, k, op, "v_cache", "k");
  same_device(slot_mapping, k, op, "slot_mapping", "k");
  ReshapeAndCache p;
  p.k = inner_contiguous(k);
  p.v = inner_contiguous(v);
  p.slots = slot_mapping.contiguous();
  ReshapeAndCacheArgs& a = p.args;
  a.elem_size = int(es);
  a.k = p.k.data_ptr();
  a.v = p.v.data_ptr();
  a.tokens = k.size(0);
  a.kv_heads = k.size(1);
  a.head_dim = k.size(2);
  a.k_stride_tok = p.k.stride(0);
  a.k_stride_head = p.k.stride(1);
  a.v_stride_tok = p.v.stride(0);
  a.v_stride_head = p.v.stride(1);
  a.k_cache = k_cache.data_ptr();
  a.v_cache = v_cache.data_ptr();
  a.num_blocks = k_cache.size(0);
  a.block_size = k_cache.size(1);
  a.slot_mapping = p.slots.data_ptr<std::int64_t>();
  return p;
}

void check_slots(const ReshapeAndCache& p) {
  const ReshapeAndCacheArgs& a = p.args;
  const std::int64_t cap = a.num_blocks * a.block_size;
  for (std::int64_t t = 0; t < a.tokens; ++t) {
    const std::int64_t s = a.slot_mapping[t];
    TORCH_CHECK(s >= -1 && s < cap, "reshape_and_cache: slot_mapping[", t, "] = ", s, " is outside [-1, ", cap,
                ") (num_blocks x block_size)");
  }
}

}  // namespace mmgen::kernels::plan
