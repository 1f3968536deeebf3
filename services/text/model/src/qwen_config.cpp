// config.json -> QwenConfig, mirroring transformers' configuration_qwen2.py,
// configuration_qwen3.py, configuration_qwen3_moe.py,
// configuration_qwen2_5_vl.py and the rope standardisation of
// modeling_rope_utils.py (which accepts both the published rope_theta +
// rope_scaling spelling and transformers 5's rope_parameters).
#include "mmgen/text/qwen_config.hpp"

#include <algorithm>
#include <numeric>

#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::text {

using io::HfConfig;
using io::LoadError;
using io::LoadErrorKind;

std::string_view to_string(Architecture a) {
  switch (a) {
    case Architecture::qwen2: return "Qwen2ForCausalLM";
    case Architecture::qwen3: return "Qwen3ForCausalLM";
    case Architecture::qwen3_moe: return "Qwen3MoeForCausalLM";
    case Architecture::qwen2_5_vl_text: return "Qwen2_5_VLForConditionalGeneration";
  }
  return "?";
}

std::string_view to_string(RopeType t) {
  switch (t) {
    case RopeType::default_: return "default";
    case RopeType::linear: return "linear";
    case RopeType::dynamic: return "dynamic";
    case RopeType::yarn: return "yarn";
  }
  return "?";
}

