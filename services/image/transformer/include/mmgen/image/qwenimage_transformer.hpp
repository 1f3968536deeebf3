// Qwen-Image's MMDiT, ported from diffusers' transformer_qwenimage.py
// (QwenImageTransformer2DModel). Member names are the checkpoint keys
// (transformer_blocks.N.attn.to_q, img_mod.1, img_mlp.net.0.proj, ...), so a
// published transformer/diffusion_pytorch_model*.safetensors loads 1:1 with its
// config.json; the math follows the reference op by op.
//
//   img_in / txt_norm + txt_in      packed latents and prompt embeddings -> inner dim
//   time_text_embed                 sigma -> sinusoid(1000 sigma) -> MLP -> temb
//   transformer_blocks.N            dual-stream blocks: AdaLN (shift, scale, gate) x 2
//                                   per stream, joint attention over [text, image]
//   norm_out + proj_out             AdaLayerNormContinuous -> patch outputs
//
// Two fusions change nothing numerically: each stream's q/k/v projections are
// stacked at load into one matmul, and the SiLU of temb, which every block's
// modulation starts with, is taken once per forward.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "mmgen/image/qwenimage_rope.hpp"
#include "mmgen/image/qwenimage_transformer_config.hpp"
#include "mmgen/io/checkpoint.hpp"

namespace mmgen::image {

// ============================== weights ==============================

namespace qwenimage {

struct Linear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out]
  at::Tensor operator()(const at::Tensor& x) const;
};

struct RMSNorm {      // diffusers RMSNorm with a weight
  at::Tensor weight;  // [C]
  double eps = 1e-6;
  at::Tensor operator()(const at::Tensor& x) const;
};

struct FeedForward {  // img_mlp / txt_mlp: net.0 = GELU(tanh) with .proj, net.1 Dropout, net.2
  Linear net_0_proj;  // [4 dim, dim]
  Linear net_2;       // [dim, 4 dim]
  at::Tensor operator()(const at::Tensor& x) const;
};

struct JointAttention {  // attn
  // to_q, to_k, to_v stacked as [3 dim, dim] (q rows first); add_q_proj,
  // add_k_proj, add_v_proj likewise for the text stream.
  Linear to_qkv;
  Linear add_qkv_proj;
  RMSNorm norm_q, norm_k;              // image stream, per head
  RMSNorm norm_added_q, norm_added_k;  // text stream, per head
  Linear to_out_0;                     // image output; to_out.1 is Dropout
  Linear to_add_out;                   // text output
};

struct TransformerBlock {  // transformer_blocks.N
  Linear img_mod_1;        // img_mod = SiLU -> Linear(dim, 6 dim): (shift, scale, gate) x 2
  Linear txt_mod_1;
  JointAttention attn;
  FeedForward img_mlp;
  FeedForward txt_mlp;
  // img_norm1/2 and txt_norm1/2 are affine-free LayerNorms (eps 1e-6): no weights.
};

struct TimestepEmbedding {  // time_text_embed.timestep_embedder
  Linear linear_1;          // [dim, 256]
  Linear linear_2;          // [dim, dim]
};

}  // namespace qwenimage

// ============================== model ==============================

class QwenImageTransformer {
 public:
  // Loads <folder>/config.json and diffusion_pytorch_model.safetensors (or its
  // shards with the .index.json), converting floating tensors to opts.dtype on
  // opts.device. Throws io::LoadError naming the file and the tensor for a bad
  // config, a missing, misshapen or unexpected tensor.
  static QwenImageTransformer load(const std::filesystem::path& folder, const io::LoadOptions& opts);
  QwenImageTransformer(const QwenImageTransformerConfig& cfg, io::WeightLoader& weights);

  // hidden_states:               [B, L_img, in_channels]  packed latents: the noisy image, then any
  //                                                       reference images (edit), in img_shapes order
  // encoder_hidden_states:       [B, L_txt, joint_attention_dim]
  // encoder_hidden_states_mask:  [B, L_txt] bool or integer/float (nonzero = token), or undefined for
  //                              no padding; padded keys are masked out of the joint attention
  // timestep:                    [B] sigma in [0, 1] (the pipelines' t / 1000), any floating dtype
  // img_shapes:                  B entries (one per sample), each the (frames, h, w) patch grids of
  //                              the sample's images; every entry must cover L_img tokens
  // Returns [B, L_img, patch_size^2 * out_channels] in the model dtype. Bad shapes or
  // dtypes throw std::invalid_argument naming the argument.
  at::Tensor forward(const at::Tensor& hidden_states, const at::Tensor& encoder_hidden_states,
                     const at::Tensor& encoder_hidden_states_mask, const at::Tensor& timestep,
                     const std::vector<std::vector<ImageShape>>& img_shapes) const;

  const QwenImageTransformerConfig& config() const { return cfg_; }
  c10::ScalarType dtype() const { return img_in_.weight.scalar_type(); }
  c10::Device device() const { return img_in_.weight.device(); }

 private:
  void check_inputs(const at::Tensor& hidden_states, const at::Tensor& encoder_hidden_states, const at::Tensor& mask,
                    const at::Tensor& timestep, const std::vector<std::vector<ImageShape>>& img_shapes) const;
  at::Tensor timestep_embedding(const at::Tensor& timestep) const;  // [N] -> [N, dim]

  QwenImageTransformerConfig cfg_;
  qwenimage::TimestepEmbedding timestep_embedder_;  // time_text_embed.timestep_embedder
  qwenimage::RMSNorm txt_norm_;
  qwenimage::Linear img_in_;
  qwenimage::Linear txt_in_;
  std::vector<qwenimage::TransformerBlock> transformer_blocks_;
  qwenimage::Linear norm_out_linear_;  // norm_out.linear: emb -> (scale, shift)
  qwenimage::Linear proj_out_;
};

}  // namespace mmgen::image
