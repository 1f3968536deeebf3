// Qwen-Image transformer without reference outputs: RoPE positions, config
// checks, typed loading errors that name the tensor or key, and clear errors
// for inputs of the wrong shape. Uses the tiny checkpoint of
// tests/fixtures/image/transformer_qwenimage (config edited in a temp folder).
#include "mmgen/image/qwenimage_transformer.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "mmgen/image/qwenimage_rope.hpp"
#include "mmgen/io/load_error.hpp"

namespace fs = std::filesystem;
using mmgen::image::ImageShape;
using mmgen::image::QwenImageTransformer;
using mmgen::image::QwenImageTransformerConfig;
using mmgen::io::LoadError;
using mmgen::io::LoadErrorKind;
using mmgen::io::LoadOptions;

namespace {

const fs::path kPlain = fs::path(MMGEN_QWENIMAGE_FIXTURES) / "transformer_qwenimage";

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A copy of the plain fixture whose config.json has `from` replaced by `to`.
class EditedFixture {
 public:
  EditedFixture(const std::string& from, const std::string& to) {
    dir_ = fs::temp_directory_path() / ("mmgen_qwenimage_" + std::to_string(::getpid()) + "_" + std::to_string(n_++));
    fs::create_directories(dir_);
    fs::copy_file(kPlain / "diffusion_pytorch_model.safetensors", dir_ / "diffusion_pytorch_model.safetensors");
    std::string cfg = read_file(kPlain / "config.json");
    const auto at = cfg.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) cfg.replace(at, from.size(), to);
    std::ofstream(dir_ / "config.json") << cfg;
  }
  ~EditedFixture() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  static inline int n_ = 0;
};

// Runs f, expects a LoadError of `kind` whose message contains every string of `needles`.
void expect_load_error(const std::function<void()>& f, LoadErrorKind kind, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no LoadError";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

void expect_invalid(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(QwenImageRope, PositionsAreCentredAndTextFollowsLargestImage) {
  // Two images: 3x4 (the noisy latents) and 5x2 (a reference), 2 text tokens.
  at::Tensor pos = mmgen::image::qwenimage_rope_positions({{1, 3, 4}, {1, 5, 2}}, 2);
  ASSERT_EQ(pos.sizes(), (std::vector<std::int64_t>{2 + 12 + 10, 3}));
  auto row = [&](std::int64_t i) {
    return std::vector<std::int64_t>{pos[i][0].item<std::int64_t>(), pos[i][1].item<std::int64_t>(),
                                     pos[i][2].item<std::int64_t>()};
  };
  // Text starts at max(3/2, 4/2, 5/2, 2/2) = 2 on every axis.
  EXPECT_EQ(row(0), (std::vector<std::int64_t>{2, 2, 2}));
  EXPECT_EQ(row(1), (std::vector<std::int64_t>{3, 3, 3}));
  // Image 0: height -2..0, width -2..1, frame 0.
  EXPECT_EQ(row(2), (std::vector<std::int64_t>{0, -2, -2}));
  EXPECT_EQ(row(2 + 3), (std::vector<std::int64_t>{0, -2, 1}));
  EXPECT_EQ(row(2 + 11), (std::vector<std::int64_t>{0, 0, 1}));
  // Image 1: frame index 1, height -3..1, width -1..0.
  EXPECT_EQ(row(14), (std::vector<std::int64_t>{1, -3, -1}));
  EXPECT_EQ(row(23), (std::vector<std::int64_t>{1, 1, 0}));
}

TEST(QwenImageTransformerConfig, ReadsFixtureAndRejectsBadValues) {
  const QwenImageTransformerConfig cfg = QwenImageTransformerConfig::load(kPlain);
  EXPECT_EQ(cfg.inner_dim(), 48);
  EXPECT_EQ(cfg.out_dim(), 64);
  EXPECT_EQ(cfg.axes_dims_rope, (std::vector<std::int64_t>{4, 6, 6}));
  EXPECT_FALSE(cfg.zero_cond_t);
  {
    EditedFixture f("\"axes_dims_rope\": [\n    4,", "\"axes_dims_rope\": [\n    6,");
    expect_load_error([&] { QwenImageTransformerConfig::load(f.dir()); }, LoadErrorKind::bad_config,
                      {"axes_dims_rope", "attention_head_dim"});
  }
  {
    EditedFixture f("\"QwenImageTransformer2DModel\"", "\"WanTransformer3DModel\"");
    expect_load_error([&] { QwenImageTransformerConfig::load(f.dir()); }, LoadErrorKind::unsupported,
                      {"WanTransformer3DModel"});
  }
  {
    EditedFixture f("\"guidance_embeds\": false", "\"guidance_embeds\": true");
    expect_load_error([&] { QwenImageTransformerConfig::load(f.dir()); }, LoadErrorKind::unsupported,
                      {"guidance_embeds"});
  }
}

TEST(QwenImageTransformerLoad, MissingTensorIsNamed) {
  EditedFixture f("\"num_layers\": 2", "\"num_layers\": 3");
  expect_load_error([&] { QwenImageTransformer::load(f.dir(), LoadOptions{}); }, LoadErrorKind::missing,
                    {"transformer_blocks.2.img_mod.1.weight", f.dir().string()});
}

TEST(QwenImageTransformerLoad, WrongShapeIsNamed) {
  EditedFixture f("\"joint_attention_dim\": 40", "\"joint_attention_dim\": 41");
  expect_load_error([&] { QwenImageTransformer::load(f.dir(), LoadOptions{}); }, LoadErrorKind::wrong_shape,
                    {"txt_norm.weight"});
}

TEST(QwenImageTransformerLoad, UnusedTensorsAreReported) {
  EditedFixture f("\"num_layers\": 2", "\"num_layers\": 1");
  expect_load_error([&] { QwenImageTransformer::load(f.dir(), LoadOptions{}); }, LoadErrorKind::unexpected,
                    {"transformer_blocks.1."});
}

class QwenImageTransformerInputs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = new QwenImageTransformer(QwenImageTransformer::load(kPlain, LoadOptions{})); }
  static void TearDownTestSuite() { delete model_; }

  at::Tensor run(const at::Tensor& hs, const at::Tensor& ehs, const at::Tensor& mask, const at::Tensor& t,
                 const std::vector<std::vector<ImageShape>>& shapes) {
    return model_->forward(hs, ehs, mask, t, shapes);
  }
  static inline QwenImageTransformer* model_ = nullptr;
  at::Tensor hs = at::randn({2, 12, 64});
  at::Tensor ehs = at::randn({2, 5, 40});
  at::Tensor t = at::tensor(std::vector<float>{0.5f, 0.25f});
  std::vector<std::vector<ImageShape>> shapes{{{1, 3, 4}}, {{1, 3, 4}}};
};

