// Qwen-Image transformer forward and weight loading (qwenimage_transformer.hpp).
// Read beside diffusers' transformer_qwenimage.py: QwenTimestepProjEmbeddings,
// QwenDoubleStreamAttnProcessor2_0, QwenImageTransformerBlock and
// QwenImageTransformer2DModel.forward. Same op order, casts and epsilons.
#include "mmgen/image/qwenimage_transformer.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/silu.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "mmgen/io/load_error.hpp"
#include "mmgen/ops.hpp"

namespace mmgen::image {

using namespace qwenimage;

namespace {

constexpr double kNormEps = 1e-6;  // every LayerNorm and RMSNorm of the model
constexpr std::int64_t kTimestepChannels = 256;

[[noreturn]] void bad_input(const std::string& what) {
  throw std::invalid_argument("QwenImageTransformer.forward: " + what);
}

std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

Linear load_linear(io::WeightLoader& w, const std::string& name, std::int64_t out, std::int64_t in) {
  return Linear{w.take(name + ".weight", {out, in}), w.take(name + ".bias", {out})};
}

// Three [out, in] projections of one input stacked into a single [3 out, in]
// matmul; the outputs are the same numbers the three matmuls give.
Linear load_stacked(io::WeightLoader& w, const std::string& prefix, const char* const (&names)[3], std::int64_t out,
                    std::int64_t in) {
  Linear l[3];
  for (int i = 0; i < 3; ++i) l[i] = load_linear(w, prefix + names[i], out, in);
  Linear stacked{at::cat({l[0].weight, l[1].weight, l[2].weight}, 0), at::cat({l[0].bias, l[1].bias, l[2].bias}, 0)};
  // The stack is a copy: in float32 the three zero-copy views' file pages
  // would otherwise stay resident beside it for the model's lifetime.
  for (int i = 0; i < 3; ++i) {
    w.release(prefix + names[i] + ".weight");
    w.release(prefix + names[i] + ".bias");
  }
  return stacked;
}

RMSNorm load_norm(io::WeightLoader& w, const std::string& name, std::int64_t n) {
  return RMSNorm{w.take(name + ".weight", {n}), kNormEps};
}

FeedForward load_ff(io::WeightLoader& w, const std::string& prefix, std::int64_t dim) {
  return FeedForward{load_linear(w, prefix + "net.0.proj", 4 * dim, dim),
                     load_linear(w, prefix + "net.2", dim, 4 * dim)};
}

// One (shift, scale, gate) triple of a block's modulation: views [N, D] into
// the mod Linear's output [N, 6D], laid out shift1 scale1 gate1 shift2 scale2 gate2.
struct Mod {
  at::Tensor shift, scale, gate;
};

Mod mod_chunk(const at::Tensor& params, std::int64_t which, std::int64_t dim) {
  const std::int64_t base = which * 3 * dim;
  return Mod{params.narrow(1, base, dim), params.narrow(1, base + dim, dim), params.narrow(1, base + 2 * dim, dim)};
}

// The image stream's modulation rows. Plain: one row per sample. zero_cond_t:
// the temb batch is [t; 0] (2B rows), the first `split` tokens of each sample
// (the noisy image) take row b and the reference images row B + b, which is
// the reference's modulate_index with torch.where, done as two slices.
struct ImageModulation {
  std::int64_t batch = 0;
  std::int64_t split = -1;  // -1: no zero_cond_t
  std::int64_t tokens = 0;

  bool split_tokens() const { return split >= 0 && split < tokens; }
  at::Tensor rows(const at::Tensor& m, bool reference_part) const {
    return split < 0 ? m : m.narrow(0, reference_part ? batch : 0, batch);
  }

  at::Tensor modulate(const at::Tensor& x, const Mod& m) const {  // x [B, L, D]
    if (!split_tokens()) return ops::adaln_modulate(x, rows(m.shift, false), rows(m.scale, false), kNormEps);
    return at::cat(
        {ops::adaln_modulate(x.narrow(1, 0, split), rows(m.shift, false), rows(m.scale, false), kNormEps),
         ops::adaln_modulate(x.narrow(1, split, tokens - split), rows(m.shift, true), rows(m.scale, true), kNormEps)},
        1);
  }

