// The engine on the tiny fixture checkpoints (float32): greedy continuations
// equal transformers' (tests/fixtures/text/*/reference.safetensors), and the
// engine's batching machinery never changes a request's tokens: 8 concurrent
// mixed-length requests, a prefix-cache hit, chunked prefill and preemption
// under a tiny cache all give the tokens of the request run alone.
#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine_driver.hpp"
#include "mmgen/io/checkpoint.hpp"
#include "mmgen/protocol.hpp"
#include "mmgen/text/engine.hpp"

namespace fs = std::filesystem;
using namespace mmgen::text;
using namespace mmgen::text::engine_test;

namespace {

const fs::path kFixtures = MMGEN_TEXT_FIXTURES;

struct Loaded {
  QwenForCausalLM model;
  std::shared_ptr<const Tokenizer> tokenizer;
  mmgen::io::Checkpoint ref;
};

Loaded load(const std::string& name) {
  const fs::path dir = kFixtures / name;
  return Loaded{QwenForCausalLM::load(dir, mmgen::io::LoadOptions{at::kFloat, c10::Device(c10::DeviceType::CPU)}),
                std::make_shared<const Tokenizer>(Tokenizer::from_directory(dir)),
                mmgen::io::Checkpoint::open(dir / "reference.safetensors")};
}

EngineConfig small_blocks() {
  EngineConfig c;
  c.block_size = 4;  // many blocks per prompt: block tables really matter
  c.kv_cache_bytes = 8 << 20;
  return c;
}

}  // namespace

class EngineParity : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineParity, GreedyMatchesTransformersAlone) {
  Loaded m = load(GetParam());
  Engine engine(m.model, m.tokenizer, GenerationDefaults::load(kFixtures / GetParam()), small_blocks());
  for (int i = 0; i < 4; ++i) {
    const std::string p = "prompt_" + std::to_string(i) + "_";
    EXPECT_EQ(run_one(engine, to_ids(m.ref.tensor(p + "ids")), greedy(32)), to_ids(m.ref.tensor(p + "greedy")))
        << GetParam() << " prompt " << i;
  }
}

TEST_P(EngineParity, EightConcurrentRequestsGiveTheTokensOfEachAlone) {
  Loaded m = load(GetParam());
  std::vector<std::vector<TokenId>> prompts;
  std::vector<SamplingParams> params;
  for (int i = 0; i < 8; ++i) {
    auto ids = to_ids(m.ref.tensor("prompt_" + std::to_string(i % 4) + "_ids"));
    if (i >= 4) ids.resize(std::max<std::size_t>(2, ids.size() / 2 + std::size_t(i)));  // mixed lengths
    prompts.push_back(ids);
    params.push_back(greedy(12 + 3 * i));  // they also leave at different steps
  }
  std::vector<std::vector<TokenId>> alone;
  {
    Engine engine(m.model, m.tokenizer, {}, small_blocks());
    for (std::size_t i = 0; i < prompts.size(); ++i) alone.push_back(run_one(engine, prompts[i], params[i]));
  }
  EngineConfig cfg = small_blocks();
  cfg.max_num_batched_tokens = 24;  // long prompts are chunked while others decode
  Engine engine(m.model, m.tokenizer, {}, cfg);
  auto together = run_all(engine, prompts, params);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(together[i].tokens, alone[i]) << GetParam() << " request " << i;
    EXPECT_EQ(together[i].finish_reason, "length");
  }
  for (int i = 0; i < 4; ++i) {  // and the full prompts still match transformers
    auto ref = to_ids(m.ref.tensor("prompt_" + std::to_string(i) + "_greedy"));
    ref.resize(std::size_t(12 + 3 * i));
    EXPECT_EQ(together[std::size_t(i)].tokens, ref) << GetParam() << " request " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineParity,
                         ::testing::Values("qwen3_tied_gqa", "qwen3_untied_sharded", "qwen2_5_bias", "qwen3_moe",
                                           "qwen3_yarn", "qwen2_linear_rope", "qwen2_sliding_window"),
                         [](const auto& info) { return info.param; });

TEST(Engine, PrefixCacheHitGivesIdenticalTokens) {
  Loaded m = load("qwen3_tied_gqa");
  Engine engine(m.model, m.tokenizer, {}, small_blocks());
  auto prompt = to_ids(m.ref.tensor("prompt_1_ids"));
  auto first = run_one(engine, prompt, greedy(32));
  auto second = run_all(engine, {prompt}, {greedy(32)});
  // The second run found the prompt's full blocks in the cache.
  EXPECT_EQ(second[0].tokens, first);
  EXPECT_EQ(first, to_ids(m.ref.tensor("prompt_1_greedy")));
  EXPECT_GT(engine.scheduler().cache().pool().cached_blocks(), 0);
  // A prompt sharing only a prefix also matches its alone run.
  auto shared = prompt;
  shared.resize(prompt.size() - 1);
  shared.push_back(7);
  Engine fresh(m.model, m.tokenizer, {}, small_blocks());
  EXPECT_EQ(run_one(engine, shared, greedy(16)), run_one(fresh, shared, greedy(16)));
}

