// The hybrid Qwen decoders — Qwen3.5, Qwen3.5-MoE (their language models) and
// Qwen3-Next — ported from transformers' modeling_qwen3_5.py,
// modeling_qwen3_5_moe.py and modeling_qwen3_next.py. Member names are the
// checkpoint keys (model.language_model.layers.N.linear_attn.in_proj_qkv ...),
// so a published model.safetensors loads 1:1; the math follows the reference
// op by op.
//
// Layers follow config.layer_types: Gated DeltaNet (gated_deltanet.hpp) or
// gated full attention (q_proj carries a per-head output gate; zero-centred
// per-head q/k RMSNorm; NeoX RoPE on the first rotary_dim dims; GQA; output
// times sigmoid(gate) before o_proj). Every other norm is zero-centred
// (x * rsqrt(mean x^2 + eps) * (1 + w), float32). MLPs: dense SwiGLU, or sparse
// MoE (softmax router, top-k, renormalised) plus a shared expert scaled by
// sigmoid(shared_expert_gate(x)).
//
// The forward API is QwenModel's (flattened tokens + AttentionMetadata) with a
// HybridCache: KV for the full-attention layers plus the per-sequence
// recurrent states of the linear-attention layers. For these models
// SequenceSlice::cache_slot names the sequence's recurrent-state slot in
// both KV layouts (with a contiguous KV cache it is also the KV slot).
//
// Engine integration (services/text/engine): make_paged_cache(num_blocks,
// block_size, num_state_slots) with num_state_slots = KvCacheConfig::
// num_state_slots (the most sequences running at once); the engine passes
// SequenceCache::state_slot as SequenceSlice::cache_slot next to the block
// table in AttentionMetadata::build_paged. A sequence's state covers exactly
// the tokens it has computed (context_len): chunked prefill continues it,
// decode steps it; it cannot be rewound, so preemption frees the slot and
// recomputes from scratch (context_len 0 resets the state), and prefix
// caching stays off for hybrid models unless states are snapshotted at block
// boundaries. HybridStates::bytes_per_slot() sizes the slot budget.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <optional>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/text/attention.hpp"
#include "mmgen/text/gated_deltanet.hpp"
#include "mmgen/text/qwen3_5_config.hpp"
#include "mmgen/text/qwen_model.hpp"
#include "mmgen/text/rope.hpp"

namespace mmgen::text {

// ============================== cache ==============================

// Everything a hybrid model keeps per sequence: the KV cache of the
// full-attention layers (KvCache layer i = the i-th full-attention layer;
// contiguous per slot, or paged blocks) and the conv windows + float32
// delta-rule states of the linear-attention layers (HybridStates, one slot
// per sequence).
struct HybridCache {
  KvCache kv;
  HybridStates states;
};

// ============================== weights ==============================

struct ZeroCenteredRMSNorm {  // every Qwen3.5 / Qwen3-Next RMSNorm except linear_attn.norm
  at::Tensor weight;          // [N], gain 1 + weight
  double eps = 1e-6;
  at::Tensor operator()(const at::Tensor& x) const;
};

struct GatedAttention {  // self_attn
  Linear q_proj;         // [Hq * 2D, H]: per head [q (D) | gate (D)]
  Linear k_proj, v_proj, o_proj;
  ZeroCenteredRMSNorm q_norm, k_norm;  // per head, before RoPE
};

struct SharedExpertMoe {  // mlp of a sparse layer
  SparseMoe moe;          // mlp.gate (router) + mlp.experts
  Mlp shared_expert;      // mlp.shared_expert.{gate,up,down}_proj
  Linear shared_expert_gate;  // [1, H]
  at::Tensor operator()(const at::Tensor& x) const;  // [T, H] -> [T, H]
};

struct HybridDecoderLayer {  // model.layers.N
  LayerType type = LayerType::linear_attention;
  ZeroCenteredRMSNorm input_layernorm, post_attention_layernorm;
  std::optional<GatedDeltaNet> linear_attn;
  std::optional<GatedAttention> self_attn;
  std::int64_t cache_index = 0;  // index among this layer kind (KvCache layer / HybridStates layer)
  Mlp mlp;                                // dense layers
  std::optional<SharedExpertMoe> moe;     // sparse layers (checkpoint prefix is also "mlp.")
};

// ============================== model ==============================

class Qwen3_5Model {
 public:
  // Takes "<prefix>embed_tokens.weight", "<prefix>layers.N....", "<prefix>norm.weight".
  Qwen3_5Model(const Qwen3_5Config& cfg, io::WeightLoader& weights, const std::string& prefix);

