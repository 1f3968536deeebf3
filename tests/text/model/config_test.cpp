// The JSON parser, typed config.json access and QwenConfig: what each
// architecture's config yields, and errors that name the file and key.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/json.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/text/qwen_config.hpp"

namespace fs = std::filesystem;
using mmgen::Value;
using mmgen::io::HfConfig;
using mmgen::io::LoadError;
using mmgen::io::LoadErrorKind;
using mmgen::io::parse_json;
using mmgen::text::Architecture;
using mmgen::text::QwenConfig;
using mmgen::text::RopeType;

namespace {

const fs::path kFixtures = MMGEN_TEXT_FIXTURES;

template <typename F>
std::string error_of(F&& f, LoadErrorKind kind) {
  try {
    f();
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error; expected " << mmgen::io::to_string(kind);
  return "";
}

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

// ------------------------------------------------------------------ JSON

TEST(Json, ParsesTheLanguage) {
  Value v = parse_json(R"( {"a": [1, -2, 3.5, 1e3, true, false, null], "s": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00",
                             "big": 18446744073709551616, "neg": -9223372036854775808, "o": {}, "e": []} )",
                       "t");
  const auto& m = v.as_map();
  const auto& a = m.at("a").as_array();
  EXPECT_EQ(a[0].as_int(), 1);
  EXPECT_EQ(a[1].as_int(), -2);
  EXPECT_DOUBLE_EQ(a[2].as_double(), 3.5);
  EXPECT_TRUE(a[3].is_double());
  EXPECT_DOUBLE_EQ(a[3].as_double(), 1000.0);
  EXPECT_TRUE(a[4].as_bool());
  EXPECT_TRUE(a[6].is_null());
  EXPECT_EQ(m.at("s").as_string(), "x\"\\/\b\f\n\r\t\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_TRUE(m.at("big").is_double());
  EXPECT_EQ(m.at("neg").as_int(), INT64_MIN);
  EXPECT_TRUE(m.at("o").as_map().empty());
  EXPECT_TRUE(m.at("e").as_array().empty());
  // Python's json writes these for non-finite floats.
  Value nf = parse_json("[NaN, Infinity, -Infinity]", "t");
  EXPECT_TRUE(std::isnan(nf.as_array()[0].as_double()));
  EXPECT_EQ(nf.as_array()[2].as_double(), -INFINITY);
  // Duplicate keys: the last wins, as in Python.
  EXPECT_EQ(parse_json(R"({"k":1,"k":2})", "t").as_map().at("k").as_int(), 2);
}

TEST(Json, RejectsMalformedInputWithPosition) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "1e", "-", "tru", "\"abc",
                          "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\nb\"", "[1] 2", "{1:2}", "\"\xff\"",
                          "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "+1", ".5", "[1 2]"}) {
    std::string msg = error_of([&] { parse_json(bad, "cfg.json"); }, LoadErrorKind::bad_json);
    EXPECT_TRUE(contains(msg, "cfg.json")) << bad << " -> " << msg;
    EXPECT_TRUE(contains(msg, "line")) << msg;
  }
  std::string msg = error_of([] { parse_json("{\n  \"a\": [1,\n  x]\n}", "f.json"); }, LoadErrorKind::bad_json);
  EXPECT_TRUE(contains(msg, "line 3 column 3")) << msg;
}

TEST(Json, DepthIsBounded) {
  std::string deep(100000, '[');
  std::string msg = error_of([&] { parse_json(deep, "d"); }, LoadErrorKind::bad_json);
  EXPECT_TRUE(contains(msg, "nesting")) << msg;
  std::string ok = std::string(200, '[') + std::string(200, ']');
  EXPECT_NO_THROW(parse_json(ok, "d"));
}

// ------------------------------------------------------------------ HfConfig

TEST(HfConfig, TypedGettersNameTheKey) {
  HfConfig c(parse_json(R"({"n": 3, "f": 2.5, "b": true, "s": "x", "l": [1, 2], "nul": null,
                            "whole": 4.0, "sub": {"k": "v"}})", "config.json"),
             "config.json");
  EXPECT_EQ(c.get_int("n"), 3);
  EXPECT_EQ(c.get_int("whole"), 4);  // transformers sometimes writes 4.0
  EXPECT_DOUBLE_EQ(c.get_double("n"), 3.0);
  EXPECT_EQ(c.get_int("nul", 7), 7);  // null counts as absent
  EXPECT_EQ(c.get_int_list("l", {}), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(c.sub("sub")->get_string("k"), "v");
  EXPECT_FALSE(c.sub("absent").has_value());
  EXPECT_TRUE(contains(error_of([&] { c.get_int("s"); }, LoadErrorKind::bad_config), "'s' must be an integer, got string"));
  EXPECT_TRUE(contains(error_of([&] { c.get_int("f"); }, LoadErrorKind::bad_config), "'f'"));
  EXPECT_TRUE(contains(error_of([&] { c.get_bool("n"); }, LoadErrorKind::bad_config), "boolean"));
  EXPECT_TRUE(contains(error_of([&] { c.get_int("missing"); }, LoadErrorKind::bad_config), "'missing' is required"));
  EXPECT_TRUE(contains(error_of([&] { c.sub("sub")->get_int("k"); }, LoadErrorKind::bad_config), "'sub.k'"));
  EXPECT_TRUE(contains(error_of([&] { c.get_int_list("sub", {}); }, LoadErrorKind::bad_config), "array"));
  EXPECT_TRUE(contains(error_of([&] { c.get_int("s"); }, LoadErrorKind::bad_config), "config.json"));
}

