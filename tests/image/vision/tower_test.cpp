// The Qwen2.5-VL vision tower and the M-RoPE index against transformers
// (tests/fixtures/image/qwen_vision, made by
// scripts/fixtures/make_qwen_vision_fixtures.py): a 4-block tower with full
// attention in blocks 1 and 3 and 56 px windows (ragged and even window grids),
// float32 output within 1e-4; rope positions identical; loading errors name
// the tensor.
#include <ATen/core/Tensor.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "mmgen/image/qwen_mrope_index.hpp"
#include "mmgen/image/qwen_vision.hpp"
#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/protocol.hpp"

namespace fs = std::filesystem;
using mmgen::image::QwenVisionConfig;
using mmgen::image::QwenVisionTower;
using mmgen::io::Checkpoint;
using mmgen::io::LoadError;
using mmgen::io::LoadErrorKind;
using mmgen::io::LoadOptions;

namespace {

const fs::path kFixture = MMGEN_QWEN_VISION_FIXTURE;
const fs::path kTextEncoder = kFixture / "text_encoder";
constexpr double kTol = 1e-4;

// MMGEN_TEST_DEVICE=cuda runs the same comparisons on the GPU (CPU otherwise).
c10::Device test_device() {
  const char* d = std::getenv("MMGEN_TEST_DEVICE");
  return d && std::string(d) == "cuda" ? c10::Device(c10::DeviceType::CUDA, 0) : c10::Device(c10::DeviceType::CPU);
}

const Checkpoint& reference() {
  static const Checkpoint ref = Checkpoint::open(kFixture / "reference.safetensors");
  return ref;
}
at::Tensor expected(const std::string& name) { return reference().tensor(name); }

const QwenVisionTower& tower() {
  static const QwenVisionTower t = QwenVisionTower::load(kTextEncoder, LoadOptions{at::kFloat, test_device()});
  return t;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU).to(at::kFloat) - b.to(at::kCPU).to(at::kFloat)).abs().max().item<double>();
}

at::Tensor long_tensor(std::vector<std::int64_t> v) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong));
}

// A minimal safetensors writer for the loader tests: every tensor of `src`
// (raw bytes, stored dtype) under the names `rename` gives; "" drops it.
void write_checkpoint(const Checkpoint& src, const fs::path& file,
                      const std::function<std::string(const std::string&)>& rename) {
  std::string header = "{", data;
  bool first = true;
  for (const std::string& name : src.names()) {
    const std::string to = rename(name);
    if (to.empty()) continue;
    at::Tensor t = src.tensor(name).contiguous();
    ASSERT_EQ(t.scalar_type(), at::kFloat) << name;
    const std::size_t begin = data.size(), bytes = std::size_t(t.numel()) * 4;
    data.append(static_cast<const char*>(t.data_ptr()), bytes);
    std::string shape;
    for (std::int64_t d : t.sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    header += std::string(first ? "" : ",") + "\"" + to + "\":{\"dtype\":\"F32\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(begin + bytes) + "]}";
    first = false;
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';
  std::ofstream f(file, std::ios::binary);
  const std::uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header << data;
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag)
      : path(fs::temp_directory_path() / ("mmgen_qwen_vision_" + tag + "_" + std::to_string(::getpid()))) {
    fs::create_directories(path);
    fs::copy_file(kTextEncoder / "config.json", path / "config.json", fs::copy_options::overwrite_existing);
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST(QwenVisionConfig, ReadsThePublishedSpelling) {
  const QwenVisionConfig c = QwenVisionConfig::load(kTextEncoder);
  EXPECT_EQ(c.depth, 4);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.head_dim(), 16);
  EXPECT_EQ(c.in_channels, 3);  // "in_chans"
  EXPECT_EQ(c.window_size, 56);
  EXPECT_EQ(c.out_hidden_size, 32);
  EXPECT_EQ(c.fullatt_block_indexes, (std::vector<std::int64_t>{1, 3}));
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.image_token_id, 151);
  EXPECT_EQ(c.patch_dim(), 1176);
  EXPECT_TRUE(c.is_full_attention(3));
  EXPECT_FALSE(c.is_full_attention(2));
}

TEST(QwenVisionTower, MatchesTransformersOnTwoImages) {
  // Image a (6 x 4 patches: a 2 x 1 grid of windows, the lower one ragged) and
  // image b (4 x 8: two even windows) in one call, as the edit-plus pipeline
  // sends several images.
  const at::Tensor out = tower().forward(expected("tower_pixel_values"), expected("tower_grid_thw"));
  const at::Tensor want = expected("tower_out");
  ASSERT_EQ(out.sizes(), want.sizes());
  const double err = max_abs_diff(out, want);
  std::cout << "[parity] tower a+b max|diff| = " << err << " (|ref| max " << want.abs().max().item<double>()
            << ")\n";
  EXPECT_LE(err, kTol);
}

