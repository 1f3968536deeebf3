// The Wan pipelines end to end, same seed and settings as the diffusers runs
// recorded by scripts/fixtures/make_video_pipeline_fixtures.py: frames in
// [0, 1] within 2e-3 of diffusers' output_type="np" (before 8-bit
// quantisation). TI2V-5B shape: text-to-video with and without CFG (the
// latter with a per-job flow shift) and image-to-video; A14B shape:
// text-to-video across the expert boundary. Plus parameter checks and
// cancellation through the step callback.
#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/isfinite.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/video/wan_pipeline.hpp"

namespace {

using mmgen::video::VideoRequest;
using mmgen::video::WanMode;
using mmgen::video::WanPipeline;

const std::filesystem::path kFixtures = MMGEN_VIDEO_PIPELINE_FIXTURES;
constexpr double kTolerance = 2e-3;

struct Fixture {
  explicit Fixture(const std::string& name)
      : folder(kFixtures / name),
        ref(mmgen::io::Checkpoint::open(folder / "reference.safetensors")),
        pipe(WanPipeline::load(folder)) {}
  std::filesystem::path folder;
  mmgen::io::Checkpoint ref;
  WanPipeline pipe;

  std::string utf8(const std::string& name) const {
    const at::Tensor t = ref.tensor(name).contiguous();
    const auto* p = static_cast<const char*>(t.data_ptr());
    return std::string(p, p + t.numel());
  }

  // The recorded call's settings: [guidance_scale, guidance_scale_2 (nan: none),
  // num_frames, height, width, steps, seed, flow_shift (nan: config's)].
  VideoRequest request(const std::string& c) const {
    const at::Tensor p = ref.tensor(c + "_params").contiguous();
    const auto* v = p.data_ptr<double>();
    VideoRequest r;
    r.prompt = utf8(c + "_prompt");
    r.negative_prompt = utf8(c + "_negative");
    r.guidance_scale = v[0];
    if (!std::isnan(v[1])) r.guidance_scale_2 = v[1];
    r.num_frames = static_cast<std::int64_t>(v[2]);
    r.height = static_cast<std::int64_t>(v[3]);
    r.width = static_cast<std::int64_t>(v[4]);
    r.steps = static_cast<std::int64_t>(v[5]);
    r.seed = static_cast<std::uint64_t>(v[6]);
    if (!std::isnan(v[7])) r.flow_shift = v[7];
    return r;
  }

  mmgen::media::Image image(const std::string& name) const {  // uint8 [h, w, 3]
    const at::Tensor t = ref.tensor(name).contiguous();
    mmgen::media::Image img(static_cast<int>(t.size(1)), static_cast<int>(t.size(0)), 3);
    std::memcpy(img.pixels.data(), t.data_ptr(), img.pixels.size());
    return img;
  }

  void expect_close(const at::Tensor& got, const std::string& c) const {
    const at::Tensor want = ref.tensor(c + "_frames");
    ASSERT_EQ(got.sizes(), want.sizes()) << c;
    const double err = (got - want).abs().max().item<double>();
    ::testing::Test::RecordProperty("max_abs_error_" + c, std::to_string(err));
    std::printf("%s/%s: max abs error %.3g\n", folder.filename().c_str(), c.c_str(), err);
    EXPECT_LE(err, kTolerance) << c << " max abs error " << err;
  }
};

const Fixture& ti2v() {
  static const Fixture f("pipeline_ti2v");
  return f;
}
const Fixture& a14b() {
  static const Fixture f("pipeline_a14b");
  return f;
}
const Fixture& i2v_a14b() {
  static const Fixture f("pipeline_i2v_a14b");
  return f;
}

template <typename F>
std::string invalid_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no std::invalid_argument thrown)";
}

// ------------------------------------------------------------- parity

