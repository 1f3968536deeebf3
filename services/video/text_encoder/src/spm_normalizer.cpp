// Hugging Face's Precompiled normaliser and whitespace split for the umT5
// tokenizer (spm_normalizer.hpp).
#include "spm_normalizer.hpp"

#include <algorithm>
#include <cstring>

#include "mmgen/io/load_error.hpp"

namespace mmgen::video::detail {

namespace {

using io::LoadError;
using io::LoadErrorKind;

// ============================== protobuf wire format ==============================

[[noreturn]] void malformed(const std::string& source, const std::string& why) {
  throw LoadError(LoadErrorKind::bad_header,
                  "UMT5 tokenizer: " + source + " is not a SentencePiece model (" + why + ")");
}

struct WireReader {
  std::string_view data;
  std::size_t pos = 0;
  const std::string& source;

  bool done() const { return pos >= data.size(); }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= data.size()) malformed(source, "truncated varint");
      const auto b = static_cast<unsigned char>(data[pos++]);
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    malformed(source, "varint too long");
  }
  // The payload of a field of the given wire type (empty for varints).
  std::string_view field(std::uint32_t wire_type) {
    std::size_t n = 0;
    switch (wire_type) {
      case 0:
        varint();
        return {};
      case 1:
        n = 8;
        break;
      case 2:
        n = static_cast<std::size_t>(varint());
        break;
      case 5:
        n = 4;
        break;
      default:
        malformed(source, "unsupported wire type " + std::to_string(wire_type));
    }
    if (n > data.size() - pos) malformed(source, "field runs past the end");
    const std::string_view payload = data.substr(pos, n);
    pos += n;
    return payload;
  }
};

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// ModelProto fields (sentencepiece_model.proto).
constexpr std::uint32_t kPieces = 1, kNormalizerSpec = 3, kSelfTestData = 4;
// NormalizerSpec fields.
constexpr std::uint32_t kName = 1, kPrecompiledCharsmap = 2, kAddDummyPrefix = 3, kRemoveExtraWhitespaces = 4,
                        kEscapeWhitespaces = 5;

// ============================== grapheme clusters ==============================

enum class GraphemeBreak : std::uint8_t {
  Other,
  CR,
  LF,
  Control,
  Extend,
  ZWJ,
  SpacingMark,
  Prepend,
  RegionalIndicator,
  L,
  V,
  T,
  LV,
  LVT
};

struct BreakRange {
  char32_t first, last;
  GraphemeBreak cls;
};
constexpr BreakRange kBreakRanges[] = {
#define MMGEN_GRAPHEME_BREAK_RANGES
#include "grapheme_break.inc"
#undef MMGEN_GRAPHEME_BREAK_RANGES
};

struct CodeRange {
  char32_t first, last;
};
constexpr CodeRange kExtendedPictographic[] = {
#define MMGEN_EXTENDED_PICTOGRAPHIC_RANGES
#include "grapheme_break.inc"
#undef MMGEN_EXTENDED_PICTOGRAPHIC_RANGES
};

GraphemeBreak break_class(char32_t c) {
  if (c == '\r') return GraphemeBreak::CR;
  if (c == '\n') return GraphemeBreak::LF;
  if (c >= 0xAC00 && c <= 0xD7A3) return (c - 0xAC00) % 28 == 0 ? GraphemeBreak::LV : GraphemeBreak::LVT;
  const auto* end = std::end(kBreakRanges);
  const auto* it =
      std::upper_bound(std::begin(kBreakRanges), end, c, [](char32_t v, const BreakRange& r) { return v < r.first; });
  if (it == std::begin(kBreakRanges)) return GraphemeBreak::Other;
  --it;
  return c <= it->last ? it->cls : GraphemeBreak::Other;
}

bool extended_pictographic(char32_t c) {
  const auto* it = std::upper_bound(std::begin(kExtendedPictographic), std::end(kExtendedPictographic), c,
                                    [](char32_t v, const CodeRange& r) { return v < r.first; });
  if (it == std::begin(kExtendedPictographic)) return false;
  --it;
  return c <= it->last;
}

char32_t decode(std::string_view s, std::size_t i, std::size_t& len) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    len = 1;
    return b;
  }
  len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
  if (i + len > s.size()) len = s.size() - i;
  char32_t c = b & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
  for (std::size_t k = 1; k < len; ++k) c = (c << 6) | (s[i + k] & 0x3F);
  return c;
}

