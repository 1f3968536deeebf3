// Parity with diffusers' AutoencoderKLWan / AutoencoderKLQwenImage on the tiny
// checkpoints of tests/fixtures/diffusion/vae_* (scripts/fixtures/make_vae_fixtures.py),
// float32, max |error| <= 1e-4 on every case:
//   encode (posterior mean and log-variance) of 1, 5 and 9 frames (Qwen-Image: one image),
//   decode of 1, 2 and 3 latent frames (1, 5, 9 frames out),
//   sampling from the posterior with given noise, the pipelines' latent normalisation,
//   and tiled encode + decode with tiles small enough to need >= 2x2 of them.
#include <ATen/core/Tensor.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/Parallel.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/flip.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "mmgen/diffusion/wan_vae.hpp"
#include "mmgen/io/checkpoint.hpp"

namespace fs = std::filesystem;
using mmgen::diffusion::LatentDist;
using mmgen::diffusion::TilingOptions;
using mmgen::diffusion::VaeClass;
using mmgen::diffusion::WanVae;
using mmgen::io::Checkpoint;
using mmgen::io::LoadOptions;

namespace {

const fs::path kFixtures = MMGEN_VAE_FIXTURES;
constexpr double kTol = 1e-4;

// MMGEN_TEST_DEVICE=cuda runs the same comparisons on the GPU (CPU otherwise).
c10::Device test_device() {
  const char* d = std::getenv("MMGEN_TEST_DEVICE");
  return d && std::string(d) == "cuda" ? c10::Device(c10::DeviceType::CUDA, 0) : c10::Device(c10::DeviceType::CPU);
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (!a.sizes().equals(b.sizes())) return 1e30;
  return (a.to(at::kCPU).to(at::kFloat) - b.to(at::kCPU).to(at::kFloat)).abs().max().item<double>();
}

#define EXPECT_CLOSE(what, a, b)                                   \
  do {                                                             \
    const double err_ = max_abs_diff((a), (b));                    \
    std::cout << "  " << (what) << ": max |err| " << err_ << "\n"; \
    EXPECT_LE(err_, kTol) << (what);                               \
  } while (0)

struct Fixture {
  fs::path dir;
  Checkpoint ref;
  WanVae vae;
  explicit Fixture(const std::string& name)
      : dir(kFixtures / name),
        ref(Checkpoint::open(dir / "reference.safetensors")),
        vae(WanVae::load(dir, LoadOptions{at::kFloat, test_device()})) {}
  at::Tensor r(const std::string& n) const { return ref.tensor(n).clone(); }
};

void check_encode(const Fixture& f, std::int64_t frames) {
  const std::string n = "encode_f" + std::to_string(frames);
  const LatentDist d = f.vae.encode(f.r("video").slice(2, 0, frames));
  EXPECT_CLOSE(n + " mean", d.mean, f.r(n + "_mean"));
  EXPECT_CLOSE(n + " logvar", d.logvar, f.r(n + "_logvar"));
  EXPECT_TRUE(d.mode().is_same(d.mean));
}

void check_decode(const Fixture& f, std::int64_t latent_frames) {
  const std::string n = "decode_t" + std::to_string(latent_frames);
  const at::Tensor out = f.vae.decode(f.r("decode_z").slice(2, 0, latent_frames));
  EXPECT_CLOSE(n, out, f.r(n));
}

void check_sample_and_normalisation(const Fixture& f, std::int64_t frames) {
  const std::string n = "encode_f" + std::to_string(frames);
  LatentDist d;
  d.mean = f.r(n + "_mean").to(test_device());
  d.logvar = f.r(n + "_logvar").to(test_device());
  EXPECT_CLOSE("sample(noise)", d.sample(f.r("sample_noise")), f.r("sample"));
  EXPECT_CLOSE("normalize", f.vae.normalize(d.mean), f.r("norm_mul"));
  EXPECT_CLOSE("normalize_div", f.vae.normalize_div(d.mean), f.r("norm_div"));
  EXPECT_CLOSE("denormalize", f.vae.denormalize(f.r("decode_z").to(test_device())), f.r("denorm"));
}

void check_tiled(Fixture& f) {
  const at::Tensor p = f.r("tiled_params");
  TilingOptions t;
  t.enabled = true;
  t.tile_sample_min_height = p[0].item<std::int64_t>();
  t.tile_sample_min_width = p[1].item<std::int64_t>();
  t.tile_sample_stride_height = p[2].item<std::int64_t>();
  t.tile_sample_stride_width = p[3].item<std::int64_t>();
  const at::Tensor video = f.r("tiled_video"), z = f.r("tiled_z");
  // The fixture's sizes need at least 2x2 tiles in both directions.
  ASSERT_GE(video.size(3), t.tile_sample_stride_height + 1);
  ASSERT_GE(video.size(4), t.tile_sample_stride_width + 1);

  const at::Tensor untiled_out = f.vae.decode(z);
  f.vae.set_tiling(t);
  const LatentDist d = f.vae.encode(video);
  EXPECT_CLOSE("tiled encode mean", d.mean, f.r("tiled_mean"));
  EXPECT_CLOSE("tiled encode logvar", d.logvar, f.r("tiled_logvar"));
  const at::Tensor out = f.vae.decode(z);
  EXPECT_CLOSE("tiled decode", out, f.r("tiled_out"));
  // The tiled path really ran: blending seams make it differ from the untiled decode.
  EXPECT_GT(max_abs_diff(out, untiled_out), 1e-3);
  f.vae.set_tiling(TilingOptions{});
}

// The fixtures' tensors are tiny: one intra-op thread keeps the test fast on a
// loaded machine, where OpenMP workers would only contend (30 s instead of 1 s).
class OneThread : public ::testing::Environment {
 public:
  void SetUp() override { at::set_num_threads(1); }
};
const auto* const kOneThread = ::testing::AddGlobalTestEnvironment(new OneThread);

}  // namespace

