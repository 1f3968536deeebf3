// Parity of Qwen3.5 image input with transformers on the tiny
// Qwen3_5ForConditionalGeneration of tests/fixtures/text/qwen3_5_vision
// (scripts/fixtures/make_qwen3_5_vision_fixtures.py), float32:
//   - image processor (RGB downscaled by max_pixels; RGBA 20x150, a 1x5 merged
//     grid): grid_thw identical, pixel_values within 1e-5;
//   - vision tower (position table resampled to 6x4 and 2x10 grids, 2D
//     rotary, per-image attention, 2x2 merger): within 1e-4;
//   - placeholder expansion and the interleaved M-RoPE positions identical,
//     rope delta equal;
//   - the language model run on our embeddings and positions
//     (Qwen3_5Model::forward_embeds): image+text logits within 1e-4, and four
//     greedy decode steps at positions p + rope_delta with identical tokens;
//   - loading: both key prefixes' errors name the tensor; a config without
//     vision_config is a bad_config; bad images and mismatched prompts are
//     invalid_request errors.
#include <ATen/core/Tensor.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/full.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/protocol.hpp"
#include "mmgen/text/qwen3_5_model.hpp"
#include "mmgen/text/qwen3_5_vision.hpp"
#include "mmgen/text/qwen3_5_vision_input.hpp"

namespace fs = std::filesystem;
using mmgen::io::Checkpoint;
using mmgen::io::LoadError;
using mmgen::io::LoadErrorKind;
using mmgen::io::LoadOptions;
using mmgen::proto::ProtocolError;
using namespace mmgen::text;

namespace {

const fs::path kDir = fs::path(MMGEN_TEXT_FIXTURES) / "qwen3_5_vision";
constexpr double kPixelTol = 1e-5;
constexpr double kTol = 1e-4;

c10::Device test_device() {
  const char* d = std::getenv("MMGEN_TEST_DEVICE");
  return d && std::string(d) == "cuda" ? c10::Device(c10::DeviceType::CUDA, 0) : c10::Device(c10::DeviceType::CPU);
}

LoadOptions opts() { return LoadOptions{at::kFloat, test_device()}; }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU).to(at::kFloat) - b.to(at::kCPU).to(at::kFloat)).abs().max().item<double>();
}

std::vector<std::int64_t> to_vec(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kLong).contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

mmgen::media::ImageView view_of(const at::Tensor& hwc) {  // uint8 [H, W, C], contiguous CPU
  return mmgen::media::ImageView(hwc.data_ptr<std::uint8_t>(), int(hwc.size(1)), int(hwc.size(0)),
                                 int(hwc.size(2)));
}

class Qwen3_5Vision : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ref_ = new Checkpoint(Checkpoint::open(kDir / "reference.safetensors"));
    tower_ = new Qwen3_5VisionModel(Qwen3_5VisionModel::load(kDir, opts()));
    lm_ = new Qwen3_5ForCausalLM(Qwen3_5ForCausalLM::load(kDir, opts()));
  }
  static void TearDownTestSuite() {
    delete lm_;
    delete tower_;
    delete ref_;
  }
  static at::Tensor ref(const char* name) { return ref_->tensor(name).contiguous(); }
  // Our processor on the fixture's two images.
  static mmgen::image::ProcessedImages process() {
    images_[0] = ref("image0");
    images_[1] = ref("image1");
    const std::vector<mmgen::media::ImageView> views = {view_of(images_[0]), view_of(images_[1])};
    return preprocess_images(views, load_qwen3_5_processor(kDir, tower_->config()));
  }

  static inline Checkpoint* ref_ = nullptr;
  static inline Qwen3_5VisionModel* tower_ = nullptr;
  static inline Qwen3_5ForCausalLM* lm_ = nullptr;
  static inline at::Tensor images_[2];
};