TEST(WanPipeline, TI2VTextToVideoMatchesDiffusers) {
  const Fixture& f = ti2v();
  std::int64_t calls = 0;
  const at::Tensor frames = f.pipe.generate(f.request("t2v"), [&](std::int64_t step, std::int64_t total,
                                                                 const at::Tensor& x0) {
    ++calls;
    EXPECT_EQ(step, calls);
    EXPECT_EQ(total, 4);
    EXPECT_EQ(x0.sizes(), (at::IntArrayRef{1, 48, 2, 2, 4}));  // 32x64 / 16
  });
  EXPECT_EQ(calls, 4);
  f.expect_close(frames, "t2v");
}

TEST(WanPipeline, TI2VNoCfgWithFlowShiftMatchesDiffusers) {
  const Fixture& f = ti2v();
  f.expect_close(f.pipe.generate(f.request("t2v_nocfg")), "t2v_nocfg");
}

TEST(WanPipeline, TI2VImageToVideoMatchesDiffusers) {
  const Fixture& f = ti2v();
  VideoRequest r = f.request("i2v");
  r.image = f.image("i2v_image");  // 72x40: resized to 64x32 as the reference's processor does
  f.expect_close(f.pipe.generate(r), "i2v");
}

TEST(WanPipeline, A14BTwoExpertsAcrossTheBoundaryMatchesDiffusers) {
  const Fixture& f = a14b();
  ASSERT_TRUE(f.pipe.two_experts());
  ASSERT_EQ(f.pipe.boundary_ratio(), 0.875);
  f.expect_close(f.pipe.generate(f.request("t2v")), "t2v");
}

TEST(WanPipeline, A14BImageToVideoWith36ChannelInputMatchesDiffusers) {
  const Fixture& f = i2v_a14b();
  ASSERT_EQ(f.pipe.boundary_ratio(), 0.9);  // timestep 900 == the boundary: still the high-noise expert
  VideoRequest r = f.request("i2v");
  r.image = f.image("i2v_image");  // 40x24 -> 32x32
  f.expect_close(f.pipe.generate(r), "i2v");
}

void copy_tree(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::remove_all(to);
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
}

std::filesystem::path scratch(const std::string& what) {
  return std::filesystem::temp_directory_path() / ("mmgen_wan_pipeline_" + what + "_" + std::to_string(::getpid()));
}

TEST(WanPipeline, FlowMatchEulerSchedulerSingleFrameMatchesDiffusers) {
  const Fixture& f = ti2v();
  const auto tmp = scratch("fm");
  copy_tree(f.folder, tmp);
  std::ofstream(tmp / "scheduler" / "scheduler_config.json") << f.utf8("t2v_fm_scheduler_config");
  {
    const WanPipeline pipe = WanPipeline::load(tmp);
    at::Tensor x0;
    const at::Tensor frames =
        pipe.generate(f.request("t2v_fm"), [&](std::int64_t, std::int64_t, const at::Tensor& d) { x0 = d; });
    f.expect_close(frames, "t2v_fm");
    // The last Euler step lands on sigma 0, so its x0 estimate is the final
    // latents up to the order of operations.
    const double lat_err = (x0 - f.ref.tensor("t2v_fm_latents")).abs().max().item<double>();
    std::printf("pipeline_ti2v/t2v_fm: final latents max abs error %.3g\n", lat_err);
    EXPECT_LE(lat_err, 1e-4);
  }
  std::filesystem::remove_all(tmp);
}

// bfloat16 transformer and text encoder next to a float32 VAE, as the model
// cards load Wan: runs end to end; close to the float32 reference in the
// mean (no parity claim: diffusers' bfloat16 run is not recorded).
TEST(WanPipeline, Bfloat16TransformerRuns) {
  const Fixture& f = a14b();
  mmgen::video::WanLoadOptions opts;
  opts.model.dtype = at::kBFloat16;
  opts.vae_dtype = at::kFloat;
  const WanPipeline pipe = WanPipeline::load(f.folder, opts);
  EXPECT_EQ(pipe.dtype(), at::kBFloat16);
  const at::Tensor frames = pipe.generate(f.request("t2v"));
  const at::Tensor want = f.ref.tensor("t2v_frames");
  ASSERT_EQ(frames.sizes(), want.sizes());
  EXPECT_EQ(frames.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::isfinite(frames).all().item<bool>());
  const double mean_err = (frames - want).abs().mean().item<double>();
  std::printf("pipeline_a14b/t2v bf16: mean abs difference to float32 diffusers %.3g\n", mean_err);
  EXPECT_LT(mean_err, 0.05);
}

