#define PCRE2_CODE_UNIT_WIDTH 8
#include "mmgen/text/split_regex.hpp"

#include <pcre2.h>

#include <cstdio>
#include <span>

#include "mmgen/protocol.hpp"

namespace mmgen::text {
namespace {

struct CodeRange {
  char32_t first, last;
};
#include "unicode_additions.inc"

// Unicode White_Space, Oniguruma's \s. PCRE2's UCP \s also has U+180E.
constexpr std::string_view kWhiteSpace =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

void append_hex(std::string& out, char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "\\x{%X}", static_cast<unsigned>(cp));
  out += buf;
}

// The class items for a general category: PCRE2's own property plus the
// code points assigned since its Unicode version.
std::string category_items(std::string_view name, std::span<const CodeRange> added) {
  std::string out = "\\p{" + std::string(name) + "}";
  for (const CodeRange& r : added) {
    append_hex(out, r.first);
    if (r.last != r.first) {
      out += '-';
      append_hex(out, r.last);
    }
  }
  return out;
}

// Items for \p{NAME} when NAME is a category with additions; "" otherwise.
std::string items_for(std::string_view name) {
  if (name == "L") return category_items(name, kAddedL);
  if (name == "M") return category_items(name, kAddedM);
  if (name == "N") return category_items(name, kAddedN);
  if (name == "Nd") return category_items(name, kAddedNd);
  return "";
}

}  // namespace

std::string onig_compatible_pattern(std::string_view p) {
  std::string out;
  out.reserve(p.size() * 4);
  int class_depth = 0;  // inside [...] (POSIX [:name:] counts as nesting)
  // Emits class items: bare inside a class, else wrapped as [items] / [^items].
  auto emit = [&](const std::string& items, bool negated) {
    if (class_depth > 0) out += items;
    else out += (negated ? "[^" : "[") + items + "]";
  };
  for (std::size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[++i];
      bool in_class = class_depth > 0;
      if (e == 's' || (e == 'S' && !in_class)) {
        emit(std::string(kWhiteSpace), e == 'S');
        continue;
      }
      if (e == 'd' || ((e == 'p' || (e == 'P' && !in_class)) && i + 1 < p.size())) {
        // \d, \pL, \p{Name}
        std::string name = "Nd";
        std::size_t end = i;
        if (e != 'd') {
          if (p[i + 1] == '{') {
            end = p.find('}', i + 1);
            name = end == std::string_view::npos ? "" : std::string(p.substr(i + 2, end - i - 2));
          } else {
            end = i + 1;
            name = std::string(1, p[i + 1]);
          }
        }
        std::string items = items_for(name);
        if (!items.empty()) {
          emit(items, e == 'P');
          i = end;
          continue;
        }
      }
      // Everything else passes through unchanged, including \w / \W (whose
      // definitions differ between the engines; no supported model uses
      // them) and \S / \P inside a class, which a class cannot subtract.
      out += c;
      out += e;
      continue;
    }
    if (c == '[' && (class_depth == 0 || (i + 1 < p.size() && p[i + 1] == ':'))) {
      ++class_depth;
      out += c;
      // A ']' or '^]' right after the opening bracket is a literal.
      if (class_depth == 1) {
        if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
        if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      }
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out += c;
  }
  return out;
}

struct SplitRegex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

SplitRegex::SplitRegex(std::string_view pattern, bool literal)
    : pattern_(pattern), code_(std::make_unique<Code>()) {
  std::string compiled = literal ? std::string(pattern) : onig_compatible_pattern(pattern);
  // PCRE2_LITERAL admits no UCP (a literal needs no classes anyway).
  std::uint32_t options = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(),
                              options, &err, &err_off, nullptr);
  if (code_->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                               "bad split regex at offset " + std::to_string(err_off) + ": " +
                                   reinterpret_cast<const char*>(msg) + " in " + pattern_);
  }
  // JIT is an optimisation only: the interpreter gives the same matches.
  pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE);
}

SplitRegex::~SplitRegex() = default;
SplitRegex::SplitRegex(SplitRegex&&) noexcept = default;
SplitRegex& SplitRegex::operator=(SplitRegex&&) noexcept = default;

void SplitRegex::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  struct MatchData {
    pcre2_match_data* md;
    MatchData() : md(pcre2_match_data_create(4, nullptr)) {}
    ~MatchData() { pcre2_match_data_free(md); }
  };
  thread_local MatchData data;
  if (data.md == nullptr)
    throw proto::ProtocolError(proto::ErrorCode::internal, "PCRE2 match data allocation failed");

  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t gap_start = 0, offset = 0;
  while (offset <= text.size()) {
    int rc = pcre2_match(code_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, data.md,
                         nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw proto::ProtocolError(proto::ErrorCode::internal,
                                 std::string("split regex failed: ") +
                                     reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.md);
    std::size_t s = ov[0], e = ov[1];
    if (e == s) {
      // Empty match: step over one character and search again.
      if (s >= text.size()) break;
      offset = s + 1;
      while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80)
        ++offset;
      continue;
    }
    if (s > gap_start) pieces.push_back(text.substr(gap_start, s - gap_start));
    pieces.push_back(text.substr(s, e - s));
    gap_start = offset = e;
  }
  if (gap_start < text.size()) pieces.push_back(text.substr(gap_start));
}

}  // namespace mmgen::text
