// config.json -> Qwen3_5Config, mirroring configuration_qwen3_5.py,
// configuration_qwen3_5_moe.py, configuration_qwen3_next.py and the rope
// standardisation of modeling_rope_utils.py (rope_parameters or the published
// rope_theta + rope_scaling + top-level partial_rotary_factor).
#include "mmgen/text/qwen3_5_config.hpp"

#include <algorithm>
#include <cmath>

#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::text {

using io::HfConfig;
using io::LoadError;
using io::LoadErrorKind;

std::string_view to_string(HybridArchitecture a) {
  switch (a) {
    case HybridArchitecture::qwen3_5: return "qwen3_5";
    case HybridArchitecture::qwen3_5_moe: return "qwen3_5_moe";
    case HybridArchitecture::qwen3_next: return "qwen3_next";
  }
  return "?";
}

bool Qwen3_5Config::is_moe_layer(std::int64_t layer) const {
  switch (architecture) {
    case HybridArchitecture::qwen3_5: return false;
    case HybridArchitecture::qwen3_5_moe: return true;
    case HybridArchitecture::qwen3_next:
      if (num_experts <= 0) return false;
      if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
      return (layer + 1) % decoder_sparse_step == 0;
  }
  return false;
}

std::int64_t Qwen3_5Config::num_full_attention_layers() const {
  return std::int64_t(std::count(layer_types.begin(), layer_types.end(), LayerType::full_attention));
}

namespace {

struct Known {
  std::string_view arch, model_type;
  HybridArchitecture a;
  bool multimodal;
};
constexpr Known kKnown[] = {
    {"Qwen3_5ForConditionalGeneration", "qwen3_5", HybridArchitecture::qwen3_5, true},
    {"Qwen3_5ForCausalLM", "qwen3_5_text", HybridArchitecture::qwen3_5, false},
    {"Qwen3_5MoeForConditionalGeneration", "qwen3_5_moe", HybridArchitecture::qwen3_5_moe, true},
    {"Qwen3_5MoeForCausalLM", "qwen3_5_moe_text", HybridArchitecture::qwen3_5_moe, false},
    {"Qwen3NextForCausalLM", "qwen3_next", HybridArchitecture::qwen3_next, false},
};

const Known* find_known(const HfConfig& cfg) {
  std::vector<std::string> archs = cfg.get_string_list("architectures", {});
  if (!archs.empty()) {
    for (const auto& k : kKnown) {
      if (archs.front() == k.arch) return &k;
    }
    return nullptr;
  }
  const std::string mt = cfg.get_string("model_type", "");
  for (const auto& k : kKnown) {
    if (mt == k.model_type) return &k;
  }
  return nullptr;
}

void positive(const HfConfig& cfg, std::string_view key, std::int64_t v) {
  if (v <= 0) cfg.fail(key, "must be positive, got " + std::to_string(v));
}

// rope_scaling or rope_parameters (transformers: `rope_scaling or rope_parameters`),
// theta and partial_rotary_factor from the dict, else the top level, else the defaults.
void read_rope(const HfConfig& t, Qwen3_5Config& c) {
  std::optional<HfConfig> rp = t.sub("rope_scaling");
  if (rp && rp->empty()) rp.reset();
  if (!rp) rp = t.sub("rope_parameters");
  RopeConfig& r = c.rope;
  r.theta = t.get_double("rope_theta", 10000.0);
  c.partial_rotary_factor = t.get_double("partial_rotary_factor", 0.25);
  std::string type = "default";
  if (rp) {
    r.theta = rp->get_double("rope_theta", r.theta);
    c.partial_rotary_factor = rp->get_double("partial_rotary_factor", c.partial_rotary_factor);
    type = rp->get_string("rope_type", rp->get_string("type", "default"));
    c.mrope_section = rp->get_int_list("mrope_section", {});
    c.mrope_interleaved = rp->get_bool("mrope_interleaved", false);
  }
  if (!(r.theta > 0)) t.fail("rope_theta", "must be positive");
  if (!(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1)) {
    t.fail("partial_rotary_factor", "must be in (0, 1], got " + std::to_string(c.partial_rotary_factor));
  }
  // transformers: dim = int(head_dim * partial_rotary_factor)
  c.rotary_dim = std::int64_t(double(c.head_dim) * c.partial_rotary_factor);
  if (c.rotary_dim <= 0 || c.rotary_dim % 2 != 0) {
    t.fail("partial_rotary_factor", "gives " + std::to_string(c.rotary_dim) + " rotary dims of head_dim " +
                                        std::to_string(c.head_dim) + "; must be positive and even");
  }
  if (type == "default") {
    r.type = RopeType::default_;
  } else if (type == "linear" || type == "dynamic") {
    r.type = type == "linear" ? RopeType::linear : RopeType::dynamic;
    if (!rp->has("factor")) rp->fail("factor", "is required for rope type " + type);
    r.factor = rp->get_double("factor");
  } else if (type == "yarn") {
    r.type = RopeType::yarn;
    r.original_max_position_embeddings =
        t.get_int("original_max_position_embeddings",
                  rp->get_int("original_max_position_embeddings", c.max_position_embeddings));
    positive(*rp, "original_max_position_embeddings", r.original_max_position_embeddings);
    r.factor = rp->has("factor") ? rp->get_double("factor")
                                 : double(c.max_position_embeddings) / double(r.original_max_position_embeddings);
    r.attention_factor = rp->opt_double("attention_factor");
    const double bf = rp->get_double("beta_fast", 0.0), bs = rp->get_double("beta_slow", 0.0);
    r.beta_fast = bf != 0.0 ? bf : 32.0;
    r.beta_slow = bs != 0.0 ? bs : 1.0;
    r.mscale = rp->opt_double("mscale");
    r.mscale_all_dim = rp->opt_double("mscale_all_dim");
    r.truncate = rp->get_bool("truncate", true);
  } else {
    throw LoadError(LoadErrorKind::unsupported, t.source() + ": rope type '" + type +
                                                    "' is not supported (supported: default, linear, dynamic, yarn)");
  }
  if (r.type != RopeType::default_ && !(r.factor > 0)) rp->fail("factor", "must be positive");
}

}  // namespace