TEST(Engine, PreemptionUnderATinyCacheGivesIdenticalTokens) {
  Loaded m = load("qwen3_tied_gqa");
  const auto& cfg = m.model.config();
  std::vector<std::vector<TokenId>> prompts;
  std::vector<SamplingParams> params;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(to_ids(m.ref.tensor("prompt_" + std::to_string(i) + "_ids")));
    params.push_back(greedy(32));
  }
  std::int64_t longest = 0;
  for (auto& p : prompts) longest = std::max<std::int64_t>(longest, std::int64_t(p.size()) + 32);
  // Room for the longest request plus a little: the four cannot all run at once.
  EngineConfig tiny = small_blocks();
  const std::int64_t block_bytes = 2 * cfg.num_hidden_layers * tiny.block_size * cfg.num_key_value_heads * cfg.head_dim * 4;
  tiny.kv_cache_bytes = ((longest + 3) / 4 + 4) * block_bytes;
  tiny.enable_prefix_caching = false;
  Engine engine(m.model, m.tokenizer, {}, tiny);
  auto together = run_all(engine, prompts, params);
  EXPECT_GT(engine.total_preemptions(), 0) << "the cache was not small enough to preempt";
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(together[std::size_t(i)].tokens, to_ids(m.ref.tensor("prompt_" + std::to_string(i) + "_greedy")))
        << "request " << i;
}

TEST(Engine, StopsOnStopStringsEosAndMaxTokens) {
  Loaded m = load("qwen3_tied_gqa");
  Engine engine(m.model, m.tokenizer, GenerationDefaults::load(kFixtures / "qwen3_tied_gqa"), small_blocks());
  auto prompt = to_ids(m.ref.tensor("prompt_0_ids"));
  auto ref = to_ids(m.ref.tensor("prompt_0_greedy"));
  // Stop token: the 5th reference token.
  SamplingParams p = greedy(32);
  p.stop_token_ids = {ref[4]};
  auto r = run_all(engine, {prompt}, {p})[0];
  EXPECT_EQ(r.finish_reason, "stop");
  ASSERT_LE(r.tokens.size(), 5u);
  EXPECT_EQ(r.tokens.back(), ref[4]);
  // Max tokens.
  r = run_all(engine, {prompt}, {greedy(3)})[0];
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.tokens.size(), 3u);
  // Stop string: the text of the whole greedy run, cut at a piece of it.
  auto full = run_all(engine, {prompt}, {greedy(32)})[0];
  ASSERT_GT(full.text.size(), 6u);
  const std::string needle = full.text.substr(full.text.size() / 2, 3);
  p = greedy(32);
  p.stop = {needle};
  r = run_all(engine, {prompt}, {p})[0];
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.text, full.text.substr(0, full.text.find(needle)));
  EXPECT_EQ(full.text, m.tokenizer->decode(full.tokens, true));
}

TEST(Engine, RefusesWhatCannotRunAndCancelFreesBlocks) {
  Loaded m = load("qwen3_tied_gqa");
  Engine engine(m.model, m.tokenizer, {}, small_blocks());
  std::vector<TokenId> too_long(std::size_t(engine.max_model_len()), 5);
  EXPECT_THROW(engine.add(too_long, greedy(4), {}), mmgen::proto::ProtocolError);
  EXPECT_THROW(engine.add({100000}, greedy(4), {}), mmgen::proto::ProtocolError);
  SamplingParams bad = greedy(4);
  bad.top_p = 2;
  EXPECT_THROW(engine.add({1, 2}, bad, {}), mmgen::proto::ProtocolError);
  const auto free_before = engine.scheduler().cache().num_free_blocks();
  int events = 0;
  RequestId id = engine.add(to_ids(m.ref.tensor("prompt_2_ids")), greedy(32), [&](const TokenEvent&) { ++events; });
  engine.step();
  EXPECT_LT(engine.scheduler().cache().num_free_blocks(), free_before);
  EXPECT_TRUE(engine.cancel(id));
  EXPECT_EQ(engine.scheduler().cache().num_free_blocks(), free_before);
  EXPECT_FALSE(engine.has_work());
  const int after_cancel = events;
  EXPECT_FALSE(engine.step());
  EXPECT_EQ(events, after_cancel);
}

TEST(Engine, SeededSamplingDependsOnlyOnTheRequest) {
  Loaded m = load("qwen3_tied_gqa");
  auto prompt = to_ids(m.ref.tensor("prompt_3_ids"));
  SamplingParams p;
  p.temperature = 1.0;
  p.top_p = 0.9;
  p.seed = 1234;
  p.max_tokens = 24;
  p.ignore_eos = true;
  Engine a(m.model, m.tokenizer, {}, small_blocks());
  auto alone = run_one(a, prompt, p);
  Engine b(m.model, m.tokenizer, {}, small_blocks());
  SamplingParams other = p;
  other.seed = 99;
  auto together = run_all(b, {to_ids(m.ref.tensor("prompt_0_ids")), prompt, prompt}, {other, p, other});
  EXPECT_EQ(together[1].tokens, alone);
  EXPECT_EQ(together[0].tokens.size(), 24u);
}