TEST_F(Qwen3_5Vision, ConfigIsReadFromVisionConfig) {
  const Qwen3_5VisionConfig& c = tower_->config();
  EXPECT_EQ(c.depth, 2);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.patch_size, 16);
  EXPECT_EQ(c.num_grid_per_side(), 6);
  EXPECT_EQ(c.out_hidden_size, 64);
  EXPECT_EQ(c.hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(c.image_token_id, 250);
  EXPECT_EQ(c.vision_start_token_id, 252);
  EXPECT_EQ(c.vision_end_token_id, 253);
  const auto p = load_qwen3_5_processor(kDir, c);
  EXPECT_EQ(p.factor(), 32);
  EXPECT_EQ(p.min_pixels, 2048);
  EXPECT_EQ(p.max_pixels, 8192);
  EXPECT_DOUBLE_EQ(p.image_mean[0], 0.5);
  const auto d = qwen3_5_processor_defaults();
  EXPECT_EQ(d.patch_size, 16);
  EXPECT_EQ(d.min_pixels, 65536);
  EXPECT_EQ(d.max_pixels, 16777216);
}

TEST_F(Qwen3_5Vision, ProcessorMatchesTransformers) {
  const auto out = process();
  EXPECT_EQ(to_vec(out.grid_thw), to_vec(ref("image_grid_thw")));
  ASSERT_EQ(out.pixel_values.sizes(), ref("pixel_values").sizes());
  const double err = max_abs_diff(out.pixel_values, ref("pixel_values"));
  std::cout << "[ parity ] pixel_values max abs " << err << "\n";
  EXPECT_LE(err, kPixelTol);
}

TEST_F(Qwen3_5Vision, TowerMatchesTransformers) {
  const at::Tensor embeds = tower_->forward(ref("pixel_values").to(test_device()), ref("image_grid_thw"));
  ASSERT_EQ(embeds.sizes(), ref("image_embeds").sizes());
  const double err = max_abs_diff(embeds, ref("image_embeds"));
  std::cout << "[ parity ] tower max abs " << err << "\n";
  EXPECT_LE(err, kTol);
  // Each image alone gives its own rows (attention never crosses images).
  const at::Tensor grid = ref("image_grid_thw");
  const std::int64_t n0 = grid[0].prod().item<std::int64_t>();
  const at::Tensor first = tower_->forward(ref("pixel_values").narrow(0, 0, n0), grid.narrow(0, 0, 1));
  EXPECT_LE(max_abs_diff(first, ref("image_embeds").narrow(0, 0, n0 / 4)), kTol);
}

TEST_F(Qwen3_5Vision, PositionsMatchGetRopeIndex) {
  const at::Tensor grid = ref("image_grid_thw");
  const std::vector<std::int64_t> prompt = to_vec(ref("prompt_ids"));
  EXPECT_EQ(expand_image_placeholders(prompt, grid, tower_->config()), to_vec(ref("input_ids")));
  const MultimodalPrompt mm =
      build_multimodal_prompt(prompt, lm_->model.embed_tokens(), ref("image_embeds"), grid, tower_->config());
  EXPECT_EQ(mm.input_ids, to_vec(ref("input_ids")));
  EXPECT_EQ(to_vec(mm.positions), to_vec(ref("position_ids")));
  EXPECT_EQ(mm.rope_delta, ref("rope_delta").item<std::int64_t>());
  EXPECT_EQ(mm.inputs_embeds.sizes(), (std::vector<std::int64_t>{std::int64_t(mm.input_ids.size()), 64}));
}

