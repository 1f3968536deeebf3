// The Qwen2-VL image processor and the edit pipelines' condition-image resize
// against transformers / diffusers (tests/fixtures/image/qwen_vision, made by
// scripts/fixtures/make_qwen_vision_fixtures.py): pixel_values within 1e-5
// (the PIL-exact resize makes them match to the last bit in practice),
// grid_thw, smart_resize and calculate_dimensions identical; bad images and
// options give typed errors.
#include <ATen/core/Tensor.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "mmgen/image/qwen_image_processor.hpp"
#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/protocol.hpp"

namespace fs = std::filesystem;
using mmgen::image::ProcessedImages;
using mmgen::image::QwenImageProcessorOptions;
namespace media = mmgen::media;
namespace vis = mmgen::image;

namespace {

const fs::path kFixture = MMGEN_QWEN_VISION_FIXTURE;
constexpr double kTol = 1e-5;

const mmgen::io::Checkpoint& reference() {
  static const mmgen::io::Checkpoint ref = mmgen::io::Checkpoint::open(kFixture / "reference.safetensors");
  return ref;
}

at::Tensor expected(const std::string& name) { return reference().tensor(name); }

// The stored [H, W, 3] uint8 image as a packed Image.
media::Image ref_image(const std::string& name) {
  at::Tensor t = expected(name).contiguous();
  media::Image im(int(t.size(1)), int(t.size(0)), int(t.size(2)));
  std::copy_n(t.data_ptr<std::uint8_t>(), im.pixels.size(), im.pixels.data());
  return im;
}

QwenImageProcessorOptions published_options() {
  return QwenImageProcessorOptions::load(kFixture / "processor");
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

void expect_close(const ProcessedImages& got, const at::Tensor& pv, const at::Tensor& thw, const std::string& what) {
  ASSERT_EQ(got.grid_thw.sizes(), thw.sizes()) << what;
  EXPECT_TRUE(at::equal(got.grid_thw, thw)) << what << ": grid_thw differs";
  ASSERT_EQ(got.pixel_values.sizes(), pv.sizes()) << what;
  const double err = max_abs_diff(got.pixel_values, pv);
  std::cout << "[parity] " << what << " pixel_values max|diff| = " << err << "\n";
  EXPECT_LE(err, kTol) << what;
}

template <class F>
std::string protocol_error_of(F&& f) {
  try {
    f();
  } catch (const mmgen::proto::ProtocolError& e) {
    EXPECT_EQ(e.code(), mmgen::proto::ErrorCode::invalid_request);
    return e.what();
  }
  ADD_FAILURE() << "no ProtocolError";
  return {};
}

}  // namespace

TEST(QwenImageProcessor, LoadsThePublishedPreprocessorConfig) {
  const QwenImageProcessorOptions o = published_options();
  EXPECT_EQ(o.min_pixels, 3136);
  EXPECT_EQ(o.max_pixels, 12845056);
  EXPECT_EQ(o.patch_size, 14);
  EXPECT_EQ(o.temporal_patch_size, 2);
  EXPECT_EQ(o.merge_size, 2);
  EXPECT_EQ(o.resample, media::ResampleFilter::bicubic);
  EXPECT_DOUBLE_EQ(o.image_mean[1], 0.4578275);
  EXPECT_DOUBLE_EQ(o.image_std[2], 0.27577711);
  EXPECT_EQ(o.patch_dim(), 1176);
}

TEST(QwenImageProcessor, SmartResizeMatchesTheReference) {
  const at::Tensor cases = expected("smart_resize_cases").contiguous();  // [K, 6]
  const auto* c = cases.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < cases.size(0); ++i, c += 6) {
    const auto [h, w] = vis::smart_resize(c[0], c[1], 28, c[2], c[3]);
    EXPECT_EQ(h, c[4]) << "case " << i << ": " << c[0] << "x" << c[1];
    EXPECT_EQ(w, c[5]) << "case " << i << ": " << c[0] << "x" << c[1];
  }
}

TEST(QwenImageProcessor, CalculateDimensionsMatchesTheReference) {
  const at::Tensor cases = expected("calc_dim_cases").contiguous();  // [K, 5]: area, w, h -> w', h'
  const auto* c = cases.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < cases.size(0); ++i, c += 5) {
    const auto [w, h] = vis::calculate_dimensions(double(c[0]), double(c[1]) / double(c[2]));
    EXPECT_EQ(w, c[3]) << "case " << i;
    EXPECT_EQ(h, c[4]) << "case " << i;
  }
  // 6400 px at 1:1 is 80 x 80 = 2.5 x 32: Python rounds half to even, so 64.
  EXPECT_EQ(vis::calculate_dimensions(6400, 1.0), (std::pair<std::int64_t, std::int64_t>(64, 64)));
}