bool QwenConfig::is_moe_layer(std::int64_t layer) const {
  if (architecture != Architecture::qwen3_moe || num_experts <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

std::int64_t QwenConfig::window_of(std::int64_t layer) const {
  if (!sliding_window || layer < 0 || layer >= std::int64_t(sliding_layers.size())) return 0;
  return sliding_layers[std::size_t(layer)] ? *sliding_window : 0;
}

namespace {

Architecture detect_architecture(const HfConfig& cfg, std::string& name) {
  std::vector<std::string> archs = cfg.get_string_list("architectures", {});
  struct Known {
    std::string_view arch, model_type;
    Architecture a;
  };
  static constexpr Known kKnown[] = {
      {"Qwen2ForCausalLM", "qwen2", Architecture::qwen2},
      {"Qwen3ForCausalLM", "qwen3", Architecture::qwen3},
      {"Qwen3MoeForCausalLM", "qwen3_moe", Architecture::qwen3_moe},
      {"Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl", Architecture::qwen2_5_vl_text},
  };
  if (!archs.empty()) {
    for (const auto& k : kKnown) {
      if (archs.front() == k.arch) {
        name = archs.front();
        return k.a;
      }
    }
    throw LoadError(LoadErrorKind::unsupported,
                    cfg.source() + ": architecture '" + archs.front() +
                        "' is not supported (supported: Qwen2ForCausalLM, Qwen3ForCausalLM, "
                        "Qwen3MoeForCausalLM, Qwen2_5_VLForConditionalGeneration)");
  }
  std::string mt = cfg.get_string("model_type", "");
  for (const auto& k : kKnown) {
    if (mt == k.model_type) {
      name = std::string(k.arch);
      return k.a;
    }
  }
  if (mt.empty()) cfg.fail("architectures", "is required (or model_type)");
  throw LoadError(LoadErrorKind::unsupported,
                  cfg.source() + ": model_type '" + mt + "' is not supported");
}

void positive(const HfConfig& cfg, std::string_view key, std::int64_t v) {
  if (v <= 0) cfg.fail(key, "must be positive, got " + std::to_string(v));
}

RopeConfig read_rope(const HfConfig& top, const HfConfig& t, double default_theta, bool vl,
                     std::int64_t max_pos, std::int64_t head_dim) {
  RopeConfig r;
  // transformers: `rope_scaling or rope_parameters`.
  std::optional<HfConfig> rp = t.sub("rope_scaling");
  std::string key = "rope_scaling";
  if (rp && rp->empty()) rp.reset();  // `or`: an empty dict counts as absent
  if (!rp) {
    rp = t.sub("rope_parameters");
    key = "rope_parameters";
  }
  r.theta = t.get_double("rope_theta", default_theta);
  std::string type = "default";
  if (rp) {
    r.theta = rp->get_double("rope_theta", r.theta);
    type = rp->get_string("rope_type", rp->get_string("type", "default"));
    if (vl && type == "mrope") type = "default";
    if (vl) r.mrope_section = rp->get_int_list("mrope_section", {16, 24, 24});
    double prf = rp->get_double("partial_rotary_factor", 1.0);
    if (prf != 1.0) {
      throw LoadError(LoadErrorKind::unsupported,
                      t.source() + ": '" + key + ".partial_rotary_factor' = " + std::to_string(prf) +
                          " is not supported by the Qwen port (full rotary only)");
    }
  } else if (vl) {
    r.mrope_section = {16, 24, 24};
  }
  if (!(r.theta > 0)) t.fail("rope_theta", "must be positive");

  if (type == "default") {
    r.type = RopeType::default_;
  } else if (type == "linear" || type == "dynamic") {
    r.type = type == "linear" ? RopeType::linear : RopeType::dynamic;
    if (!rp->has("factor")) rp->fail("factor", "is required for rope type " + type);
    r.factor = rp->get_double("factor");
  } else if (type == "yarn") {
    r.type = RopeType::yarn;
    // A top-level original_max_position_embeddings wins over the rope dict's,
    // which defaults to max_position_embeddings (standardize_rope_params).
    r.original_max_position_embeddings =
        top.get_int("original_max_position_embeddings",
                    t.get_int("original_max_position_embeddings",
                              rp->get_int("original_max_position_embeddings", max_pos)));
    positive(*rp, "original_max_position_embeddings", r.original_max_position_embeddings);
    if (rp->has("factor")) {
      r.factor = rp->get_double("factor");
    } else {
      r.factor = double(max_pos) / double(r.original_max_position_embeddings);
    }
    r.attention_factor = rp->opt_double("attention_factor");
    // `or` in the reference: 0 and null both mean the default.
    double bf = rp->get_double("beta_fast", 0.0), bs = rp->get_double("beta_slow", 0.0);
    r.beta_fast = bf != 0.0 ? bf : 32.0;
    r.beta_slow = bs != 0.0 ? bs : 1.0;
    r.mscale = rp->opt_double("mscale");
    r.mscale_all_dim = rp->opt_double("mscale_all_dim");
    r.truncate = rp->get_bool("truncate", true);
  } else {
    throw LoadError(LoadErrorKind::unsupported,
                    t.source() + ": '" + key + "' rope type '" + type +
                        "' is not supported (supported: default, linear, dynamic, yarn)");
  }
  if ((r.type == RopeType::linear || r.type == RopeType::dynamic || r.type == RopeType::yarn) &&
      !(r.factor > 0)) {
    rp->fail("factor", "must be positive");
  }
  if (vl) {
    for (auto s : r.mrope_section) {
      if (s <= 0) t.fail(key + ".mrope_section", "entries must be positive");
    }
    std::int64_t sum = std::accumulate(r.mrope_section.begin(), r.mrope_section.end(), std::int64_t{0});
    if (sum != head_dim / 2) {
      t.fail(key + ".mrope_section", "sums to " + std::to_string(sum) + " but head_dim / 2 is " +
                                         std::to_string(head_dim / 2));
    }
  }
  return r;
}

}  // namespace

QwenConfig QwenConfig::load(const std::filesystem::path& path) { return from_hf(HfConfig::load(path)); }

QwenConfig QwenConfig::from_hf(const HfConfig& top) {
  QwenConfig c;
  c.architecture = detect_architecture(top, c.architecture_name);
  const bool vl = c.architecture == Architecture::qwen2_5_vl_text;
  // Qwen2.5-VL: text fields live in text_config (transformers 5) or at the top (as published).
  std::optional<HfConfig> text_cfg = vl ? top.sub("text_config") : std::nullopt;
  const HfConfig& t = text_cfg ? *text_cfg : top;

  c.vocab_size = t.get_int("vocab_size");
  c.hidden_size = t.get_int("hidden_size");
  c.intermediate_size = t.get_int("intermediate_size");
  c.num_hidden_layers = t.get_int("num_hidden_layers");
  c.num_attention_heads = t.get_int("num_attention_heads");
  c.num_key_value_heads = t.get_int("num_key_value_heads", c.num_attention_heads);
  for (auto [k, v] : {std::pair{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size}, {"num_hidden_layers", c.num_hidden_layers},
                      {"num_attention_heads", c.num_attention_heads},
                      {"num_key_value_heads", c.num_key_value_heads}}) {
    positive(t, k, v);
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    t.fail("num_key_value_heads", "must divide num_attention_heads (" +
                                      std::to_string(c.num_attention_heads) + "), got " +
                                      std::to_string(c.num_key_value_heads));
  }
  // Qwen3 declares head_dim; Qwen2 reads it when present; the VL text model
  // always derives it from hidden_size.
  if (vl || !t.has("head_dim")) {
    if (c.hidden_size % c.num_attention_heads != 0) {
      t.fail("hidden_size", "must be divisible by num_attention_heads when head_dim is not given");
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  } else {
    c.head_dim = t.get_int("head_dim");
  }
  positive(t, "head_dim", c.head_dim);
  if (c.head_dim % 2 != 0) t.fail("head_dim", "must be even for rotary embeddings");

  c.max_position_embeddings = t.get_int("max_position_embeddings", 32768);
  positive(t, "max_position_embeddings", c.max_position_embeddings);
  c.rms_norm_eps = t.get_double("rms_norm_eps", vl ? 1e-5 : 1e-6);
  if (!(c.rms_norm_eps >= 0)) t.fail("rms_norm_eps", "must be non-negative");
  c.hidden_act = t.get_string("hidden_act", "silu");
  if (c.hidden_act != "silu") {
    throw LoadError(LoadErrorKind::unsupported,
                    t.source() + ": hidden_act '" + c.hidden_act + "' is not supported (only silu)");
  }
  c.tie_word_embeddings = top.get_bool("tie_word_embeddings", false) ||
                          (vl && t.get_bool("tie_word_embeddings", false));

  switch (c.architecture) {
    case Architecture::qwen2:
    case Architecture::qwen2_5_vl_text:
      c.qkv_bias = true;
      c.o_bias = false;
      c.qk_norm = false;
      break;
    case Architecture::qwen3:
    case Architecture::qwen3_moe:
      c.qkv_bias = c.o_bias = t.get_bool("attention_bias", false);
      c.qk_norm = true;
      break;
  }

  c.rope = read_rope(top, t, vl ? 1000000.0 : 10000.0, vl, c.max_position_embeddings, c.head_dim);

  // Sliding window: only when use_sliding_window; per layer from layer_types,
  // else the layers from max_window_layers on (all layers for Qwen3-MoE).
  if (t.get_bool("use_sliding_window", false) && t.has("sliding_window")) {
    c.sliding_window = t.get_int("sliding_window");
    positive(t, "sliding_window", *c.sliding_window);
  }
  c.sliding_layers.assign(std::size_t(c.num_hidden_layers), false);
  if (t.has("layer_types")) {
    auto types = t.get_string_list("layer_types", {});
    if (std::int64_t(types.size()) != c.num_hidden_layers) {
      t.fail("layer_types", "has " + std::to_string(types.size()) + " entries, expected num_hidden_layers = " +
                                std::to_string(c.num_hidden_layers));
    }
    for (std::size_t i = 0; i < types.size(); ++i) {
      if (types[i] == "sliding_attention") {
        c.sliding_layers[i] = true;
      } else if (types[i] != "full_attention") {
        throw LoadError(LoadErrorKind::unsupported, t.source() + ": layer_types[" + std::to_string(i) +
                                                        "] = '" + types[i] + "' is not supported");
      }
    }
  } else if (c.sliding_window) {
    std::int64_t first = c.architecture == Architecture::qwen3_moe
                             ? 0
                             : t.get_int("max_window_layers", vl ? 80 : 28);
    for (std::int64_t i = first; i < c.num_hidden_layers; ++i) c.sliding_layers[std::size_t(i)] = true;
  }

  if (c.architecture == Architecture::qwen3_moe) {
    c.num_experts = t.get_int("num_experts", 128);
    c.num_experts_per_tok = t.get_int("num_experts_per_tok", 8);
    c.moe_intermediate_size = t.get_int("moe_intermediate_size", 768);
    c.decoder_sparse_step = t.get_int("decoder_sparse_step", 1);
    c.norm_topk_prob = t.get_bool("norm_topk_prob", false);
    c.mlp_only_layers = t.get_int_list("mlp_only_layers", {});
    positive(t, "num_experts_per_tok", c.num_experts_per_tok);
    positive(t, "moe_intermediate_size", c.moe_intermediate_size);
    positive(t, "decoder_sparse_step", c.decoder_sparse_step);
    if (c.num_experts < 0) t.fail("num_experts", "must not be negative");
    if (c.num_experts > 0 && c.num_experts_per_tok > c.num_experts) {
      t.fail("num_experts_per_tok", "exceeds num_experts (" + std::to_string(c.num_experts) + ")");
    }
  }

  c.dtype = top.get_string("torch_dtype", top.get_string("dtype", t.get_string("dtype", "")));
  if (const auto* eos = top.find("eos_token_id")) {
    if (eos->is_int()) {
      c.eos_token_ids = {eos->as_int()};
    } else {
      c.eos_token_ids = top.get_int_list("eos_token_id", {});
    }
  }
  return c;
}

}  // namespace mmgen::text