TEST(QwenVisionTower, MatchesTransformersOnOneImage) {
  const at::Tensor out = tower().forward(expected("proc_c_pixel_values"), expected("proc_c_grid_thw"));
  const double err = max_abs_diff(out, expected("tower_c_out"));
  std::cout << "[parity] tower c max|diff| = " << err << "\n";
  EXPECT_LE(err, kTol);
}

TEST(QwenVisionTower, RunsInBfloat16) {
  // Not a parity bound (the reference tolerance is for float32): the bf16 path
  // must run (float32 rotary tables on bf16 q/k, bf16 norms) and stay near.
  const QwenVisionTower t = QwenVisionTower::load(kTextEncoder, LoadOptions{at::kBFloat16, test_device()});
  const at::Tensor out = t.forward(expected("tower_pixel_values"), expected("tower_grid_thw"));
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  const double err = max_abs_diff(out, expected("tower_out"));
  std::cout << "[info] tower a+b bfloat16 max|diff| = " << err << "\n";
  EXPECT_LE(err, 0.1);
}

TEST(QwenVisionTower, WindowLayoutFollowsTheReference) {
  const QwenVisionConfig& c = tower().config();
  // Image a: 3 x 2 merge blocks, windows of 2 x 2 blocks: rows 0-1 then row 2.
  const auto l = mmgen::image::vision_layout(c, long_tensor({1, 6, 4}).view({1, 3}));
  EXPECT_TRUE(at::equal(l.window_index, long_tensor({0, 1, 2, 3, 4, 5})));
  EXPECT_EQ(l.cu_window_seqlens, (std::vector<std::int64_t>{0, 16, 24}));
  EXPECT_EQ(l.cu_seqlens, (std::vector<std::int64_t>{0, 24}));
  // Image b: 2 x 4 blocks -> two 2 x 2 windows, the second starting at column 2.
  const auto lb = mmgen::image::vision_layout(c, long_tensor({1, 4, 8, 1, 6, 4}).view({2, 3}));
  EXPECT_TRUE(at::equal(lb.window_index, long_tensor({0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13})));
  EXPECT_EQ(lb.cu_window_seqlens, (std::vector<std::int64_t>{0, 16, 32, 48, 56}));
  EXPECT_EQ(lb.cu_seqlens, (std::vector<std::int64_t>{0, 32, 56}));
  // Positions in merge-block order: block (0, 0) holds (0,0) (0,1) (1,0) (1,1).
  const at::Tensor p = lb.position_ids.narrow(0, 0, 6);
  EXPECT_TRUE(at::equal(p, long_tensor({0, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3}).view({6, 2})));
}

TEST(QwenVisionTower, RopeIndexMatchesTransformers) {
  const QwenVisionConfig& c = tower().config();
  const auto idx = mmgen::image::qwen2_5_vl_rope_index(expected("rope_input_ids"), expected("rope_grid_thw"),
                                                       c.image_token_id, c.spatial_merge_size);
  EXPECT_TRUE(at::equal(idx.positions, expected("rope_positions")));
  EXPECT_EQ(idx.delta, expected("rope_delta")[0].item<std::int64_t>());
  // Text only: 0..T-1 on every row.
  const auto text = mmgen::image::qwen2_5_vl_rope_index(long_tensor({5, 6, 7}), at::Tensor(), c.image_token_id, 2);
  EXPECT_TRUE(at::equal(text.positions, long_tensor({0, 1, 2, 0, 1, 2, 0, 1, 2}).view({3, 3})));
  EXPECT_EQ(text.delta, 0);
}

TEST(QwenVisionTower, RopeIndexRejectsMismatchedPlaceholders) {
  const QwenVisionConfig& c = tower().config();
  const std::int64_t img = c.image_token_id;
  const at::Tensor grid = long_tensor({1, 4, 4}).view({1, 3});  // needs 4 placeholders
  EXPECT_THROW(mmgen::image::qwen2_5_vl_rope_index(long_tensor({1, img, img, img, 2}), grid, img, 2),
               mmgen::proto::ProtocolError);
  EXPECT_THROW(mmgen::image::qwen2_5_vl_rope_index(long_tensor({1, 2}), grid, img, 2), mmgen::proto::ProtocolError);
  EXPECT_THROW(
      mmgen::image::qwen2_5_vl_rope_index(long_tensor({img, img, img, img, 3, img, img, img, img}), grid, img, 2),
      mmgen::proto::ProtocolError);
}

