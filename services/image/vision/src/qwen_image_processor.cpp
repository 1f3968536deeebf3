// The Qwen2-VL image processor (qwen_image_processor.hpp). Read beside
// transformers' image_processing_pil_qwen2_vl.py, image_transforms.py
// (rescale, normalize, resize through PIL), image_processing_backends.py
// (PilBackend) and diffusers' pipeline_qwenimage_edit(_plus).py.
#include "mmgen/image/qwen_image_processor.hpp"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/ScalarType.h>

#include <opencv2/core/mat.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::image {

namespace {

[[noreturn]] void bad_input(const std::string& what) {
  throw proto::ProtocolError(proto::ErrorCode::invalid_request, "image processor: " + what);
}

// Python's round() on a float: to nearest, ties to even (the default FP
// rounding mode, which nearbyint follows).
double py_round(double x) { return std::nearbyint(x); }

std::string dims(std::int64_t w, std::int64_t h) { return std::to_string(w) + "x" + std::to_string(h); }

// PIL's convert("RGB") for gray, Image.alpha_composite over opaque white then
// convert("RGB") for RGBA (Pillow's AlphaComposite.c with the destination
// white and opaque: 7-bit fixed-point coefficients, divide-by-255 by shifts).
media::Image to_rgb(const media::ImageView& src) {
  media::Image out(src.width, src.height, 3);
  for (int y = 0; y < src.height; ++y) {
    const std::uint8_t* s = src.row(y);
    std::uint8_t* d = out.row(y);
    for (int x = 0; x < src.width; ++x) {
      if (src.channels == 1) {
        d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = s[x];
        continue;
      }
      const std::uint32_t a = s[4 * x + 3];
      for (int c = 0; c < 3; ++c) {
        if (a == 0) {
          d[3 * x + c] = 255;
          continue;
        }
        const std::uint32_t tmp = (s[4 * x + c] * a + 255u * (255u - a)) * 128u + (0x80u << 7);
        d[3 * x + c] = std::uint8_t(((((tmp >> 8) + tmp) >> 8)) >> 7);
      }
    }
  }
  return out;
}

void check_view(const media::ImageView& im, std::size_t i) {
  const std::string which = "image " + std::to_string(i);
  if (!im.data || im.width <= 0 || im.height <= 0) bad_input(which + " is empty");
  if (im.channels != 1 && im.channels != 3 && im.channels != 4) {
    bad_input(which + " has " + std::to_string(im.channels) + " channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)");
  }
  if (im.stride < std::size_t(im.width) * std::size_t(im.channels)) bad_input(which + " has a row stride too small");
}

media::ResampleFilter filter_from_pil_code(const io::HfConfig& cfg, std::int64_t code) {
  switch (code) {  // PIL.Image.Resampling values
    case 0: return media::ResampleFilter::nearest;
    case 1: return media::ResampleFilter::lanczos;
    case 2: return media::ResampleFilter::bilinear;
    case 3: return media::ResampleFilter::bicubic;
    case 4: return media::ResampleFilter::box;
    case 5: return media::ResampleFilter::hamming;
    default: cfg.fail("resample", "must be a PIL resampling code 0..5, got " + std::to_string(code));
  }
}

std::array<double, 3> read_triple(const io::HfConfig& cfg, std::string_view key, std::array<double, 3> def) {
  const Value* v = cfg.find(key);
  if (!v) return def;
  if (v->is_number()) return {v->as_double(), v->as_double(), v->as_double()};  // one value for every channel
  if (!v->is_array() || v->as_array().size() != 3) cfg.fail(key, "must be a number or a list of 3 numbers");
  std::array<double, 3> out{};
  for (std::size_t i = 0; i < 3; ++i) {
    const Value& e = v->as_array()[i];
    if (!e.is_number()) cfg.fail(key, "must hold numbers");
    out[i] = e.as_double();
  }
  return out;
}

}  // namespace

// ============================== options ==============================

