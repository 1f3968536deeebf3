// The Qwen decoder family, ported from transformers' modeling_qwen2.py,
// modeling_qwen3.py, modeling_qwen3_moe.py and the language model of
// modeling_qwen2_5_vl.py. Member names are the checkpoint keys
// (model.layers.N.self_attn.q_proj.weight ...), so a published
// model.safetensors loads 1:1; the math follows the reference op by op.
//
//   QwenModel         embed_tokens -> layers -> norm; returns the last hidden
//                     state after the final norm (also the Qwen2.5-VL text
//                     encoder the image service uses).
//   QwenForCausalLM   QwenModel + lm_head (tied to embed_tokens when the
//                     config says so).
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <optional>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/text/attention.hpp"
#include "mmgen/text/qwen_config.hpp"
#include "mmgen/text/rope.hpp"

namespace mmgen::text {

// ============================== weights ==============================

// at::linear(x, weight, bias), or mmgen::ops::linear_small_m when x has at
// most small_linear_rows(dtype) rows on the CPU (decode steps): there the
// skinny kernel reads each weight row once for all rows, where the BLAS GEMMs
// pay for packing and blocking meant for large M. The bound is where the two
// cross on the Qwen3 bench matrices (AVX-512 Zen 4): at 16 rows bfloat16
// (vdpbf16ps) is still 1.46x at::linear on the layer matrices and 1.05x on
// lm_head, at 24 rows lm_head is 0.74x; float32 is faster up to 16 rows. Up
// to the bound a row's result does not depend on the others in the batch
// (same K order per row, alignment steps that depend only on the weight's
// address), so decode batches stay batch-invariant.
std::int64_t small_linear_rows(c10::ScalarType dtype);
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

struct Linear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined
  at::Tensor operator()(const at::Tensor& x) const;
};

struct RMSNorm {
  at::Tensor weight;  // [N]
  double eps = 1e-6;
  at::Tensor operator()(const at::Tensor& x) const;
};

struct Attention {  // self_attn
  Linear q_proj, k_proj, v_proj, o_proj;
  RMSNorm q_norm, k_norm;  // Qwen3 only: per head, before RoPE
  std::int64_t window = 0;  // sliding window of this layer, 0 = full
};

struct Mlp {  // mlp (dense) and each mlp.experts.N
  // The checkpoint's gate_proj [I, H] and up_proj [I, H], stacked at load into
  // one [2I, H] matmul whose output mmgen::ops::silu_and_mul splits (the
  // reference's act(gate_proj(x)) * up_proj(x)).
  Linear gate_up_proj;
  Linear down_proj;  // [H, I]
  at::Tensor operator()(const at::Tensor& x) const;  // [T, H] -> [T, H]
};

struct SparseMoe {  // mlp of a Qwen3-MoE sparse layer
  Linear gate;               // router: [E, H], no bias
  std::vector<Mlp> experts;  // mlp.experts.N.{gate,up,down}_proj, as stored
  std::int64_t top_k = 0;
  bool norm_topk_prob = false;
  at::Tensor operator()(const at::Tensor& x) const;  // [T, H] -> [T, H]
};

struct DecoderLayer {  // model.layers.N
  RMSNorm input_layernorm;
  Attention self_attn;
  RMSNorm post_attention_layernorm;
  Mlp mlp;                       // dense layers
  std::optional<SparseMoe> moe;  // sparse layers (checkpoint prefix is also "mlp.")
};

// ============================== model ==============================

class QwenModel {
 public:
  // Takes "<prefix>embed_tokens.weight", "<prefix>layers.N....", "<prefix>norm.weight".
  QwenModel(const QwenConfig& cfg, io::WeightLoader& weights, const std::string& prefix);

  // input_ids: [T] int64; positions: [T] int64 (or [3, T] for M-RoPE);
  // meta: where each sequence's tokens are and what it has cached.
  // Returns the hidden states after the final norm: [T, hidden_size].
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& positions, const AttentionMetadata& meta,
                     KvCache& cache) const;

  // Same, from input embeddings [T, hidden_size] instead of ids: the VL
  // models put vision features at the image placeholders' rows.
  at::Tensor forward_embeds(const at::Tensor& inputs_embeds, const at::Tensor& positions,
                            const AttentionMetadata& meta, KvCache& cache) const;

  // A cache that fits `slots` sequences of up to max_len tokens in this model's dtype/device.
  KvCache make_cache(std::int64_t slots, std::int64_t max_len) const;

  const QwenConfig& config() const { return cfg_; }
  const at::Tensor& embed_tokens() const { return embed_tokens_; }
  c10::ScalarType dtype() const { return embed_tokens_.scalar_type(); }
  c10::Device device() const { return embed_tokens_.device(); }

 private:
  at::Tensor attention_block(std::int64_t layer, const Attention& a, const at::Tensor& x, const at::Tensor& cos,
                             const at::Tensor& sin, const AttentionMetadata& meta, KvCache& cache) const;
  std::pair<at::Tensor, at::Tensor> rotary_tables(const at::Tensor& positions, const AttentionMetadata& meta) const;

  QwenConfig cfg_;
  at::Tensor embed_tokens_;  // [V, H]
  std::vector<DecoderLayer> layers_;
  RMSNorm norm_;
  RotaryEmbedding rotary_emb_;
};

class QwenForCausalLM {
 public:
  // Loads <folder>/config.json and the checkpoint (single or sharded), every
  // floating tensor converted to opts.dtype on opts.device. Throws
  // io::LoadError for a bad config, a missing / misshapen / unexpected tensor.
  static QwenForCausalLM load(const std::filesystem::path& folder, const io::LoadOptions& opts);
  QwenForCausalLM(const QwenConfig& cfg, io::WeightLoader& weights);

  // Same inputs as QwenModel::forward; returns hidden states [T, H].
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& positions, const AttentionMetadata& meta,
                     KvCache& cache) const {
    return model.forward(input_ids, positions, meta, cache);
  }
  // hidden [N, H] -> logits [N, V] in the model dtype.
  at::Tensor logits(const at::Tensor& hidden) const;

  const QwenConfig& config() const { return model.config(); }

  QwenModel model;
  at::Tensor lm_head;  // [V, H]; the embedding itself when tied
};

// The language model of a Qwen2_5_VLForConditionalGeneration checkpoint
// (folder with config.json + safetensors), as the image service's prompt
// encoder wants it: returns QwenModel, skipping the vision tower and lm_head.
// Accepts the published key layout ("model.layers...") and transformers 5's
// ("model.language_model.layers...").
QwenModel load_qwen2_5_vl_text_model(const std::filesystem::path& folder, const io::LoadOptions& opts);

// Runs one causal pass over a whole prompt without keeping a cache:
// input_ids [T], positions [T] or [3, T] -> last hidden state [T, H].
at::Tensor encode(const QwenModel& model, const at::Tensor& input_ids, const at::Tensor& positions);

}  // namespace mmgen::text
