// prompt_clean of the Wan pipelines (prompt_clean.hpp).
//
// html_entities.inc was generated from Python's html.entities.html5 with
//   python3 -c "import html.entities as e; [print('{\"%s\", \"%s\"},' % (k, ''.join('\\\\x%02X' % b
//     for b in v.encode()))) for k, v in sorted(e.html5.items(), key=lambda kv: kv[0].encode())]"
#include "mmgen/video/prompt_clean.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace mmgen::video {

namespace {

struct NamedReference {
  std::string_view name;  // as in the table, with ';' where the entry has it
  std::string_view text;  // replacement, UTF-8
};

constexpr NamedReference kNamedReferences[] = {
#include "html_entities.inc"
};

const NamedReference* find_named(std::string_view name) {
  const auto* end = std::end(kNamedReferences);
  const auto* it = std::lower_bound(std::begin(kNamedReferences), end, name,
                                    [](const NamedReference& r, std::string_view n) { return r.name < n; });
  return (it != end && it->name == name) ? it : nullptr;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// Decodes the code point at text[i] (valid UTF-8 assumed) and its byte length.
char32_t decode_at(std::string_view text, std::size_t i, std::size_t& len) {
  const auto b = static_cast<unsigned char>(text[i]);
  if (b < 0x80) {
    len = 1;
    return b;
  }
  len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
  char32_t c = b & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
  for (std::size_t k = 1; k < len && i + k < text.size(); ++k) c = (c << 6) | (text[i + k] & 0x3F);
  return c;
}

// Windows-1252 meanings the HTML5 standard gives to numeric references to
// C1 controls (and NUL, CR), as Python's html._invalid_charrefs.
bool invalid_charref_replacement(std::uint64_t num, char32_t& out) {
  static constexpr char32_t kC1[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                       0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                       0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                       0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  if (num == 0x00) {
    out = 0xFFFD;
    return true;
  }
  if (num == 0x0D) {
    out = 0x0D;
    return true;
  }
  if (num >= 0x80 && num <= 0x9F) {
    out = kC1[num - 0x80];
    return true;
  }
  return false;
}

// Code points a numeric reference may not produce (dropped), as Python's
// html._invalid_codepoints.
bool invalid_codepoint(std::uint64_t c) {
  return (c >= 0x1 && c <= 0x8) || c == 0xB || (c >= 0xE && c <= 0x1F) || (c >= 0x7F && c <= 0x9F) ||
         (c >= 0xFDD0 && c <= 0xFDEF) || (c <= 0x10FFFF && (c & 0xFFFE) == 0xFFFE);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// The body of a named reference may not contain these (Python's pattern
// [^\t\n\f <&#;]{1,32}).
bool ends_name(char c) {
  return c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';';
}

// Tries a reference at text[amp] == '&'. On a match appends its replacement
// and returns the index after it; otherwise returns npos.
std::size_t replace_reference(std::string_view text, std::size_t amp, std::string& out) {
  std::size_t i = amp + 1;
  if (i < text.size() && text[i] == '#') {
    const bool hex = i + 1 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X');
    std::size_t j = i + (hex ? 2 : 1);
    const std::size_t digits_begin = j;
    std::uint64_t num = 0;
    bool huge = false;
    while (j < text.size() && (hex ? is_hex(text[j]) : is_digit(text[j]))) {
      const char c = text[j];
      const unsigned d = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
      if (!huge) {
        num = num * (hex ? 16 : 10) + d;
        if (num > 0x10FFFF) huge = true;  // anything past the last code point reads as U+FFFD
      }
      ++j;
    }
    if (j == digits_begin) return std::string::npos;  // "&#" or "&#x" without digits: left alone
    if (j < text.size() && text[j] == ';') ++j;
    char32_t replacement = 0;
    if (!huge && invalid_charref_replacement(num, replacement)) {
      append_utf8(out, replacement);
    } else if (huge || (num >= 0xD800 && num <= 0xDFFF)) {
      append_utf8(out, 0xFFFD);
    } else if (!invalid_codepoint(num)) {
      append_utf8(out, static_cast<char32_t>(num));
    }
    return j;
  }

  // Named: up to 32 code points of the allowed set, then an optional ';'.
  std::size_t j = i;
  std::size_t count = 0;
  std::size_t last_cp_begin = i;
  while (j < text.size() && count < 32 && !ends_name(text[j])) {
    std::size_t len = 1;
    decode_at(text, j, len);
    last_cp_begin = j;
    j += len;
    ++count;
  }
  if (count == 0) return std::string::npos;
  if (j < text.size() && text[j] == ';') {
    last_cp_begin = j;
    ++j;
  }
  const std::string_view name = text.substr(i, j - i);
  if (const NamedReference* r = find_named(name)) {
    out.append(r->text);
    return j;
  }
  // The longest known prefix (at least 2 characters, never the whole match)
  // is replaced and the rest kept, as the standard does for "&notit".
  // Names are ASCII, so only the ASCII head of the match can hold one.
  std::size_t ascii = 0;
  while (i + ascii < last_cp_begin && static_cast<unsigned char>(text[i + ascii]) < 0x80) ++ascii;
  for (std::size_t n = ascii; n >= 2; --n) {
    if (const NamedReference* r = find_named(text.substr(i, n))) {
      out.append(r->text);
      out.append(text.substr(i + n, j - i - n));
      return j;
    }
  }
  out.push_back('&');
  out.append(name);
  return j;
}

// Python's str.isspace() (str.strip's set) and the `regex` module's \s.
bool is_python_space(char32_t c) {
  return (c >= 0x9 && c <= 0xD) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
bool is_regex_space(char32_t c) { return is_python_space(c) && !(c >= 0x1C && c <= 0x1F); }

std::string_view python_strip(std::string_view text) {
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t len = 1;
    if (!is_python_space(decode_at(text, begin, len))) break;
    begin += len;
  }
  std::size_t end = begin;  // one past the last non-space code point
  for (std::size_t i = begin; i < text.size();) {
    std::size_t len = 1;
    const char32_t c = decode_at(text, i, len);
    i += len;
    if (!is_python_space(c)) end = i;
  }
  return text.substr(begin, end - begin);
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    std::size_t len;
    char32_t c;
    if (b < 0x80) {
      ++i;
      continue;
    }
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
      c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      c = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      c = b & 0x07;
    } else
      return false;
    if (i + len > text.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cb = static_cast<unsigned char>(text[i + k]);
      if ((cb & 0xC0) != 0x80) return false;
      c = (c << 6) | (cb & 0x3F);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) || (len == 4 && (c < 0x10000 || c > 0x10FFFF))) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string html_unescape(std::string_view text) {
  if (text.find('&') == std::string_view::npos) return std::string(text);
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == '&') {
      const std::size_t next = replace_reference(text, i, out);
      if (next != std::string::npos) {
        i = next;
        continue;
      }
    }
    out.push_back(text[i]);
    ++i;
  }
  return out;
}

std::string prompt_clean(std::string_view text) {
  if (!is_valid_utf8(text)) throw std::invalid_argument("prompt is not valid UTF-8");
  // basic_clean (without ftfy): unescape twice, strip.
  const std::string unescaped = html_unescape(html_unescape(text));
  const std::string_view basic = python_strip(unescaped);
  // whitespace_clean: runs of \s -> " ", strip.
  std::string collapsed;
  collapsed.reserve(basic.size());
  bool in_space = false;
  for (std::size_t i = 0; i < basic.size();) {
    std::size_t len = 1;
    const char32_t c = decode_at(basic, i, len);
    if (is_regex_space(c)) {
      if (!in_space) collapsed.push_back(' ');
      in_space = true;
    } else {
      collapsed.append(basic.substr(i, len));
      in_space = false;
    }
    i += len;
  }
  return std::string(python_strip(collapsed));
}

}  // namespace mmgen::video