void QwenImageProcessorOptions::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("Qwen2-VL image processor options: " + what);
  };
  need(patch_size > 0 && temporal_patch_size > 0 && merge_size > 0,
       "patch_size, temporal_patch_size and merge_size must be positive");
  need(min_pixels > 0 && max_pixels > 0, "min_pixels and max_pixels must be positive");
  need(min_pixels <= max_pixels, "min_pixels (" + std::to_string(min_pixels) + ") exceeds max_pixels (" +
                                     std::to_string(max_pixels) + ")");
  need(std::isfinite(rescale_factor), "rescale_factor must be finite");
  for (std::size_t c = 0; c < 3; ++c) {
    need(std::isfinite(image_mean[c]) && std::isfinite(image_std[c]) && image_std[c] != 0.0,
         "image_mean must be finite and image_std finite and non-zero");
  }
}

QwenImageProcessorOptions QwenImageProcessorOptions::load(const std::filesystem::path& path) {
  std::error_code ec;
  const std::filesystem::path file =
      std::filesystem::is_regular_file(path, ec) ? path : path / "preprocessor_config.json";
  const io::HfConfig cfg = io::HfConfig::load(file);
  QwenImageProcessorOptions o;
  if (std::optional<io::HfConfig> size = cfg.sub("size")) {
    o.min_pixels = size->get_int("shortest_edge", size->get_int("min_pixels", o.min_pixels));
    o.max_pixels = size->get_int("longest_edge", size->get_int("max_pixels", o.max_pixels));
  }
  o.min_pixels = cfg.get_int("min_pixels", o.min_pixels);
  o.max_pixels = cfg.get_int("max_pixels", o.max_pixels);
  o.patch_size = cfg.get_int("patch_size", o.patch_size);
  o.temporal_patch_size = cfg.get_int("temporal_patch_size", o.temporal_patch_size);
  o.merge_size = cfg.get_int("merge_size", o.merge_size);
  o.do_resize = cfg.get_bool("do_resize", o.do_resize);
  o.do_rescale = cfg.get_bool("do_rescale", o.do_rescale);
  o.do_normalize = cfg.get_bool("do_normalize", o.do_normalize);
  o.rescale_factor = cfg.get_double("rescale_factor", o.rescale_factor);
  o.image_mean = read_triple(cfg, "image_mean", o.image_mean);
  o.image_std = read_triple(cfg, "image_std", o.image_std);
  if (const std::optional<std::int64_t> r = cfg.opt_int("resample")) o.resample = filter_from_pil_code(cfg, *r);
  try {
    o.validate();
  } catch (const std::invalid_argument& e) {
    throw io::LoadError(io::LoadErrorKind::bad_config, cfg.source() + ": " + e.what());
  }
  return o;
}

std::vector<std::int64_t> image_token_counts(const at::Tensor& grid_thw, std::int64_t merge_size) {
  if (!grid_thw.defined() || grid_thw.dim() != 2 || grid_thw.size(1) != 3 ||
      !at::isIntegralType(grid_thw.scalar_type(), false)) {
    bad_input("grid_thw must be [num_images, 3] integers");
  }
  if (merge_size <= 0) throw std::invalid_argument("image_token_counts: merge_size must be positive");
  const at::Tensor g = grid_thw.to(at::kCPU, at::kLong).contiguous();
  const auto* p = g.data_ptr<std::int64_t>();
  std::vector<std::int64_t> out;
  for (std::int64_t i = 0; i < g.size(0); ++i) {
    out.push_back(p[3 * i] * p[3 * i + 1] * p[3 * i + 2] / (merge_size * merge_size));
  }
  return out;
}

// ============================== resizing ==============================