// ------------------------------------------------------------- folder facts

TEST(WanPipeline, ReportsWhatTheFolderCanDo) {
  const WanPipeline& t = ti2v().pipe;
  EXPECT_TRUE(t.supports(WanMode::text_to_video));
  EXPECT_TRUE(t.supports(WanMode::image_to_video));
  EXPECT_TRUE(t.expand_timesteps());
  EXPECT_FALSE(t.two_experts());
  EXPECT_EQ(t.size_multiple(), 32);
  EXPECT_EQ(t.latent_channels(), 48);
  EXPECT_EQ(t.default_fps(), 24);
  const WanPipeline& a = a14b().pipe;
  EXPECT_TRUE(a.supports(WanMode::text_to_video));
  EXPECT_FALSE(a.supports(WanMode::image_to_video));
  EXPECT_EQ(a.size_multiple(), 16);
  EXPECT_EQ(a.vae_scale_factor_temporal(), 4);
  EXPECT_EQ(a.default_fps(), 16);
  const WanPipeline& i = i2v_a14b().pipe;
  EXPECT_FALSE(i.supports(WanMode::text_to_video));
  EXPECT_TRUE(i.supports(WanMode::image_to_video));
  EXPECT_TRUE(i.two_experts());
}

TEST(WanPipeline, PreviewDecodesOneFrame) {
  const Fixture& f = ti2v();
  at::Tensor last;
  VideoRequest r = f.request("t2v");
  r.steps = 1;
  (void)f.pipe.generate(r, [&](std::int64_t, std::int64_t, const at::Tensor& x0) { last = x0; });
  ASSERT_TRUE(last.defined());
  const at::Tensor frame = f.pipe.decode_preview(last, 1);
  EXPECT_EQ(frame.sizes(), (at::IntArrayRef{32, 64, 3}));
  EXPECT_GE(frame.min().item<float>(), 0.0f);
  EXPECT_LE(frame.max().item<float>(), 1.0f);
  EXPECT_NE(invalid_message([&] { (void)f.pipe.decode_preview(last, 2); }).find("latent_frame"), std::string::npos);
}

// ------------------------------------------------------------- bad input

TEST(WanPipeline, RejectsBadParametersNamingThem) {
  const Fixture& f = ti2v();
  const VideoRequest base = f.request("t2v");
  auto msg = [&](auto&& edit) {
    VideoRequest r = base;
    edit(r);
    return invalid_message([&] { (void)f.pipe.generate(r); });
  };
  auto expect_names = [](const std::string& m, const std::string& what) {
    EXPECT_NE(m.find(what), std::string::npos) << "message '" << m << "' does not name " << what;
  };
  expect_names(msg([](VideoRequest& r) { r.num_frames = 6; }), "num_frames");
  expect_names(msg([](VideoRequest& r) { r.num_frames = 6; }), "4n + 1");
  expect_names(msg([](VideoRequest& r) { r.num_frames = 0; }), "num_frames");
  expect_names(msg([](VideoRequest& r) { r.width = 48; }), "width");
  expect_names(msg([](VideoRequest& r) { r.width = 48; }), "32");
  expect_names(msg([](VideoRequest& r) { r.height = -32; }), "height");
  expect_names(msg([](VideoRequest& r) { r.steps = 0; }), "steps");
  expect_names(msg([](VideoRequest& r) { r.guidance_scale = NAN; }), "guidance_scale");
  expect_names(msg([](VideoRequest& r) { r.guidance_scale_2 = 3.0; }), "guidance_scale_2");  // one expert
  expect_names(msg([](VideoRequest& r) { r.flow_shift = 0.0; }), "flow_shift");
  expect_names(msg([](VideoRequest& r) { r.max_sequence_length = 0; }), "max_sequence_length");
  expect_names(msg([](VideoRequest& r) { r.image = mmgen::media::Image(8, 8, 1); }), "image");
  expect_names(msg([](VideoRequest& r) { r.prompt = "\xff\xfe"; }), "UTF-8");

  // The A14B text-to-video folder takes no image; its multiple is 16.
  const Fixture& a = a14b();
  VideoRequest r = a.request("t2v");
  r.image = mmgen::media::Image(8, 8, 3);
  expect_names(invalid_message([&] { (void)a.pipe.generate(r); }), "text-to-video only");
  r = a.request("t2v");
  r.width = 40;
  expect_names(invalid_message([&] { (void)a.pipe.generate(r); }), "multiple of 16");
  r = a.request("t2v");
  r.guidance_scale_2 = -1.0;
  expect_names(invalid_message([&] { (void)a.pipe.generate(r); }), "guidance_scale_2");

  // The I2V-A14B folder needs a first frame.
  const Fixture& i = i2v_a14b();
  expect_names(invalid_message([&] { (void)i.pipe.generate(i.request("i2v")); }), "image-to-video only");
}

