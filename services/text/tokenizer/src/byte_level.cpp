#include "mmgen/text/byte_level.hpp"

#include <array>

#include "mmgen/text/unicode.hpp"

namespace mmgen::text {
namespace {

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<std::int16_t, 324> to_byte{};  // code points 0..323 cover the alphabet
  Tables() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_char[b] = printable ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = static_cast<std::int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t byte_to_char(std::uint8_t b) { return tables().to_char[b]; }

std::optional<std::uint8_t> char_to_byte(char32_t c) {
  if (c >= tables().to_byte.size() || tables().to_byte[c] < 0) return std::nullopt;
  return static_cast<std::uint8_t>(tables().to_byte[c]);
}

std::string to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, byte_to_char(static_cast<std::uint8_t>(c)));
  return out;
}

std::optional<std::string> from_byte_level(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  while (!token.empty()) {
    Utf8Step st = utf8_step(token);
    if (!st.valid) return std::nullopt;
    auto b = char_to_byte(st.code_point);
    if (!b) return std::nullopt;
    out += static_cast<char>(*b);
    token.remove_prefix(st.length);
  }
  return out;
}

}  // namespace mmgen::text
