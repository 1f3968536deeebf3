// The lexical half of the JSON reader (json_reader.hpp): positions, strings,
// numbers and literals, compiled once for every builder.
#include "mmgen/json_reader.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace mmgen::json {

SyntaxError::SyntaxError(std::string reason, std::size_t offset, std::size_t line, std::size_t column)
    : std::runtime_error(reason + " at line " + std::to_string(line) + ", column " + std::to_string(column)),
      reason_(std::move(reason)),
      offset_(offset),
      line_(line),
      column_(column) {}

void Cursor::fail(std::string reason) const {
  // Line and column only on failure: the happy path never counts newlines.
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < pos_ && i < s_.size(); ++i) {
    if (s_[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  if (at_end() && reason.find("end of input") == std::string::npos && reason.find("nesting") == std::string::npos)
    reason += " (unexpected end of input)";
  throw SyntaxError(std::move(reason), pos_, line, col);
}

void Cursor::skip_ws() {
  while (!at_end()) {
    const char c = s_[pos_];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    ++pos_;
  }
}

void Cursor::literal(std::string_view word) {
  if (s_.substr(pos_, word.size()) != word) fail("invalid literal");
  pos_ += word.size();
}

Scalar Cursor::scalar() {
  switch (peek()) {
    case 't': literal("true"); return true;
    case 'f': literal("false"); return false;
    case 'n': literal("null"); return nullptr;
    case 'N':
      if (!dialect_.non_finite) fail("unexpected character");
      literal("NaN");
      return std::numeric_limits<double>::quiet_NaN();
    case 'I':
      if (!dialect_.non_finite) fail("unexpected character");
      literal("Infinity");
      return std::numeric_limits<double>::infinity();
    default: return number();
  }
}

Scalar Cursor::number() {
  const std::size_t start = pos_;
  if (consume('-') && peek() == 'I' && dialect_.non_finite) {
    literal("Infinity");
    return -std::numeric_limits<double>::infinity();
  }
  auto digits = [&] {
    const std::size_t from = pos_;
    while (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return pos_ - from;
  };
  if (!consume('0') && digits() == 0) fail(pos_ == start ? "expected a value" : "expected digits");
  bool integral = true;
  if (consume('.')) {
    integral = false;
    if (digits() == 0) fail("expected digits after '.'");
  }
  if (consume('e') || consume('E')) {
    integral = false;
    if (!consume('+')) consume('-');
    if (digits() == 0) fail("expected digits in the exponent");
  }
  const char* b = s_.data() + start;
  const char* e = s_.data() + pos_;
  if (integral) {
    std::int64_t i = 0;
    auto r = std::from_chars(b, e, i);
    if (r.ec == std::errc() && r.ptr == e) return i;
    // Beyond int64: a double, as Python's float() would give.
  }
  double d = 0;
  auto r = std::from_chars(b, e, d);
  if (r.ec == std::errc::result_out_of_range) {
    d = std::strtod(std::string(b, e).c_str(), nullptr);  // saturates to +-inf or 0 as strtod does
    // Python reads 1e999 as inf; a dialect without non-finite values cannot.
    if (std::isinf(d) && !dialect_.non_finite) fail("number out of range");
  } else if (r.ec != std::errc() || r.ptr != e) {
    fail("invalid number");
  }
  return d;
}

unsigned Cursor::hex4() {
  if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; ++i) {
    const char c = s_[pos_++];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= unsigned(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= unsigned(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= unsigned(c - 'A' + 10);
    else
      fail("invalid hex digit in \\u escape");
  }
  return v;
}

namespace {

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace

// One raw UTF-8 sequence at pos_, validated (no overlongs, no surrogates,
// nothing past U+10FFFF) and copied.
void Cursor::copy_utf8(std::string& out) {
  const auto b0 = static_cast<unsigned char>(s_[pos_]);
  const int len = b0 >= 0xF0 && b0 <= 0xF4 ? 4 : b0 >= 0xE0 && b0 < 0xF0 ? 3 : b0 >= 0xC2 && b0 < 0xE0 ? 2 : 0;
  if (len == 0 || pos_ + std::size_t(len) > s_.size()) fail("invalid UTF-8 in a string");
  std::uint32_t cp = b0 & (0xFFu >> (len + 1));
  for (int i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s_[pos_ + std::size_t(i)]);
    if ((b & 0xC0) != 0x80) fail("invalid UTF-8 in a string");
    cp = (cp << 6) | (b & 0x3F);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    fail("invalid UTF-8 in a string");
  out.append(s_.substr(pos_, std::size_t(len)));
  pos_ += std::size_t(len);
}

std::string Cursor::string() {
  ++pos_;  // the opening quote
  std::string out;
  for (;;) {
    // Copy the plain run up to the next quote, backslash, control or non-ASCII byte at once.
    std::size_t run = pos_;
    while (run < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[run]);
      if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
      ++run;
    }
    out.append(s_.substr(pos_, run - pos_));
    pos_ = run;
    if (at_end()) fail("unterminated string");
    const char c = s_[pos_];
    if (c == '"') {
      ++pos_;
      return out;
    }
    if (static_cast<unsigned char>(c) >= 0x80) {
      copy_utf8(out);
      continue;
    }
    if (c != '\\') fail("control character in a string");
    ++pos_;
    if (at_end()) fail("unterminated escape");
    switch (s_[pos_++]) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        std::uint32_t cp = hex4();
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (s_.substr(pos_, 2) != "\\u") fail("high surrogate without its low half");
          pos_ += 2;
          const std::uint32_t lo = hex4();
          if (lo < 0xDC00 || lo > 0xDFFF) fail("high surrogate without its low half");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          fail("lone low surrogate");
        }
        append_utf8(out, cp);
        break;
      }
      default: fail("invalid escape");
    }
  }
}

// ---- the two builders every caller can share ---------------------------------------

namespace {

struct ValueBuilder {
  using Array = ValueArray;
  using Object = ValueMap;
  Value scalar(Scalar s) {
    return std::visit([](auto x) { return Value(x); }, s);
  }
  Value string(std::string&& s) { return Value(std::move(s)); }
  Array new_array() { return {}; }
  void push(Array& a, Value&& v) { a.push_back(std::move(v)); }
  Value array(Array&& a) { return Value(std::move(a)); }
  Object new_object() { return {}; }
  void put(Object& o, std::string&& k, Value&& v) { o.insert_or_assign(std::move(k), std::move(v)); }
  Value object(Object&& o) { return Value(std::move(o)); }
};

// Builds nothing: validation only.
struct NullBuilder {
  struct Empty {};
  using Array = Empty;
  using Object = Empty;
  Empty scalar(Scalar) { return {}; }
  Empty string(std::string&&) { return {}; }
  Empty new_array() { return {}; }
  void push(Empty&, Empty&&) {}
  Empty array(Empty&&) { return {}; }
  Empty new_object() { return {}; }
  void put(Empty&, std::string&&, Empty&&) {}
  Empty object(Empty&&) { return {}; }
};

}  // namespace

Value read_value(std::string_view text, const Dialect& dialect) {
  ValueBuilder b;
  return read(text, dialect, b);
}

bool valid(std::string_view text, const Dialect& dialect) {
  NullBuilder b;
  try {
    read(text, dialect, b);
    return true;
  } catch (const SyntaxError&) {
    return false;
  }
}

}  // namespace mmgen::json
