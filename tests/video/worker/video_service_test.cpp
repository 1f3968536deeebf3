// mmgen-video's model defaults and latent previews on the tiny fixture
// pipelines (unit, in-process): the published defaults of the family a
// folder holds; previews of the middle latent frame at one pixel per cell.
#include <gtest/gtest.h>

#include <ATen/core/Tensor.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/equal.h>

#include <filesystem>

#include "latent_preview.hpp"
#include "mmgen/diffusion/noise.hpp"
#include "mmgen/video/wan_pipeline.hpp"
#include "video_service.hpp"

using namespace mmgen;
using namespace mmgen::video;
namespace fs = std::filesystem;

namespace {
const fs::path kFixtures = MMGEN_VIDEO_FIXTURES;
}

TEST(VideoService, PublishedDefaultsOfTheLoadedFamily) {
  const WanPipeline ti2v = WanPipeline::load(kFixtures / "pipeline_ti2v");
  const ModelDefaults a = model_defaults(ti2v);
  EXPECT_EQ(a.family, "wan2.2-ti2v-5b");
  EXPECT_EQ(a.fps, (media::Rational{24, 1}));  // wan/configs/wan_ti2v_5B.py sample_fps
  EXPECT_EQ(a.frames, 121);
  EXPECT_EQ(a.width, 1280);
  EXPECT_EQ(a.height, 704);
  EXPECT_EQ(a.steps, 50);
  EXPECT_DOUBLE_EQ(a.cfg, 5.0);
  EXPECT_FALSE(a.cfg2);
  EXPECT_EQ(a.width % ti2v.size_multiple(), 0);
  EXPECT_EQ(a.height % ti2v.size_multiple(), 0);

  const WanPipeline a14b = WanPipeline::load(kFixtures / "pipeline_a14b");
  const ModelDefaults b = model_defaults(a14b);
  EXPECT_EQ(b.family, "wan2.2-t2v-a14b");
  EXPECT_EQ(b.fps, (media::Rational{16, 1}));  // shared_config.py sample_fps
  EXPECT_EQ(b.frames, 81);
  EXPECT_EQ(b.steps, 40);
  EXPECT_DOUBLE_EQ(b.cfg, 4.0);  // sample_guide_scale (low 3.0, high 4.0): transformer is high-noise
  ASSERT_TRUE(b.cfg2);
  EXPECT_DOUBLE_EQ(*b.cfg2, 3.0);
  EXPECT_EQ(b.width % a14b.size_multiple(), 0);
  EXPECT_EQ(b.height % a14b.size_multiple(), 0);
}

TEST(VideoService, PreviewIsTheMiddleLatentFrameOnePixelPerCell) {
  for (const char* name : {"pipeline_ti2v", "pipeline_a14b"}) {
    const WanPipeline pipe = WanPipeline::load(kFixtures / name);
    const VideoLatentPreviewer prev(pipe);
    const std::int64_t C = pipe.latent_channels();
    EXPECT_EQ(prev.weight().size(0), 3);
    EXPECT_EQ(prev.weight().size(1), C);
    at::Tensor x = diffusion::seeded_randn({1, C, 5, 4, 6}, 3, at::kFloat);
    const at::Tensor rgb = prev.render(x);
    ASSERT_EQ(rgb.dim(), 3);
    EXPECT_EQ(rgb.size(0), 4);
    EXPECT_EQ(rgb.size(1), 6);
    EXPECT_EQ(rgb.size(2), 3);
    EXPECT_GE(rgb.min().item<float>(), 0.f);
    EXPECT_LE(rgb.max().item<float>(), 1.f);
    // Only latent frame 5 / 2 = 2 matters.
    at::Tensor y = diffusion::seeded_randn({1, C, 5, 4, 6}, 4, at::kFloat);
    y.select(2, 2).copy_(x.select(2, 2));
    EXPECT_TRUE(at::equal(prev.render(y), rgb)) << name;
    EXPECT_FALSE(prev.render_png(x).empty());
  }
}
