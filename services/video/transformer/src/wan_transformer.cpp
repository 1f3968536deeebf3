// WanTransformer3DModel forward (wan_transformer.hpp). Read beside diffusers'
// transformer_wan.py: same op order, same float32 islands and casts, same
// epsilons. Loading lives in wan_transformer_load.cpp.
#include "mmgen/video/wan_transformer.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/cos.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/rms_norm.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/sin.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include "mmgen/ops.hpp"

namespace mmgen::video {

namespace {

// Above this many runs of equal per-token timesteps the dense path is cheaper.
constexpr std::int64_t kMaxSegments = 16;

[[noreturn]] void bad_input(const std::string& what) {
  throw std::invalid_argument("WanTransformer3DModel: " + what);
}

std::string shape_of(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

void require_real(const at::Tensor& t, const char* name) {
  if (t.is_complex() || t.scalar_type() == at::kBool) {
    bad_input(std::string(name) + " must hold real numbers");
  }
}

// Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0): [cos | sin] of
// t * exp(-ln(10000) * i / half), float32 throughout; a zero column pads an
// odd dim. t: [N] float32 -> [N, dim].
at::Tensor timestep_sinusoid(const at::Tensor& t, std::int64_t dim) {
  const std::int64_t half = dim / 2;
  at::Tensor exponent = at::arange(half, t.options().dtype(at::kFloat)).mul(-std::log(10000.0)).div(half);
  at::Tensor angles = t.unsqueeze(1) * at::exp(exponent).unsqueeze(0);  // [N, half]
  at::Tensor emb = at::cat({at::cos(angles), at::sin(angles)}, 1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1});
  return emb;
}

// Token order of patch_embedding(...).flatten(2): frame-major, then row, then
// column. Returns the (f, h, w) index of every token: [S, 3] int64.
at::Tensor grid_positions(std::int64_t frames, std::int64_t rows, std::int64_t cols, c10::Device device) {
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor idx = at::arange(frames * rows * cols, opts);
  at::Tensor f = idx.div(rows * cols, "floor");
  at::Tensor h = idx.div(cols, "floor").remainder(rows);
  at::Tensor w = idx.remainder(cols);
  return at::stack({f, h, w}, 1);
}

// softmax(q k^T / sqrt(d)) v over [B, H, S, d] views of [B, S, H, d] tensors.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  at::Tensor o = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2));
  return o.transpose(1, 2);  // [B, S, H, d]
}

// The first token of every run over which no sample's timestep changes.
// t: [B, S] float32 (any device) -> ascending starts, starts[0] = 0.
std::vector<std::int64_t> constant_runs(const at::Tensor& t) {
  const at::Tensor host = t.to(at::kCPU).contiguous();
  const auto a = host.accessor<float, 2>();
  std::vector<std::int64_t> starts{0};
  for (std::int64_t s = 1; s < host.size(1); ++s) {
    for (std::int64_t b = 0; b < host.size(0); ++b) {
      if (a[b][s] != a[b][s - 1]) {
        starts.push_back(s);
        break;
      }
    }
  }
  return starts;
}

// Modulation `mod` (float32) is [B, S, K, D] (dense, starts empty) or
// [n, B, K, D] for the n token segments beginning at `starts`. These apply
// one of its K vectors per segment, as views, so no [B, S, D] copy is made.
at::Tensor modulate(const at::Tensor& x, const at::Tensor& mod, const std::vector<std::int64_t>& starts,
                    std::int64_t i_shift, std::int64_t i_scale, double eps) {
  if (starts.empty()) return mmgen::ops::adaln_modulate(x, mod.select(-2, i_shift), mod.select(-2, i_scale), eps);
  if (starts.size() == 1) {
    return mmgen::ops::adaln_modulate(x, mod[0].select(-2, i_shift), mod[0].select(-2, i_scale), eps);
  }
  at::Tensor out = at::empty_like(x);
  for (std::size_t j = 0; j < starts.size(); ++j) {
    const std::int64_t s0 = starts[j], n = (j + 1 < starts.size() ? starts[j + 1] : x.size(1)) - s0;
    const at::Tensor& m = mod[std::int64_t(j)];
    out.narrow(1, s0, n).copy_(
        mmgen::ops::adaln_modulate(x.narrow(1, s0, n), m.select(-2, i_shift), m.select(-2, i_scale), eps));
  }
  return out;
}

at::Tensor gated_add(const at::Tensor& x, const at::Tensor& y, const at::Tensor& mod,
                     const std::vector<std::int64_t>& starts, std::int64_t i_gate) {
  if (starts.empty()) return mmgen::ops::gated_residual(x, y, mod.select(-2, i_gate));
  if (starts.size() == 1) return mmgen::ops::gated_residual(x, y, mod[0].select(-2, i_gate));
  at::Tensor out = at::empty_like(x);
  for (std::size_t j = 0; j < starts.size(); ++j) {
    const std::int64_t s0 = starts[j], n = (j + 1 < starts.size() ? starts[j + 1] : x.size(1)) - s0;
    out.narrow(1, s0, n).copy_(
        mmgen::ops::gated_residual(x.narrow(1, s0, n), y.narrow(1, s0, n), mod[std::int64_t(j)].select(-2, i_gate)));
  }
  return out;
}

}  // namespace