  at::Tensor gated_add(const at::Tensor& x, const at::Tensor& y, const Mod& m) const {  // x + gate * y
    if (!split_tokens()) return ops::gated_residual(x, y, rows(m.gate, false));
    const std::int64_t rest = tokens - split;
    return at::cat({ops::gated_residual(x.narrow(1, 0, split), y.narrow(1, 0, split), rows(m.gate, false)),
                    ops::gated_residual(x.narrow(1, split, rest), y.narrow(1, split, rest), rows(m.gate, true))},
                   1);
  }
};

// QwenDoubleStreamAttnProcessor2_0: per-stream q/k/v, per-head RMSNorm on q and
// k, RoPE (interleaved pairs), one attention over [text, image] with padded
// text keys masked, then each stream's output projection.
// img [B, Li, D], txt [B, Lt, D]; cos/sin [Lt + Li, head_dim / 2];
// mask [B, 1, 1, Lt + Li] bool or undefined. Returns {img_out, txt_out}.
std::pair<at::Tensor, at::Tensor> joint_attention(const JointAttention& a, const at::Tensor& img, const at::Tensor& txt,
                                                  const ops::RopeTables& rope, const at::Tensor& mask,
                                                  std::int64_t heads, std::int64_t head_dim) {
  const std::int64_t B = img.size(0), Li = img.size(1), Lt = txt.size(1), D = heads * head_dim;
  at::Tensor img_qkv = a.to_qkv(img).view({B, Li, 3, heads, head_dim});
  at::Tensor txt_qkv = a.add_qkv_proj(txt).view({B, Lt, 3, heads, head_dim});
  // Joint sequence [B, Lt + Li, H, hd], text first.
  at::Tensor q = at::cat({a.norm_added_q(txt_qkv.select(2, 0)), a.norm_q(img_qkv.select(2, 0))}, 1);
  at::Tensor k = at::cat({a.norm_added_k(txt_qkv.select(2, 1)), a.norm_k(img_qkv.select(2, 1))}, 1);
  at::Tensor v = at::cat({txt_qkv.select(2, 2), img_qkv.select(2, 2)}, 1);
  ops::rope(q, k, rope.cos, rope.sin, ops::RopeStyle::Interleaved);  // in place, both streams at once
  at::Tensor o = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                  mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt);
  o = o.transpose(1, 2).reshape({B, Lt + Li, D});  // [B, H, S, hd] -> [B, S, D]
  return {a.to_out_0(o.narrow(1, Lt, Li)), a.to_add_out(o.narrow(1, 0, Lt))};
}

}  // namespace

// ============================== blocks ==============================

at::Tensor Linear::operator()(const at::Tensor& x) const { return at::linear(x, weight, bias); }

at::Tensor RMSNorm::operator()(const at::Tensor& x) const { return ops::rms_norm(x, weight, eps); }

at::Tensor FeedForward::operator()(const at::Tensor& x) const {
  return net_2(ops::gelu_tanh(net_0_proj(x)));  // [.., D] -> [.., 4D] -> [.., D]
}

// ============================== loading ==============================

QwenImageTransformer QwenImageTransformer::load(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  const QwenImageTransformerConfig cfg = QwenImageTransformerConfig::load(folder);
  const io::Checkpoint ckpt = io::Checkpoint::open(folder, "diffusion_pytorch_model");
  io::WeightLoader weights(ckpt, opts);
  QwenImageTransformer model(cfg, weights);
  weights.finish();
  return model;
}

QwenImageTransformer::QwenImageTransformer(const QwenImageTransformerConfig& cfg, io::WeightLoader& w) : cfg_(cfg) {
  const std::int64_t D = cfg.inner_dim(), hd = cfg.attention_head_dim;
  timestep_embedder_.linear_1 = load_linear(w, "time_text_embed.timestep_embedder.linear_1", D, kTimestepChannels);
  timestep_embedder_.linear_2 = load_linear(w, "time_text_embed.timestep_embedder.linear_2", D, D);
  txt_norm_ = load_norm(w, "txt_norm", cfg.joint_attention_dim);
  img_in_ = load_linear(w, "img_in", D, cfg.in_channels);
  txt_in_ = load_linear(w, "txt_in", D, cfg.joint_attention_dim);
  transformer_blocks_.reserve(std::size_t(cfg.num_layers));
  for (std::int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "transformer_blocks." + std::to_string(i) + ".";
    TransformerBlock b;
    b.img_mod_1 = load_linear(w, p + "img_mod.1", 6 * D, D);
    b.txt_mod_1 = load_linear(w, p + "txt_mod.1", 6 * D, D);
    JointAttention& a = b.attn;
    a.to_qkv = load_stacked(w, p + "attn.", {"to_q", "to_k", "to_v"}, D, D);
    a.add_qkv_proj = load_stacked(w, p + "attn.", {"add_q_proj", "add_k_proj", "add_v_proj"}, D, D);
    a.norm_q = load_norm(w, p + "attn.norm_q", hd);
    a.norm_k = load_norm(w, p + "attn.norm_k", hd);
    a.norm_added_q = load_norm(w, p + "attn.norm_added_q", hd);
    a.norm_added_k = load_norm(w, p + "attn.norm_added_k", hd);
    a.to_out_0 = load_linear(w, p + "attn.to_out.0", D, D);
    a.to_add_out = load_linear(w, p + "attn.to_add_out", D, D);
    b.img_mlp = load_ff(w, p + "img_mlp.", D);
    b.txt_mlp = load_ff(w, p + "txt_mlp.", D);
    transformer_blocks_.push_back(std::move(b));
  }
  norm_out_linear_ = load_linear(w, "norm_out.linear", 2 * D, D);
  proj_out_ = load_linear(w, "proj_out", cfg.out_dim(), D);
}