// ------------------------------------------------------------------ QwenConfig

QwenConfig parse(const std::string& json) { return QwenConfig::from_hf(HfConfig(parse_json(json, "config.json"), "config.json")); }

const std::string kQwen3 = R"({"architectures": ["Qwen3ForCausalLM"], "vocab_size": 100, "hidden_size": 64,
  "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
  "head_dim": 32, "rope_theta": 1000000, "rms_norm_eps": 1e-6, "tie_word_embeddings": true)";

TEST(QwenConfig, ReadsEachFixture) {
  auto c = QwenConfig::load(kFixtures / "qwen3_tied_gqa");
  EXPECT_EQ(c.architecture, Architecture::qwen3);
  EXPECT_EQ(c.head_dim, 32);  // explicit, not hidden / heads = 16
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.dtype, "bfloat16");

  auto q2 = QwenConfig::load(kFixtures / "qwen2_5_bias" / "config.json");
  EXPECT_EQ(q2.architecture, Architecture::qwen2);
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_FALSE(q2.o_bias);
  EXPECT_FALSE(q2.qk_norm);
  EXPECT_EQ(q2.head_dim, 16);

  auto moe = QwenConfig::load(kFixtures / "qwen3_moe");
  EXPECT_EQ(moe.architecture, Architecture::qwen3_moe);
  EXPECT_TRUE(moe.is_moe_layer(0));
  EXPECT_FALSE(moe.is_moe_layer(1));  // mlp_only_layers
  EXPECT_TRUE(moe.is_moe_layer(2));
  EXPECT_TRUE(moe.norm_topk_prob);
  auto step = QwenConfig::load(kFixtures / "qwen3_moe_sparse_step");
  EXPECT_FALSE(step.is_moe_layer(0));
  EXPECT_TRUE(step.is_moe_layer(1));
  EXPECT_FALSE(step.is_moe_layer(2));
  EXPECT_TRUE(step.is_moe_layer(3));

  auto yarn = QwenConfig::load(kFixtures / "qwen3_yarn");
  EXPECT_EQ(yarn.rope.type, RopeType::yarn);
  EXPECT_DOUBLE_EQ(yarn.rope.factor, 4.0);
  EXPECT_EQ(yarn.rope.original_max_position_embeddings, 32);
  EXPECT_EQ(QwenConfig::load(kFixtures / "qwen2_linear_rope").rope.type, RopeType::linear);
  EXPECT_EQ(QwenConfig::load(kFixtures / "qwen3_dynamic_rope").rope.type, RopeType::dynamic);

  auto sw = QwenConfig::load(kFixtures / "qwen2_sliding_window");
  EXPECT_EQ(sw.window_of(0), 0);
  EXPECT_EQ(sw.window_of(1), 8);
  EXPECT_EQ(sw.window_of(2), 8);

  auto vl = QwenConfig::load(kFixtures / "qwen2_5_vl_text");
  EXPECT_EQ(vl.architecture, Architecture::qwen2_5_vl_text);
  EXPECT_EQ(vl.rope.type, RopeType::default_);  // "mrope" is default RoPE over three rows
  EXPECT_EQ(vl.rope.mrope_section, (std::vector<std::int64_t>{2, 3, 3}));
  EXPECT_EQ(vl.window_of(1), 0);  // use_sliding_window is false
}