// ============================== modules ==============================

namespace wan {

at::Tensor Linear::operator()(const at::Tensor& x) const { return at::linear(x, weight, bias); }

at::Tensor LayerNorm::operator()(const at::Tensor& x) const {
  auto f32 = [](const at::Tensor& t) {
    return t.defined() ? std::optional<at::Tensor>(t.to(at::kFloat)) : std::nullopt;
  };
  return at::layer_norm(x.to(at::kFloat), {x.size(-1)}, f32(weight), f32(bias), eps).to(x.scalar_type());
}

// at::rms_norm is torch.nn.RMSNorm itself: in bf16 it multiplies the weight in
// float32 before the one rounding, where mmgen::ops::rms_norm (transformers'
// Qwen3RMSNorm) rounds before the weight; the two differ by a bf16 step on a
// good share of elements.
at::Tensor RMSNorm::operator()(const at::Tensor& x) const {
  return at::rms_norm(x, {x.size(-1)}, weight, eps);
}

at::Tensor FeedForward::operator()(const at::Tensor& x) const {
  at::Tensor h = net_0_proj(x);
  return net_2(tanh_gelu ? mmgen::ops::gelu_tanh(h) : at::gelu(h));
}

}  // namespace wan

// ============================== attention ==============================

namespace {

// attn1: fused q/k/v projection, q/k RMSNorm across all heads, 3-D RoPE
// (interleaved pairs), attention, to_out.0.  x [B, S, D] -> [B, S, D].
at::Tensor self_attention(const wan::Attention& a, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const std::int64_t B = x.size(0), S = x.size(1), D = x.size(2), H = a.heads;
  at::Tensor qkv = a.to_qkv(x);                                          // [B, S, 3D]
  at::Tensor q = a.norm_q(qkv.narrow(-1, 0, D)).view({B, S, H, D / H});  // norm over all heads, then split
  at::Tensor k = a.norm_k(qkv.narrow(-1, D, D)).view({B, S, H, D / H});
  at::Tensor v = qkv.narrow(-1, 2 * D, D).view({B, S, H, D / H});
  mmgen::ops::rope(q, k, cos, sin, mmgen::ops::RopeStyle::Interleaved);
  return a.to_out(attention(q, k, v).reshape({B, S, D}));
}

// attn2: queries from the video tokens, keys/values from the text context;
// Wan 2.1 I2V adds a second attention of the same queries over the image
// context and sums the two.  x [B, S, D] -> [B, S, D].
at::Tensor cross_attention(const wan::Attention& a, const at::Tensor& x, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& k_img, const at::Tensor& v_img) {
  const std::int64_t B = x.size(0), S = x.size(1), D = x.size(2), H = a.heads;
  at::Tensor q = a.norm_q(a.to_q(x)).view({B, S, H, D / H});
  at::Tensor o = attention(q, k, v).reshape({B, S, D});
  if (k_img.defined()) o = o + attention(q, k_img, v_img).reshape({B, S, D});
  return a.to_out(o);
}

// Keys (after their RMSNorm) and values of a context [B, L, D] through a
// stacked [2D, D] projection -> [B, L, H, D / H] each.
std::pair<at::Tensor, at::Tensor> keys_values(const wan::Linear& kv_proj, const wan::RMSNorm& norm_k,
                                              const at::Tensor& ctx, std::int64_t heads) {
  const std::int64_t B = ctx.size(0), L = ctx.size(1), D = kv_proj.weight.size(0) / 2;
  at::Tensor kv = kv_proj(ctx);  // [B, L, 2D]
  at::Tensor k = norm_k(kv.narrow(-1, 0, D)).view({B, L, heads, D / heads});
  at::Tensor v = kv.narrow(-1, D, D).view({B, L, heads, D / heads});
  return {k, v};
}

}  // namespace