// ============================== forward ==============================

void QwenImageTransformer::check_inputs(const at::Tensor& hs, const at::Tensor& ehs, const at::Tensor& mask,
                                        const at::Tensor& timestep,
                                        const std::vector<std::vector<ImageShape>>& img_shapes) const {
  if (!hs.defined() || hs.dim() != 3 || hs.size(2) != cfg_.in_channels || hs.size(0) == 0 || hs.size(1) == 0) {
    bad_input("hidden_states must be [B, L_img, " + std::to_string(cfg_.in_channels) + "] with B, L_img > 0, got " +
              (hs.defined() ? shape_str(hs) : "an undefined tensor"));
  }
  if (!hs.is_floating_point()) bad_input("hidden_states must be floating point");
  const std::int64_t B = hs.size(0), L_img = hs.size(1);
  if (!ehs.defined() || ehs.dim() != 3 || ehs.size(0) != B || ehs.size(2) != cfg_.joint_attention_dim ||
      ehs.size(1) == 0) {
    bad_input("encoder_hidden_states must be [B=" + std::to_string(B) + ", L_txt > 0, " +
              std::to_string(cfg_.joint_attention_dim) + "], got " +
              (ehs.defined() ? shape_str(ehs) : "an undefined tensor"));
  }
  if (!ehs.is_floating_point()) bad_input("encoder_hidden_states must be floating point");
  if (mask.defined() && (mask.dim() != 2 || mask.size(0) != B || mask.size(1) != ehs.size(1) || mask.is_complex())) {
    bad_input("encoder_hidden_states_mask must be [B, L_txt] = [" + std::to_string(B) + ", " +
              std::to_string(ehs.size(1)) + "], got " + shape_str(mask));
  }
  if (!timestep.defined() || timestep.dim() != 1 || timestep.size(0) != B || timestep.is_complex() ||
      timestep.scalar_type() == at::kBool) {
    bad_input("timestep must be a real [B] = [" + std::to_string(B) + "] tensor, got " +
              (timestep.defined() ? shape_str(timestep) : "an undefined tensor"));
  }
  if (std::int64_t(img_shapes.size()) != B) {
    bad_input("img_shapes must have one entry per sample (" + std::to_string(B) + "), got " +
              std::to_string(img_shapes.size()));
  }
  std::int64_t tokens = 0;
  for (const ImageShape& s : img_shapes[0]) {
    if (s.frames <= 0 || s.height <= 0 || s.width <= 0) {
      bad_input("img_shapes entries must be positive (frames, height, width), got (" + std::to_string(s.frames) + ", " +
                std::to_string(s.height) + ", " + std::to_string(s.width) + ")");
    }
    tokens += s.tokens();
  }
  if (img_shapes[0].empty() || tokens != L_img) {
    bad_input("img_shapes cover " + std::to_string(tokens) +
              " image tokens but hidden_states has L_img = " + std::to_string(L_img));
  }
  // The reference builds RoPE from the first sample's shapes only; a batch with
  // other shapes would silently get wrong positions, so it is refused here.
  for (std::size_t b = 1; b < img_shapes.size(); ++b) {
    if (img_shapes[b] != img_shapes[0]) {
      bad_input("img_shapes must be the same for every sample (sample " + std::to_string(b) +
                " differs from sample 0)");
    }
  }
}

at::Tensor QwenImageTransformer::timestep_embedding(const at::Tensor& timestep) const {
  // Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0, scale=1000) in float32:
  // freq_i = exp(-ln(10000) * i / 128), angle = (t * freq) * 1000, [cos | sin].
  const std::int64_t half = kTimestepChannels / 2;
  at::Tensor exponent = at::arange(half, at::TensorOptions().dtype(at::kFloat).device(timestep.device())) *
                        -std::log(10000.0) / double(half);
  at::Tensor angle = timestep.to(at::kFloat).unsqueeze(1) * exponent.exp().unsqueeze(0) * 1000.0;  // [N, 128]
  at::Tensor proj = at::cat({angle.cos(), angle.sin()}, 1).to(dtype());                            // [N, 256]
  // TimestepEmbedding: linear_1 -> SiLU -> linear_2.
  return timestep_embedder_.linear_2(at::silu(timestep_embedder_.linear_1(proj)));  // [N, D]
}

