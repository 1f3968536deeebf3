// Shared helpers for the media tests: temp folders, files, synthetic images,
// PSNR, and the optional Python reference (numpy / Pillow) runner.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "mmgen/media/image.hpp"

namespace mmgen::media {
// gtest prints images as "Image WxHxC" rather than as raw bytes.
void PrintTo(const Image& im, std::ostream* os);
}  // namespace mmgen::media

namespace mmgen::media::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> entries() const;  // file names, sorted

 private:
  std::filesystem::path path_;
};

std::vector<std::uint8_t> read_bytes(const std::filesystem::path& p);
void write_bytes(const std::filesystem::path& p, const std::vector<std::uint8_t>& b);

// Deterministic image: smooth gradients plus a seed-dependent ripple, so
// lossy codecs do well and every pixel differs from its neighbours.
Image pattern(int w, int h, int channels, int seed = 0);
// Uniform noise (worst case for resamplers).
Image noise(int w, int h, int channels, std::uint32_t seed);

double psnr(const std::uint8_t* a, const std::uint8_t* b, std::size_t n);
inline double psnr(const Image& a, const Image& b) {
  return psnr(a.pixels.data(), b.pixels.data(), a.pixels.size());
}
int max_abs_diff(const Image& a, const Image& b);

// The project venv's python (or $MMGEN_PYTHON) if it imports numpy and PIL.
std::optional<std::string> reference_python();
// Runs tests/media/<script> with args; returns the exit status.
int run_python(const std::string& python, const std::string& script,
               const std::vector<std::string>& args);

}  // namespace mmgen::media::testing
