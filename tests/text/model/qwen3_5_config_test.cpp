// Qwen3_5Config: what the three hybrid architectures' config.json yield
// (nested text_config, flat Qwen3-Next, defaults of the reference), and errors
// that name the file and key.
#include <gtest/gtest.h>

#include <string>

#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/json.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/text/qwen3_5_config.hpp"

namespace fs = std::filesystem;
using mmgen::io::HfConfig;
using mmgen::io::LoadError;
using mmgen::io::LoadErrorKind;
using mmgen::io::parse_json;
using mmgen::text::HybridArchitecture;
using mmgen::text::LayerType;
using mmgen::text::Qwen3_5Config;

namespace {

const fs::path kFixtures = MMGEN_TEXT_FIXTURES;

Qwen3_5Config from_json(const std::string& text) {
  return Qwen3_5Config::from_hf(HfConfig(parse_json(text, "config.json"), "config.json"));
}

std::string error_of(const std::string& text, LoadErrorKind kind) {
  try {
    from_json(text);
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error; expected " << mmgen::io::to_string(kind);
  return "";
}

TEST(Qwen3_5Config, DenseFixture) {
  const Qwen3_5Config c = Qwen3_5Config::load(kFixtures / "qwen3_5_dense");
  EXPECT_EQ(c.architecture, HybridArchitecture::qwen3_5);
  EXPECT_TRUE(c.multimodal);
  EXPECT_TRUE(c.has_vision_config);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.rotary_dim, 8);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e7);
  EXPECT_EQ(c.mrope_section, (std::vector<std::int64_t>{2, 1, 1}));
  EXPECT_EQ(c.conv_dim(), 2 * 2 * 16 + 4 * 16);
  EXPECT_EQ(c.num_full_attention_layers(), 1);
  EXPECT_EQ(c.num_linear_attention_layers(), 3);
  EXPECT_TRUE(c.is_full_attention(3));
  EXPECT_FALSE(c.is_moe_layer(0));
}

TEST(Qwen3_5Config, MoeAndNextFixtures) {
  const Qwen3_5Config m = Qwen3_5Config::load(kFixtures / "qwen3_5_moe");
  EXPECT_EQ(m.architecture, HybridArchitecture::qwen3_5_moe);
  EXPECT_EQ(m.num_experts, 4);
  EXPECT_EQ(m.num_experts_per_tok, 2);
  EXPECT_EQ(m.shared_expert_intermediate_size, 32);
  EXPECT_TRUE(m.norm_topk_prob);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(m.is_moe_layer(i));

  const Qwen3_5Config n = Qwen3_5Config::load(kFixtures / "qwen3_next");
  EXPECT_EQ(n.architecture, HybridArchitecture::qwen3_next);
  EXPECT_FALSE(n.multimodal);
  EXPECT_FALSE(n.norm_topk_prob);
  EXPECT_FALSE(n.is_moe_layer(0));  // mlp_only_layers
  EXPECT_TRUE(n.is_moe_layer(1));
  EXPECT_TRUE(n.is_full_attention(1));
  EXPECT_FALSE(n.is_full_attention(3));
}

TEST(Qwen3_5Config, PublishedQwen3NextSpellingAndDefaults) {
  // As Qwen3-Next-80B-A3B publishes it: flat, rope_theta + partial_rotary_factor
  // at the top level, full_attention_interval instead of layer_types.
  const Qwen3_5Config c = from_json(R"({
    "architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next",
    "hidden_size": 2048, "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 2,
    "head_dim": 256, "rope_theta": 10000000, "rope_scaling": null, "partial_rotary_factor": 0.25,
    "full_attention_interval": 4, "num_experts": 512, "num_experts_per_tok": 10,
    "decoder_sparse_step": 1, "mlp_only_layers": [], "vocab_size": 151936, "eos_token_id": 151645})");
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e7);
  ASSERT_EQ(c.layer_types.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(c.layer_types[std::size_t(i)],
              (i + 1) % 4 == 0 ? LayerType::full_attention : LayerType::linear_attention);
  }
  EXPECT_EQ(c.linear_num_value_heads, 32);  // reference defaults
  EXPECT_EQ(c.linear_key_head_dim, 128);
  EXPECT_EQ(c.linear_conv_kernel_dim, 4);
  EXPECT_EQ(c.moe_intermediate_size, 512);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int64_t>{151645}));

  // Qwen3.5 nested, no layer_types: every 4th layer is full attention, partial rotary 0.25 by default.
  const Qwen3_5Config d = from_json(R"({"architectures": ["Qwen3_5ForConditionalGeneration"],
    "text_config": {"num_hidden_layers": 6, "head_dim": 256}, "vision_config": {"depth": 1}})");
  EXPECT_EQ(d.num_full_attention_layers(), 1);
  EXPECT_TRUE(d.is_full_attention(3));
  EXPECT_EQ(d.rotary_dim, 64);
  EXPECT_EQ(d.vocab_size, 248320);
}

TEST(Qwen3_5Config, ErrorsNameTheKey) {
  std::string e = error_of(R"({"architectures": ["Qwen3_5ForConditionalGeneration"]})", LoadErrorKind::bad_config);
  EXPECT_NE(e.find("text_config"), std::string::npos) << e;
  e = error_of(R"({"architectures": ["Qwen3NextForCausalLM"], "num_hidden_layers": 2,
                  "layer_types": ["linear_attention", "sliding_attention"]})",
               LoadErrorKind::unsupported);
  EXPECT_NE(e.find("layer_types[1]"), std::string::npos) << e;
  e = error_of(R"({"architectures": ["Qwen3NextForCausalLM"], "num_hidden_layers": 3,
                  "layer_types": ["linear_attention"]})",
               LoadErrorKind::bad_config);
  EXPECT_NE(e.find("layer_types"), std::string::npos) << e;
  e = error_of(R"({"architectures": ["Qwen3NextForCausalLM"], "linear_num_key_heads": 3})",
               LoadErrorKind::bad_config);
  EXPECT_NE(e.find("linear_num_value_heads"), std::string::npos) << e;
  e = error_of(R"({"architectures": ["Qwen3NextForCausalLM"], "head_dim": 6})", LoadErrorKind::bad_config);
  EXPECT_NE(e.find("partial_rotary_factor"), std::string::npos) << e;
  e = error_of(R"({"architectures": ["LlamaForCausalLM"]})", LoadErrorKind::unsupported);
  EXPECT_NE(e.find("LlamaForCausalLM"), std::string::npos) << e;
  e = error_of(R"({"architectures": ["Qwen3NextForCausalLM"], "hidden_act": "gelu"})", LoadErrorKind::unsupported);
  EXPECT_NE(e.find("hidden_act"), std::string::npos) << e;
}

}  // namespace