TEST(QwenImageProcessor, PixelValuesMatchTransformers) {
  const QwenImageProcessorOptions o = published_options();
  // a and b in one call: the reference's two-image output, rows concatenated.
  const media::Image a = ref_image("image_a"), b = ref_image("image_b");
  const std::vector<media::ImageView> ab = {a, b};
  const ProcessedImages both = vis::preprocess(ab, o);
  expect_close(both, expected("tower_pixel_values"), expected("tower_grid_thw"), "images a+b");
  EXPECT_EQ(vis::image_token_counts(both.grid_thw, o.merge_size), (std::vector<std::int64_t>{6, 8}));

  // c: below min_pixels (scaled up); d: above a lowered max_pixels (scaled down, antialiased).
  for (const std::string n : {"c", "d"}) {
    QwenImageProcessorOptions on = o;
    const at::Tensor limits = expected("proc_" + n + "_options");
    on.min_pixels = limits[0].item<std::int64_t>();
    on.max_pixels = limits[1].item<std::int64_t>();
    const media::Image im = ref_image("image_" + n);
    expect_close(vis::preprocess(media::ImageView(im), on), expected("proc_" + n + "_pixel_values"),
                 expected("proc_" + n + "_grid_thw"), "image " + n);
  }
}

TEST(QwenImageProcessor, TensorAndMatInputsGiveTheSameResult) {
  const QwenImageProcessorOptions o = published_options();
  const at::Tensor img = expected("image_a");  // [H, W, 3] uint8
  const ProcessedImages from_tensor = vis::preprocess(img, o);
  const at::Tensor want = expected("tower_pixel_values").narrow(0, 0, 24);
  EXPECT_LE(max_abs_diff(from_tensor.pixel_values, want), kTol);

  const at::Tensor c = img.contiguous();
  // A view inside a wider buffer: the row stride must be honoured.
  cv::Mat wide(int(c.size(0)), int(c.size(1)) + 5, CV_8UC3, cv::Scalar(7, 7, 7));
  for (int y = 0; y < wide.rows; ++y) {
    std::copy_n(c.data_ptr<std::uint8_t>() + std::size_t(y) * std::size_t(c.size(1)) * 3, c.size(1) * 3,
                wide.ptr<std::uint8_t>(y));
  }
  const cv::Mat roi = wide(cv::Rect(0, 0, int(c.size(1)), int(c.size(0))));
  const ProcessedImages from_mat = vis::preprocess(roi, o);
  EXPECT_TRUE(at::equal(from_mat.pixel_values, from_tensor.pixel_values));
  EXPECT_TRUE(at::equal(from_mat.grid_thw, from_tensor.grid_thw));
}

TEST(QwenImageProcessor, EditPipelineConditionImageMatchesDiffusers) {
  // VaeImageProcessor.resize (PIL LANCZOS) to calculate_dimensions(area, w / h), then the processor.
  const media::Image src = ref_image("image_cond");
  const media::Image cond = vis::condition_image(src, expected("cond_target_area")[0].item<std::int64_t>());
  const media::Image want = ref_image("cond_image");
  ASSERT_EQ(cond.width, want.width);
  ASSERT_EQ(cond.height, want.height);
  EXPECT_EQ(cond.pixels, want.pixels) << "LANCZOS resize differs from PIL";
  expect_close(vis::preprocess(media::ImageView(cond), published_options()), expected("proc_cond_pixel_values"),
               expected("proc_cond_grid_thw"), "condition image");
}

TEST(QwenImageProcessor, GrayAndRgbaAreConvertedAsPilDoes) {
  const QwenImageProcessorOptions o = published_options();
  // Gray: replicated into three equal channels.
  media::Image gray(56, 56, 1);
  for (std::size_t i = 0; i < gray.pixels.size(); ++i) gray.pixels[i] = std::uint8_t(i * 37 % 256);
  media::Image rgb(56, 56, 3);
  for (std::size_t i = 0; i < gray.pixels.size(); ++i) {
    rgb.pixels[3 * i] = rgb.pixels[3 * i + 1] = rgb.pixels[3 * i + 2] = gray.pixels[i];
  }
  EXPECT_TRUE(at::equal(vis::preprocess(media::ImageView(gray), o).pixel_values,
                        vis::preprocess(media::ImageView(rgb), o).pixel_values));
  // RGBA: opaque pixels keep their colour, transparent ones become white, and
  // alpha 128 over white is Pillow's fixed-point blend (computed by hand:
  // (200 * 128 + 255 * 127) / 255 -> 227).
  media::Image rgba(56, 56, 4, 0);
  media::Image expect(56, 56, 3, 255);
  for (int i = 0; i < 56 * 56; ++i) {
    const int kind = i % 3;
    rgba.pixels[std::size_t(4 * i)] = 200;
    rgba.pixels[std::size_t(4 * i + 1)] = 10;
    rgba.pixels[std::size_t(4 * i + 2)] = 90;
    rgba.pixels[std::size_t(4 * i + 3)] = kind == 0 ? 255 : kind == 1 ? 0 : 128;
    if (kind == 0) {
      expect.pixels[std::size_t(3 * i)] = 200, expect.pixels[std::size_t(3 * i + 1)] = 10,
      expect.pixels[std::size_t(3 * i + 2)] = 90;
    } else if (kind == 2) {
      expect.pixels[std::size_t(3 * i)] = 227, expect.pixels[std::size_t(3 * i + 1)] = 132,
      expect.pixels[std::size_t(3 * i + 2)] = 172;
    }
  }
  EXPECT_TRUE(at::equal(vis::preprocess(media::ImageView(rgba), o).pixel_values,
                        vis::preprocess(media::ImageView(expect), o).pixel_values));
}

