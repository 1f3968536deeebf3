// WanTransformerConfig from config.json, load errors that name the tensor,
// and forward's checks of its inputs — on the fixtures of
// tests/fixtures/video (scripts/fixtures/make_wan_transformer_fixtures.py).
#include <ATen/core/Tensor.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/video/wan_transformer.hpp"
#include "mmgen/video/wan_transformer_config.hpp"

namespace fs = std::filesystem;
using mmgen::io::LoadError;
using mmgen::io::LoadErrorKind;
using mmgen::io::LoadOptions;
using mmgen::video::WanTransformer3DModel;
using mmgen::video::WanTransformerConfig;

namespace {

const fs::path kFixtures = MMGEN_VIDEO_FIXTURES;

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void replace_once(std::string& text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "fixture config lacks " << from;
  text.replace(at, from.size(), to);
}

// A scratch folder holding a fixture's checkpoint (linked) under an edited config.json.
class EditedFixture {
 public:
  explicit EditedFixture(const std::string& fixture) : src_(kFixtures / fixture) {
    std::string tmpl = (fs::temp_directory_path() / "mmgen_wan_XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    for (const auto& e : fs::directory_iterator(src_)) {
      if (e.path().filename() != "config.json") fs::create_symlink(e.path(), dir_ / e.path().filename());
    }
    config_ = read_text(src_ / "config.json");
  }
  ~EditedFixture() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void edit(const std::string& from, const std::string& to) { replace_once(config_, from, to); }
  const fs::path& write() {
    std::ofstream(dir_ / "config.json") << config_;
    return dir_;
  }