TEST(WanVaeParity, Wan21) {
  Fixture f("vae_wan21");
  EXPECT_EQ(f.vae.config().vae_class, VaeClass::wan);
  EXPECT_FALSE(f.vae.config().is_residual);
  for (std::int64_t n : {1, 5, 9}) check_encode(f, n);
  for (std::int64_t t : {1, 2, 3}) check_decode(f, t);
  check_sample_and_normalisation(f, 9);
  check_tiled(f);
}

TEST(WanVaeParity, Wan22) {
  Fixture f("vae_wan22");
  EXPECT_TRUE(f.vae.config().is_residual);
  EXPECT_EQ(f.vae.config().patch_size, 2);
  EXPECT_EQ(f.vae.config().spatial_compression_ratio, 16);
  EXPECT_NE(f.vae.config().decoder_base_dim, f.vae.config().base_dim);
  for (std::int64_t n : {1, 5, 9}) check_encode(f, n);
  for (std::int64_t t : {1, 2, 3}) check_decode(f, t);
  check_sample_and_normalisation(f, 9);
  check_tiled(f);
}

TEST(WanVaeParity, QwenImage) {
  Fixture f("vae_qwenimage");
  EXPECT_EQ(f.vae.config().vae_class, VaeClass::qwen_image);
  EXPECT_FALSE(f.vae.config().clamp_tiled_decode);
  check_encode(f, 1);
  check_decode(f, 1);
  check_sample_and_normalisation(f, 1);
  check_tiled(f);
  // Its tiled decode is unclamped, as diffusers' is.
  EXPECT_GT(f.r("tiled_out").abs().max().item<double>(), 1.0);
}

TEST(WanVaeParity, DecodeOnlyLoadMatches) {
  const fs::path dir = kFixtures / "vae_wan21";
  const Checkpoint ref = Checkpoint::open(dir / "reference.safetensors");
  const WanVae vae = WanVae::load(dir, LoadOptions{at::kFloat, test_device()}, {/*encoder=*/false, /*decoder=*/true});
  EXPECT_FALSE(vae.has_encoder());
  EXPECT_CLOSE("decode-only decode_t3", vae.decode(ref.tensor("decode_z")), ref.tensor("decode_t3"));
}

TEST(WanVaeParity, SampleWithGeneratorMatchesNoiseDrawnTheSameWay) {
  const WanVae vae = WanVae::load(kFixtures / "vae_qwenimage");
  const Checkpoint ref = Checkpoint::open(kFixtures / "vae_qwenimage" / "reference.safetensors");
  LatentDist d;
  d.mean = ref.tensor("encode_f1_mean");
  d.logvar = ref.tensor("encode_f1_logvar");
  // torch.Generator().manual_seed(7) drew sample_noise in the fixture script.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  EXPECT_CLOSE("sample(generator)", d.sample(gen), ref.tensor("sample"));
}

// bfloat16 weights and activations (as the pipelines may load them): the same
// code path runs, including the norms' float32 step; results stay near the
// float32 reference. A smoke bound, not a parity tolerance: diffusers' own
// bfloat16 run of these cases is off the float32 reference by 0.037 / 0.12
// (wan21 encode / decode) and 0.012 / 0.056 (wan22).
TEST(WanVaeParity, Bfloat16RunsAndStaysNearTheReference) {
  for (const char* name : {"vae_wan21", "vae_wan22"}) {
    const fs::path dir = kFixtures / name;
    const Checkpoint ref = Checkpoint::open(dir / "reference.safetensors");
    WanVae vae = WanVae::load(dir, LoadOptions{at::kBFloat16, test_device()});
    const LatentDist d = vae.encode(ref.tensor("video").slice(2, 0, 5));
    EXPECT_EQ(d.mean.scalar_type(), at::kBFloat16);
    const double enc = max_abs_diff(d.mean, ref.tensor("encode_f5_mean"));
    const double dec = max_abs_diff(vae.decode(ref.tensor("decode_z")), ref.tensor("decode_t3"));
    std::cout << "  " << name << " bf16: encode " << enc << ", decode " << dec << "\n";
    EXPECT_LT(enc, 0.1);
    EXPECT_LT(dec, 0.25);
  }
}

// A batch runs through the same code as one video at a time (the reference
// runs batches whole too): checks the batch dimension through every fold,
// patchify, shortcut and attention reshape.
TEST(WanVaeParity, BatchEqualsOneAtATime) {
  for (const char* name : {"vae_wan21", "vae_wan22"}) {
    const fs::path dir = kFixtures / name;
    const Checkpoint ref = Checkpoint::open(dir / "reference.safetensors");
    const WanVae vae = WanVae::load(dir, LoadOptions{at::kFloat, test_device()});
    const at::Tensor a = ref.tensor("video").slice(2, 0, 5), b = a.flip({-1, -2});
    const LatentDist both = vae.encode(at::cat({a, b}, 0));
    EXPECT_CLOSE(std::string(name) + " batch encode [0]", both.mean.slice(0, 0, 1), vae.encode(a).mean);
    EXPECT_CLOSE(std::string(name) + " batch encode [1]", both.mean.slice(0, 1, 2), vae.encode(b).mean);
    const at::Tensor za = ref.tensor("decode_z"), zb = za.flip({-1});
    const at::Tensor out = vae.decode(at::cat({za, zb}, 0));
    EXPECT_CLOSE(std::string(name) + " batch decode [0]", out.slice(0, 0, 1), vae.decode(za));
    EXPECT_CLOSE(std::string(name) + " batch decode [1]", out.slice(0, 1, 2), vae.decode(zb));
  }
}
