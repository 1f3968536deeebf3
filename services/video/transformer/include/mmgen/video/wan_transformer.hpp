// WanTransformer3DModel, ported from diffusers' transformer_wan.py: the
// denoiser of Wan 2.1 (T2V, I2V with CLIP image context) and Wan 2.2 (T2V/I2V
// A14B experts, TI2V-5B with per-token timesteps). Member names are the
// checkpoint keys (blocks.N.attn1.to_q, condition_embedder.time_embedder.linear_1,
// scale_shift_table ...), so a published `transformer/` folder loads 1:1; the
// math follows the reference op by op, including its float32 islands.
//
//   patch_embedding (Conv3d, kernel = stride = patch) -> tokens [B, S, D]
//   condition_embedder: timestep sinusoid -> time_embedder -> temb [.., D],
//                       time_proj(silu(temb)) -> 6 modulation vectors per block;
//                       text_embedder (Linear-GELU(tanh)-Linear); image_embedder
//   blocks.N: AdaLN self-attention with 3-D RoPE, cross-attention to the text
//             (plus the image context through add_k/add_v_proj), AdaLN FFN
//   norm_out + scale_shift_table (shift, scale from temb) -> proj_out -> unpatchify
//
// Beyond the reference, and with the same arithmetic: per-token timesteps that
// are constant over runs of tokens are embedded once per run (Conditioning),
// and a loop may encode the prompt's cross-attention keys/values once
// (Context) instead of at every call.
//
// Loading fuses, where the result is the same arithmetic: to_q/to_k/to_v of the
// self-attention into one [3D, D] matmul (to_qkv), to_k/to_v of the
// cross-attention into to_kv and add_k/add_v_proj into to_added_kv (diffusers'
// fuse_projections names), and the patch Conv3d into a matmul over unfolded
// patches (kernel == stride, so each output is one dot product over a patch).
//
// dtype: with LoadOptions::dtype bf16/fp16 the tensors diffusers keeps in
// float32 (_keep_in_fp32_modules: time_embedder, every scale_shift_table,
// every norm1/norm2/norm3 weight, including the image embedder's) stay float32
// and the forward casts exactly where the reference does.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/video/wan_transformer_config.hpp"

namespace mmgen::video {

// ============================== weights ==============================

namespace wan {

struct Linear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out]
  at::Tensor operator()(const at::Tensor& x) const;
};

// diffusers' FP32LayerNorm: statistics and affine in float32, result in the
// input's dtype. weight/bias undefined when elementwise_affine is off.
struct LayerNorm {
  at::Tensor weight;  // [N] float32 or undefined
  at::Tensor bias;    // [N] float32 or undefined
  double eps = 1e-5;
  at::Tensor operator()(const at::Tensor& x) const;
};

// torch.nn.RMSNorm over the whole projection (all heads at once).
struct RMSNorm {
  at::Tensor weight;  // [N]
  double eps = 1e-6;
  at::Tensor operator()(const at::Tensor& x) const;
};

struct FeedForward {  // ffn (GELU tanh) and image_embedder.ff (exact GELU)
  Linear net_0_proj;  // net.0.proj; net.1 is Dropout
  Linear net_2;       // net.2
  bool tanh_gelu = true;
  at::Tensor operator()(const at::Tensor& x) const;
};

struct Attention {  // attn1 (self) / attn2 (cross)
  std::int64_t heads = 0;
  Linear to_qkv;       // attn1: to_q | to_k | to_v stacked, [3D, D]
  Linear to_q;         // attn2
  Linear to_kv;        // attn2: to_k | to_v stacked, [2D, D]
  Linear to_out;       // to_out.0; to_out.1 is Dropout
  RMSNorm norm_q, norm_k;
  Linear to_added_kv;  // Wan 2.1 I2V attn2: add_k_proj | add_v_proj stacked, [2D, D]
  RMSNorm norm_added_k;
};