TEST_F(QwenImageTransformerInputs, ValidInputsRunAndFullMaskEqualsNoMask) {
  at::Tensor out = run(hs, ehs, {}, t, shapes);
  EXPECT_EQ(out.sizes(), (std::vector<std::int64_t>{2, 12, 64}));
  at::Tensor masked = run(hs, ehs, at::ones({2, 5}, at::TensorOptions().dtype(at::kLong)), t, shapes);
  EXPECT_LE((out - masked).abs().max().item<double>(), 1e-6);
  // Padding one sample's last two tokens changes that sample only.
  at::Tensor mask = at::ones({2, 5}, at::TensorOptions().dtype(at::kBool));
  mask[1][3] = false;
  mask[1][4] = false;
  at::Tensor padded = run(hs, ehs, mask, t, shapes);
  EXPECT_LE((out[0] - padded[0]).abs().max().item<double>(), 1e-6);
  EXPECT_GT((out[1] - padded[1]).abs().max().item<double>(), 1e-4);
  // ...and equals that sample run alone on its 3 real tokens: text positions
  // do not depend on padding, so a pipeline may batch prompts of any lengths.
  at::Tensor alone = run(hs.narrow(0, 1, 1), ehs.narrow(0, 1, 1).narrow(1, 0, 3), {}, t.narrow(0, 1, 1), {{{1, 3, 4}}});
  EXPECT_LE((alone[0] - padded[1]).abs().max().item<double>(), 1e-5);
}

TEST_F(QwenImageTransformerInputs, BadShapesAreClearErrors) {
  expect_invalid([&] { run(at::randn({2, 12, 63}), ehs, {}, t, shapes); }, "hidden_states must be [B, L_img, 64]");
  expect_invalid([&] { run(hs, at::randn({2, 5, 39}), {}, t, shapes); }, "encoder_hidden_states must be");
  expect_invalid([&] { run(hs, at::randn({1, 5, 40}), {}, t, shapes); }, "encoder_hidden_states must be");
  expect_invalid([&] { run(hs, ehs, at::ones({2, 4}), t, shapes); }, "encoder_hidden_states_mask must be");
  expect_invalid([&] { run(hs, ehs, {}, at::tensor(std::vector<float>{0.5f}), shapes); }, "timestep must be");
  expect_invalid([&] { run(hs, ehs, {}, t, {{{1, 3, 4}}}); }, "one entry per sample");
  expect_invalid([&] { run(hs, ehs, {}, t, {{{1, 3, 5}}, {{1, 3, 5}}}); }, "cover 15 image tokens");
  expect_invalid([&] { run(hs, ehs, {}, t, {{{1, 3, 4}}, {{1, 4, 3}}}); }, "same for every sample");
  expect_invalid([&] { run(hs, ehs, {}, t, {{{1, 0, 4}}, {{1, 0, 4}}}); }, "must be positive");
}

}  // namespace
