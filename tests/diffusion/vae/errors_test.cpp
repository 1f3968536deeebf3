// What a user can get wrong with a VAE folder or its inputs gives a typed error
// that names the problem: io::LoadError (with its kind) for the folder,
// std::invalid_argument for tensors and parameters.
#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>

#include "mmgen/diffusion/wan_vae.hpp"
#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/io/safetensors.hpp"

namespace fs = std::filesystem;
using mmgen::diffusion::LatentDist;
using mmgen::diffusion::TilingOptions;
using mmgen::diffusion::WanVae;
using mmgen::diffusion::WanVaeConfig;
using mmgen::io::Checkpoint;
using mmgen::io::LoadError;
using mmgen::io::LoadErrorKind;

namespace {

const fs::path kFixtures = MMGEN_VAE_FIXTURES;

// A scratch copy of a fixture folder, removed at the end of the test.
class ScratchVae {
 public:
  explicit ScratchVae(const std::string& name) {
    dir_ = fs::temp_directory_path() / ("mmgen_vae_" + name + "_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(counter_++));
    fs::create_directories(dir_);
    for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors"}) {
      fs::copy_file(kFixtures / name / f, dir_ / f);
    }
  }
  ~ScratchVae() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& dir() const { return dir_; }

  std::string read(const std::string& f) const {
    std::ifstream in(dir_ / f);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void write(const std::string& f, const std::string& text) const { std::ofstream(dir_ / f) << text; }
  // Replaces the first occurrence of `from` in config.json.
  void edit_config(const std::string& from, const std::string& to) const {
    std::string s = read("config.json");
    const auto at = s.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    s.replace(at, from.size(), to);
    write("config.json", s);
  }

  // Rewrites the checkpoint without `drop` (float32 tensors, safetensors layout).
  void drop_tensor(const std::string& drop) const {
    const fs::path file = dir_ / "diffusion_pytorch_model.safetensors";
    std::string header = "{";
    std::string data;
    {
      const Checkpoint ckpt = Checkpoint::open(file);
      for (const std::string& name : ckpt.names()) {
        if (name == drop) continue;
        const at::Tensor t = ckpt.tensor(name).contiguous();
        std::string shape;
        for (std::int64_t i = 0; i < t.dim(); ++i) shape += (i ? "," : "") + std::to_string(t.size(i));
        const std::size_t begin = data.size();
        data.append(static_cast<const char*>(t.const_data_ptr()), std::size_t(t.nbytes()));
        header += std::string(header.size() > 1 ? "," : "") + "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" +
                  shape + "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(data.size()) + "]}";
      }
    }
    header += "}";
    while (header.size() % 8 != 0) header += ' ';
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    const std::uint64_t n = header.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = char((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out << header << data;
  }

 private:
  fs::path dir_;
  static inline int counter_ = 0;
};

// Runs `f`, expecting a LoadError of `kind` whose message contains every `needle`.
void expect_load_error(const std::function<void()>& f, LoadErrorKind kind, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no LoadError";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const std::string& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
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

}  // namespace

// ============================== config ==============================

TEST(WanVaeConfig, ReadsBothConfigClasses) {
  const WanVaeConfig wan = WanVaeConfig::load(kFixtures / "vae_wan22");
  EXPECT_EQ(wan.base_dim, 4);
  EXPECT_EQ(wan.decoder_base_dim, 6);
  EXPECT_EQ(wan.in_channels, 12);
  EXPECT_EQ(wan.latents_mean.size(), 16u);
  const WanVaeConfig qwen = WanVaeConfig::load(kFixtures / "vae_qwenimage");
  EXPECT_EQ(qwen.in_channels, 3);
  EXPECT_EQ(qwen.out_channels, 3);
  EXPECT_EQ(qwen.spatial_compression_ratio, 8);  // 2^len(temperal_downsample)
  EXPECT_EQ(qwen.patch_size, 1);
}

TEST(WanVaeConfig, BadValuesNameTheKey) {
  ScratchVae v("vae_wan21");
  v.edit_config("\"z_dim\": 16", "\"z_dim\": \"sixteen\"");
  expect_load_error([&] { WanVae::load(v.dir()); }, LoadErrorKind::bad_config, {"vae: ", "config.json", "z_dim"});

  ScratchVae w("vae_wan21");
  w.edit_config("\"latents_mean\": [", "\"latents_mean\": [1.0, ");
  expect_load_error([&] { WanVae::load(w.dir()); }, LoadErrorKind::bad_config, {"latents_mean", "z_dim = 16"});

  ScratchVae c("vae_wan21");
  c.edit_config("AutoencoderKLWan", "AutoencoderKLMochi");
  expect_load_error([&] { WanVae::load(c.dir()); }, LoadErrorKind::unsupported, {"AutoencoderKLMochi"});

  ScratchVae t("vae_wan21");
  t.edit_config("\"temperal_downsample\": [", "\"temperal_downsample\": [1, ");
  expect_load_error([&] { WanVae::load(t.dir()); }, LoadErrorKind::bad_config, {"temperal_downsample"});

  ScratchVae j("vae_wan21");
  j.write("config.json", "{\"base_dim\": 4,");
  EXPECT_THROW(WanVae::load(j.dir()), LoadError);
}

// ============================== checkpoint ==============================

TEST(WanVaeLoad, MissingTensorIsNamed) {
  ScratchVae v("vae_wan21");
  v.drop_tensor("decoder.up_blocks.1.upsamplers.0.time_conv.weight");
  expect_load_error([&] { WanVae::load(v.dir()); }, LoadErrorKind::missing,
                    {"decoder.up_blocks.1.upsamplers.0.time_conv.weight", "vae (AutoencoderKLWan)", v.dir().string()});
  // A decode-only load does not need the encoder's tensors, but still the decoder's.
  ScratchVae e("vae_wan22");
  e.drop_tensor("encoder.conv_in.weight");
  EXPECT_NO_THROW(WanVae::load(e.dir(), {}, {/*encoder=*/false, /*decoder=*/true}));
  expect_load_error([&] { WanVae::load(e.dir()); }, LoadErrorKind::missing, {"encoder.conv_in.weight"});
}

TEST(WanVaeLoad, ConfigThatDoesNotMatchTheWeights) {
  ScratchVae v("vae_wan21");
  v.edit_config("\"base_dim\": 4", "\"base_dim\": 8");
  expect_load_error([&] { WanVae::load(v.dir()); }, LoadErrorKind::wrong_shape, {"encoder.conv_in.weight"});

  ScratchVae r("vae_wan21");
  r.edit_config("\"num_res_blocks\": 2", "\"num_res_blocks\": 1");
  EXPECT_THROW(WanVae::load(r.dir()), LoadError);  // shapes or leftovers, named by the loader

  // A Wan 2.1 checkpoint read as Wan 2.2 lacks the residual blocks' keys.
  ScratchVae w("vae_wan21");
  w.edit_config("\"is_residual\": false", "\"is_residual\": true");
  expect_load_error([&] { WanVae::load(w.dir()); }, LoadErrorKind::missing, {"encoder.down_blocks.0.resnets.0"});
}

TEST(WanVaeLoad, MissingFiles) {
  ScratchVae v("vae_wan21");
  fs::remove(v.dir() / "diffusion_pytorch_model.safetensors");
  expect_load_error([&] { WanVae::load(v.dir()); }, LoadErrorKind::missing, {"diffusion_pytorch_model"});
  fs::remove(v.dir() / "config.json");
  EXPECT_THROW(WanVae::load(v.dir()), LoadError);
}

// ============================== inputs ==============================

TEST(WanVaeInputs, WrongShapesAreRejected) {
  const WanVae wan21 = WanVae::load(kFixtures / "vae_wan21");
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  expect_invalid([&] { wan21.encode(at::zeros({1, 3, 16, 16}, f32)); }, "[B, 3, F, H, W]");
  expect_invalid([&] { wan21.encode(at::zeros({1, 4, 1, 16, 16}, f32)); }, "[1, 4, 1, 16, 16]");
  expect_invalid([&] { wan21.encode(at::zeros({1, 3, 4, 16, 16}, f32)); }, "4n + 1");
  expect_invalid([&] { wan21.encode(at::zeros({1, 3, 0, 16, 16}, f32)); }, "empty");
  expect_invalid([&] { wan21.decode(at::zeros({1, 48, 1, 2, 2}, f32)); }, "[B, 16, T, h, w]");
  expect_invalid([&] { wan21.decode(at::zeros({1, 16, 2, 2}, f32)); }, "[B, 16, T, h, w]");
  expect_invalid([&] { wan21.denormalize(at::zeros({1, 4, 1, 2, 2}, f32)); }, "denormalize");

  LatentDist d = wan21.encode(at::zeros({1, 3, 1, 16, 16}, f32));
  expect_invalid([&] { d.sample(at::zeros({1, 16, 2, 2, 2}, f32)); }, "noise");

  // Wan 2.2 patchifies by 2 and downsamples 8x more: sizes must be multiples of 16.
  const WanVae wan22 = WanVae::load(kFixtures / "vae_wan22");
  expect_invalid([&] { wan22.encode(at::zeros({1, 3, 1, 24, 32}, f32)); }, "multiples of 16");
  expect_invalid([&] { wan22.encode(at::zeros({1, 12, 1, 32, 32}, f32)); }, "[B, 3, F, H, W]");

  const WanVae decoder_only = WanVae::load(kFixtures / "vae_wan21", {}, {/*encoder=*/false, /*decoder=*/true});
  expect_invalid([&] { decoder_only.encode(at::zeros({1, 3, 1, 16, 16}, f32)); }, "without its encoder");
}

TEST(WanVaeInputs, BadTilingIsRejected) {
  WanVae vae = WanVae::load(kFixtures / "vae_qwenimage");
  TilingOptions t;
  t.enabled = true;
  t.tile_sample_stride_height = 0;
  EXPECT_THROW(vae.set_tiling(t), std::invalid_argument);
  t = TilingOptions{};
  t.tile_sample_min_width = 64;
  t.tile_sample_stride_width = 128;
  EXPECT_THROW(vae.set_tiling(t), std::invalid_argument);
  t = TilingOptions{};
  t.tile_sample_stride_width = 4;
  EXPECT_THROW(vae.set_tiling(t), std::invalid_argument);
  EXPECT_FALSE(vae.tiling().enabled);
  // diffusers' enable_tiling() defaults.
  EXPECT_EQ(vae.tiling().tile_sample_min_height, 256);
  EXPECT_EQ(vae.tiling().tile_sample_stride_width, 192);
}
