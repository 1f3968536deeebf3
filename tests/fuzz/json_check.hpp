// A strict checker for the JSON that Value::to_json prints: RFC 8259 grammar,
// no raw control characters in strings, and the whole text valid UTF-8 (no
// overlong forms, no surrogates). The fuzzer uses it as an oracle, so an
// escaping mistake in value.cpp shows up as a crash with the input that made it.
#pragma once

#include <cstddef>
#include <string_view>

namespace fuzz {

// True when `s` is well-formed UTF-8 (RFC 3629).
inline bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the first continuation byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return false;
    for (std::size_t k = 2; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n;
  }
  return true;
}

class JsonChecker {
 public:
  explicit JsonChecker(std::string_view s) : s_(s) {}

  // True when the whole text is exactly one JSON value.
  bool check() {
    if (!value(0)) return false;
    return pos_ == s_.size();
  }

 private:
  // Deeper than any body the decoders accept (max_depth), so only a broken
  // printer could reach it.
  static constexpr int kMaxDepth = 256;

  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool digit() const { return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; }
  bool digits() {
    if (!digit()) return false;
    while (digit()) ++pos_;
    return true;
  }

  bool value(int depth) {
    if (depth > kMaxDepth || pos_ >= s_.size()) return false;
    switch (s_[pos_]) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }

  bool object(int depth) {
    ++pos_;
    if (eat('}')) return true;
    do {
      if (pos_ >= s_.size() || s_[pos_] != '"' || !string()) return false;
      if (!eat(':') || !value(depth + 1)) return false;
    } while (eat(','));
    return eat('}');
  }

  bool array(int depth) {
    ++pos_;
    if (eat(']')) return true;
    do {
      if (!value(depth + 1)) return false;
    } while (eat(','));
    return eat(']');
  }

  bool string() {
    ++pos_;  // opening quote
    while (pos_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;  // control characters must be escaped
      if (c != '\\') continue;
      if (pos_ >= s_.size()) return false;
      const char e = s_[pos_++];
      if (e == 'u') {
        for (int k = 0; k < 4; ++k) {
          if (pos_ >= s_.size()) return false;
          const char h = s_[pos_++];
          const bool hex = (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F');
          if (!hex) return false;
        }
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
    }
    return false;  // unterminated
  }

  bool number() {
    eat('-');
    if (eat('0')) {
      // a leading zero stands alone
    } else if (!digits()) {
      return false;
    }
    if (eat('.') && !digits()) return false;
    if (eat('e') || eat('E')) {
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    return true;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

inline bool valid_json(std::string_view s) { return valid_utf8(s) && JsonChecker(s).check(); }

}  // namespace fuzz
