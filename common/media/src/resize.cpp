// PIL-equivalent resampling (Pillow's Resample.c algorithm, re-derived):
// separable, horizontal pass first into an 8-bit intermediate limited to the
// rows the vertical pass reads, then the vertical pass. Weights: the filter
// evaluated at (source centre - output centre) / filterscale, where
// filterscale = max(1, in/out) widens the kernel on downscale (antialias);
// normalised to sum 1 in double, then rounded to 22-bit fixed point.
#include "mmgen/media/resize.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <string>

#include "image_ops.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::media {
namespace {

using proto::ErrorCode;
using proto::ProtocolError;

constexpr int kPrecisionBits = 32 - 8 - 2;  // room for 8-bit data, overshoot and sign

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= std::numbers::pi;
  return std::sin(x) / x;
}

// Kernels with PIL's supports: box 0.5, bilinear/hamming 1, bicubic 2, lanczos 3.
double kernel(ResampleFilter f, double x) {
  switch (f) {
    case ResampleFilter::box: return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0;
    case ResampleFilter::bilinear: x = std::fabs(x); return x < 1.0 ? 1.0 - x : 0.0;
    case ResampleFilter::hamming: {
      x = std::fabs(x);
      if (x == 0.0) return 1.0;
      if (x >= 1.0) return 0.0;
      x *= std::numbers::pi;
      return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));  // float constants as PIL
    }
    case ResampleFilter::bicubic: {  // Keys, a = -0.5
      constexpr double a = -0.5;
      x = std::fabs(x);
      if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
      if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
      return 0.0;
    }
    case ResampleFilter::lanczos: return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0;
    case ResampleFilter::nearest: break;
  }
  return 0.0;
}

double support(ResampleFilter f) {
  switch (f) {
    case ResampleFilter::box: return 0.5;
    case ResampleFilter::bilinear:
    case ResampleFilter::hamming: return 1.0;
    case ResampleFilter::bicubic: return 2.0;
    case ResampleFilter::lanczos: return 3.0;
    case ResampleFilter::nearest: break;
  }
  return 0.0;
}

// For each output index: the first input index, the tap count and ksize taps.
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<std::int32_t> weights;  // [out][ksize], fixed point
};

