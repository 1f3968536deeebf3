// fps parsing and the blob-returning MP4 writer.
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <numeric>
#include <string>
#include <system_error>

#include "mmgen/media/video.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::media {
namespace fs = std::filesystem;
using proto::ErrorCode;
using proto::ProtocolError;

namespace {

// Digits only, at most 9 of them (fits an int with room to scale).
bool parse_digits(std::string_view s, long long& out, int& ndigits) {
  if (s.empty() || s.size() > 9) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  ndigits = int(s.size());
  return true;
}

}  // namespace

Rational parse_fps(std::string_view text) {
  const auto fail = [&]() -> Rational {
    throw ProtocolError(ErrorCode::invalid_request,
                        "fps '" + std::string(text) +
                            "' is not a number like 16, 23.976 or 24000/1001 in (0, 240]");
  };
  long long num = 0, den = 1;
  int nd = 0;
  if (const auto slash = text.find('/'); slash != std::string_view::npos) {
    if (!parse_digits(text.substr(0, slash), num, nd) || !parse_digits(text.substr(slash + 1), den, nd))
      return fail();
  } else if (const auto dot = text.find('.'); dot != std::string_view::npos) {
    long long whole = 0, frac = 0;
    int nfrac = 0;
    const auto w = text.substr(0, dot), f = text.substr(dot + 1);
    if ((!w.empty() && !parse_digits(w, whole, nd)) || !parse_digits(f, frac, nfrac) || nfrac > 6)
      return fail();
    den = 1;
    for (int i = 0; i < nfrac; ++i) den *= 10;
    num = whole * den + frac;
  } else if (!parse_digits(text, num, nd)) {
    return fail();
  }
  if (num <= 0 || den <= 0 || num > 240 * den) return fail();
  const long long g = std::gcd(num, den);
  num /= g;
  den /= g;
  if (num > 0x7fffffff || den > 0x7fffffff) return fail();
  return Rational{int(num), int(den)};
}

// ---- Mp4BlobWriter ----------------------------------------------------------------
Mp4BlobWriter::Mp4BlobWriter(int width, int height, const VideoEncodeOptions& opts,
                             const fs::path& scratch_dir) {
  std::error_code ec;
  fs::path base = scratch_dir.empty() ? fs::temp_directory_path(ec) : scratch_dir;
  if (ec) base = "/tmp";
  std::string tmpl = (base / "mmgen-video-XXXXXX").string();
  if (!::mkdtemp(tmpl.data()))
    throw ProtocolError(ErrorCode::internal,
                        "cannot create a scratch directory in '" + base.string() + "'");
  dir_ = tmpl;
  path_ = dir_ / "video.mp4";
  try {
    writer_ = std::make_unique<Mp4Writer>(path_, width, height, opts);
  } catch (...) {
    fs::remove_all(dir_, ec);
    throw;
  }
}

Mp4BlobWriter::~Mp4BlobWriter() {
  writer_.reset();  // removes its temp file if unfinished
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::vector<std::uint8_t> Mp4BlobWriter::finish() {
  writer_->finish();
  std::ifstream f(path_, std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof())
    throw ProtocolError(ErrorCode::internal, "cannot read back '" + path_.string() + "'");
  std::error_code ec;
  fs::remove_all(dir_, ec);
  return bytes;
}

}  // namespace mmgen::media