// Extended grapheme cluster boundaries (UAX #29 rules GB3-GB13; GB9c, the
// Indic conjunct rule, is left out: it only joins clusters of 3-byte
// characters that are 6 bytes or longer either way, which the normaliser maps
// character by character whether joined or not).
class GraphemeIterator {
 public:
  explicit GraphemeIterator(std::string_view s) : s_(s) {}
  // The next cluster, empty at the end.
  std::string_view next() {
    if (pos_ >= s_.size()) return {};
    const std::size_t begin = pos_;
    std::size_t len = 1;
    char32_t c = decode(s_, pos_, len);
    GraphemeBreak prev = break_class(c);
    bool emoji = extended_pictographic(c);  // ExtPict Extend* [ZWJ] so far
    int regional = prev == GraphemeBreak::RegionalIndicator ? 1 : 0;
    pos_ += len;
    while (pos_ < s_.size()) {
      c = decode(s_, pos_, len);
      const GraphemeBreak cur = break_class(c);
      if (breaks(prev, cur, c, emoji, regional)) break;
      if (extended_pictographic(c))
        emoji = true;
      else if (cur != GraphemeBreak::Extend && cur != GraphemeBreak::ZWJ)
        emoji = false;
      regional = cur == GraphemeBreak::RegionalIndicator ? regional + 1 : 0;
      prev = cur;
      pos_ += len;
    }
    return s_.substr(begin, pos_ - begin);
  }