// norm1 and norm3 (affine-free FP32LayerNorm) have no weights: they run inside
// mmgen::ops::adaln_modulate together with their modulation.
struct TransformerBlock {  // blocks.N
  Attention attn1;
  Attention attn2;
  std::optional<LayerNorm> norm2;  // affine, when cross_attn_norm (Identity otherwise)
  FeedForward ffn;
  at::Tensor scale_shift_table;  // [1, 6, D] float32 when kept: shift, scale, gate, c_shift, c_scale, c_gate
};

struct ImageEmbedding {  // condition_embedder.image_embedder
  LayerNorm norm1;  // affine, eps 1e-5
  FeedForward ff;   // GELU (exact), mult 1
  LayerNorm norm2;  // affine, eps 1e-5
  at::Tensor pos_embed;  // [1, pos_embed_seq_len, image_dim] or undefined (FLF2V only)
};

struct TimestepEmbedding {  // condition_embedder.time_embedder (kept in float32)
  Linear linear_1;           // [D, freq_dim]; then SiLU
  Linear linear_2;           // [D, D]
};

struct TextProjection {  // condition_embedder.text_embedder (PixArtAlphaTextProjection)
  Linear linear_1;       // [D, text_dim]; act_1 is GELU(tanh)
  Linear linear_2;       // [D, D]
};

struct ConditionEmbedder {  // condition_embedder
  std::int64_t freq_dim = 0;  // timesteps_proj: the sinusoid has no weights
  TimestepEmbedding time_embedder;
  Linear time_proj;  // [6D, D], after SiLU
  TextProjection text_embedder;
  std::optional<ImageEmbedding> image_embedder;
};

}  // namespace wan

// ============================== model ==============================

class WanTransformer3DModel {
 public:
  // Reads <folder>/config.json and diffusion_pytorch_model(.safetensors |
  // .safetensors.index.json) as published, every floating tensor converted to
  // opts.dtype on opts.device except the float32 modules. Throws io::LoadError
  // for a bad config and for a missing, misshapen or unexpected tensor (naming
  // the file and the tensor).
  static WanTransformer3DModel load(const std::filesystem::path& folder, const io::LoadOptions& opts);

  // `weights` hands out tensors in the model dtype; `fp32_weights` must read the
  // same checkpoint with dtype float32 (it serves the float32 modules, which are
  // then marked used in `weights`). The caller runs weights.finish().
  WanTransformer3DModel(const WanTransformerConfig& cfg, io::WeightLoader& weights, io::WeightLoader& fp32_weights);

  // hidden_states: [B, in_channels, F, H, W] (F, H, W multiples of patch_size);
  // timestep: [B] (one per sample) or [B, S] with S = (F/pt)(H/ph)(W/pw) (per
  //           token, Wan 2.2 TI2V); a batch of 1 is broadcast; any real dtype;
  // encoder_hidden_states: [B, L, text_dim] (the umT5 states, L = 512 as the
  //           pipelines pad them);
  // encoder_hidden_states_image: [B, Li, image_dim] CLIP features, only for
  //           configs with image_dim ([2B, pos_embed_seq_len/2, image_dim] with
  //           pos_embed_seq_len); required when the model has add_k_proj. Its
  //           attention is kept apart from the text's; the reference splits a
  //           concatenated context at length - 512, which is the same for the
  //           512 text tokens its pipelines always pass.
  // Inputs are cast to the model dtype and device. Returns the flow prediction
  // [B, out_channels, F, H, W] in the model dtype. Bad shapes throw
  // std::invalid_argument naming the argument.
  at::Tensor forward(const at::Tensor& hidden_states, const at::Tensor& timestep,
                     const at::Tensor& encoder_hidden_states,
                     const std::optional<at::Tensor>& encoder_hidden_states_image = std::nullopt) const;