// ============================== block ==============================

// x [B, S, D]; cond: the time conditioning (see Conditioning); kv: this
// block's cross-attention keys/values; cos/sin [S, head_dim / 2] float32.
at::Tensor WanTransformer3DModel::block_forward(const wan::TransformerBlock& blk, const at::Tensor& x,
                                                const Conditioning& cond, const CrossKV& kv, const at::Tensor& cos,
                                                const at::Tensor& sin) const {
  // Modulation in float32: table [1, 6, D] + temb_proj -> [n, B, 6, D] or
  // [B, S, 6, D]; vectors 0..5 are shift, scale, gate, c_shift, c_scale, c_gate.
  const at::Tensor mod = blk.scale_shift_table + cond.temb_proj.to(at::kFloat);
  const auto& starts = cond.starts;

  // 1. Self-attention: LN(x) * (1 + scale) + shift, attention, x + attn * gate, all float32 inside.
  at::Tensor h = modulate(x, mod, starts, 0, 1, cfg_.eps);
  at::Tensor out = gated_add(x, self_attention(blk.attn1, h, cos, sin), mod, starts, 2);

  // 2. Cross-attention, plain residual in the model dtype.
  at::Tensor n = blk.norm2 ? (*blk.norm2)(out) : out;
  out.add_(cross_attention(blk.attn2, n, kv.k, kv.v, kv.k_img, kv.v_img));

  // 3. Feed-forward with the second modulation triple.
  h = modulate(out, mod, starts, 3, 4, cfg_.eps);
  return gated_add(out, blk.ffn(h), mod, starts, 5);
}

// ============================== model ==============================

// The reference would fail deep inside on most of these, or silently crop.
WanTransformer3DModel::Grid WanTransformer3DModel::check_latents(const at::Tensor& hidden_states,
                                                                 const at::Tensor& timestep) const {
  const auto [pt, ph, pw] = cfg_.patch_size;
  if (!hidden_states.defined() || hidden_states.dim() != 5) {
    bad_input("hidden_states must be [B, C, F, H, W], got " +
              (hidden_states.defined() ? shape_of(hidden_states) : std::string("an undefined tensor")));
  }
  require_real(hidden_states, "hidden_states");
  const std::int64_t B = hidden_states.size(0), C = hidden_states.size(1);
  const std::int64_t F = hidden_states.size(2), H = hidden_states.size(3), W = hidden_states.size(4);
  if (B == 0) bad_input("hidden_states has an empty batch");
  if (C != cfg_.in_channels) {
    bad_input("hidden_states has " + std::to_string(C) + " channels, the model takes in_channels = " +
              std::to_string(cfg_.in_channels));
  }
  if (F <= 0 || H <= 0 || W <= 0 || F % pt != 0 || H % ph != 0 || W % pw != 0) {
    bad_input("hidden_states frames/height/width " + std::to_string(F) + "x" + std::to_string(H) + "x" +
              std::to_string(W) + " must be positive multiples of patch_size " + std::to_string(pt) + "x" +
              std::to_string(ph) + "x" + std::to_string(pw));
  }
  const std::int64_t Fp = F / pt, Hp = H / ph, Wp = W / pw, S = Fp * Hp * Wp;
  if (Fp > cfg_.rope_max_seq_len || Hp > cfg_.rope_max_seq_len || Wp > cfg_.rope_max_seq_len) {
    bad_input("the patch grid " + std::to_string(Fp) + "x" + std::to_string(Hp) + "x" + std::to_string(Wp) +
              " exceeds rope_max_seq_len = " + std::to_string(cfg_.rope_max_seq_len));
  }

  if (!timestep.defined() || timestep.dim() < 1 || timestep.dim() > 2 ||
      (timestep.size(0) != B && timestep.size(0) != 1) || (timestep.dim() == 2 && timestep.size(1) != S)) {
    bad_input("timestep must be [B] or [B, S] with B = " + std::to_string(B) + " (or 1) and S = " +
              std::to_string(S) + " tokens, got " +
              (timestep.defined() ? shape_of(timestep) : std::string("an undefined tensor")));
  }
  require_real(timestep, "timestep");
  return Grid{B, C, F, H, W, Fp, Hp, Wp, S, timestep.dim() == 2};

}