std::pair<std::int64_t, std::int64_t> smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor,
                                                   std::int64_t min_pixels, std::int64_t max_pixels) {
  if (height < 1 || width < 1) bad_input("image size " + dims(width, height) + " is empty");
  if (factor < 1) throw std::invalid_argument("smart_resize: factor must be positive");
  const double h = double(height), w = double(width), f = double(factor);
  if (std::max(h, w) / std::min(h, w) > 200.0) {
    bad_input("image " + dims(width, height) + ": absolute aspect ratio must be at most 200");
  }
  double h_bar = py_round(h / f) * f;
  double w_bar = py_round(w / f) * f;
  if (h_bar * w_bar > double(max_pixels)) {
    const double beta = std::sqrt((h * w) / double(max_pixels));
    h_bar = std::max(f, std::floor(h / beta / f) * f);
    w_bar = std::max(f, std::floor(w / beta / f) * f);
  } else if (h_bar * w_bar < double(min_pixels)) {
    const double beta = std::sqrt(double(min_pixels) / (h * w));
    h_bar = std::ceil(h * beta / f) * f;
    w_bar = std::ceil(w * beta / f) * f;
  }
  return {std::int64_t(h_bar), std::int64_t(w_bar)};
}

std::pair<std::int64_t, std::int64_t> calculate_dimensions(double target_area, double ratio) {
  if (!(target_area > 0) || !(ratio > 0) || !std::isfinite(target_area) || !std::isfinite(ratio)) {
    bad_input("condition image: target area and aspect ratio must be positive");
  }
  double width = std::sqrt(target_area * ratio);
  double height = width / ratio;
  width = py_round(width / 32) * 32;
  height = py_round(height / 32) * 32;
  if (width < 1 || height < 1) {
    bad_input("condition image: aspect ratio " + std::to_string(ratio) + " leaves a side of 0 px at area " +
              std::to_string(std::int64_t(target_area)));
  }
  return {std::int64_t(width), std::int64_t(height)};
}

media::Image condition_image(const media::ImageView& image, std::int64_t target_area) {
  check_view(image, 0);
  const auto [w, h] = calculate_dimensions(double(target_area), double(image.width) / double(image.height));
  if (w > (1 << 15) || h > (1 << 15)) bad_input("condition image: " + dims(w, h) + " is too large");
  return media::resize(image, int(w), int(h), media::ResampleFilter::lanczos);
}

// ============================== preprocess ==============================

ProcessedImages preprocess(std::span<const media::ImageView> images, const QwenImageProcessorOptions& o) {
  o.validate();
  if (images.empty()) bad_input("no images");
  const std::int64_t P = o.patch_size, T = o.temporal_patch_size, M = o.merge_size;

  // Resize first so the output can be sized once.
  std::vector<media::Image> rgb;
  rgb.reserve(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    const media::ImageView& src = images[i];
    check_view(src, i);
    media::Image im;
    if (src.channels == 3) {
      im = media::Image(src.width, src.height, 3);
      for (int y = 0; y < src.height; ++y) std::copy_n(src.row(y), im.row_bytes(), im.row(y));
    } else {
      im = to_rgb(src);
    }
    if (o.do_resize) {
      const auto [rh, rw] = smart_resize(im.height, im.width, o.factor(), o.min_pixels, o.max_pixels);
      if (rh > (1 << 15) || rw > (1 << 15)) bad_input("image " + std::to_string(i) + " resizes to " + dims(rw, rh));
      im = media::resize(im, int(rw), int(rh), o.resample);
    } else if (im.height % o.factor() != 0 || im.width % o.factor() != 0) {
      bad_input("image " + std::to_string(i) + " is " + dims(im.width, im.height) +
                "; without resizing both sides must be multiples of " + std::to_string(o.factor()));
    }
    rgb.push_back(std::move(im));
  }

  std::int64_t rows = 0;
  for (const auto& im : rgb) rows += (im.height / P) * (im.width / P);
  const std::int64_t F = o.patch_dim();
  at::Tensor pixel_values = at::empty({rows, F}, at::TensorOptions().dtype(at::kFloat));
  at::Tensor grid = at::empty({std::int64_t(rgb.size()), 3}, at::TensorOptions().dtype(at::kLong));
  float* out = pixel_values.data_ptr<float>();
  auto* g = grid.data_ptr<std::int64_t>();

  // Per-channel lookup of the 256 possible values: float(double(v) * factor)
  // (numpy's rescale upcasts to float64 and casts the product down), then
  // (x - mean) / std with mean and std as float32, in float32.
  std::array<std::array<float, 256>, 3> lut{};
  for (int c = 0; c < 3; ++c) {
    const float mean = float(o.image_mean[std::size_t(c)]), std_ = float(o.image_std[std::size_t(c)]);
    for (int v = 0; v < 256; ++v) {
      float x = o.do_rescale ? float(double(v) * o.rescale_factor) : float(v);
      if (o.do_normalize) x = (x - mean) / std_;
      lut[std::size_t(c)][std::size_t(v)] = x;
    }
  }

  std::int64_t row = 0;
  for (std::size_t i = 0; i < rgb.size(); ++i) {
    const media::Image& im = rgb[i];
    const std::int64_t gh = im.height / P, gw = im.width / P;
    g[3 * i] = 1;
    g[3 * i + 1] = gh;
    g[3 * i + 2] = gw;
    // Row order: merge block (bh, bw), then patch (mh, mw) inside it.
    for (std::int64_t bh = 0; bh < gh / M; ++bh) {
      for (std::int64_t bw = 0; bw < gw / M; ++bw) {
        for (std::int64_t mh = 0; mh < M; ++mh) {
          for (std::int64_t mw = 0; mw < M; ++mw, ++row) {
            const std::int64_t y0 = (bh * M + mh) * P, x0 = (bw * M + mw) * P;
            float* dst = out + row * F;
            // Features: channel, then the temporal copies, then the P x P pixels.
            for (std::int64_t c = 0; c < 3; ++c) {
              const auto& table = lut[std::size_t(c)];
              float* first = dst + c * T * P * P;
              for (std::int64_t py = 0; py < P; ++py) {
                const std::uint8_t* src = im.row(int(y0 + py)) + x0 * 3 + c;
                for (std::int64_t px = 0; px < P; ++px) first[py * P + px] = table[src[px * 3]];
              }
              for (std::int64_t t = 1; t < T; ++t) std::copy_n(first, P * P, first + t * P * P);
            }
          }
        }
      }
    }
  }
  return {pixel_values, grid};
}