TEST_F(Qwen3_5Vision, ImageTextLogitsAndDecodeMatchTransformers) {
  // The whole path from the uint8 images.
  const auto processed = process();
  const at::Tensor image_embeds = tower_->forward(processed.pixel_values, processed.grid_thw);
  const MultimodalPrompt mm = build_multimodal_prompt(to_vec(ref("prompt_ids")), lm_->model.embed_tokens(),
                                                      image_embeds, processed.grid_thw, tower_->config());
  const auto T = std::int64_t(mm.input_ids.size());
  const at::Tensor want = ref("logits");
  ASSERT_EQ(T, want.size(0));
  const at::Tensor greedy = ref("greedy"), decode = ref("decode_logits");
  const std::int64_t steps = greedy.size(0);

  HybridCache cache = lm_->model.make_cache(1, T + steps);
  const at::Tensor logits =
      lm_->logits(lm_->model.forward_embeds(mm.inputs_embeds, mm.positions, AttentionMetadata::single(T, 0), cache));
  const double err = max_abs_diff(logits, want);
  std::cout << "[ parity ] image+text logits max abs " << err << "\n";
  EXPECT_LE(err, kTol);

  // Greedy decode: the token at sequence index p sits at position p + rope_delta.
  at::Tensor last = logits[T - 1];
  double decode_err = 0;
  for (std::int64_t s = 0; s < steps; ++s) {
    decode_err = std::max(decode_err, max_abs_diff(last, decode[s]));
    const std::int64_t tok = last.argmax().item<std::int64_t>();
    EXPECT_EQ(tok, greedy[s].item<std::int64_t>()) << "step " << s;
    if (s + 1 == steps) break;
    const std::int64_t p = T + s;
    const auto lo = at::TensorOptions().dtype(at::kLong).device(test_device());
    const at::Tensor ids = at::full({1}, tok, lo);
    const at::Tensor pos = at::full({3, 1}, p + mm.rope_delta, lo);  // one text token: three equal rows
    AttentionMetadata meta;
    meta.seqs.push_back(SequenceSlice{0, 1, p, 0});
    last = lm_->logits(lm_->forward(ids, pos, meta, cache))[0];
  }
  std::cout << "[ parity ] decode logits max abs " << decode_err << "\n";
  EXPECT_LE(decode_err, kTol);
}

TEST(Qwen3_5VisionLoad, TowersOfTheOtherQwen3_5FixturesLoad) {
  // The dense and MoE text fixtures carry a one-block tower (hidden 16, 4 x 4
  // position table) in the same layout; it loads and runs on a 2x2-token image.
  for (const char* name : {"qwen3_5_dense", "qwen3_5_moe"}) {
    const fs::path dir = fs::path(MMGEN_TEXT_FIXTURES) / name;
    if (!fs::exists(dir / "config.json")) GTEST_SKIP() << dir << " not generated";
    const Qwen3_5VisionModel tower = Qwen3_5VisionModel::load(dir, opts());
    const auto& c = tower.config();
    const at::Tensor grid = at::tensor({1, 4, 4}, at::kLong).view({1, 3});
    const at::Tensor out = tower.forward(at::zeros({16, c.patch_dim()}, at::kFloat), grid);
    EXPECT_EQ(out.sizes(), (std::vector<std::int64_t>{4, c.out_hidden_size})) << name;
  }
}