  // The prompt side of every block's cross-attention, for a denoising loop
  // that calls the model many times with the same text (and image): the
  // embedded context projected to each block's keys (after norm_k) and values,
  // computed once. forward(x, t, context) then does the same arithmetic as
  // forward(x, t, encoder_hidden_states, image); the price is 2 x num_layers
  // x [B, L, D] (plus the image part) of memory held between calls.
  struct Context {
    std::int64_t batch = 0;
    std::vector<at::Tensor> k, v;          // per block [B, L, H, head_dim]
    std::vector<at::Tensor> k_img, v_img;  // per block [B, Li, H, head_dim] (Wan 2.1 I2V) or empty
  };
  // Same arguments and checks as forward(); the batch must match forward's.
  Context encode_context(const at::Tensor& encoder_hidden_states,
                         const std::optional<at::Tensor>& encoder_hidden_states_image = std::nullopt) const;
  at::Tensor forward(const at::Tensor& hidden_states, const at::Tensor& timestep, const Context& context) const;

  const WanTransformerConfig& config() const { return cfg_; }
  c10::ScalarType dtype() const { return patch_embedding_.weight.scalar_type(); }
  c10::Device device() const { return patch_embedding_.weight.device(); }

 private:
  // Per-token timesteps (TI2V) are almost always piecewise constant over runs
  // of tokens (the first latent frame at 0, the rest at t; or all at t for
  // text-to-video). The conditioning is then computed once per run and the
  // modulation applied run by run ("segments"), instead of materialising
  // [B, S, 6, D] float32 per block as the reference does; the arithmetic per
  // token is the same. Arbitrary per-token timesteps take the dense path.
  struct Conditioning {
    std::vector<std::int64_t> starts;  // first token of each segment; empty = dense
    at::Tensor temb;       // segments: [n, B, D]; dense: [B, S, D]  (model dtype)
    at::Tensor temb_proj;  // segments: [n, B, 6, D]; dense: [B, S, 6, D]
  };
  // Keys and values of one block's cross-attention: text [B, L, H, hd] and,
  // for Wan 2.1 I2V, image [B, Li, H, hd] (undefined otherwise).
  struct CrossKV {
    at::Tensor k, v, k_img, v_img;
  };
  struct Embedded {   // the context after text_embedder / image_embedder
    at::Tensor text;  // [B, L, D] (image tokens prepended when there is no add_k_proj)
    at::Tensor image; // [B, Li, D] for add_k_proj, or undefined
  };
  struct Grid {  // the latent video as tokens
    std::int64_t B, C, F, H, W;  // hidden_states [B, C, F, H, W]
    std::int64_t Fp, Hp, Wp, S;  // patch grid, S = Fp * Hp * Wp tokens
    bool per_token;              // timestep [B, S]
  };
  Grid check_latents(const at::Tensor& hidden_states, const at::Tensor& timestep) const;
  void check_context(const at::Tensor& encoder_hidden_states, const std::optional<at::Tensor>& image,
                     std::int64_t batch) const;
  Embedded embed_context(const at::Tensor& encoder_hidden_states, const std::optional<at::Tensor>& image) const;
  CrossKV cross_kv(const wan::TransformerBlock& blk, const Embedded& ctx) const;
  at::Tensor run(const at::Tensor& hidden_states, const at::Tensor& timestep, const Grid& grid,
                 const std::function<CrossKV(std::size_t)>& kv_of_block) const;
  at::Tensor block_forward(const wan::TransformerBlock& blk, const at::Tensor& x, const Conditioning& cond,
                           const CrossKV& kv, const at::Tensor& cos, const at::Tensor& sin) const;

  WanTransformerConfig cfg_;
  wan::Linear patch_embedding_;  // Conv3d weight [D, C, pt, ph, pw] kept as [D, C * pt * ph * pw]
  wan::ConditionEmbedder condition_embedder_;
  std::vector<wan::TransformerBlock> blocks_;
  // norm_out (affine-free) runs inside mmgen::ops::adaln_modulate.
  wan::Linear proj_out_;          // [out_channels * pt * ph * pw, D]
  at::Tensor scale_shift_table_;  // [1, 2, D]: shift, scale of the head
};

}  // namespace mmgen::video
