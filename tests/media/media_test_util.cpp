#include "media_test_util.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>

namespace mmgen::media {
void PrintTo(const Image& im, std::ostream* os) {
  *os << "Image " << im.width << "x" << im.height << "x" << im.channels;
}
}  // namespace mmgen::media

namespace mmgen::media::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("mmgen-media-test-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::vector<std::string> TempDir::entries() const {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

Image pattern(int w, int h, int channels, int seed) {
  Image im(w, h, channels);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) {
        const double v = 128 + 60 * std::sin(0.11 * x + 0.05 * c + 0.3 * seed) +
                         50 * std::cos(0.07 * y - 0.13 * c) + 10 * std::sin(0.5 * (x + y));
        im.row(y)[x * channels + c] = std::uint8_t(std::clamp(v, 0.0, 255.0));
      }
  return im;
}

Image noise(int w, int h, int channels, std::uint32_t seed) {
  Image im(w, h, channels);
  std::mt19937 rng(seed);
  for (auto& v : im.pixels) v = std::uint8_t(rng() & 0xFF);
  return im;
}

double psnr(const std::uint8_t* a, const std::uint8_t* b, std::size_t n) {
  double se = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    se += d * d;
  }
  if (se == 0) return 99.0;
  return 10 * std::log10(255.0 * 255.0 / (se / double(n)));
}

int max_abs_diff(const Image& a, const Image& b) {
  int m = 0;
  for (std::size_t i = 0; i < std::min(a.pixels.size(), b.pixels.size()); ++i)
    m = std::max(m, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return m;
}

namespace {
std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

std::optional<std::string> reference_python() {
  std::string py = MMGEN_TEST_PYTHON;
  if (const char* env = std::getenv("MMGEN_PYTHON"); env && *env) py = env;
  if (py.empty()) return std::nullopt;
  const std::string probe = quote(py) + " -c 'import numpy, PIL' >/dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) return std::nullopt;
  return py;
}

int run_python(const std::string& python, const std::string& script,
               const std::vector<std::string>& args) {
  std::string cmd = quote(python) + " " + quote(std::string(MMGEN_MEDIA_TEST_DIR) + "/" + script);
  for (const auto& a : args) cmd += " " + quote(a);
  return std::system(cmd.c_str());
}

}  // namespace mmgen::media::testing
