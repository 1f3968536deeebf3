// The Qwen text-model family's config.json as one typed struct: Qwen2/Qwen2.5
// (Qwen2ForCausalLM), Qwen3 (Qwen3ForCausalLM), Qwen3-MoE
// (Qwen3MoeForCausalLM) and the language model of Qwen2.5-VL
// (Qwen2_5_VLForConditionalGeneration). Field names are the config keys;
// defaults are transformers' defaults for each architecture; derived facts
// (which layers are MoE or sliding, the per-layer window) are computed here in
// one place. Torch-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace mmgen::io {
class HfConfig;
}

namespace mmgen::text {

enum class Architecture {
  qwen2,           // Qwen2ForCausalLM: q/k/v bias, no q/k norm
  qwen3,           // Qwen3ForCausalLM: per-head q/k RMSNorm, bias iff attention_bias
  qwen3_moe,       // Qwen3MoeForCausalLM: Qwen3 attention, sparse MoE MLPs
  qwen2_5_vl_text  // language model of Qwen2_5_VLForConditionalGeneration (M-RoPE)
};
std::string_view to_string(Architecture a);

enum class RopeType { default_, linear, dynamic, yarn };
std::string_view to_string(RopeType t);

// rope_parameters (transformers 5) or rope_theta + rope_scaling (as published).
struct RopeConfig {
  RopeType type = RopeType::default_;
  double theta = 10000.0;
  double factor = 1.0;                              // linear, dynamic, yarn
  std::int64_t original_max_position_embeddings = 0;  // yarn
  std::optional<double> attention_factor;           // yarn; derived when absent
  double beta_fast = 32.0;                          // yarn
  double beta_slow = 1.0;                           // yarn
  std::optional<double> mscale;                     // yarn
  std::optional<double> mscale_all_dim;             // yarn
  bool truncate = true;                             // yarn
  std::vector<std::int64_t> mrope_section;          // Qwen2.5-VL, e.g. [16, 24, 24]; sums to head_dim / 2
};

struct QwenConfig {
  Architecture architecture = Architecture::qwen3;
  std::string architecture_name;  // as config.json spells it

  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t max_position_embeddings = 32768;
  double rms_norm_eps = 1e-6;
  std::string hidden_act = "silu";
  bool tie_word_embeddings = false;
  RopeConfig rope;

  // Attention projections: Qwen2 has q/k/v bias and no o bias; Qwen3 has both
  // or neither (attention_bias); Qwen3 normalises q and k per head.
  bool qkv_bias = false;
  bool o_bias = false;
  bool qk_norm = false;

  // Sliding window (in tokens, the current one included): set only when
  // use_sliding_window is on; sliding_layers says which layers use it
  // (layer_types, else the layers from max_window_layers on; every layer for
  // Qwen3-MoE). window_of() combines the two.
  std::optional<std::int64_t> sliding_window;
  std::vector<bool> sliding_layers;  // [num_hidden_layers]

  // Qwen3-MoE.
  std::int64_t num_experts = 0;
  std::int64_t num_experts_per_tok = 0;
  std::int64_t moe_intermediate_size = 0;
  std::int64_t decoder_sparse_step = 1;
  bool norm_topk_prob = false;
  std::vector<std::int64_t> mlp_only_layers;

  std::string dtype;  // torch_dtype / dtype from the config ("" when absent)
  std::vector<std::int64_t> eos_token_ids;

  // ---- derived ----
  std::int64_t q_size() const { return num_attention_heads * head_dim; }
  std::int64_t kv_size() const { return num_key_value_heads * head_dim; }
  bool is_moe_layer(std::int64_t layer) const;
  std::int64_t window_of(std::int64_t layer) const;  // 0 = full attention
  bool uses_mrope() const { return !rope.mrope_section.empty(); }

  // Reads config.json (folder or file). Throws io::LoadError(bad_config) for
  // a missing key, wrong type or an inconsistent value, and
  // io::LoadError(unsupported) for an architecture, activation or rope type
  // this port does not run — each message names the file and key.
  static QwenConfig load(const std::filesystem::path& path);
  static QwenConfig from_hf(const io::HfConfig& cfg);
};

}  // namespace mmgen::text
