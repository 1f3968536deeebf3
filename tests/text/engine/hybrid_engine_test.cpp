// The engine on the hybrid fixtures (Qwen3.5 dense, Qwen3.5-MoE, Qwen3-Next;
// float32): greedy continuations equal transformers' (reference.safetensors,
// scripts/fixtures/make_qwen3_5_fixtures.py), also when the prompt is prefilled
// in small chunks; each sequence's recurrent state is its own — 8 concurrent
// mixed-length requests, preemption under a tiny cache and cancellation never
// change a request's tokens; the budget pays for state slots and KV blocks.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/log_softmax.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <filesystem>
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

// The fixtures are tiny: intra-op threads only add contention (tens of times
// slower on a loaded machine) and change nothing in the results.
const bool kOneThread = [] {
  at::set_num_threads(1);
  return true;
}();

struct Loaded {
  Qwen3_5ForCausalLM model;
  mmgen::io::Checkpoint ref;
  std::vector<TokenId> prompt;  // 72 tokens: the chunked delta rule crosses its 64-token chunk
  std::vector<TokenId> greedy;  // transformers' 32 greedy tokens
};

Loaded load(const std::string& name) {
  const fs::path dir = kFixtures / name;
  Loaded l{Qwen3_5ForCausalLM::load(dir, mmgen::io::LoadOptions{at::kFloat, c10::Device(c10::DeviceType::CPU)}),
           mmgen::io::Checkpoint::open(dir / "reference.safetensors"),
           {},
           {}};
  l.prompt = to_ids(l.ref.tensor("prompt_ids"));
  l.greedy = to_ids(l.ref.tensor("greedy"));
  return l;
}

EngineConfig small_blocks() {
  EngineConfig c;
  c.block_size = 4;  // many blocks per prompt: block tables really matter
  c.kv_cache_bytes = 8 << 20;
  return c;
}

// Mixed-length prompts from the fixture prompt (rotations and cuts), all in the vocabulary.
std::vector<std::vector<TokenId>> mixed_prompts(const std::vector<TokenId>& base) {
  std::vector<std::vector<TokenId>> out;
  const std::size_t lens[] = {72, 5, 33, 1, 64, 17, 70, 9};
  for (std::size_t i = 0; i < 8; ++i) {
    std::vector<TokenId> p(base.begin() + std::ptrdiff_t(i * 7 % base.size()), base.end());
    p.insert(p.end(), base.begin(), base.begin() + std::ptrdiff_t(i * 7 % base.size()));
    p.resize(lens[i]);
    out.push_back(std::move(p));
  }
  out[0] = base;  // the reference prompt itself
  return out;
}

}  // namespace

class HybridEngineParity : public ::testing::TestWithParam<std::string> {};

// Largest |engine logprob - transformers' log_softmax(decode_logits)[token]| along the continuation.
double logprob_error(const Loaded& m, const Collected& c) {
  const at::Tensor ref = m.ref.tensor("decode_logits").to(at::kDouble).log_softmax(-1);  // [32, V]
  double worst = 0;
  for (std::size_t i = 0; i < c.tokens.size() && std::int64_t(i) < ref.size(0); ++i) {
    const double want = ref[std::int64_t(i)][c.tokens[i]].item<double>();
    worst = std::max(worst, std::abs(double(c.logprobs[i]) - want));
  }
  return worst;
}

TEST_P(HybridEngineParity, GreedyMatchesTransformers) {
  Loaded m = load(GetParam());
  ASSERT_EQ(m.greedy.size(), 32u);
  Engine engine(m.model, nullptr, {}, small_blocks());
  EXPECT_TRUE(engine.model().cache_spec().hybrid());
  const Collected got = run_all(engine, {m.prompt}, {greedy(32)})[0];
  EXPECT_EQ(got.tokens, m.greedy) << GetParam();
  // The distribution each token came from, not just its argmax (issue: logits within 1e-4).
  const double err = logprob_error(m, got);
  EXPECT_LE(err, 1e-4) << GetParam();
  std::cout << "[hybrid engine] " << GetParam() << ": 32 greedy tokens equal, max |logprob - reference| " << err
            << "\n";
  // Run again on the same engine: the slot's stale state must not leak in.
  EXPECT_EQ(run_one(engine, m.prompt, greedy(32)), m.greedy) << GetParam() << " (second run, reused slot)";
}