at::Tensor QwenImageTransformer::forward(const at::Tensor& hidden_states, const at::Tensor& encoder_hidden_states,
                                         const at::Tensor& encoder_hidden_states_mask, const at::Tensor& timestep,
                                         const std::vector<std::vector<ImageShape>>& img_shapes) const {
  check_inputs(hidden_states, encoder_hidden_states, encoder_hidden_states_mask, timestep, img_shapes);
  const std::int64_t B = hidden_states.size(0), L_img = hidden_states.size(1);
  const std::int64_t L_txt = encoder_hidden_states.size(1);
  const std::int64_t D = cfg_.inner_dim(), H = cfg_.num_attention_heads, hd = cfg_.attention_head_dim;
  const auto opts = at::TensorOptions().dtype(dtype()).device(device());

  at::Tensor img = img_in_(hidden_states.to(opts));  // [B, Li, D]

  // [B] sigma in the model dtype, as the reference's timestep.to(hidden_states.dtype);
  // zero_cond_t appends the t = 0 rows for the reference images.
  at::Tensor t = timestep.to(opts);
  ImageModulation img_mod{B, -1, L_img};
  if (cfg_.zero_cond_t) {
    t = at::cat({t, t * 0}, 0);  // [2B]
    img_mod.split = img_shapes[0][0].tokens();
  }

  at::Tensor txt = txt_in_(txt_norm_(encoder_hidden_states.to(opts)));  // [B, Lt, D]

  // Padded text keys are masked; image keys always attend. A mask without
  // padding changes nothing and is dropped, which lets SDPA pick its fastest kernel.
  at::Tensor attn_mask;
  if (encoder_hidden_states_mask.defined()) {
    at::Tensor keep = encoder_hidden_states_mask.to(device());
    keep = keep.scalar_type() == at::kBool ? keep : keep != 0;
    if (!keep.all().item<bool>()) {
      at::Tensor img_keep = at::ones({B, L_img}, at::TensorOptions().dtype(at::kBool).device(device()));
      attn_mask = at::cat({keep, img_keep}, 1).view({B, 1, 1, L_txt + L_img});
    }
  }

  // Every block's img_mod / txt_mod starts with SiLU(temb): taken once here.
  const at::Tensor temb_act = at::silu(timestep_embedding(t));    // [B or 2B, D]
  const at::Tensor temb_act_txt = img_mod.rows(temb_act, false);  // [B, D]: text keeps t
  const ops::RopeTables rope = qwenimage_rope_tables(img_shapes[0], L_txt, cfg_.axes_dims_rope, device());

  for (const TransformerBlock& blk : transformer_blocks_) {
    const at::Tensor img_params = blk.img_mod_1(temb_act);      // [B or 2B, 6D]
    const at::Tensor txt_params = blk.txt_mod_1(temb_act_txt);  // [B, 6D]
    const Mod img1 = mod_chunk(img_params, 0, D), img2 = mod_chunk(img_params, 1, D);
    const Mod txt1 = mod_chunk(txt_params, 0, D), txt2 = mod_chunk(txt_params, 1, D);

    // norm1 + modulation -> joint attention -> gated residual.
    at::Tensor img_x = img_mod.modulate(img, img1);
    at::Tensor txt_x = ops::adaln_modulate(txt, txt1.shift, txt1.scale, kNormEps);
    auto [img_attn, txt_attn] = joint_attention(blk.attn, img_x, txt_x, rope, attn_mask, H, hd);
    img = img_mod.gated_add(img, img_attn, img1);
    txt = ops::gated_residual(txt, txt_attn, txt1.gate);

    // norm2 + modulation -> MLP -> gated residual.
    img = img_mod.gated_add(img, blk.img_mlp(img_mod.modulate(img, img2)), img2);
    txt = ops::gated_residual(txt, blk.txt_mlp(ops::adaln_modulate(txt, txt2.shift, txt2.scale, kNormEps)), txt2.gate);

    if (dtype() == at::kHalf) {  // the reference clips both streams to the float16 range
      img.clamp_(-65504, 65504);
      txt.clamp_(-65504, 65504);
    }
  }

  // norm_out (AdaLayerNormContinuous): Linear(SiLU(temb)) chunks as (scale, shift),
  // the reverse of the blocks' order; zero_cond_t keeps only the t rows.
  const at::Tensor emb = norm_out_linear_(temb_act_txt);  // [B, 2D]
  img = ops::adaln_modulate(img, emb.narrow(1, D, D), emb.narrow(1, 0, D), kNormEps);
  return proj_out_(img);  // [B, Li, p*p*out]
}

}  // namespace mmgen::image