bool Qwen3_5Config::handles(const HfConfig& cfg) { return find_known(cfg) != nullptr; }

Qwen3_5Config Qwen3_5Config::load(const std::filesystem::path& path) { return from_hf(HfConfig::load(path)); }

Qwen3_5Config Qwen3_5Config::from_hf(const HfConfig& top) {
  const Known* known = find_known(top);
  if (!known) {
    const auto archs = top.get_string_list("architectures", {});
    const std::string what = archs.empty() ? "model_type '" + top.get_string("model_type", "") + "'"
                                           : "architecture '" + archs.front() + "'";
    throw LoadError(LoadErrorKind::unsupported,
                    top.source() + ": " + what +
                        " is not a hybrid Qwen model (supported: Qwen3_5ForConditionalGeneration, "
                        "Qwen3_5ForCausalLM, Qwen3_5MoeForConditionalGeneration, Qwen3_5MoeForCausalLM, "
                        "Qwen3NextForCausalLM)");
  }
  Qwen3_5Config c;
  c.architecture = known->a;
  c.architecture_name = std::string(known->arch);
  c.multimodal = known->multimodal;
  c.has_vision_config = top.has("vision_config");
  std::optional<HfConfig> text_cfg = c.multimodal ? top.sub("text_config") : std::nullopt;
  if (c.multimodal && !text_cfg) top.fail("text_config", "is required for " + c.architecture_name);
  const HfConfig& t = text_cfg ? *text_cfg : top;
  const bool moe35 = c.architecture == HybridArchitecture::qwen3_5_moe;
  const bool next = c.architecture == HybridArchitecture::qwen3_next;

  // Defaults per architecture, as the reference constructors have them.
  c.vocab_size = t.get_int("vocab_size", next ? 151936 : 248320);
  c.hidden_size = t.get_int("hidden_size", c.architecture == HybridArchitecture::qwen3_5 ? 4096 : 2048);
  c.intermediate_size = t.get_int("intermediate_size", next ? 5632 : 12288);
  c.num_hidden_layers = t.get_int("num_hidden_layers", next ? 48 : (moe35 ? 40 : 32));
  c.num_attention_heads = t.get_int("num_attention_heads", 16);
  c.num_key_value_heads = t.get_int("num_key_value_heads", c.architecture == HybridArchitecture::qwen3_5 ? 4 : 2);
  c.head_dim = t.get_int("head_dim", 256);
  c.max_position_embeddings = t.get_int("max_position_embeddings", 32768);
  for (auto [k, v] : {std::pair{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                      {"num_hidden_layers", c.num_hidden_layers}, {"num_attention_heads", c.num_attention_heads},
                      {"num_key_value_heads", c.num_key_value_heads}, {"head_dim", c.head_dim},
                      {"max_position_embeddings", c.max_position_embeddings}}) {
    positive(t, k, v);
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    t.fail("num_key_value_heads", "must divide num_attention_heads (" + std::to_string(c.num_attention_heads) +
                                      "), got " + std::to_string(c.num_key_value_heads));
  }
  c.rms_norm_eps = t.get_double("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps >= 0)) t.fail("rms_norm_eps", "must be non-negative");
  c.hidden_act = t.get_string("hidden_act", "silu");
  if (c.hidden_act != "silu") {
    throw LoadError(LoadErrorKind::unsupported,
                    t.source() + ": hidden_act '" + c.hidden_act + "' is not supported (only silu)");
  }
  // The composite config's own flag decides the head; a text config's flag counts too.
  c.tie_word_embeddings = top.get_bool("tie_word_embeddings", false) ||
                          (text_cfg && t.get_bool("tie_word_embeddings", false));
  c.attention_bias = t.get_bool("attention_bias", false);
  read_rope(t, c);
  if (!next) {
    // Qwen3.5's rotary embedding falls back to these sections (reference default).
    if (c.mrope_section.empty()) c.mrope_section = {11, 11, 10};
    if (c.mrope_section.size() != 3) t.fail("rope_parameters.mrope_section", "must have 3 entries");
    for (auto s : c.mrope_section) {
      if (s < 0) t.fail("rope_parameters.mrope_section", "entries must not be negative");
    }
  }

  c.linear_conv_kernel_dim = t.get_int("linear_conv_kernel_dim", 4);
  c.linear_key_head_dim = t.get_int("linear_key_head_dim", 128);
  c.linear_value_head_dim = t.get_int("linear_value_head_dim", 128);
  c.linear_num_key_heads = t.get_int("linear_num_key_heads", 16);
  c.linear_num_value_heads = t.get_int("linear_num_value_heads", 32);
  for (auto [k, v] : {std::pair{"linear_conv_kernel_dim", c.linear_conv_kernel_dim},
                      {"linear_key_head_dim", c.linear_key_head_dim},
                      {"linear_value_head_dim", c.linear_value_head_dim},
                      {"linear_num_key_heads", c.linear_num_key_heads},
                      {"linear_num_value_heads", c.linear_num_value_heads}}) {
    positive(t, k, v);
  }
  if (c.linear_num_value_heads % c.linear_num_key_heads != 0) {
    t.fail("linear_num_value_heads", "must be a multiple of linear_num_key_heads (" +
                                         std::to_string(c.linear_num_key_heads) + "), got " +
                                         std::to_string(c.linear_num_value_heads));
  }

  if (t.has("layer_types")) {
    const auto types = t.get_string_list("layer_types", {});
    if (std::int64_t(types.size()) != c.num_hidden_layers) {
      t.fail("layer_types", "has " + std::to_string(types.size()) + " entries, expected num_hidden_layers = " +
                                std::to_string(c.num_hidden_layers));
    }
    for (std::size_t i = 0; i < types.size(); ++i) {
      if (types[i] == "linear_attention") {
        c.layer_types.push_back(LayerType::linear_attention);
      } else if (types[i] == "full_attention") {
        c.layer_types.push_back(LayerType::full_attention);
      } else {
        throw LoadError(LoadErrorKind::unsupported, t.source() + ": layer_types[" + std::to_string(i) + "] = '" +
                                                        types[i] +
                                                        "' is not supported (linear_attention, full_attention)");
      }
    }
  } else {
    // The reference's default: full attention on every full_attention_interval-th layer.
    const std::int64_t interval = t.get_int("full_attention_interval", 4);
    positive(t, "full_attention_interval", interval);
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
      c.layer_types.push_back((i + 1) % interval ? LayerType::linear_attention : LayerType::full_attention);
    }
  }

  if (moe35 || next) {
    c.num_experts = t.get_int("num_experts", next ? 512 : 256);
    c.num_experts_per_tok = t.get_int("num_experts_per_tok", next ? 10 : 8);
    c.moe_intermediate_size = t.get_int("moe_intermediate_size", 512);
    c.shared_expert_intermediate_size = t.get_int("shared_expert_intermediate_size", 512);
    // Qwen3.5-MoE's router always renormalises; Qwen3-Next reads norm_topk_prob.
    c.norm_topk_prob = next ? t.get_bool("norm_topk_prob", true) : true;
    if (next) {
      c.decoder_sparse_step = t.get_int("decoder_sparse_step", 1);
      c.mlp_only_layers = t.get_int_list("mlp_only_layers", {});
      positive(t, "decoder_sparse_step", c.decoder_sparse_step);
      if (c.num_experts < 0) t.fail("num_experts", "must not be negative");
    } else {
      positive(t, "num_experts", c.num_experts);
    }
    if (c.num_experts > 0) {
      positive(t, "num_experts_per_tok", c.num_experts_per_tok);
      positive(t, "moe_intermediate_size", c.moe_intermediate_size);
      positive(t, "shared_expert_intermediate_size", c.shared_expert_intermediate_size);
      if (c.num_experts_per_tok > c.num_experts) {
        t.fail("num_experts_per_tok", "exceeds num_experts (" + std::to_string(c.num_experts) + ")");
      }
    }
  }
  bool any_dense = false;
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) any_dense = any_dense || !c.is_moe_layer(i);
  if (any_dense) positive(t, "intermediate_size", c.intermediate_size);

  c.dtype = top.get_string("torch_dtype", top.get_string("dtype", t.get_string("dtype", "")));
  const HfConfig& eos_src = t.has("eos_token_id") ? t : top;
  if (const auto* eos = eos_src.find("eos_token_id")) {
    c.eos_token_ids = eos->is_int() ? std::vector<std::int64_t>{eos->as_int()}
                                    : eos_src.get_int_list("eos_token_id", {});
  }
  return c;
}

}  // namespace mmgen::text