TEST_P(HybridEngineParity, ChunkedPrefillMatchesTransformers) {
  Loaded m = load(GetParam());
  // The 72-token prompt in chunks of 7 (chunks straddle blocks and the delta
  // rule's 64-token chunk) and of 65 (a 1-token second chunk continues the state).
  for (std::int64_t budget : {7, 65}) {
    EngineConfig cfg = small_blocks();
    cfg.max_num_batched_tokens = budget;
    Engine engine(m.model, nullptr, {}, cfg);
    const Collected got = run_all(engine, {m.prompt}, {greedy(32)})[0];
    EXPECT_EQ(got.tokens, m.greedy) << GetParam() << " chunk " << budget;
    const double err = logprob_error(m, got);
    EXPECT_LE(err, 1e-4) << GetParam() << " chunk " << budget;
    std::cout << "[hybrid engine] " << GetParam() << " chunk " << budget << ": max |logprob - reference| " << err
              << "\n";
  }
}

TEST_P(HybridEngineParity, BatchedChunkedAndPreemptedRunsGiveTheTokensOfEachAlone) {
  Loaded m = load(GetParam());
  const auto prompts = mixed_prompts(m.prompt);
  std::vector<SamplingParams> params;
  for (int i = 0; i < 8; ++i) params.push_back(greedy(6 + 2 * i));  // they leave at different steps
  params[0] = greedy(32);
  // Alone, one after another on one engine (each reuses a slot another left).
  std::vector<std::vector<TokenId>> alone;
  {
    Engine engine(m.model, nullptr, {}, small_blocks());
    for (std::size_t i = 0; i < prompts.size(); ++i) alone.push_back(run_one(engine, prompts[i], params[i]));
  }
  EXPECT_EQ(alone[0], m.greedy) << GetParam();

  // 8 at once; long prompts are chunked while others decode.
  {
    EngineConfig cfg = small_blocks();
    cfg.max_num_batched_tokens = 24;
    Engine engine(m.model, nullptr, {}, cfg);
    auto together = run_all(engine, prompts, params);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(together[i].tokens, alone[i]) << GetParam() << " batched request " << i;
      EXPECT_EQ(together[i].finish_reason, "length");
    }
  }

  // Room for the longest request (72 + 32 tokens) plus a little and three
  // state slots for eight requests: requests wait for slots and get preempted.
  EngineConfig tiny = small_blocks();
  tiny.enable_prefix_caching = false;
  tiny.max_num_seqs = 3;
  const CacheSpec spec = make_engine_model(m.model)->cache_spec();
  tiny.kv_cache_bytes = 3 * spec.state_bytes_per_slot + (104 / 4 + 6) * spec.kv_bytes_per_block(4);
  Engine engine(m.model, nullptr, {}, tiny);
  EXPECT_EQ(engine.scheduler().cache().num_state_slots(), 3);
  auto preempted = run_all(engine, prompts, params);
  EXPECT_GT(engine.total_preemptions(), 0) << "the cache was not small enough to preempt";
  for (std::size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(preempted[i].tokens, alone[i]) << GetParam() << " preempted request " << i;
  EXPECT_EQ(engine.scheduler().cache().num_free_state_slots(), 3);
  EXPECT_EQ(engine.scheduler().cache().num_free_blocks(), engine.scheduler().cache().num_blocks());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HybridEngineParity, ::testing::Values("qwen3_5_dense", "qwen3_5_moe", "qwen3_next"),
                         [](const auto& info) { return info.param; });

