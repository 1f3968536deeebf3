// The engine serving an image+text prompt (prompt embeddings + 3-row M-RoPE
// positions, Engine::add's embeddings form) on the tiny
// Qwen3_5ForConditionalGeneration of tests/fixtures/text/qwen3_5_vision
// (scripts/fixtures/make_qwen3_5_vision_fixtures.py): our processor, tower and
// build_multimodal_prompt feed the engine, whose four greedy tokens must be
// transformers' (greedy) and whose log-probabilities must match
// log_softmax(decode_logits) within 1e-4 — whole-prompt prefill, chunked
// prefill cutting through the image tokens, and batched beside a text-only
// request (which must give the tokens it gives alone). Bad shapes and models
// without embedding input are invalid_request errors.
#include <ATen/core/Tensor.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "engine_driver.hpp"
#include "mmgen/io/checkpoint.hpp"
#include "mmgen/protocol.hpp"
#include "mmgen/text/engine.hpp"
#include "mmgen/text/qwen3_5_vision.hpp"
#include "mmgen/text/qwen3_5_vision_input.hpp"

namespace fs = std::filesystem;
using namespace mmgen::text;
using namespace mmgen::text::engine_test;
using mmgen::proto::ProtocolError;

namespace {

const fs::path kFixtures = MMGEN_TEXT_FIXTURES;
const fs::path kDir = kFixtures / "qwen3_5_vision";
constexpr double kTol = 1e-4;

mmgen::io::LoadOptions cpu_f32() { return {at::kFloat, c10::Device(c10::DeviceType::CPU)}; }

std::vector<std::int64_t> to_i64(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

mmgen::media::ImageView view_of(const at::Tensor& hwc) {  // uint8 [H, W, C], contiguous CPU
  return mmgen::media::ImageView(hwc.data_ptr<std::uint8_t>(), int(hwc.size(1)), int(hwc.size(0)),
                                 int(hwc.size(2)));
}

void drain(Engine& engine) {
  for (int guard = 0; engine.has_work() && guard < 10000; ++guard) engine.step();
  EXPECT_FALSE(engine.has_work());
}

class MultimodalEngine : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ref_ = new mmgen::io::Checkpoint(mmgen::io::Checkpoint::open(kDir / "reference.safetensors"));
    model_ = new Qwen3_5ForCausalLM(Qwen3_5ForCausalLM::load(kDir, cpu_f32()));
    const Qwen3_5VisionModel tower = Qwen3_5VisionModel::load(kDir, cpu_f32());
    const auto opts = load_qwen3_5_processor(kDir, tower.config());
    const at::Tensor im0 = ref_->tensor("image0").contiguous(), im1 = ref_->tensor("image1").contiguous();
    const std::vector<mmgen::media::ImageView> images{view_of(im0), view_of(im1)};
    const auto processed = preprocess_images(images, opts);
    const at::Tensor embeds = tower.forward(processed.pixel_values, processed.grid_thw);
    mm_ = new MultimodalPrompt(build_multimodal_prompt(to_i64(ref_->tensor("prompt_ids")),
                                                       model_->model.embed_tokens(), embeds, processed.grid_thw,
                                                       tower.config()));
  }
  static void TearDownTestSuite() {
    delete mm_;
    delete model_;
    delete ref_;
  }
  static std::vector<TokenId> ids() { return {mm_->input_ids.begin(), mm_->input_ids.end()}; }
  static PromptEmbeddings embeddings() { return {mm_->inputs_embeds, mm_->positions, mm_->rope_delta}; }

  // The engine's tokens and logprobs against transformers'.
  static void expect_reference(const Collected& got) {
    const std::vector<TokenId> want = to_ids(ref_->tensor("greedy"));
    EXPECT_EQ(got.tokens, want);
    const at::Tensor lp = at::log_softmax(ref_->tensor("decode_logits").to(at::kDouble), -1);
    double worst = 0;
    for (std::size_t i = 0; i < got.tokens.size() && i < want.size(); ++i)
      worst = std::max(worst, std::abs(double(got.logprobs[i]) - lp[std::int64_t(i)][want[i]].item<double>()));
    std::cout << "image+text greedy logprob max abs err vs transformers: " << worst << "\n";
    EXPECT_LE(worst, kTol);
  }

  static mmgen::io::Checkpoint* ref_;
  static Qwen3_5ForCausalLM* model_;
  static MultimodalPrompt* mm_;
};
mmgen::io::Checkpoint* MultimodalEngine::ref_ = nullptr;
Qwen3_5ForCausalLM* MultimodalEngine::model_ = nullptr;
MultimodalPrompt* MultimodalEngine::mm_ = nullptr;

EngineConfig small_blocks() {
  EngineConfig c;
  c.block_size = 4;
  c.kv_cache_bytes = 4 << 20;
  return c;
}

}  // namespace