TEST(QwenConfig, AcceptsTransformers5Spelling) {
  auto c = parse(kQwen3 + R"(, "rope_parameters": {"rope_type": "yarn", "rope_theta": 5000.0, "factor": 2.0,
                   "original_max_position_embeddings": 1024, "beta_fast": 16}, "max_position_embeddings": 2048,
                   "use_sliding_window": true, "sliding_window": 16,
                   "layer_types": ["full_attention", "sliding_attention", "full_attention", "sliding_attention"]})");
  EXPECT_DOUBLE_EQ(c.rope.theta, 5000.0);
  EXPECT_DOUBLE_EQ(c.rope.beta_fast, 16.0);
  EXPECT_DOUBLE_EQ(c.rope.beta_slow, 1.0);
  EXPECT_EQ(c.window_of(0), 0);
  EXPECT_EQ(c.window_of(3), 16);
  // Qwen2.5-VL with text_config nested.
  auto vl = parse(R"({"architectures": ["Qwen2_5_VLForConditionalGeneration"], "text_config": {"vocab_size": 10,
      "hidden_size": 32, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
      "num_key_value_heads": 1, "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3],
      "rope_theta": 1000000.0}}})");
  EXPECT_EQ(vl.hidden_size, 32);
  EXPECT_EQ(vl.head_dim, 16);
  EXPECT_DOUBLE_EQ(vl.rms_norm_eps, 1e-5);  // the VL text default
  EXPECT_EQ(vl.rope.mrope_section.size(), 3u);
  // A yarn factor left out is max_position_embeddings / original.
  auto y = parse(kQwen3 + R"(, "max_position_embeddings": 4096,
                   "rope_scaling": {"type": "yarn", "original_max_position_embeddings": 1024}})");
  EXPECT_DOUBLE_EQ(y.rope.factor, 4.0);
}

TEST(QwenConfig, ErrorsNameFileAndKey) {
  auto err = [](const std::string& json, LoadErrorKind kind) { return error_of([&] { parse(json); }, kind); };
  EXPECT_TRUE(contains(err(R"({"architectures": ["LlamaForCausalLM"]})", LoadErrorKind::unsupported),
                       "'LlamaForCausalLM' is not supported"));
  EXPECT_TRUE(contains(err(R"({"vocab_size": 3})", LoadErrorKind::bad_config), "'architectures' is required"));
  EXPECT_TRUE(contains(err(R"({"architectures": ["Qwen3ForCausalLM"], "vocab_size": 1})", LoadErrorKind::bad_config),
                       "'hidden_size' is required"));
  EXPECT_TRUE(contains(err(R"({"architectures": ["Qwen3ForCausalLM"], "vocab_size": "many"})",
                           LoadErrorKind::bad_config),
                       "config.json: 'vocab_size' must be an integer, got string"));
  EXPECT_TRUE(contains(err(kQwen3 + R"(, "num_key_value_heads": 3})", LoadErrorKind::bad_config),
                       "'num_key_value_heads' must divide"));
  EXPECT_TRUE(contains(err(kQwen3 + R"(, "head_dim": 0})", LoadErrorKind::bad_config), "'head_dim' must be positive"));
  EXPECT_TRUE(contains(err(kQwen3 + R"(, "hidden_act": "gelu"})", LoadErrorKind::unsupported), "gelu"));
  EXPECT_TRUE(contains(err(kQwen3 + R"(, "rope_scaling": {"rope_type": "longrope", "factor": 2}})",
                           LoadErrorKind::unsupported),
                       "'longrope'"));
  EXPECT_TRUE(contains(err(kQwen3 + R"(, "rope_scaling": {"type": "linear"}})", LoadErrorKind::bad_config),
                       "'rope_scaling.factor' is required"));
  EXPECT_TRUE(contains(err(kQwen3 + R"(, "rope_scaling": {"type": "linear", "factor": -1}})",
                           LoadErrorKind::bad_config),
                       "'rope_scaling.factor' must be positive"));
  EXPECT_TRUE(contains(err(kQwen3 + R"(, "layer_types": ["full_attention"]})", LoadErrorKind::bad_config),
                       "'layer_types' has 1 entries"));
  EXPECT_TRUE(contains(err(kQwen3 + R"(, "use_sliding_window": true, "sliding_window": 0})",
                           LoadErrorKind::bad_config),
                       "'sliding_window' must be positive"));
  EXPECT_TRUE(contains(err(R"({"architectures": ["Qwen2_5_VLForConditionalGeneration"], "vocab_size": 10,
      "hidden_size": 32, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
      "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}})",
                           LoadErrorKind::bad_config),
                       "mrope_section' sums to 64 but head_dim / 2 is 8"));
  EXPECT_TRUE(contains(err(R"({"architectures": ["Qwen3MoeForCausalLM"], "vocab_size": 10, "hidden_size": 32,
      "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_experts": 4,
      "num_experts_per_tok": 5})",
                           LoadErrorKind::bad_config),
                       "'num_experts_per_tok' exceeds"));
  EXPECT_TRUE(contains(error_of([] { QwenConfig::load("/nonexistent/folder"); }, LoadErrorKind::io),
                       "/nonexistent/folder/config.json"));
}

}  // namespace