TEST(HybridEngine, BudgetPaysForStateSlotsAndKvBlocks) {
  Loaded m = load("qwen3_5_dense");
  const auto& c = m.model.config();
  EngineConfig cfg = small_blocks();
  cfg.max_num_seqs = 5;
  Engine engine(m.model, nullptr, {}, cfg);
  const CacheSpec spec = engine.model().cache_spec();
  // Only the full-attention layers keep KV.
  EXPECT_EQ(spec.kv_layers, c.num_full_attention_layers());
  EXPECT_LT(spec.kv_layers, c.num_hidden_layers);
  // The state size the budget uses is what the model allocates.
  EXPECT_EQ(engine.model().allocated_state_bytes_per_slot(), spec.state_bytes_per_slot);
  EXPECT_GT(spec.state_bytes_per_slot, 0);
  const KvCacheManager& cm = engine.scheduler().cache();
  EXPECT_EQ(cm.num_state_slots(), 5);
  EXPECT_LE(cm.num_state_slots() * spec.state_bytes_per_slot + cm.num_blocks() * spec.kv_bytes_per_block(4),
            cfg.kv_cache_bytes);
  EXPECT_GT(cm.num_state_slots() * spec.state_bytes_per_slot + (cm.num_blocks() + 1) * spec.kv_bytes_per_block(4),
            cfg.kv_cache_bytes);
  // Prefix caching was asked for but is off, with the reason stated.
  EXPECT_FALSE(cm.pool().prefix_caching());
  EXPECT_NE(engine.prefix_caching_note().find("recurrent state"), std::string::npos);
  // A budget that cannot fit max_num_seqs slots gets fewer slots.
  cfg.kv_cache_bytes = 2 * (spec.state_bytes_per_slot + spec.kv_bytes_per_block(4)) + 100;
  Engine two(m.model, nullptr, {}, cfg);
  EXPECT_EQ(two.scheduler().cache().num_state_slots(), 2);
  // One that cannot fit one slot plus one block is refused with the sizes named.
  cfg.kv_cache_bytes = spec.state_bytes_per_slot;
  try {
    Engine none(m.model, nullptr, {}, cfg);
    ADD_FAILURE() << "a budget without room for a state slot was accepted";
  } catch (const mmgen::proto::ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("recurrent-state slot"), std::string::npos) << e.what();
  }
}

TEST(HybridEngine, CancelFreesBlocksAndTheSlotAtOnce) {
  Loaded m = load("qwen3_next");
  Engine engine(m.model, nullptr, {}, small_blocks());
  const KvCacheManager& cm = engine.scheduler().cache();
  const auto free_blocks = cm.num_free_blocks();
  const auto free_slots = cm.num_free_state_slots();
  int events = 0;
  RequestId id = engine.add(m.prompt, greedy(32), [&](const TokenEvent&) { ++events; });
  engine.step();
  EXPECT_LT(cm.num_free_blocks(), free_blocks);
  EXPECT_EQ(cm.num_free_state_slots(), free_slots - 1);
  EXPECT_TRUE(engine.cancel(id));
  EXPECT_EQ(cm.num_free_blocks(), free_blocks);
  EXPECT_EQ(cm.num_free_state_slots(), free_slots);
  EXPECT_FALSE(engine.has_work());
  const int after = events;
  EXPECT_FALSE(engine.step());
  EXPECT_EQ(events, after);
  // The freed slot serves the next request from a clean state.
  EXPECT_EQ(run_one(engine, m.prompt, greedy(32)), m.greedy);
}

TEST(HybridEngine, LoadEngineModelPicksTheClassFromConfig) {
  const mmgen::io::LoadOptions lo{at::kFloat, c10::Device(c10::DeviceType::CPU)};
  auto hybrid = load_engine_model(kFixtures / "qwen3_5_moe", lo);
  EXPECT_TRUE(hybrid->cache_spec().hybrid());
  EXPECT_EQ(hybrid->vocab_size(), 256);
  auto plain = load_engine_model(kFixtures / "qwen3_tied_gqa", lo);
  EXPECT_FALSE(plain->cache_spec().hybrid());
  // The owning adapter drives an engine like the borrowing one.
  Loaded m = load("qwen3_5_moe");
  Engine engine(std::move(hybrid), nullptr, {}, small_blocks());
  EXPECT_EQ(run_one(engine, m.prompt, greedy(32)), m.greedy);
}
