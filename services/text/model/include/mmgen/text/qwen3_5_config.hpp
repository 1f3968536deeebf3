// The hybrid Qwen family's config.json as one typed struct: Qwen3.5
// (Qwen3_5ForConditionalGeneration, text fields nested in "text_config"; also
// the text-only Qwen3_5ForCausalLM), Qwen3.5-MoE
// (Qwen3_5MoeForConditionalGeneration / Qwen3_5MoeForCausalLM) and Qwen3-Next
// (Qwen3NextForCausalLM, flat). Field names are the config keys; defaults are
// transformers' (configuration_qwen3_5.py, configuration_qwen3_5_moe.py,
// configuration_qwen3_next.py); derived facts (which layers are linear
// attention or MoE, the projection sizes) are computed here. Torch-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mmgen/text/qwen_config.hpp"  // RopeConfig

namespace mmgen::io {
class HfConfig;
}

namespace mmgen::text {

enum class HybridArchitecture {
  qwen3_5,      // dense MLPs
  qwen3_5_moe,  // every layer sparse MoE + shared expert, router always renormalised
  qwen3_next,   // Qwen3-Next: fused grouped in_proj_qkvz / in_proj_ba, MoE per decoder_sparse_step
};
std::string_view to_string(HybridArchitecture a);

enum class LayerType { linear_attention, full_attention };

struct Qwen3_5Config {
  HybridArchitecture architecture = HybridArchitecture::qwen3_5;
  std::string architecture_name;  // as config.json spells it
  // Qwen3_5*ForConditionalGeneration: text fields under text_config, the
  // decoder under "model.language_model." and a vision tower under "model.visual.".
  bool multimodal = false;
  bool has_vision_config = false;

  std::int64_t vocab_size = 248320;
  std::int64_t hidden_size = 4096;
  std::int64_t intermediate_size = 12288;  // dense MLPs (Qwen3.5, Qwen3-Next mlp_only_layers)
  std::int64_t num_hidden_layers = 32;
  std::int64_t num_attention_heads = 16;
  std::int64_t num_key_value_heads = 4;
  std::int64_t head_dim = 256;
  std::int64_t max_position_embeddings = 32768;
  double rms_norm_eps = 1e-6;
  std::string hidden_act = "silu";
  bool tie_word_embeddings = false;
  bool attention_bias = false;

  // Rotary: NeoX rotation of the first rotary_dim = int(head_dim * partial_rotary_factor) dims.
  RopeConfig rope;
  double partial_rotary_factor = 0.25;
  std::int64_t rotary_dim = 64;
  std::vector<std::int64_t> mrope_section;  // Qwen3.5 (image positions; text-only input reduces to 1-D)
  bool mrope_interleaved = false;

  // Gated DeltaNet (linear attention) layers.
  std::int64_t linear_conv_kernel_dim = 4;
  std::int64_t linear_key_head_dim = 128;
  std::int64_t linear_value_head_dim = 128;
  std::int64_t linear_num_key_heads = 16;
  std::int64_t linear_num_value_heads = 32;
  std::vector<LayerType> layer_types;  // [num_hidden_layers]; default: every 4th layer full attention

  // MoE (qwen3_5_moe, qwen3_next).
  std::int64_t num_experts = 0;
  std::int64_t num_experts_per_tok = 0;
  std::int64_t moe_intermediate_size = 0;
  std::int64_t shared_expert_intermediate_size = 0;
  bool norm_topk_prob = true;
  std::int64_t decoder_sparse_step = 1;     // qwen3_next
  std::vector<std::int64_t> mlp_only_layers;  // qwen3_next

  std::string dtype;  // torch_dtype / dtype ("" when absent)
  std::vector<std::int64_t> eos_token_ids;

  // ---- derived ----
  std::int64_t q_size() const { return num_attention_heads * head_dim; }
  std::int64_t kv_size() const { return num_key_value_heads * head_dim; }
  std::int64_t linear_key_dim() const { return linear_num_key_heads * linear_key_head_dim; }
  std::int64_t linear_value_dim() const { return linear_num_value_heads * linear_value_head_dim; }
  std::int64_t conv_dim() const { return 2 * linear_key_dim() + linear_value_dim(); }  // [q | k | v]
  bool is_full_attention(std::int64_t layer) const {
    return layer_types[std::size_t(layer)] == LayerType::full_attention;
  }
  bool is_moe_layer(std::int64_t layer) const;
  std::int64_t num_full_attention_layers() const;
  std::int64_t num_linear_attention_layers() const { return num_hidden_layers - num_full_attention_layers(); }

  // Reads config.json (folder or file). Throws io::LoadError(bad_config) for a
  // wrong type or inconsistent value and io::LoadError(unsupported) for an
  // architecture, activation, layer type or rope type this port does not run.
  static Qwen3_5Config load(const std::filesystem::path& path);
  static Qwen3_5Config from_hf(const io::HfConfig& cfg);
  // Whether config.json names an architecture this config covers (for loaders
  // that pick between QwenConfig and Qwen3_5Config).
  static bool handles(const io::HfConfig& cfg);
};

}  // namespace mmgen::text
