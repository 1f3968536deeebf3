#include "mmgen/text/unicode.hpp"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>

#include "mmgen/protocol.hpp"

namespace mmgen::text {
namespace {

bool in(unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; }

const icu::Normalizer2& nfc_instance() {
  static const icu::Normalizer2* inst = [] {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status) || n == nullptr)
      throw proto::ProtocolError(proto::ErrorCode::internal,
                                 std::string("ICU NFC data unavailable: ") + u_errorName(status));
    return n;
  }();
  return *inst;
}

}  // namespace

Utf8Step utf8_step(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size();
  unsigned char b = p[0];
  if (b < 0x80) return {1, b, true, false};
  std::size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range allowed for the second byte
  char32_t cp = 0;
  if (in(b, 0xC2, 0xDF)) { need = 1; cp = b & 0x1F; }
  else if (b == 0xE0) { need = 2; lo = 0xA0; cp = b & 0x0F; }
  else if (in(b, 0xE1, 0xEC) || in(b, 0xEE, 0xEF)) { need = 2; cp = b & 0x0F; }
  else if (b == 0xED) { need = 2; hi = 0x9F; cp = b & 0x0F; }
  else if (b == 0xF0) { need = 3; lo = 0x90; cp = b & 0x07; }
  else if (in(b, 0xF1, 0xF3)) { need = 3; cp = b & 0x07; }
  else if (b == 0xF4) { need = 3; hi = 0x8F; cp = b & 0x07; }
  else return {1, 0, false, false};
  for (std::size_t i = 1; i <= need; ++i) {
    if (i >= n) return {i, 0, false, true};
    unsigned char c = p[i];
    bool ok = i == 1 ? in(c, lo, hi) : in(c, 0x80, 0xBF);
    if (!ok) return {i, 0, false, false};
    cp = (cp << 6) | (c & 0x3F);
  }
  return {need + 1, cp, true, false};
}

std::optional<std::size_t> utf8_error_offset(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path, eight bytes at a time.
    while (i + 8 <= s.size()) {
      std::uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    Utf8Step st = utf8_step(s.substr(i));
    if (!st.valid) return i;
    i += st.length;
  }
  return std::nullopt;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t i = 0;
  while (i < bytes.size()) {
    Utf8Step st = utf8_step(bytes.substr(i));
    if (st.valid) out.append(bytes.data() + i, st.length);
    else out += "\xEF\xBF\xBD";
    i += st.length;
  }
  return out;
}

std::size_t utf8_incomplete_tail(std::string_view bytes) {
  // A character is at most 4 bytes, so only the last 3 can be unfinished.
  std::size_t n = bytes.size();
  for (std::size_t k = 1; k <= 3 && k <= n; ++k) {
    auto b = static_cast<unsigned char>(bytes[n - k]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back
    Utf8Step st = utf8_step(bytes.substr(n - k));
    return st.incomplete && st.length == k ? k : 0;
  }
  return 0;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_unicode_whitespace(char32_t cp) {
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE);
}

bool is_word_char(char32_t cp) {
  auto c = static_cast<UChar32>(cp);
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL))
    return true;
  std::int32_t mask = U_GET_GC_MASK(c);
  return (mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

bool is_nfc(std::string_view utf8) {
  UErrorCode status = U_ZERO_ERROR;
  bool yes = nfc_instance().isNormalizedUTF8(
      icu::StringPiece(utf8.data(), static_cast<int32_t>(utf8.size())), status);
  return U_SUCCESS(status) && yes;
}

std::string nfc(std::string_view utf8) {
  if (is_nfc(utf8)) return std::string(utf8);
  std::string out;
  icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(utf8.size()));
  UErrorCode status = U_ZERO_ERROR;
  nfc_instance().normalizeUTF8(0, icu::StringPiece(utf8.data(), static_cast<int32_t>(utf8.size())),
                               sink, nullptr, status);
  if (U_FAILURE(status))
    throw proto::ProtocolError(proto::ErrorCode::internal,
                               std::string("NFC normalisation failed: ") + u_errorName(status));
  return out;
}

}  // namespace mmgen::text