TEST(QwenImageProcessor, BadImagesAndOptionsAreTypedErrors) {
  const QwenImageProcessorOptions o = published_options();
  EXPECT_NE(protocol_error_of([&] { vis::preprocess(std::span<const media::ImageView>(), o); }).find("no images"),
            std::string::npos);
  media::Image two(30, 30, 2);
  EXPECT_NE(protocol_error_of([&] { vis::preprocess(media::ImageView(two), o); }).find("2 channels"),
            std::string::npos);
  media::Image empty;
  EXPECT_NE(protocol_error_of([&] { vis::preprocess(media::ImageView(empty), o); }).find("empty"),
            std::string::npos);
  media::Image strip(201, 1, 3);  // aspect ratio 201
  EXPECT_NE(protocol_error_of([&] { vis::preprocess(media::ImageView(strip), o); }).find("aspect ratio"),
            std::string::npos);
  const at::Tensor f = at::zeros({20, 20, 3});
  EXPECT_NE(protocol_error_of([&] { vis::preprocess(f, o); }).find("uint8 [H, W, C]"), std::string::npos);
  cv::Mat bgr16(20, 20, CV_16UC3);
  EXPECT_NE(protocol_error_of([&] { vis::preprocess(bgr16, o); }).find("CV_8UC"), std::string::npos);
  QwenImageProcessorOptions no_resize = o;
  no_resize.do_resize = false;
  media::Image odd(60, 56, 3);
  EXPECT_NE(protocol_error_of([&] { vis::preprocess(media::ImageView(odd), no_resize); }).find("multiples of 28"),
            std::string::npos);
  QwenImageProcessorOptions bad = o;
  bad.min_pixels = bad.max_pixels + 1;
  EXPECT_THROW(vis::preprocess(media::ImageView(odd), bad), std::invalid_argument);
  bad = o;
  bad.image_std[0] = 0;
  EXPECT_THROW(vis::preprocess(media::ImageView(odd), bad), std::invalid_argument);
  EXPECT_NE(protocol_error_of([] { vis::calculate_dimensions(1024, 1e-6); }).find("side of 0"), std::string::npos);
}

TEST(QwenImageProcessor, BadPreprocessorConfigIsALoadError) {
  const fs::path dir = fs::temp_directory_path() / ("mmgen_qwen_proc_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "preprocessor_config.json") << R"({"min_pixels": 3136, "max_pixels": 100, "resample": 3})";
  try {
    QwenImageProcessorOptions::load(dir);
    ADD_FAILURE() << "min_pixels > max_pixels accepted";
  } catch (const mmgen::io::LoadError& e) {
    EXPECT_EQ(e.kind(), mmgen::io::LoadErrorKind::bad_config);
    EXPECT_NE(std::string(e.what()).find("preprocessor_config.json"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "preprocessor_config.json") << R"({"resample": 9})";
  try {
    QwenImageProcessorOptions::load(dir);
    ADD_FAILURE() << "resample 9 accepted";
  } catch (const mmgen::io::LoadError& e) {
    EXPECT_NE(std::string(e.what()).find("resample"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "preprocessor_config.json") << R"({"image_mean": [0.5, 0.5]})";
  EXPECT_THROW(QwenImageProcessorOptions::load(dir), mmgen::io::LoadError);
  // The older spelling size {"min_pixels", "max_pixels"} without top-level keys.
  std::ofstream(dir / "preprocessor_config.json") << R"({"size": {"min_pixels": 1000, "max_pixels": 2000}})";
  const QwenImageProcessorOptions o = QwenImageProcessorOptions::load(dir);
  EXPECT_EQ(o.min_pixels, 1000);
  EXPECT_EQ(o.max_pixels, 2000);
  fs::remove_all(dir);
}
