// The prompt encoder reproduces QwenImagePipeline.encode_prompt (recorded by
// scripts/fixtures/make_image_pipeline_fixtures.py) within 1e-4.
#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/equal.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "mmgen/image/prompt_encoder.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/media/resize.hpp"

namespace {

const std::filesystem::path kFixture = MMGEN_IMAGE_PIPELINE_FIXTURE;

const mmgen::io::Checkpoint& reference() {
  static const auto ref = mmgen::io::Checkpoint::open(MMGEN_IMAGE_PIPELINE_REFERENCE);
  return ref;
}

std::string utf8(const std::string& name) {
  const at::Tensor t = reference().tensor(name).contiguous();
  const auto* p = static_cast<const char*>(t.data_ptr());
  return std::string(p, p + t.numel());
}

const mmgen::image::PromptEncoder& encoder() {
  static const auto enc = mmgen::image::PromptEncoder::load(kFixture, {});
  return enc;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(PromptEncoder, MatchesDiffusersOnAPaddedBatch) {
  const auto out = encoder().encode({utf8("prompt_0_utf8"), utf8("prompt_1_utf8")});
  const at::Tensor want = reference().tensor("prompt_embeds");
  ASSERT_EQ(out.embeds.sizes(), want.sizes());
  EXPECT_LE(max_abs(out.embeds, want), 1e-4);
  ASSERT_TRUE(out.mask.defined()) << "the shorter prompt is padded, so a mask is expected";
  EXPECT_TRUE(at::equal(out.mask, reference().tensor("prompt_embeds_mask")));
}

TEST(PromptEncoder, SinglePromptHasNoMaskAndMatchesItsRow) {
  const auto out = encoder().encode({utf8("prompt_1_utf8")});
  EXPECT_FALSE(out.mask.defined()) << "an unpadded batch passes no mask, as the reference does";
  const at::Tensor want = reference().tensor("prompt_embeds")[1];
  ASSERT_EQ(out.embeds.size(1), want.size(0));
  EXPECT_LE(max_abs(out.embeds[0], want), 1e-4);
}

TEST(PromptEncoder, CutsToMaxSequenceLengthAndRepeatsPerImage) {
  const auto out = encoder().encode({utf8("prompt_0_utf8"), utf8("prompt_1_utf8")}, 10, 2);
  ASSERT_EQ(out.embeds.size(0), 4);
  ASSERT_EQ(out.embeds.size(1), 10);
  const at::Tensor want = reference().tensor("prompt_embeds").slice(1, 0, 10);
  EXPECT_LE(max_abs(out.embeds[0], want[0]), 1e-4);
  EXPECT_LE(max_abs(out.embeds[1], want[0]), 1e-4);
  EXPECT_LE(max_abs(out.embeds[2], want[1]), 1e-4);
  EXPECT_LE(max_abs(out.embeds[3], want[1]), 1e-4);
  EXPECT_FALSE(out.mask.defined()) << "both prompts are longer than 10 tokens";
}

TEST(PromptEncoder, TruncatesLikeTheReferenceTokenizer) {
  std::string long_prompt;
  for (int i = 0; i < 400; ++i) long_prompt += "fox dog ";
  const auto ids = encoder().token_ids(long_prompt, mmgen::image::kTextToImageTemplate);
  EXPECT_EQ(static_cast<std::int64_t>(ids.size()), mmgen::image::PromptEncoder::kTokenizerMaxLength + 34);
}

// [H, W, 3] uint8 tensor -> Image.
mmgen::media::Image picture(const std::string& name) {
  const at::Tensor t = reference().tensor(name).contiguous();
  mmgen::media::Image img(static_cast<int>(t.size(1)), static_cast<int>(t.size(0)), static_cast<int>(t.size(2)));
  std::memcpy(img.pixels.data(), t.data_ptr(), img.pixels.size());
  return img;
}

TEST(PromptEncoder, EditPromptWithAnImageMatchesDiffusers) {
  ASSERT_TRUE(encoder().has_vision()) << "the fixture has processor/ and a vision tower";
  // The fixture encoded the source image resized (PIL LANCZOS) to 1120 x 896.
  const auto img = mmgen::media::resize(picture("edit_src_u8"), 1120, 896, mmgen::media::ResampleFilter::lanczos);
  const auto out = encoder().encode_with_images("make it blue", {img}, mmgen::image::kEditTemplate);
  const at::Tensor want = reference().tensor("edit_prompt_embeds");
  ASSERT_EQ(out.embeds.sizes(), want.sizes());
  const double err = max_abs(out.embeds, want);
  std::printf("edit prompt embeddings: max abs error %.3g\n", err);
  EXPECT_LE(err, 1e-4);
  EXPECT_FALSE(out.mask.defined());
}

TEST(PromptEncoder, EditPromptChecksPlaceholdersAgainstImages) {
  const auto img = picture("edit_src_u8");
  EXPECT_THROW(encoder().encode_with_images("x", {img, img}, mmgen::image::kEditTemplate), std::invalid_argument)
      << "two images, one placeholder";
  EXPECT_THROW(encoder().encode_with_images("x", {}, mmgen::image::kEditTemplate), std::invalid_argument);
}

TEST(PromptEncoder, RejectsBadParameters) {
  EXPECT_THROW(encoder().encode({"x"}, 0), std::invalid_argument);
  EXPECT_THROW(encoder().encode({"x"}, 1025), std::invalid_argument);
  EXPECT_THROW(encoder().encode({"x"}, 512, 0), std::invalid_argument);
  EXPECT_THROW(encoder().encode({}), std::invalid_argument);
}

TEST(PromptEncoder, MissingComponentIsALoadErrorNamingIt) {
  try {
    mmgen::image::PromptEncoder::load(kFixture / "transformer", {});
    FAIL() << "expected a LoadError";
  } catch (const mmgen::io::LoadError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer"), std::string::npos) << e.what();
  }
}

}  // namespace
