// The GPT-2 "byte-level" alphabet: every byte is shown as one printable code
// point, so byte-level BPE vocabularies are plain strings. Printable Latin-1
// bytes stand for themselves; the 68 others are moved to U+0100 and up.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mmgen::text {

char32_t byte_to_char(std::uint8_t b);
std::optional<std::uint8_t> char_to_byte(char32_t c);

// Raw bytes -> their byte-level string (UTF-8).
std::string to_byte_level(std::string_view bytes);

// Byte-level string -> raw bytes; nullopt when a character is outside the
// alphabet (or the input is not UTF-8).
std::optional<std::string> from_byte_level(std::string_view token);

}  // namespace mmgen::text