Taps make_taps(int in_size, int out_size, ResampleFilter f) {
  const double scale = double(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double sup = support(f) * filterscale;
  Taps t;
  t.ksize = int(std::ceil(sup)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(std::size_t(out_size) * t.ksize, 0);
  std::vector<double> w(t.ksize);
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    const int lo = std::max(int(center - sup + 0.5), 0);  // int(): truncation, as PIL
    const int hi = std::min(int(center + sup + 0.5), in_size);
    const int n = hi - lo;
    double sum = 0.0;
    for (int i = 0; i < n; ++i) sum += (w[i] = kernel(f, (i + lo - center + 0.5) * ss));
    for (int i = 0; i < n; ++i) {
      const double k = sum != 0.0 ? w[i] / sum : w[i];
      t.weights[std::size_t(o) * t.ksize + i] =
          std::int32_t(k < 0 ? -0.5 + k * (1 << kPrecisionBits) : 0.5 + k * (1 << kPrecisionBits));
    }
    t.first[o] = lo;
    t.count[o] = n;
  }
  return t;
}

std::uint8_t clip8(std::int64_t acc) {
  const std::int64_t v = acc >> kPrecisionBits;
  return std::uint8_t(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Rows [row0, row0 + out.height) of `in`, resampled along x into `out`.
void pass_horizontal(ImageView in, int row0, const Taps& t, Image& out) {
  const int c = in.channels;
  for (int y = 0; y < out.height; ++y) {
    const std::uint8_t* src = in.row(row0 + y);
    std::uint8_t* dst = out.row(y);
    for (int x = 0; x < out.width; ++x) {
      const std::int32_t* k = &t.weights[std::size_t(x) * t.ksize];
      const std::uint8_t* s = src + std::size_t(t.first[x]) * c;
      for (int ch = 0; ch < c; ++ch) {
        std::int64_t acc = 1 << (kPrecisionBits - 1);
        for (int i = 0; i < t.count[x]; ++i) acc += std::int64_t(s[i * c + ch]) * k[i];
        dst[x * c + ch] = clip8(acc);
      }
    }
  }
}

// Along y; t.first is relative to in's row 0.
void pass_vertical(ImageView in, const Taps& t, Image& out) {
  const std::size_t row = std::size_t(in.width) * in.channels;
  for (int y = 0; y < out.height; ++y) {
    const std::int32_t* k = &t.weights[std::size_t(y) * t.ksize];
    std::uint8_t* dst = out.row(y);
    for (std::size_t x = 0; x < row; ++x) {
      std::int64_t acc = 1 << (kPrecisionBits - 1);
      for (int i = 0; i < t.count[y]; ++i) acc += std::int64_t(in.row(t.first[y] + i)[x]) * k[i];
      dst[x] = clip8(acc);
    }
  }
}

Image copy_of(ImageView v) {
  Image out(v.width, v.height, v.channels);
  for (int y = 0; y < v.height; ++y) std::memcpy(out.row(y), v.row(y), out.row_bytes());
  return out;
}

// PIL's NEAREST resize: an affine scale whose source coordinate is accumulated
// in double and truncated, starting half a step in.
Image resize_nearest(ImageView in, int width, int height) {
  const double ax = double(in.width) / width, ay = double(in.height) / height;
  std::vector<int> xs(width);
  double xo = ax * 0.5;
  for (int x = 0; x < width; ++x, xo += ax) xs[x] = std::min(int(xo), in.width - 1);
  Image out(width, height, in.channels);
  double yo = ay * 0.5;
  for (int y = 0; y < height; ++y, yo += ay) {
    const std::uint8_t* s = in.row(std::min(int(yo), in.height - 1));
    std::uint8_t* d = out.row(y);
    for (int x = 0; x < width; ++x)
      std::memcpy(d + std::size_t(x) * in.channels, s + std::size_t(xs[x]) * in.channels,
                  std::size_t(in.channels));
  }
  return out;
}

Image resample(ImageView in, int width, int height, ResampleFilter f) {
  const bool need_h = width != in.width;
  const bool need_v = height != in.height;
  Taps vt = make_taps(in.height, height, f);
  if (!need_h && !need_v) return copy_of(in);
  Image tmp;
  ImageView src = in;
  if (need_h) {
    // Only the rows the vertical pass will read.
    const int row0 = vt.first.front();
    const int row1 = vt.first.back() + vt.count.back();
    for (int& r : vt.first) r -= row0;
    const Taps ht = make_taps(in.width, width, f);
    tmp = Image(width, row1 - row0, in.channels);
    pass_horizontal(in, row0, ht, tmp);
    if (!need_v) return tmp;
    src = tmp;
  }
  Image out(src.width, height, in.channels);
  pass_vertical(src, vt, out);
  return out;
}

}  // namespace

ResampleFilter resample_filter_from_name(std::string_view n) {
  if (n == "nearest") return ResampleFilter::nearest;
  if (n == "box") return ResampleFilter::box;
  if (n == "bilinear") return ResampleFilter::bilinear;
  if (n == "hamming") return ResampleFilter::hamming;
  if (n == "bicubic") return ResampleFilter::bicubic;
  if (n == "lanczos") return ResampleFilter::lanczos;
  throw ProtocolError(ErrorCode::invalid_request,
                      "resample filter '" + std::string(n) +
                          "' is not one of nearest, box, bilinear, hamming, bicubic, lanczos");
}

Image resize(ImageView src, int width, int height, ResampleFilter filter) {
  if (width < 1 || height < 1 || src.width < 1 || src.height < 1 || !src.data)
    throw ProtocolError(ErrorCode::invalid_request,
                        "resize " + std::to_string(src.width) + "x" + std::to_string(src.height) +
                            " -> " + std::to_string(width) + "x" + std::to_string(height) +
                            ": sizes must be at least 1x1");
  if (src.channels < 1 || src.channels > 4)
    throw ProtocolError(ErrorCode::invalid_request,
                        "resize: " + std::to_string(src.channels) + " channels not supported");
  if (width == src.width && height == src.height) return copy_of(src);
  if (filter == ResampleFilter::nearest) return resize_nearest(src, width, height);
  if (src.channels == 4) {
    // PIL resizes RGBA premultiplied so transparent pixels do not bleed colour.
    Image pre = copy_of(src);
    detail::premultiply_alpha(pre);
    Image out = resample(pre, width, height, filter);
    detail::unpremultiply_alpha(out);
    return out;
  }
  return resample(src, width, height, filter);
}

}  // namespace mmgen::media