 private:
  static bool breaks(GraphemeBreak prev, GraphemeBreak cur, char32_t c, bool emoji, int regional) {
    using G = GraphemeBreak;
    if (prev == G::CR && cur == G::LF) return false;                                                     // GB3
    if (prev == G::CR || prev == G::LF || prev == G::Control) return true;                               // GB4
    if (cur == G::CR || cur == G::LF || cur == G::Control) return true;                                  // GB5
    if (prev == G::L && (cur == G::L || cur == G::V || cur == G::LV || cur == G::LVT)) return false;     // GB6
    if ((prev == G::LV || prev == G::V) && (cur == G::V || cur == G::T)) return false;                   // GB7
    if ((prev == G::LVT || prev == G::T) && cur == G::T) return false;                                   // GB8
    if (cur == G::Extend || cur == G::ZWJ) return false;                                                 // GB9
    if (cur == G::SpacingMark) return false;                                                             // GB9a
    if (prev == G::Prepend) return false;                                                                // GB9b
    if (prev == G::ZWJ && emoji && extended_pictographic(c)) return false;                               // GB11
    if (prev == G::RegionalIndicator && cur == G::RegionalIndicator && regional % 2 == 1) return false;  // GB12/13
    return true;                                                                                         // GB999
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

// Rust's char::is_whitespace (Unicode White_Space).
bool is_white_space(char32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace

// ============================== model surgery ==============================

SpmModelParts split_spm_model(std::string_view bytes, const std::string& source) {
  if (bytes.empty()) malformed(source, "empty file");
  SpmModelParts parts;
  bool has_pieces = false;
  WireReader top{bytes, 0, source};
  while (!top.done()) {
    const std::size_t begin = top.pos;
    const std::uint64_t key = top.varint();
    const auto field = static_cast<std::uint32_t>(key >> 3), wire_type = static_cast<std::uint32_t>(key & 7);
    if (field == 0) malformed(source, "field number 0");
    const std::string_view payload = top.field(wire_type);
    if (field == kPieces && wire_type == 2) has_pieces = true;
    if (field == kNormalizerSpec && wire_type == 2) {
      WireReader spec{payload, 0, source};
      while (!spec.done()) {
        const std::uint64_t k = spec.varint();
        const std::string_view v = spec.field(static_cast<std::uint32_t>(k & 7));
        if ((k >> 3) == kPrecompiledCharsmap && (k & 7) == 2) parts.charsmap.assign(v);
      }
      continue;  // replaced below
    }
    if (field == kSelfTestData) continue;  // samples of the original normaliser: would fail under identity
    parts.identity_model.append(bytes.substr(begin, top.pos - begin));
  }
  if (!has_pieces) malformed(source, "no pieces");

  // An identity NormalizerSpec that only turns spaces into "\u2581": the
  // caller gives every word its leading space (see umt5_tokenizer.cpp).
  std::string spec;
  spec.push_back(static_cast<char>(kName << 3 | 2));
  put_varint(spec, 8);
  spec += "identity";
  for (auto [f, on] : {std::pair{kAddDummyPrefix, 0}, {kRemoveExtraWhitespaces, 0}, {kEscapeWhitespaces, 1}}) {
    spec.push_back(static_cast<char>(f << 3 | 0));
    spec.push_back(static_cast<char>(on));
  }
  parts.identity_model.push_back(static_cast<char>(kNormalizerSpec << 3 | 2));
  put_varint(parts.identity_model, spec.size());
  parts.identity_model += spec;
  return parts;
}

// ============================== normaliser ==============================

PrecompiledNormalizer::PrecompiledNormalizer(std::string charsmap, const std::string& source)
    : blob_(std::move(charsmap)) {
  if (blob_.empty()) return;
  std::uint32_t trie_size = 0;
  if (blob_.size() < 4) malformed(source, "precompiled_charsmap too short");
  std::memcpy(&trie_size, blob_.data(), 4);  // little-endian, as SentencePiece writes it on x86/ARM
  if (trie_size % 4 != 0 || trie_size == 0 || trie_size > blob_.size() - 4) {
    malformed(source, "precompiled_charsmap trie size " + std::to_string(trie_size));
  }
  // std::string storage is suitably aligned for uint32 at offset 4.
  units_ = reinterpret_cast<const std::uint32_t*>(blob_.data() + 4);
  num_units_ = trie_size / 4;
  replacements_ = blob_.data() + 4 + trie_size;
  replacements_size_ = blob_.size() - 4 - trie_size;
}

const char* PrecompiledNormalizer::shortest_match(std::string_view key, std::size_t& replacement_size) const {
  // darts-clone common prefix search; the first hit is the shortest prefix.
  auto offset = [](std::uint32_t unit) -> std::size_t { return (unit >> 10) << ((unit & (1U << 9)) >> 6); };
  auto label = [](std::uint32_t unit) { return unit & ((1U << 31) | 0xFF); };
  auto has_leaf = [](std::uint32_t unit) { return ((unit >> 8) & 1) == 1; };
  auto value = [](std::uint32_t unit) { return unit & ((1U << 31) - 1); };

  std::size_t node = offset(units_[0]);
  for (unsigned char byte : key) {
    node ^= byte;
    if (node >= num_units_) return nullptr;
    const std::uint32_t unit = units_[node];
    if (label(unit) != byte) return nullptr;
    node ^= offset(unit);
    if (node >= num_units_) return nullptr;
    if (has_leaf(unit)) {
      const std::uint32_t at = value(units_[node]);
      if (at >= replacements_size_) return nullptr;
      const char* r = replacements_ + at;
      replacement_size = strnlen(r, replacements_size_ - at);
      return r;
    }
  }
  return nullptr;
}

std::string PrecompiledNormalizer::normalize(std::string_view text) const {
  if (units_ == nullptr) return std::string(text);
  std::string out;
  out.reserve(text.size());
  GraphemeIterator clusters(text);
  for (std::string_view g = clusters.next(); !g.empty(); g = clusters.next()) {
    std::size_t n = 0;
    if (g.size() < 6) {
      if (const char* r = shortest_match(g, n)) {
        out.append(r, n);
        continue;
      }
    }
    for (std::size_t i = 0; i < g.size();) {
      std::size_t len = 1;
      decode(g, i, len);
      const std::string_view ch = g.substr(i, len);
      if (const char* r = shortest_match(ch, n))
        out.append(r, n);
      else
        out.append(ch);
      i += len;
    }
  }
  return out;
}

std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t word_begin = std::string_view::npos;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t len = 1;
    const char32_t c = decode(text, i, len);
    if (is_white_space(c)) {
      if (word_begin != std::string_view::npos) words.push_back(text.substr(word_begin, i - word_begin));
      word_begin = std::string_view::npos;
    } else if (word_begin == std::string_view::npos) {
      word_begin = i;
    }
    i += len;
  }
  if (word_begin != std::string_view::npos) words.push_back(text.substr(word_begin));
  return words;
}

}  // namespace mmgen::video::detail