 private:
  fs::path src_, dir_;
  std::string config_;
};

// Runs `f`, expecting a LoadError of `kind` whose message contains every `needle`.
template <class F>
void expect_load_error(F&& f, LoadErrorKind kind, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no LoadError thrown";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

template <class F>
void expect_invalid(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no std::invalid_argument thrown";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// ============================== config ==============================

TEST(WanTransformerConfig, ReadsTheFixtures) {
  const auto ti2v = WanTransformerConfig::load(kFixtures / "transformer_wan22_ti2v");
  EXPECT_EQ(ti2v.in_channels, 48);
  EXPECT_EQ(ti2v.out_channels, 48);
  EXPECT_EQ(ti2v.inner_dim(), 80);
  EXPECT_EQ(ti2v.rope_t_dim(), 16);  // 40 - 4 * (40 / 6)
  EXPECT_EQ(ti2v.rope_h_dim(), 12);
  EXPECT_EQ(ti2v.rope_w_dim(), 12);
  EXPECT_TRUE(ti2v.cross_attn_norm);
  EXPECT_FALSE(ti2v.image_dim.has_value());

  const auto i2v = WanTransformerConfig::load(kFixtures / "transformer_wan_a14b/i2v");
  EXPECT_EQ(i2v.in_channels, 36);
  EXPECT_EQ(i2v.out_channels, 16);
  EXPECT_FALSE(i2v.cross_attn_norm);

  const auto w21 = WanTransformerConfig::load(kFixtures / "transformer_wan21_i2v");
  ASSERT_TRUE(w21.image_dim.has_value());
  EXPECT_EQ(*w21.image_dim, 12);
  ASSERT_TRUE(w21.added_kv_proj_dim.has_value());
  EXPECT_EQ(*w21.added_kv_proj_dim, 64);
  EXPECT_FALSE(w21.pos_embed_seq_len.has_value());
}

TEST(WanTransformerConfig, PublishedHeadDimSplitsAs44_42_42) {
  WanTransformerConfig c;  // reference defaults: 40 heads x 128
  EXPECT_EQ(c.rope_t_dim(), 44);
  EXPECT_EQ(c.rope_h_dim(), 42);
  EXPECT_EQ(c.rope_w_dim(), 42);
  EXPECT_EQ(c.inner_dim(), 5120);
  EXPECT_NO_THROW(c.validate("defaults"));
}

TEST(WanTransformerConfig, ErrorsNameFileAndKey) {
  {
    EditedFixture f("transformer_wan22_ti2v");
    f.edit("\"attention_head_dim\": 40", "\"attention_head_dim\": 41");
    const fs::path dir = f.write();
    expect_load_error([&] { WanTransformerConfig::load(dir); }, LoadErrorKind::bad_config,
                      {"config.json", "attention_head_dim"});
  }
  {
    EditedFixture f("transformer_wan22_ti2v");
    f.edit("\"_class_name\": \"WanTransformer3DModel\"", "\"_class_name\": \"QwenImageTransformer2DModel\"");
    const fs::path dir = f.write();
    expect_load_error([&] { WanTransformerConfig::load(dir); }, LoadErrorKind::unsupported,
                      {"_class_name", "QwenImageTransformer2DModel"});
  }
  {
    EditedFixture f("transformer_wan22_ti2v");
    f.edit("\"num_layers\": 2", "\"num_layers\": \"two\"");
    const fs::path dir = f.write();
    expect_load_error([&] { WanTransformerConfig::load(dir); }, LoadErrorKind::bad_config, {"num_layers"});
  }
  {
    EditedFixture f("transformer_wan21_i2v");
    f.edit("\"added_kv_proj_dim\": 64", "\"added_kv_proj_dim\": 32");
    const fs::path dir = f.write();
    expect_load_error([&] { WanTransformerConfig::load(dir); }, LoadErrorKind::bad_config, {"added_kv_proj_dim"});
  }
}

// ============================== loading ==============================

TEST(WanTransformerLoad, MissingTensorIsNamed) {
  EditedFixture f("transformer_wan22_ti2v");
  f.edit("\"num_layers\": 2", "\"num_layers\": 3");
  const fs::path dir = f.write();
  expect_load_error([&] { WanTransformer3DModel::load(dir, LoadOptions{}); }, LoadErrorKind::missing,
                    {"blocks.2.attn1.to_q.weight"});
}

TEST(WanTransformerLoad, WrongShapeIsNamedWithFile) {
  EditedFixture f("transformer_wan_a14b/t2v");  // sharded: the message names the shard
  f.edit("\"ffn_dim\": 48", "\"ffn_dim\": 49");
  const fs::path dir = f.write();
  expect_load_error([&] { WanTransformer3DModel::load(dir, LoadOptions{}); }, LoadErrorKind::wrong_shape,
                    {"blocks.0.ffn.net.0.proj.weight", "diffusion_pytorch_model-0000"});
}

TEST(WanTransformerLoad, UnusedTensorsAreReported) {
  EditedFixture f("transformer_wan22_ti2v");
  f.edit("\"num_layers\": 2", "\"num_layers\": 1");
  const fs::path dir = f.write();
  expect_load_error([&] { WanTransformer3DModel::load(dir, LoadOptions{}); }, LoadErrorKind::unexpected,
                    {"blocks.1."});
}

TEST(WanTransformerLoad, ImageBranchTensorsAreRequired) {
  // The T2V checkpoint under a config that asks for the Wan 2.1 image branch.
  EditedFixture f("transformer_wan_a14b/t2v");
  f.edit("\"image_dim\": null", "\"image_dim\": 12");
  const fs::path dir = f.write();
  expect_load_error([&] { WanTransformer3DModel::load(dir, LoadOptions{}); }, LoadErrorKind::missing,
                    {"condition_embedder.image_embedder.norm1.weight"});
}

TEST(WanTransformerLoad, MissingCheckpointIsAnIoError) {
  const fs::path dir = fs::temp_directory_path() / "mmgen_wan_no_such_folder";
  EXPECT_THROW(WanTransformer3DModel::load(dir, LoadOptions{}), LoadError);
}

TEST(WanTransformerLoad, RejectsNonFloatingDtype) {
  expect_load_error(
      [&] { WanTransformer3DModel::load(kFixtures / "transformer_wan22_ti2v", LoadOptions{at::kLong}); },
      LoadErrorKind::unsupported, {"float32"});
}

// ============================== forward input checks ==============================

class WanInputs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    t2v_ = new WanTransformer3DModel(WanTransformer3DModel::load(kFixtures / "transformer_wan_a14b/t2v", {}));
    i2v21_ = new WanTransformer3DModel(WanTransformer3DModel::load(kFixtures / "transformer_wan21_i2v", {}));
  }
  static void TearDownTestSuite() {
    delete t2v_;
    delete i2v21_;
  }
  static at::Tensor x(std::int64_t c, std::int64_t f, std::int64_t h, std::int64_t w, std::int64_t b = 1) {
    return at::randn({b, c, f, h, w});
  }
  static at::Tensor ctx(std::int64_t d, std::int64_t b = 1, std::int64_t l = 5) { return at::randn({b, l, d}); }
  static at::Tensor ctx_of(std::int64_t d, std::int64_t b = 1) { return ctx(d, b); }
  static inline WanTransformer3DModel* t2v_ = nullptr;
  static inline WanTransformer3DModel* i2v21_ = nullptr;
};

TEST_F(WanInputs, GoodShapesRun) {
  at::Tensor out = t2v_->forward(x(16, 2, 4, 6), at::tensor({500.0f}), ctx(20));
  EXPECT_EQ(out.sizes(), (std::vector<std::int64_t>{1, 16, 2, 4, 6}));
  // Integer timesteps as the schedulers may hand them over.
  EXPECT_NO_THROW(t2v_->forward(x(16, 1, 2, 2), at::tensor({999L}), ctx(20)));
}

TEST_F(WanInputs, BadShapesAreRejectedWithTheArgumentNamed) {
  expect_invalid([&] { t2v_->forward(at::randn({16, 2, 4, 6}), at::tensor({1.0f}), ctx(20)); }, "hidden_states");
  expect_invalid([&] { t2v_->forward(x(17, 2, 4, 6), at::tensor({1.0f}), ctx(20)); }, "in_channels = 16");
  expect_invalid([&] { t2v_->forward(x(16, 2, 5, 6), at::tensor({1.0f}), ctx(20)); }, "patch_size");
  expect_invalid([&] { t2v_->forward(x(16, 2, 4, 6, 2), at::tensor({1.0f, 2.0f, 3.0f}), ctx(20, 2)); }, "timestep");
  // Per-token timesteps must have one value per token (2 * 2 * 3 = 12 here).
  expect_invalid([&] { t2v_->forward(x(16, 2, 4, 6), at::zeros({1, 11}), ctx(20)); }, "S = 12");
  expect_invalid([&] { t2v_->forward(x(16, 2, 4, 6), at::tensor({1.0f}), ctx(21)); }, "encoder_hidden_states");
  expect_invalid([&] { t2v_->forward(x(16, 2, 4, 6, 2), at::tensor({1.0f}), ctx(20, 1)); }, "encoder_hidden_states");
  expect_invalid([&] { t2v_->forward(x(16, 2, 4, 6), at::tensor({1.0f}), ctx(20), at::randn({1, 3, 12})); },
                 "no image_embedder");
}

TEST_F(WanInputs, EncodedContextMustFitTheCall) {
  const auto ctx = t2v_->encode_context(ctx_of(20, 2));
  EXPECT_NO_THROW(t2v_->forward(x(16, 2, 4, 6, 2), at::tensor({1.0f}), ctx));
  expect_invalid([&] { t2v_->forward(x(16, 2, 4, 6, 1), at::tensor({1.0f}), ctx); }, "batch");
  // A context of another model (different block count) is refused.
  WanTransformer3DModel::Context other = ctx;
  other.k.pop_back();
  expect_invalid([&] { t2v_->forward(x(16, 2, 4, 6, 2), at::tensor({1.0f}), other); }, "encode_context");
  expect_invalid([&] { t2v_->encode_context(at::randn({2, 5, 19})); }, "encoder_hidden_states");
  expect_invalid([&] { i2v21_->encode_context(ctx_of(8)); }, "needs encoder_hidden_states_image");
}

TEST_F(WanInputs, Wan21ImageContextIsCheckedAndRequired) {
  expect_invalid([&] { i2v21_->forward(x(36, 2, 4, 6), at::tensor({1.0f}), ctx(8)); },
                 "needs encoder_hidden_states_image");
  expect_invalid([&] { i2v21_->forward(x(36, 2, 4, 6), at::tensor({1.0f}), ctx(8), at::randn({1, 3, 13})); },
                 "encoder_hidden_states_image");
  at::Tensor out = i2v21_->forward(x(36, 2, 4, 6), at::tensor({1.0f}), ctx(8), at::randn({1, 3, 12}));
  EXPECT_EQ(out.sizes(), (std::vector<std::int64_t>{1, 16, 2, 4, 6}));
}

}  // namespace
