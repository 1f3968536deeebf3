// UTF-8 helpers and NFC normalisation (ICU) for the tokenizer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mmgen::text {

// One step of UTF-8 decoding at the start of `s` (non-empty).
struct Utf8Step {
  std::size_t length = 0;      // bytes consumed: a whole character, or an invalid maximal subpart
  char32_t code_point = 0;     // valid only when `valid`
  bool valid = false;
  bool incomplete = false;     // invalid only because `s` ends inside a well-formed prefix
};
Utf8Step utf8_step(std::string_view s);

// Byte offset of the first ill-formed sequence, or nullopt if `s` is valid UTF-8.
std::optional<std::size_t> utf8_error_offset(std::string_view s);

// Decodes bytes as UTF-8, replacing each ill-formed maximal subpart with
// U+FFFD, exactly as Rust's String::from_utf8_lossy (and so HF decode) does.
std::string utf8_lossy(std::string_view bytes);

// Number of trailing bytes of `bytes` that are a well-formed but unfinished
// character (0..3): what a streaming decoder must hold back.
std::size_t utf8_incomplete_tail(std::string_view bytes);

void append_utf8(std::string& out, char32_t cp);

// Unicode White_Space (Rust's char::is_whitespace), used by added-token
// lstrip/rstrip.
bool is_unicode_whitespace(char32_t cp);
// Regex \w in Unicode mode: Alphabetic, marks, decimal digits, connector
// punctuation, join controls (added-token single_word checks).
bool is_word_char(char32_t cp);

// Unicode Canonical Composition (NFC). Input must be valid UTF-8. Text that is
// already NFC (nearly all) is detected by a quick check and copied as is.
std::string nfc(std::string_view utf8);
bool is_nfc(std::string_view utf8);

}  // namespace mmgen::text