  // input_ids: [T] int64; positions: [T] int64, or [3, T] (temporal, height,
  // width rows of Qwen3.5's interleaved M-RoPE, for image tokens); meta: where
  // each sequence's tokens are, what it has cached and its slot (cache_slot).
  // A sequence with context_len 0 starts from empty state; otherwise it
  // continues from its slot's state, which must hold exactly its first
  // context_len tokens (chunked prefill, decode). Returns the hidden states
  // after the final norm: [T, hidden_size].
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& positions, const AttentionMetadata& meta,
                     HybridCache& cache) const;
  // Same, from input embeddings [T, hidden_size] (the VL model puts vision
  // features at the image placeholders' rows).
  at::Tensor forward_embeds(const at::Tensor& inputs_embeds, const at::Tensor& positions,
                            const AttentionMetadata& meta, HybridCache& cache) const;

  // Contiguous cache: `slots` sequences of up to max_len tokens.
  HybridCache make_cache(std::int64_t slots, std::int64_t max_len) const;
  // Paged KV (num_blocks of block_size tokens) + `state_slots` recurrent-state slots.
  HybridCache make_paged_cache(std::int64_t num_blocks, std::int64_t block_size, std::int64_t state_slots) const;

  const Qwen3_5Config& config() const { return cfg_; }
  const at::Tensor& embed_tokens() const { return embed_tokens_; }
  c10::ScalarType dtype() const { return embed_tokens_.scalar_type(); }
  c10::Device device() const { return embed_tokens_.device(); }

 private:
  at::Tensor attention_block(const HybridDecoderLayer& l, const at::Tensor& x, const at::Tensor& cos,
                             const at::Tensor& sin, const AttentionMetadata& meta, KvCache& kv) const;
  std::pair<at::Tensor, at::Tensor> rotary_tables(const at::Tensor& positions, const AttentionMetadata& meta) const;
  HybridStates make_states(std::int64_t slots) const;

  Qwen3_5Config cfg_;
  at::Tensor embed_tokens_;  // [V, H]
  std::vector<HybridDecoderLayer> layers_;
  ZeroCenteredRMSNorm norm_;
  RotaryEmbedding rotary_emb_;  // over rotary_dim dims
};

class Qwen3_5ForCausalLM {
 public:
  // Loads <folder>/config.json and the checkpoint (single or sharded), every
  // floating tensor converted to opts.dtype on opts.device. Accepts the
  // conditional-generation layout ("model.language_model.*"; the vision tower
  // "model.visual.*" is skipped here: the text worker loads the tower separately
  // (services/text/vision) when it serves image input), the text-only
  // layout ("model.*"), MoE experts fused (mlp.experts.gate_up_proj [E, 2I, H],
  // down_proj [E, H, I]) or per expert (mlp.experts.N.{gate,up,down}_proj),
  // and ignores multi-token-prediction weights ("mtp.*"). Throws io::LoadError
  // for a bad config, a missing / misshapen / unexpected tensor.
  static Qwen3_5ForCausalLM load(const std::filesystem::path& folder, const io::LoadOptions& opts);
  Qwen3_5ForCausalLM(const Qwen3_5Config& cfg, io::WeightLoader& weights);

  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& positions, const AttentionMetadata& meta,
                     HybridCache& cache) const {
    return model.forward(input_ids, positions, meta, cache);
  }
  // hidden [N, H] -> logits [N, V] in the model dtype.
  at::Tensor logits(const at::Tensor& hidden) const;
  const Qwen3_5Config& config() const { return model.config(); }

  Qwen3_5Model model;
  at::Tensor lm_head;  // [V, H]; the embedding itself when tied
};

}  // namespace mmgen::text