ProcessedImages preprocess(const media::ImageView& image, const QwenImageProcessorOptions& opts) {
  return preprocess(std::span<const media::ImageView>(&image, 1), opts);
}

ProcessedImages preprocess(const at::Tensor& image_hwc, const QwenImageProcessorOptions& opts) {
  if (!image_hwc.defined() || image_hwc.dim() != 3 || image_hwc.scalar_type() != at::kByte ||
      (image_hwc.size(2) != 1 && image_hwc.size(2) != 3 && image_hwc.size(2) != 4)) {
    bad_input("an image tensor must be uint8 [H, W, C] with C = 1, 3 or 4, got " +
              (image_hwc.defined() ? std::string(c10::toString(image_hwc.scalar_type())) + " " +
                                         std::string(c10::str(image_hwc.sizes()))
                                   : std::string("an undefined tensor")));
  }
  if (image_hwc.size(0) > (1 << 16) || image_hwc.size(1) > (1 << 16)) bad_input("image tensor is too large");
  const at::Tensor im = image_hwc.to(at::kCPU).contiguous();
  const media::ImageView view(im.data_ptr<std::uint8_t>(), int(im.size(1)), int(im.size(0)), int(im.size(2)));
  return preprocess(view, opts);
}

ProcessedImages preprocess(const cv::Mat& image_rgb, const QwenImageProcessorOptions& opts) {
  if (image_rgb.empty() || image_rgb.dims != 2 || image_rgb.depth() != CV_8U ||
      (image_rgb.channels() != 1 && image_rgb.channels() != 3 && image_rgb.channels() != 4)) {
    bad_input("a cv::Mat image must be 2-D CV_8UC1, CV_8UC3 or CV_8UC4 (RGB order), got type " +
              std::to_string(image_rgb.type()) + " with " + std::to_string(image_rgb.dims) + " dims");
  }
  const media::ImageView view(image_rgb.data, image_rgb.cols, image_rgb.rows, image_rgb.channels(),
                              image_rgb.step[0]);
  return preprocess(view, opts);
}

}  // namespace mmgen::image