void WanTransformer3DModel::check_context(const at::Tensor& encoder_hidden_states,
                                          const std::optional<at::Tensor>& encoder_hidden_states_image,
                                          std::int64_t B) const {
  if (!encoder_hidden_states.defined() || encoder_hidden_states.dim() != 3 ||
      encoder_hidden_states.size(0) != B || encoder_hidden_states.size(1) == 0 ||
      encoder_hidden_states.size(2) != cfg_.text_dim) {
    bad_input("encoder_hidden_states must be [B, L, text_dim] = [" + std::to_string(B) + ", L >= 1, " +
              std::to_string(cfg_.text_dim) + "], got " +
              (encoder_hidden_states.defined() ? shape_of(encoder_hidden_states) : std::string("undefined")));
  }
  require_real(encoder_hidden_states, "encoder_hidden_states");

  const bool has_image = encoder_hidden_states_image.has_value() && encoder_hidden_states_image->defined();
  const auto& image_embedder = condition_embedder_.image_embedder;
  if (has_image) {
    const at::Tensor& img = *encoder_hidden_states_image;
    if (!image_embedder) bad_input("encoder_hidden_states_image given, but the model has no image_embedder");
    require_real(img, "encoder_hidden_states_image");
    const bool pos = image_embedder->pos_embed.defined();
    const std::int64_t rows = pos ? 2 * B : B;
    const bool tokens_ok = img.dim() == 3 && (!pos || 2 * img.size(1) == *cfg_.pos_embed_seq_len);
    if (img.dim() != 3 || img.size(0) != rows || img.size(1) == 0 || img.size(2) != *cfg_.image_dim || !tokens_ok) {
      bad_input("encoder_hidden_states_image must be [" + std::to_string(rows) + ", " +
                (pos ? std::to_string(*cfg_.pos_embed_seq_len / 2) : std::string("Li")) + ", " +
                std::to_string(*cfg_.image_dim) + "], got " + shape_of(img));
    }
  } else if (cfg_.has_added_kv()) {
    bad_input("this model (added_kv_proj_dim set, Wan 2.1 I2V) needs encoder_hidden_states_image");
  }
}

WanTransformer3DModel::Embedded WanTransformer3DModel::embed_context(
    const at::Tensor& encoder_hidden_states, const std::optional<at::Tensor>& encoder_hidden_states_image) const {
  const auto& ce = condition_embedder_;
  const c10::ScalarType dtype = this->dtype();
  const c10::Device dev = device();
  Embedded e;
  e.text = encoder_hidden_states.to(dev, dtype);
  e.text = ce.text_embedder.linear_2(mmgen::ops::gelu_tanh(ce.text_embedder.linear_1(e.text)));  // [B, L, D]
  if (encoder_hidden_states_image.has_value() && encoder_hidden_states_image->defined()) {
    const auto& ie = *ce.image_embedder;
    at::Tensor img = encoder_hidden_states_image->to(dev, dtype);
    if (ie.pos_embed.defined()) {
      // FLF2V: the two images' tokens of a sample side by side, plus a learned position.
      img = img.reshape({-1, *cfg_.pos_embed_seq_len, *cfg_.image_dim}) + ie.pos_embed;
    }
    img = ie.norm2(ie.ff(ie.norm1(img)));  // [B, Li, D]
    if (cfg_.has_added_kv()) {
      // The reference concatenates [image, text] and its attention splits them
      // again at length - 512 (the pipelines' text length); kept apart here,
      // which is the same for 512 text tokens and the intended split otherwise.
      e.image = img;
    } else {
      // Without add_k_proj the image tokens are simply prepended to the text context.
      e.text = at::cat({img, e.text}, 1);
    }
  }
  return e;
}

