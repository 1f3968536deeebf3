#include "image_probe.hpp"

#include <cstring>
#include <optional>

namespace mmgen::media::detail {
namespace {

using Bytes = std::span<const std::uint8_t>;

std::uint32_t be16(const std::uint8_t* p) { return (std::uint32_t(p[0]) << 8) | p[1]; }
std::uint32_t be32(const std::uint8_t* p) { return (be16(p) << 16) | be16(p + 2); }
std::uint32_t le16(const std::uint8_t* p) { return (std::uint32_t(p[1]) << 8) | p[0]; }
std::uint32_t le32(const std::uint8_t* p) { return (le16(p + 2) << 16) | le16(p); }

bool starts_with(Bytes b, std::size_t at, const char* magic) {
  const std::size_t n = std::strlen(magic);
  return at + n <= b.size() && std::memcmp(b.data() + at, magic, n) == 0;
}

// ---- TIFF structure (TIFF files and EXIF payloads) ------------------------------
// One SHORT or LONG value of `tag` in IFD0.
std::optional<std::uint32_t> tiff_ifd0_value(Bytes t, std::uint16_t tag) {
  if (t.size() < 8) return std::nullopt;
  const bool le = t[0] == 'I' && t[1] == 'I';
  if (!le && !(t[0] == 'M' && t[1] == 'M')) return std::nullopt;
  auto u16 = [&](std::size_t at) { return le ? le16(&t[at]) : be16(&t[at]); };
  auto u32 = [&](std::size_t at) { return le ? le32(&t[at]) : be32(&t[at]); };
  if (u16(2) != 42) return std::nullopt;
  const std::uint64_t ifd = u32(4);
  if (ifd + 2 > t.size()) return std::nullopt;
  const std::uint32_t entries = u16(ifd);
  for (std::uint32_t i = 0; i < entries; ++i) {
    const std::uint64_t e = ifd + 2 + 12ull * i;
    if (e + 12 > t.size()) return std::nullopt;
    if (u16(e) != tag) continue;
    const std::uint32_t type = u16(e + 2);
    if (u32(e + 4) < 1) return std::nullopt;  // count
    if (type == 3) return u16(e + 8);         // SHORT, left-justified in the value field
    if (type == 4) return u32(e + 8);         // LONG
    return std::nullopt;
  }
  return std::nullopt;
}

int orientation_or_1(std::optional<std::uint32_t> v) {
  return v && *v >= 1 && *v <= 8 ? int(*v) : 1;
}

// An EXIF payload may carry the "Exif\0\0" prefix (JPEG always; PNG/WebP sometimes).
int exif_block_orientation(Bytes b) {
  if (starts_with(b, 0, "Exif")) b = b.size() >= 6 ? b.subspan(6) : Bytes{};
  return exif_orientation(b);
}

// ---- per format ---------------------------------------------------------------
void probe_png(Bytes b, ImageProbe& p) {
  std::size_t pos = 8;
  while (pos + 12 <= b.size()) {
    const std::uint64_t len = be32(&b[pos]);
    const std::uint8_t* type = &b[pos + 4];
    if (pos + 12 + len > b.size()) break;  // cut short; libpng reports it on decode
    Bytes data = b.subspan(pos + 8, len);
    if (pos == 8) {
      if (std::memcmp(type, "IHDR", 4) != 0 || len < 8) return;
      p.width = be32(data.data());
      p.height = be32(data.data() + 4);
      p.size_known = true;
    } else if (std::memcmp(type, "eXIf", 4) == 0) {
      p.orientation = exif_block_orientation(data);
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      break;
    }
    pos += 12 + len;
  }
}

bool is_sof(std::uint8_t m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

void probe_jpeg(Bytes b, ImageProbe& p) {
  std::size_t pos = 2;
  p.truncated = true;  // until an EOI is seen after the scan header
  while (pos + 2 <= b.size()) {
    if (b[pos] != 0xFF) return;  // not at a marker: malformed
    const std::uint8_t m = b[pos + 1];
    pos += 2;
    if (m == 0xFF) { --pos; continue; }  // fill byte
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;  // no payload
    if (m == 0xD9) return;  // EOI before any scan
    if (pos + 2 > b.size()) return;
    const std::size_t len = be16(&b[pos]);
    if (len < 2 || pos + len > b.size()) return;
    Bytes seg = b.subspan(pos + 2, len - 2);
    if (m == 0xE1 && starts_with(seg, 0, "Exif")) p.orientation = exif_block_orientation(seg);
    if (is_sof(m) && seg.size() >= 5) {
      p.height = be16(&seg[1]);
      p.width = be16(&seg[3]);
      p.size_known = true;
    }
    if (m == 0xDA) {
      // Entropy-coded data never contains FF D9 (FF is stuffed), so an EOI after
      // the first scan header means the file is complete.
      for (std::size_t i = pos + len; i + 1 < b.size(); ++i)
        if (b[i] == 0xFF && b[i + 1] == 0xD9) { p.truncated = false; break; }
      return;
    }
    pos += len;
  }
}

void probe_webp(Bytes b, ImageProbe& p) {
  std::size_t pos = 12;
  bool first = true;
  while (pos + 8 <= b.size()) {
    const std::uint64_t len = le32(&b[pos + 4]);
    const std::size_t avail = b.size() - (pos + 8);
    Bytes data = b.subspan(pos + 8, len < avail ? len : avail);
    if (first) {
      if (starts_with(b, pos, "VP8 ") && data.size() >= 10 && data[3] == 0x9D &&
          data[4] == 0x01 && data[5] == 0x2A) {
        p.width = le16(&data[6]) & 0x3FFF;
        p.height = le16(&data[8]) & 0x3FFF;
        p.size_known = true;
      } else if (starts_with(b, pos, "VP8L") && data.size() >= 5 && data[0] == 0x2F) {
        const std::uint32_t bits = le32(&data[1]);
        p.width = (bits & 0x3FFF) + 1;
        p.height = ((bits >> 14) & 0x3FFF) + 1;
        p.size_known = true;
      } else if (starts_with(b, pos, "VP8X") && data.size() >= 10) {
        p.width = (le32(&data[4]) & 0xFFFFFF) + 1;
        p.height = (le32(&data[7]) & 0xFFFFFF) + 1;
        p.size_known = true;
      } else {
        return;
      }
      first = false;
    } else if (starts_with(b, pos, "EXIF")) {
      p.orientation = exif_block_orientation(data);
    }
    if (len > avail) return;
    pos += 8 + len + (len & 1);  // chunks are padded to even sizes
  }
}

void probe_bmp(Bytes b, ImageProbe& p) {
  if (b.size() < 26) return;
  const std::uint32_t dib = le32(&b[14]);
  if (dib == 12) {
    p.width = le16(&b[18]);
    p.height = le16(&b[20]);
  } else {
    const auto w = std::int32_t(le32(&b[18]));
    const auto h = std::int32_t(le32(&b[22]));
    if (w <= 0 || h == 0 || h == INT32_MIN) return;
    p.width = std::uint32_t(w);
    p.height = std::uint32_t(h < 0 ? -h : h);  // negative: top-down rows
  }
  p.size_known = true;
}

void probe_tiff(Bytes b, ImageProbe& p) {
  const auto w = tiff_ifd0_value(b, 256);
  const auto h = tiff_ifd0_value(b, 257);
  if (!w || !h) return;
  p.width = *w;
  p.height = *h;
  p.size_known = true;
  p.orientation = exif_orientation(b);
}

// "P6 <w> <h> ..." with '#' comments between tokens.
void probe_pnm(Bytes b, ImageProbe& p) {
  std::size_t pos = 2;
  std::uint64_t dims[2] = {0, 0};
  for (auto& d : dims) {
    for (;;) {
      while (pos < b.size() && std::strchr(" \t\r\n", b[pos]) && b[pos]) ++pos;
      if (pos < b.size() && b[pos] == '#') {
        while (pos < b.size() && b[pos] != '\n') ++pos;
        continue;
      }
      break;
    }
    const std::size_t start = pos;
    while (pos < b.size() && b[pos] >= '0' && b[pos] <= '9' && d < (1ull << 32))
      d = d * 10 + (b[pos++] - '0');
    if (pos == start || d >= (1ull << 32)) return;
  }
  p.width = std::uint32_t(dims[0]);
  p.height = std::uint32_t(dims[1]);
  p.size_known = true;
}

}  // namespace

std::string_view format_name(SourceFormat f) {
  switch (f) {
    case SourceFormat::png: return "PNG";
    case SourceFormat::jpeg: return "JPEG";
    case SourceFormat::webp: return "WebP";
    case SourceFormat::bmp: return "BMP";
    case SourceFormat::tiff: return "TIFF";
    case SourceFormat::pnm: return "PNM";
    case SourceFormat::unknown: break;
  }
  return "unknown";
}

int exif_orientation(std::span<const std::uint8_t> tiff) {
  return orientation_or_1(tiff_ifd0_value(tiff, 0x0112));
}

ImageProbe probe_image(std::span<const std::uint8_t> b) {
  ImageProbe p;
  if (starts_with(b, 0, "\x89PNG\r\n\x1a\n")) {
    p.format = SourceFormat::png;
    probe_png(b, p);
  } else if (b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) {
    p.format = SourceFormat::jpeg;
    probe_jpeg(b, p);
  } else if (starts_with(b, 0, "RIFF") && starts_with(b, 8, "WEBP")) {
    p.format = SourceFormat::webp;
    probe_webp(b, p);
  } else if (starts_with(b, 0, "BM")) {
    p.format = SourceFormat::bmp;
    probe_bmp(b, p);
  } else if (starts_with(b, 0, "II*") || starts_with(b, 0, "MM")) {
    if (b.size() >= 4 && (b[0] == 'I' ? b[3] == 0 : (b[2] == 0 && b[3] == 42))) {
      p.format = SourceFormat::tiff;
      probe_tiff(b, p);
    }
  } else if (b.size() >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6' &&
             std::strchr(" \t\r\n#", b[2]) && b[2]) {
    p.format = SourceFormat::pnm;
    probe_pnm(b, p);
  }
  return p;
}

}  // namespace mmgen::media::detail
