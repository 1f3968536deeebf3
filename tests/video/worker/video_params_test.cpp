// mmgen-video's job params (unit): every bad param is invalid_request naming
// it; frames must be 4n + 1; the image blob is decoded or refused clearly.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mmgen/media/image.hpp"
#include "mmgen/protocol.hpp"
#include "video_encode.hpp"
#include "video_params.hpp"

using namespace mmgen;
using namespace mmgen::video;

namespace {

worker::Input blob(std::string name, std::string_view bytes, std::string mime = "image/png") {
  return worker::Input{std::move(name), std::move(mime), zmq::message_t(bytes.data(), bytes.size())};
}

std::vector<worker::Input> inputs_of(worker::Input in) {
  std::vector<worker::Input> v;
  v.push_back(std::move(in));
  return v;
}

std::string png_bytes(int w, int h, int channels) {
  media::Image img(w, h, channels);
  for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<std::uint8_t>(i * 7);
  const auto png = media::encode_png(img);
  return {reinterpret_cast<const char*>(png.data()), png.size()};
}

// The call fails with invalid_request and a message containing `needle`.
template <class F>
void expect_invalid(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const proto::ProtocolError& e) {
    EXPECT_EQ(e.code(), proto::ErrorCode::invalid_request) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

VideoJob parse(ValueMap m, const std::vector<worker::Input>& in = {}) { return parse_video_job(Params(std::move(m)), in); }

}  // namespace

TEST(VideoParams, MinimalJobLeavesModelDefaultsUnset) {
  const VideoJob j = parse({{"prompt", "a cat surfing"}});
  EXPECT_EQ(j.prompt, "a cat surfing");
  EXPECT_FALSE(j.negative_prompt);  // the service fills the official default
  EXPECT_FALSE(j.frames || j.width || j.height || j.steps || j.cfg || j.cfg2 || j.flow_shift || j.fps);
  EXPECT_FALSE(j.image);
  EXPECT_FALSE(j.seed_given);
  EXPECT_LE(j.seed, 0x7fffffffu);
  EXPECT_EQ(j.crf, 18);
  EXPECT_EQ(j.preset, "medium");
  EXPECT_EQ(j.format, "mp4");
  EXPECT_FALSE(j.save_frames);
  EXPECT_EQ(j.preview_every, 0);
}

TEST(VideoParams, EveryCliParamIsRead) {
  const VideoJob j = parse({{"prompt", "p"}, {"negative_prompt", ""}, {"frames", 9}, {"width", 64}, {"height", 32},
                            {"steps", 3}, {"cfg", 4.0}, {"cfg2", 3}, {"flow_shift", 5.0}, {"fps", 24},
                            {"seed", 42}, {"previews", true}, {"preview_every", 2}, {"save_frames", true},
                            {"crf", 23}, {"preset", "veryfast"}, {"format", "mp4"}});
  ASSERT_TRUE(j.negative_prompt);
  EXPECT_EQ(*j.negative_prompt, "");  // explicit empty: diffusers' "" (no default substituted)
  EXPECT_EQ(*j.frames, 9);
  EXPECT_EQ(*j.width, 64);
  EXPECT_EQ(*j.height, 32);
  EXPECT_EQ(*j.steps, 3);
  EXPECT_DOUBLE_EQ(*j.cfg, 4.0);
  EXPECT_DOUBLE_EQ(*j.cfg2, 3.0);
  EXPECT_DOUBLE_EQ(*j.flow_shift, 5.0);
  EXPECT_EQ(*j.fps, (media::Rational{24, 1}));
  EXPECT_TRUE(j.seed_given);
  EXPECT_EQ(j.seed, 42u);
  EXPECT_EQ(j.preview_every, 2);
  EXPECT_TRUE(j.save_frames);
  EXPECT_EQ(j.crf, 23);
  EXPECT_EQ(j.preset, "veryfast");
}

TEST(VideoParams, PreviewsWithoutEveryMeansEveryStep) {
  EXPECT_EQ(parse({{"prompt", "p"}, {"previews", true}}).preview_every, 1);
  EXPECT_EQ(parse({{"prompt", "p"}, {"previews", true}, {"preview_every", 0}}).preview_every, 1);
  EXPECT_EQ(parse({{"prompt", "p"}, {"preview_every", 4}}).preview_every, 4);
}

TEST(VideoParams, FpsAsIntegerDecimalOrFraction) {
  EXPECT_EQ(*parse({{"prompt", "p"}, {"fps", 16}}).fps, (media::Rational{16, 1}));
  EXPECT_EQ(*parse({{"prompt", "p"}, {"fps", 23.976}}).fps, (media::Rational{2997, 125}));
  EXPECT_EQ(*parse({{"prompt", "p"}, {"fps", "24000/1001"}}).fps, (media::Rational{24000, 1001}));
  for (Value v : {Value(0), Value(241), Value(-3), Value("fast"), Value(true), Value(1e9)}) {
    expect_invalid([&] { parse({{"prompt", "p"}, {"fps", v}}); }, "'fps'");
  }
}

TEST(VideoParams, FramesMustBeFourNPlusOne) {
  for (int ok : {1, 5, 9, 81, 121}) EXPECT_EQ(*parse({{"prompt", "p"}, {"frames", ok}}).frames, ok);
  for (int bad : {2, 4, 8, 80, 82, 120}) {
    expect_invalid([&] { parse({{"prompt", "p"}, {"frames", bad}}); }, "4n + 1");
  }
  expect_invalid([&] { parse({{"prompt", "p"}, {"frames", 80}}); }, "77 and 81");
  expect_invalid([&] { parse({{"prompt", "p"}, {"frames", 0}}); }, "'frames'");
  expect_invalid([&] { parse({{"prompt", "p"}, {"frames", "nine"}}); }, "'frames'");
}

TEST(VideoParams, EachBadParamIsNamed) {
  struct Case {
    const char* key;
    Value value;
  };
  const Case cases[] = {
      {"prompt", 5},           {"prompt", ""},          {"negative_prompt", 1},   {"width", 8},
      {"width", 1.5},          {"height", 9000},        {"height", "tall"},       {"steps", 0},
      {"steps", 1001},         {"cfg", -1.0},           {"cfg", "high"},          {"cfg2", 101.0},
      {"flow_shift", 0.0},     {"flow_shift", "x"},     {"seed", -1},             {"seed", "lucky"},
      {"previews", "yes"},     {"preview_every", -1},   {"save_frames", 1},       {"crf", 52},
      {"crf", -1},             {"preset", "turbo"},     {"preset", 3},            {"format", "webm"},
      {"format", 1},           {"max_sequence_length", 0}, {"max_sequence_length", 513},
  };
  for (const auto& c : cases) {
    ValueMap m{{"prompt", "p"}};
    m[c.key] = c.value;
    expect_invalid([&] { parse(m); }, std::string(c.key) == "prompt" ? "prompt" : "'" + std::string(c.key) + "'");
  }
}

TEST(VideoParams, SaveFramesRefusedBeyondWhatAResultCarries) {
  EXPECT_EQ(max_saved_frames(), std::int64_t(proto::Limits{}.max_blobs) - 1);
  // The published defaults (81 and 121 frames) fit; a result still has a limit.
  EXPECT_TRUE(parse({{"prompt", "p"}, {"frames", 121}, {"save_frames", true}}).save_frames);
  expect_invalid([&] { parse({{"prompt", "p"}, {"frames", 1025}, {"save_frames", true}}); }, "'save_frames'");
  EXPECT_FALSE(parse({{"prompt", "p"}, {"frames", 1025}, {"save_frames", false}}).save_frames);
}

TEST(VideoParams, ImageBlobIsDecodedToRgb) {
  const VideoJob rgba = parse({{"prompt", "p"}}, inputs_of(blob("image", png_bytes(20, 12, 4))));
  ASSERT_TRUE(rgba.image);
  EXPECT_EQ(rgba.image->width, 20);
  EXPECT_EQ(rgba.image->height, 12);
  EXPECT_EQ(rgba.image->channels, 3);  // alpha dropped as PIL convert("RGB") does
  const VideoJob gray = parse({{"prompt", "p"}}, inputs_of(blob("image", png_bytes(8, 8, 1))));
  ASSERT_TRUE(gray.image);
  EXPECT_EQ(gray.image->channels, 3);
}

TEST(VideoParams, ImageBlobErrorsAreClear) {
  expect_invalid([&] { parse({{"prompt", "p"}}, inputs_of(blob("image", "definitely not an image"))); }, "image");
  const std::string png = png_bytes(32, 32, 3);
  expect_invalid([&] { parse({{"prompt", "p"}}, inputs_of(blob("image", png.substr(0, png.size() / 2)))); },
                 "image");
  expect_invalid([&] { parse({{"prompt", "p"}}, inputs_of(blob("image", ""))); }, "image");
  std::vector<worker::Input> two;
  two.push_back(blob("image", png));
  two.push_back(blob("image", png));
  expect_invalid([&] { parse({{"prompt", "p"}}, two); }, "more than one input blob named 'image'");
  expect_invalid([&] { parse({{"prompt", "p"}}, inputs_of(blob("init", png))); }, "unknown input blob 'init'");
}

TEST(VideoParams, FrameBlobNamesMatchTheCli) {
  EXPECT_EQ(frame_blob_name(1), "frame-00001.png");
  EXPECT_EQ(frame_blob_name(81), "frame-00081.png");
}