WanTransformer3DModel::CrossKV WanTransformer3DModel::cross_kv(const wan::TransformerBlock& blk,
                                                               const Embedded& ctx) const {
  CrossKV kv;
  std::tie(kv.k, kv.v) = keys_values(blk.attn2.to_kv, blk.attn2.norm_k, ctx.text, blk.attn2.heads);
  if (ctx.image.defined()) {
    std::tie(kv.k_img, kv.v_img) =
        keys_values(blk.attn2.to_added_kv, blk.attn2.norm_added_k, ctx.image, blk.attn2.heads);
  }
  return kv;
}

at::Tensor WanTransformer3DModel::forward(const at::Tensor& hidden_states, const at::Tensor& timestep,
                                          const at::Tensor& encoder_hidden_states,
                                          const std::optional<at::Tensor>& encoder_hidden_states_image) const {
  c10::InferenceMode no_grad;
  const Grid g = check_latents(hidden_states, timestep);
  check_context(encoder_hidden_states, encoder_hidden_states_image, g.B);
  const Embedded ctx = embed_context(encoder_hidden_states, encoder_hidden_states_image);
  // Each block's keys/values are made when the block runs and dropped after it.
  return run(hidden_states, timestep, g, [&](std::size_t i) { return cross_kv(blocks_[i], ctx); });
}

WanTransformer3DModel::Context WanTransformer3DModel::encode_context(
    const at::Tensor& encoder_hidden_states, const std::optional<at::Tensor>& encoder_hidden_states_image) const {
  c10::InferenceMode no_grad;
  if (!encoder_hidden_states.defined() || encoder_hidden_states.dim() != 3 || encoder_hidden_states.size(0) == 0) {
    bad_input("encoder_hidden_states must be [B, L, text_dim], got " +
              (encoder_hidden_states.defined() ? shape_of(encoder_hidden_states) : std::string("undefined")));
  }
  const std::int64_t B = encoder_hidden_states.size(0);
  check_context(encoder_hidden_states, encoder_hidden_states_image, B);
  const Embedded ctx = embed_context(encoder_hidden_states, encoder_hidden_states_image);
  Context c;
  c.batch = B;
  for (const auto& blk : blocks_) {
    CrossKV kv = cross_kv(blk, ctx);
    c.k.push_back(kv.k);
    c.v.push_back(kv.v);
    if (kv.k_img.defined()) {
      c.k_img.push_back(kv.k_img);
      c.v_img.push_back(kv.v_img);
    }
  }
  return c;
}

at::Tensor WanTransformer3DModel::forward(const at::Tensor& hidden_states, const at::Tensor& timestep,
                                          const Context& context) const {
  c10::InferenceMode no_grad;
  if (context.k.size() != blocks_.size() || context.v.size() != blocks_.size()) {
    bad_input("the context was not made by this model's encode_context");
  }
  const Grid g = check_latents(hidden_states, timestep);
  if (g.B != context.batch) {
    bad_input("hidden_states has batch " + std::to_string(g.B) + ", the context " + std::to_string(context.batch));
  }
  return run(hidden_states, timestep, g, [&](std::size_t i) {
    CrossKV kv{context.k[i], context.v[i], at::Tensor(), at::Tensor()};
    if (!context.k_img.empty()) {
      kv.k_img = context.k_img[i];
      kv.v_img = context.v_img[i];
    }
    return kv;
  });
}