TEST_F(MultimodalEngine, ExpandedPromptMatchesReference) {
  EXPECT_EQ(mm_->input_ids, to_i64(ref_->tensor("input_ids")));
  EXPECT_EQ(mm_->rope_delta, ref_->tensor("rope_delta").item<std::int64_t>());
}

TEST_F(MultimodalEngine, GreedyMatchesTransformers) {
  Engine engine(*model_, nullptr, {}, small_blocks());
  Collected got;
  engine.add(ids(), greedy(4), collect(got), embeddings());
  drain(engine);
  EXPECT_TRUE(got.finished);
  expect_reference(got);
}

TEST_F(MultimodalEngine, ChunkedPrefillThroughTheImageTokens) {
  for (std::int64_t budget : {3, 7, 11}) {
    EngineConfig cfg = small_blocks();
    cfg.max_num_batched_tokens = budget;
    Engine engine(*model_, nullptr, {}, cfg);
    Collected got;
    engine.add(ids(), greedy(4), collect(got), embeddings());
    drain(engine);
    SCOPED_TRACE("max_num_batched_tokens " + std::to_string(budget));
    expect_reference(got);
  }
}

TEST_F(MultimodalEngine, BatchedWithATextOnlyRequest) {
  const std::vector<TokenId> text = {5, 17, 99, 3, 42, 8, 120, 77, 1};
  Collected alone;
  {
    Engine engine(*model_, nullptr, {}, small_blocks());
    engine.add(text, greedy(8), collect(alone));
    drain(engine);
  }
  EngineConfig cfg = small_blocks();
  cfg.max_num_batched_tokens = 13;  // the image prompt is chunked while the text request decodes
  Engine engine(*model_, nullptr, {}, cfg);
  Collected image, plain;
  engine.add(text, greedy(8), collect(plain));
  engine.add(ids(), greedy(4), collect(image), embeddings());
  drain(engine);
  expect_reference(image);
  EXPECT_EQ(plain.tokens, alone.tokens);
  double worst = 0;
  for (std::size_t i = 0; i < plain.logprobs.size() && i < alone.logprobs.size(); ++i)
    worst = std::max(worst, std::abs(double(plain.logprobs[i]) - double(alone.logprobs[i])));
  EXPECT_LE(worst, kTol);
}

TEST_F(MultimodalEngine, PreemptedImageRequestsRecomputeTheirEmbeddings) {
  // 16 tokens each (beyond the reference's 4: compared with the request alone).
  Collected alone;
  {
    Engine engine(*model_, nullptr, {}, small_blocks());
    engine.add(ids(), greedy(16), collect(alone), embeddings());
    drain(engine);
  }
  ASSERT_EQ(alone.tokens.size(), 16u);
  // Three slots, KV for about one and a half sequences of 46 tokens: preemption.
  EngineConfig tiny = small_blocks();
  tiny.max_num_seqs = 3;
  const CacheSpec spec = make_engine_model(*model_)->cache_spec();
  tiny.kv_cache_bytes = 3 * spec.state_bytes_per_slot + 18 * spec.kv_bytes_per_block(4);
  Engine engine(*model_, nullptr, {}, tiny);
  std::vector<Collected> got(3);
  for (auto& c : got) engine.add(ids(), greedy(16), collect(c), embeddings());
  drain(engine);
  EXPECT_GT(engine.total_preemptions(), 0) << "the cache was not small enough to preempt";
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].tokens, alone.tokens) << "request " << i;
  Collected first4 = alone;
  first4.tokens.resize(4);
  first4.logprobs.resize(4);
  expect_reference(first4);
}

TEST_F(MultimodalEngine, BadEmbeddingsAreInvalidRequests) {
  Engine engine(*model_, nullptr, {}, small_blocks());
  Collected c;
  std::vector<TokenId> shorter = ids();
  shorter.pop_back();
  EXPECT_THROW(engine.add(shorter, greedy(2), collect(c), embeddings()), ProtocolError);
  PromptEmbeddings bad_pos = embeddings();
  bad_pos.positions = at::zeros({2, std::int64_t(mm_->input_ids.size())}, at::kLong);
  EXPECT_THROW(engine.add(ids(), greedy(2), collect(c), bad_pos), ProtocolError);
  EXPECT_FALSE(engine.has_work());
}

TEST(MultimodalEngineModels, PlainQwenTakesNoImages) {
  Engine engine(load_engine_model(kFixtures / "qwen3_tied_gqa", cpu_f32()), nullptr, {}, small_blocks());
  Collected c;
  try {
    engine.add({1, 2, 3}, greedy(2), collect(c), PromptEmbeddings{at::zeros({3, 8}), at::zeros({3, 3}, at::kLong), 0});
    FAIL() << "expected invalid_request";
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.code(), mmgen::proto::ErrorCode::invalid_request);
    EXPECT_NE(std::string(e.what()).find("no image input"), std::string::npos) << e.what();
  }
}