TEST(QwenVisionTower, BadShapesAreClearErrors) {
  const at::Tensor pv = expected("proc_c_pixel_values"), grid = expected("proc_c_grid_thw");
  auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const mmgen::proto::ProtocolError& e) {
      EXPECT_EQ(e.code(), mmgen::proto::ErrorCode::invalid_request);
      return e.what();
    }
    ADD_FAILURE() << "no ProtocolError";
    return {};
  };
  EXPECT_NE(message([&] { tower().forward(pv.narrow(1, 0, 1000), grid); }).find("[num_patches, 1176]"),
            std::string::npos);
  EXPECT_NE(message([&] { tower().forward(pv.narrow(0, 0, 20), grid); }).find("covers 24 patches"),
            std::string::npos);
  EXPECT_NE(message([&] { tower().forward(pv, long_tensor({1, 5, 4}).view({1, 3})); }).find("merge size"),
            std::string::npos);
  EXPECT_NE(message([&] { tower().forward(pv, long_tensor({1, 4, 6})); }).find("grid_thw must be"),
            std::string::npos);
  EXPECT_NE(message([&] { tower().forward(pv.to(at::kLong), grid); }).find("floating"), std::string::npos);
}

TEST(QwenVisionTower, LoadsTransformers5KeyLayout) {
  // save_pretrained of transformers 5 may write model.visual.* and model.language_model.*.
  TempDir dir("t5");
  const Checkpoint src = Checkpoint::open(kTextEncoder);
  write_checkpoint(src, dir.path / "model.safetensors", [](const std::string& n) {
    if (n.rfind("visual.", 0) == 0) return "model." + n;
    if (n.rfind("model.", 0) == 0) return "model.language_model." + n.substr(6);
    return n;
  });
  const QwenVisionTower t = QwenVisionTower::load(dir.path, LoadOptions{at::kFloat, test_device()});
  const at::Tensor out = t.forward(expected("proc_c_pixel_values"), expected("proc_c_grid_thw"));
  EXPECT_LE(max_abs_diff(out, expected("tower_c_out")), kTol);
}

TEST(QwenVisionTower, MissingTensorIsALoadErrorNamingIt) {
  TempDir dir("missing");
  const std::string gone = "visual.blocks.2.attn.qkv.bias";
  write_checkpoint(Checkpoint::open(kTextEncoder), dir.path / "model.safetensors",
                   [&](const std::string& n) { return n == gone ? std::string() : n; });
  try {
    QwenVisionTower::load(dir.path, LoadOptions{});
    ADD_FAILURE() << "loaded without " << gone;
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), LoadErrorKind::missing);
    EXPECT_NE(std::string(e.what()).find(gone), std::string::npos) << e.what();
  }
}

TEST(QwenVisionTower, RenamedTensorIsReportedByName) {
  TempDir dir("extra");
  write_checkpoint(Checkpoint::open(kTextEncoder), dir.path / "model.safetensors", [](const std::string& n) {
    return n == "visual.merger.ln_q.weight" ? std::string("visual.merger.ln_k.weight") : n;
  });
  try {
    QwenVisionTower::load(dir.path, LoadOptions{});
    ADD_FAILURE() << "loaded a checkpoint without merger.ln_q";
  } catch (const LoadError& e) {
    EXPECT_NE(std::string(e.what()).find("visual.merger.ln_q.weight"), std::string::npos) << e.what();
  }
}

TEST(QwenVisionTower, BadConfigIsALoadError) {
  TempDir dir("cfg");
  std::ofstream(dir.path / "config.json") << R"({"architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "vision_config": {"depth": 2, "hidden_size": 32, "num_heads": 2, "fullatt_block_indexes": [5]}})";
  try {
    QwenVisionConfig::load(dir.path);
    ADD_FAILURE() << "fullatt index 5 of depth 2 accepted";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), LoadErrorKind::bad_config);
    EXPECT_NE(std::string(e.what()).find("vision_config.fullatt_block_indexes"), std::string::npos) << e.what();
  }
  std::ofstream(dir.path / "config.json") << R"({"hidden_size": 32})";
  EXPECT_THROW(QwenVisionConfig::load(dir.path), LoadError);
  std::ofstream(dir.path / "config.json") << R"({"vision_config": {"hidden_act": "gelu"}})";
  try {
    QwenVisionConfig::load(dir.path);
    ADD_FAILURE() << "gelu accepted";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), LoadErrorKind::unsupported);
  }
}