at::Tensor WanTransformer3DModel::run(const at::Tensor& hidden_states, const at::Tensor& timestep, const Grid& g,
                                      const std::function<CrossKV(std::size_t)>& kv_of_block) const {
  const auto [pt, ph, pw] = cfg_.patch_size;
  const std::int64_t D = cfg_.inner_dim();

  const auto& [B, C, F, H, W, Fp, Hp, Wp, S, per_token] = g;
  const c10::ScalarType dtype = this->dtype();
  const c10::Device dev = device();

  // ---- patch embedding: Conv3d with kernel == stride as a matmul over unfolded patches ----
  // [B, C, F, H, W] -> [B, Fp, Hp, Wp, C, pt, ph, pw] -> [B, S, C * pt * ph * pw] -> [B, S, D]
  at::Tensor x = hidden_states.to(dev, dtype)
                     .reshape({B, C, Fp, pt, Hp, ph, Wp, pw})
                     .permute({0, 2, 4, 6, 1, 3, 5, 7})
                     .reshape({B, S, C * cfg_.patch_volume()});
  x = patch_embedding_(x);

  // ---- condition embedder ----
  // Rows to embed: one per sample and segment (segment-major), or one per token (dense).
  at::Tensor t = timestep.to(dev, at::kFloat);
  if (t.size(0) != B) t = t.expand(per_token ? std::vector<std::int64_t>{B, S} : std::vector<std::int64_t>{B});
  Conditioning cond;
  at::Tensor t_rows;
  if (!per_token) {
    cond.starts = {0};
    t_rows = t;
  } else {
    cond.starts = constant_runs(t);
    if (std::int64_t(cond.starts.size()) <= kMaxSegments) {
      at::Tensor idx = at::tensor(cond.starts, at::TensorOptions().dtype(at::kLong)).to(dev);
      t_rows = t.index_select(1, idx).t().reshape({-1});  // [n * B]
    } else {
      cond.starts.clear();
      t_rows = t.reshape({-1});  // [B * S]
    }
  }
  const auto& ce = condition_embedder_;
  at::Tensor t_freq = timestep_sinusoid(t_rows, ce.freq_dim);  // [N, freq_dim] float32
  t_freq = t_freq.to(ce.time_embedder.linear_1.weight.scalar_type());
  // time_embedder runs in float32 (kept), then `.type_as(encoder_hidden_states)`.
  at::Tensor temb = ce.time_embedder.linear_2(at::silu(ce.time_embedder.linear_1(t_freq))).to(dtype);  // [N, D]
  at::Tensor temb_proj = ce.time_proj(at::silu(temb));                                                 // [N, 6D]
  if (cond.starts.empty()) {
    cond.temb = temb.view({B, S, D});
    cond.temb_proj = temb_proj.view({B, S, 6, D});
  } else {
    const std::int64_t n = std::int64_t(cond.starts.size());
    cond.temb = temb.view({n, B, D});
    cond.temb_proj = temb_proj.view({n, B, 6, D});
  }

  // ---- 3-D RoPE tables, once per forward: [S, head_dim / 2] float32, angles in float64 ----
  const mmgen::ops::RopeTables rope = mmgen::ops::rope_tables_multi_axis(
      grid_positions(Fp, Hp, Wp, dev), {cfg_.rope_t_dim(), cfg_.rope_h_dim(), cfg_.rope_w_dim()}, 10000.0,
      at::kDouble);

  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    x = block_forward(blocks_[i], x, cond, kv_of_block(i), rope.cos, rope.sin);
  }

  // ---- head: norm_out modulated by (shift, scale) = table [1, 2, D] + temb, float32 ----
  const at::Tensor head_mod = scale_shift_table_ + cond.temb.unsqueeze(-2);  // [n, B, 2, D] or [B, S, 2, D]
  x = modulate(x, head_mod, cond.starts, 0, 1, cfg_.eps);
  x = proj_out_(x);  // [B, S, Cout * pt * ph * pw]

  // ---- unpatchify: [B, Fp, Hp, Wp, pt, ph, pw, Cout] -> [B, Cout, F, H, W] ----
  const std::int64_t Cout = cfg_.out_channels;
  return x.view({B, Fp, Hp, Wp, pt, ph, pw, Cout}).permute({0, 7, 1, 4, 2, 5, 3, 6}).reshape({B, Cout, F, H, W});
}

}  // namespace mmgen::video
