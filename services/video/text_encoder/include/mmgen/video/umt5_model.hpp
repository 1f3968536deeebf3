// The UMT5 encoder the Wan pipelines use as their text encoder, ported from
// transformers' models/umt5/modeling_umt5.py (UMT5EncoderModel). Member names
// are the checkpoint keys of the published Wan2.x-Diffusers `text_encoder/`
// folder (shared.weight, encoder.block.N.layer.0.SelfAttention.q.weight, ...),
// so its sharded model.safetensors loads 1:1.
//
// What makes it UMT5 rather than T5: every block has its own
// relative_attention_bias (T5 has one, in block 0). Otherwise T5 conventions:
// RMS layer norm without mean subtraction (variance in float32), no 1/sqrt(d)
// attention scaling, gated-GELU feed-forward with the tanh GELU ("gelu_new").
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/hf_config.hpp"

namespace mmgen::video {

// ============================== config ==============================

enum class DenseActivation { gelu_new, gelu, relu, silu, gelu_pytorch_tanh };

// config.json of a UMT5EncoderModel; defaults as UMT5Config's constructor.
struct UMT5Config {
  std::int64_t vocab_size = 250112;
  std::int64_t d_model = 512;
  std::int64_t d_kv = 64;
  std::int64_t d_ff = 1024;
  std::int64_t num_layers = 8;
  std::int64_t num_heads = 6;
  std::int64_t relative_attention_num_buckets = 32;
  std::int64_t relative_attention_max_distance = 128;
  double layer_norm_epsilon = 1e-6;
  std::string feed_forward_proj = "gated-gelu";
  // Derived from feed_forward_proj as UMT5Config does: "gated-<act>" -> gated
  // FFN; "gated-gelu" means the tanh approximation (gelu_new).
  bool is_gated_act = true;
  DenseActivation dense_act_fn = DenseActivation::gelu_new;
  std::int64_t pad_token_id = 0;
  std::int64_t eos_token_id = 1;

  std::int64_t inner_dim() const { return num_heads * d_kv; }

  // Throws io::LoadError(bad_config / unsupported) naming file and key.
  static UMT5Config from_hf(const io::HfConfig& cfg);
};

// ============================== weights ==============================

struct T5Linear {     // nn.Linear(bias=False)
  at::Tensor weight;  // [out, in]
  at::Tensor operator()(const at::Tensor& x) const;
};

struct T5LayerNorm {  // UMT5LayerNorm: RMS norm, variance in float32, no bias
  at::Tensor weight;  // [d_model]
  double variance_epsilon = 1e-6;
  at::Tensor operator()(const at::Tensor& x) const;
};

struct UMT5Attention {                 // layer.0.SelfAttention
  T5Linear q, k, v, o;                 // q/k/v [inner, d_model], o [d_model, inner]
  at::Tensor relative_attention_bias;  // [num_buckets, num_heads] (an nn.Embedding)
};

struct UMT5LayerSelfAttention {  // layer.0
  UMT5Attention SelfAttention;
  T5LayerNorm layer_norm;
};

struct UMT5DenseGatedActDense {  // layer.1.DenseReluDense (gated: wi_0, wi_1; plain: wi)
  T5Linear wi_0, wi_1, wi, wo;   // wi_* [d_ff, d_model], wo [d_model, d_ff]
};

struct UMT5LayerFF {  // layer.1
  UMT5DenseGatedActDense DenseReluDense;
  T5LayerNorm layer_norm;
};

struct UMT5Block {  // encoder.block.N
  UMT5LayerSelfAttention layer0;
  UMT5LayerFF layer1;
};

// ============================== model ==============================

class UMT5EncoderModel {
 public:
  // Loads <folder>/config.json and model.safetensors (single or sharded with
  // model.safetensors.index.json). Floating tensors become opts.dtype, except
  // the feed-forward `wo` weights, which stay float32 when opts.dtype is
  // float16 (the reference's _keep_in_fp32_modules = ["wo"], applied by
  // transformers for float16 only). Throws io::LoadError for a missing folder,
  // file or tensor, a misshapen tensor or a bad config.
  static UMT5EncoderModel load(const std::filesystem::path& folder, const io::LoadOptions& opts);
  UMT5EncoderModel(const UMT5Config& cfg, io::WeightLoader& weights);

  // input_ids: [B, L] int64; attention_mask: [B, L] (1 = token, 0 = padding)
  // or undefined (all tokens). Returns last_hidden_state [B, L, d_model] after
  // encoder.final_layer_norm, in the model dtype.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask) const;

  // The bucket of every (query i, key j) pair: [L, L] int64, bidirectional,
  // exactly UMT5Attention._relative_position_bucket for an encoder.
  static at::Tensor relative_position_bucket(std::int64_t length, std::int64_t num_buckets, std::int64_t max_distance,
                                             c10::Device device);

  const UMT5Config& config() const { return cfg_; }
  c10::ScalarType dtype() const { return shared_.scalar_type(); }
  c10::Device device() const { return shared_.device(); }

 private:
  at::Tensor attention(const UMT5Attention& a, const at::Tensor& x, const at::Tensor& buckets,
                       const at::Tensor& mask) const;
  at::Tensor feed_forward(const UMT5DenseGatedActDense& ff, const at::Tensor& x) const;

  UMT5Config cfg_;
  at::Tensor shared_;  // shared.weight [V, d_model] (encoder.embed_tokens is tied to it)
  std::vector<UMT5Block> block_;
  T5LayerNorm final_layer_norm_;
};

}  // namespace mmgen::video