TEST(WanPipeline, ValidatedFillsDefaults) {
  const VideoRequest r = a14b().pipe.validated(VideoRequest{});
  EXPECT_EQ(r.width, 832);
  EXPECT_EQ(r.height, 480);
  ASSERT_TRUE(r.guidance_scale_2.has_value());  // two experts: defaults to guidance_scale
  EXPECT_EQ(*r.guidance_scale_2, r.guidance_scale);
  EXPECT_FALSE(ti2v().pipe.validated(VideoRequest{}).guidance_scale_2.has_value());
}

TEST(WanPipeline, CallbackCancelsTheJob) {
  const Fixture& f = a14b();
  struct Cancelled : std::runtime_error {
    Cancelled() : std::runtime_error("cancelled") {}
  };
  std::int64_t seen = 0;
  EXPECT_THROW((void)f.pipe.generate(f.request("t2v"),
                                     [&](std::int64_t step, std::int64_t, const at::Tensor&) {
                                       seen = step;
                                       if (step == 2) throw Cancelled();
                                     }),
               Cancelled);
  EXPECT_EQ(seen, 2);
  // The pipeline keeps no job state: the next job is unaffected.
  f.expect_close(f.pipe.generate(f.request("t2v")), "t2v");
}

// ------------------------------------------------------------- loading

TEST(WanPipeline, LoadErrorsNameTheComponent) {
  const auto tmp = scratch("load");
  copy_tree(a14b().folder, tmp);
  auto load_message = [&] {
    try {
      (void)WanPipeline::load(tmp);
    } catch (const mmgen::io::LoadError& e) {
      std::printf("load error: %s\n", e.what());
      return std::string(e.what());
    }
    return std::string("(no LoadError thrown)");
  };

  std::filesystem::remove(tmp / "transformer_2" / "diffusion_pytorch_model.safetensors");
  EXPECT_NE(load_message().find("transformer_2"), std::string::npos) << load_message();
  copy_tree(a14b().folder, tmp);

  std::filesystem::remove(tmp / "scheduler" / "scheduler_config.json");
  EXPECT_NE(load_message().find("scheduler"), std::string::npos) << load_message();
  copy_tree(a14b().folder, tmp);

  {  // A Wan 2.1 I2V folder with a CLIP image encoder: refused clearly.
    std::ifstream in(tmp / "model_index.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    text.insert(text.find('{') + 1, "\n  \"image_encoder\": [\"transformers\", \"CLIPVisionModel\"],");
    std::ofstream(tmp / "model_index.json") << text;
    const std::string m = load_message();
    EXPECT_NE(m.find("image_encoder"), std::string::npos) << m;
    EXPECT_NE(m.find("not supported"), std::string::npos) << m;
  }
  copy_tree(a14b().folder, tmp);

  std::filesystem::remove_all(tmp / "tokenizer");
  EXPECT_NE(load_message().find("text_encoder"), std::string::npos) << load_message();
  std::filesystem::remove_all(tmp);
}

}  // namespace