// A safetensors file written by hand (8-byte header length, JSON header,
// little-endian float32 data): the fixture's tower re-keyed to the older
// "visual.*" prefix.
void write_f32_safetensors(const fs::path& file, const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::string header = "{";
  std::int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    std::string shape;
    for (std::int64_t d : t.sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    const std::int64_t bytes = t.numel() * 4;
    header += (header.size() > 1 ? "," : "") + std::string("\"") + name + "\":{\"dtype\":\"F32\",\"shape\":[" +
              shape + "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  std::ofstream out(file, std::ios::binary);
  const std::uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(header.data(), std::streamsize(n));
  for (const auto& [name, t] : tensors) {
    const at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous();
    out.write(reinterpret_cast<const char*>(c.data_ptr<float>()), std::streamsize(c.numel() * 4));
  }
}

TEST_F(Qwen3_5Vision, LoadsThePublishedVisualPrefixAndBfloat16) {
  const Checkpoint ckpt = Checkpoint::open(kDir);
  std::vector<std::pair<std::string, at::Tensor>> tower;
  const std::string from = "model.visual.";
  for (const std::string& name : ckpt.names()) {
    if (name.rfind(from, 0) == 0) tower.emplace_back("visual." + name.substr(from.size()), ckpt.tensor(name));
  }
  const fs::path tmp = fs::temp_directory_path() / ("qwen3_5_visual_prefix_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  fs::copy_file(kDir / "config.json", tmp / "config.json", fs::copy_options::overwrite_existing);
  write_f32_safetensors(tmp / "model.safetensors", tower);
  const Qwen3_5VisionModel m = Qwen3_5VisionModel::load(tmp, opts());
  const at::Tensor embeds = m.forward(ref("pixel_values"), ref("image_grid_thw"));
  EXPECT_LE(max_abs_diff(embeds, ref("image_embeds")), kTol);

  // bfloat16 weights: same path, the reference's casts; close to float32.
  const Qwen3_5VisionModel b = Qwen3_5VisionModel::load(tmp, LoadOptions{at::kBFloat16, test_device()});
  const at::Tensor eb = b.forward(ref("pixel_values"), ref("image_grid_thw"));
  EXPECT_EQ(eb.scalar_type(), at::kBFloat16);
  const double scale = ref("image_embeds").abs().max().item<double>();
  const double err = max_abs_diff(eb, ref("image_embeds"));
  std::cout << "[ info ] bfloat16 tower vs float32 reference max abs " << err << " (scale " << scale << ")\n";
  EXPECT_LE(err, 0.05 * scale);
  fs::remove_all(tmp);
}

// ---- errors ----------------------------------------------------------------------

template <typename F>
void expect_protocol_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const LoadError& e) {
    ADD_FAILURE() << "LoadError instead of a request error: " << e.what();
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.code(), mmgen::proto::ErrorCode::invalid_request);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST_F(Qwen3_5Vision, BadImagesGiveClearErrors) {
  const auto popts = load_qwen3_5_processor(kDir, tower_->config());
  expect_protocol_error([&] { preprocess_images({}, popts); }, "");
  std::vector<std::uint8_t> px(2 * 40 * 40, 7);
  const std::vector<mmgen::media::ImageView> two_channels = {mmgen::media::ImageView(px.data(), 40, 40, 2)};
  expect_protocol_error([&] { preprocess_images(two_channels, popts); }, "channel");
  const std::vector<mmgen::media::ImageView> empty = {mmgen::media::ImageView(px.data(), 0, 0, 3)};
  expect_protocol_error([&] { preprocess_images(empty, popts); }, "");
  std::vector<std::uint8_t> thin(3 * 1 * 400, 9);
  const std::vector<mmgen::media::ImageView> sliver = {mmgen::media::ImageView(thin.data(), 400, 1, 3)};
  expect_protocol_error([&] { preprocess_images(sliver, popts); }, "aspect");

  // The tower: a grid that does not cover pixel_values, a grid not of whole merge blocks.
  const at::Tensor pv = ref("pixel_values");
  expect_protocol_error([&] { tower_->forward(pv, at::tensor({1, 6, 6}, at::kLong).view({1, 3})); }, "covers");
  expect_protocol_error([&] { tower_->forward(pv.narrow(0, 0, 15), at::tensor({1, 3, 5}, at::kLong).view({1, 3})); },
                        "merge");
  expect_protocol_error([&] { tower_->forward(pv.narrow(1, 0, 100), ref("image_grid_thw")); }, "pixel_values");

  // The prompt: placeholders and images must pair up.
  const at::Tensor grid = ref("image_grid_thw");
  const std::vector<std::int64_t> one_placeholder = {1, 252, 250, 253, 2};
  expect_protocol_error([&] { expand_image_placeholders(one_placeholder, grid, tower_->config()); }, "placeholder");
  const std::vector<std::int64_t> video = {1, 252, 251, 253, 250, 250};
  expect_protocol_error([&] { expand_image_placeholders(video, grid, tower_->config()); }, "video");
  const std::vector<std::int64_t> prompt = to_vec(ref("prompt_ids"));
  expect_protocol_error(
      [&] {
        build_multimodal_prompt(prompt, lm_->model.embed_tokens(), ref("image_embeds").narrow(0, 0, 5), grid,
                                tower_->config());
      },
      "image_embeds");
  const std::vector<std::int64_t> out_of_vocab = {1, 252, 250, 253, 999, 252, 250, 253};
  expect_protocol_error(
      [&] {
        build_multimodal_prompt(out_of_vocab, lm_->model.embed_tokens(), ref("image_embeds"), grid,
                                tower_->config());
      },
      "vocabulary");
  std::vector<std::int64_t> short_run = to_vec(ref("input_ids"));
  short_run.erase(std::find(short_run.begin(), short_run.end(), 250));
  expect_protocol_error([&] { qwen3_5_rope_index(short_run, grid, tower_->config()); }, "tokens");
}

TEST_F(Qwen3_5Vision, LoadErrorsNameTheTensorAndKey) {
  const Checkpoint ckpt = Checkpoint::open(kDir);
  {
    mmgen::io::WeightLoader w(ckpt, opts());
    try {
      Qwen3_5VisionModel(tower_->config(), w, "visual.");  // the fixture stores model.visual.*
      ADD_FAILURE() << "no error";
    } catch (const LoadError& e) {
      EXPECT_EQ(e.kind(), LoadErrorKind::missing);
      EXPECT_NE(std::string(e.what()).find("visual.patch_embed.proj.weight"), std::string::npos) << e.what();
    }
  }
  {
    Qwen3_5VisionConfig deeper = tower_->config();
    deeper.depth = 3;
    mmgen::io::WeightLoader w(ckpt, opts());
    try {
      Qwen3_5VisionModel(deeper, w, "model.visual.");
      ADD_FAILURE() << "no error";
    } catch (const LoadError& e) {
      EXPECT_EQ(e.kind(), LoadErrorKind::missing);
      EXPECT_NE(std::string(e.what()).find("model.visual.blocks.2."), std::string::npos) << e.what();
    }
  }
  {
    Qwen3_5VisionConfig wider = tower_->config();
    wider.intermediate_size = 50;
    mmgen::io::WeightLoader w(ckpt, opts());
    try {
      Qwen3_5VisionModel(wider, w, "model.visual.");
      ADD_FAILURE() << "no error";
    } catch (const LoadError& e) {
      EXPECT_EQ(e.kind(), LoadErrorKind::wrong_shape);
      EXPECT_NE(std::string(e.what()).find("model.visual.blocks.0.mlp.linear_fc1.weight"), std::string::npos)
          << e.what();
    }
  }
  // A config.json without vision_config, and one with a non-square position table.
  const fs::path tmp = fs::temp_directory_path() / ("qwen3_5_vision_cfg_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  std::ofstream(tmp / "config.json") << R"({"architectures": ["Qwen3_5ForCausalLM"], "model_type": "qwen3_5_text"})";
  try {
    Qwen3_5VisionConfig::load(tmp);
    ADD_FAILURE() << "no error";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), LoadErrorKind::bad_config);
    EXPECT_NE(std::string(e.what()).find("vision_config"), std::string::npos) << e.what();
  }
  std::ofstream(tmp / "config.json") << R"({"vision_config": {"num_position_embeddings": 40}})";
  try {
    Qwen3_5VisionConfig::load(tmp);
    ADD_FAILURE() << "no error";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), LoadErrorKind::bad_config);
    EXPECT_NE(std::string(e.what()).find("num_position_embeddings"), std::string::npos) << e.what();
  }
  std::ofstream(tmp / "config.json") << R"({"vision_config": {"hidden_act": "relu"}})";
  try {
    Qwen3_5VisionConfig::load(tmp);
    ADD_FAILURE() << "no error";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), LoadErrorKind::unsupported);
  }
  fs::remove_all(tmp);
}

}  // namespace
