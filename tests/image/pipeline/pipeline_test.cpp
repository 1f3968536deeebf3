// Every Qwen-Image mode, same seed and settings as the diffusers run recorded
// by scripts/fixtures/make_image_pipeline_fixtures.py: output pixels in
// [0, 1] within 2e-3 of diffusers' (before 8-bit quantisation).
#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "mmgen/image/qwenimage_pipeline.hpp"
#include "mmgen/io/load_error.hpp"

namespace {

using mmgen::image::ImageMode;
using mmgen::image::ImageRequest;

const std::filesystem::path kFixture = MMGEN_IMAGE_PIPELINE_FIXTURE;
constexpr double kTolerance = 2e-3;

const mmgen::io::Checkpoint& reference() {
  static const auto ref = mmgen::io::Checkpoint::open(MMGEN_IMAGE_PIPELINE_REFERENCE);
  return ref;
}

const mmgen::image::QwenImagePipeline& pipeline() {
  static const auto p = mmgen::image::QwenImagePipeline::load(kFixture, {});
  return p;
}

std::string utf8(const std::string& name) {
  const at::Tensor t = reference().tensor(name).contiguous();
  const auto* p = static_cast<const char*>(t.data_ptr());
  return std::string(p, p + t.numel());
}

// [H, W] or [H, W, C] uint8 tensor -> Image.
mmgen::media::Image picture(const std::string& name) {
  const at::Tensor t = reference().tensor(name).contiguous();
  const int channels = t.dim() == 3 ? static_cast<int>(t.size(2)) : 1;
  mmgen::media::Image img(static_cast<int>(t.size(1)), static_cast<int>(t.size(0)), channels);
  std::memcpy(img.pixels.data(), t.data_ptr(), img.pixels.size());
  return img;
}

ImageRequest base_request() {
  ImageRequest r;
  r.prompt = utf8("prompt_0_utf8");
  r.width = 64;
  r.height = 48;
  r.steps = 3;
  return r;
}

void expect_close(const at::Tensor& got, const std::string& ref_name) {
  const at::Tensor want = reference().tensor(ref_name);
  ASSERT_EQ(got.sizes(), want.sizes()) << ref_name;
  const double err = (got - want).abs().max().item<double>();
  ::testing::Test::RecordProperty("max_abs_error_" + ref_name, std::to_string(err));
  std::printf("%s: max abs error %.3g\n", ref_name.c_str(), err);
  EXPECT_LE(err, kTolerance) << ref_name << " max abs error " << err;
}

TEST(QwenImagePipeline, TextToImageMatchesDiffusers) {
  ImageRequest r = base_request();
  r.seed = 42;
  expect_close(pipeline().generate(r), "t2i_seed42");
}

TEST(QwenImagePipeline, TrueCfgWithTwoImagesPerPromptMatchesDiffusers) {
  ImageRequest r = base_request();
  r.seed = 7;
  r.negative_prompt = utf8("negative_utf8");
  r.true_cfg_scale = 4.0;
  r.images = 2;
  int steps_seen = 0;
  expect_close(pipeline().generate(r, [&](std::int64_t step, std::int64_t total, const at::Tensor&) {
    EXPECT_EQ(step, ++steps_seen);
    EXPECT_EQ(total, 3);
  }),
               "t2i_cfg4_seed7_x2");
  EXPECT_EQ(steps_seen, 3);
}

TEST(QwenImagePipeline, Img2ImgMatchesDiffusers) {
  ImageRequest r = base_request();
  r.mode = ImageMode::img2img;
  r.init_image = picture("init_u8");
  r.strength = 0.6;
  r.steps = 4;
  r.seed = 3;
  expect_close(pipeline().generate(r), "img2img_s06_steps4_seed3");
}

TEST(QwenImagePipeline, InpaintMatchesDiffusers) {
  ImageRequest r = base_request();
  r.mode = ImageMode::inpaint;
  r.init_image = picture("init_u8");
  r.mask = picture("mask_u8");
  r.strength = 0.9;
  r.steps = 4;
  r.seed = 5;
  expect_close(pipeline().generate(r), "inpaint_s09_steps4_seed5");
}

TEST(QwenImagePipeline, EditMatchesDiffusers) {
  ImageRequest r = base_request();
  r.mode = ImageMode::edit;
  r.prompt = "make it blue";
  r.edit_images = {picture("edit_src_u8")};
  r.negative_prompt = utf8("negative_utf8");
  r.true_cfg_scale = 2.0;
  r.seed = 11;
  expect_close(pipeline().generate(r), "edit_seed11");
}

TEST(QwenImagePipeline, MultiImageEditPlusMatchesDiffusers) {
  ImageRequest r = base_request();
  r.mode = ImageMode::edit;
  r.prompt = "put the fox on the hill";
  r.edit_images = {picture("edit_src_u8"), picture("edit_src2_u8")};
  r.seed = 13;
  expect_close(pipeline().generate(r), "edit_plus_seed13");
}

TEST(QwenImagePipeline, EditDefaultsToTheImageAspectAtOneMegapixel) {
  ImageRequest r = base_request();
  r.mode = ImageMode::edit;
  r.width = 0;
  r.height = 0;
  r.edit_images = {picture("edit_src_u8")};  // 40 x 32
  const ImageRequest v = pipeline().validated(r);
  EXPECT_EQ(v.width, 1152);  // calculate_dimensions(1024², 1.25) = (1152, 928), floored to 16
  EXPECT_EQ(v.height, 928);
  r.edit_images.assign(4, picture("edit_src_u8"));
  EXPECT_THROW(pipeline().validated(r), std::invalid_argument) << "at most 3 images";
}

TEST(QwenImagePipeline, CancellationFromTheCallbackStopsTheJob) {
  ImageRequest r = base_request();
  int calls = 0;
  EXPECT_THROW(pipeline().generate(r,
                                   [&](std::int64_t, std::int64_t, const at::Tensor&) {
                                     ++calls;
                                     throw std::runtime_error("cancelled");
                                   }),
               std::runtime_error);
  EXPECT_EQ(calls, 1);
}

TEST(QwenImagePipeline, RejectsBadParametersBeforeRunning) {
  ImageRequest r = base_request();
  r.width = 60;
  EXPECT_THROW(pipeline().validated(r), std::invalid_argument);
  r = base_request();
  r.steps = 0;
  EXPECT_THROW(pipeline().validated(r), std::invalid_argument);
  r = base_request();
  r.mode = ImageMode::img2img;
  EXPECT_THROW(pipeline().validated(r), std::invalid_argument) << "img2img without an init image";
  r.init_image = picture("init_u8");
  r.strength = 1.5;
  EXPECT_THROW(pipeline().validated(r), std::invalid_argument);
  r.strength = 0.0;
  r.steps = 4;
  EXPECT_THROW(pipeline().validated(r), std::invalid_argument) << "strength 0 leaves no step";
  r.strength = 0.1;
  EXPECT_NO_THROW(pipeline().validated(r)) << "t_start = int(4 - 0.4) = 3 leaves one step";
  r = base_request();
  r.mode = ImageMode::inpaint;
  r.init_image = picture("init_u8");
  r.mask = mmgen::media::Image(10, 10, 1);
  EXPECT_THROW(pipeline().validated(r), std::invalid_argument) << "mask of the wrong size";
}

TEST(QwenImagePipeline, DefaultsToTheReferenceSize) {
  ImageRequest r = base_request();
  r.width = 0;
  r.height = 0;
  const ImageRequest v = pipeline().validated(r);
  EXPECT_EQ(v.width, 1024);
  EXPECT_EQ(v.height, 1024);
}

TEST(QwenImagePipeline, MissingFolderIsALoadError) {
  EXPECT_THROW(mmgen::image::QwenImagePipeline::load(kFixture / "nope", {}), mmgen::io::LoadError);
}

}  // namespace
