// The pre-tokenizer's Split step: a regex from tokenizer.json, run with PCRE2
// (UTF + UCP, JIT), whose matches and the gaps between them become pieces
// ("Isolated" behaviour).
//
// Hugging Face compiles these patterns with Oniguruma, whose Unicode tables
// are newer (16.0 in tokenizers 0.23) than Debian's PCRE2 10.42 (14.0), and
// whose \s differs. The pattern is rewritten so PCRE2 matches what Oniguruma
// matches:
//  - \s / \S: Unicode White_Space written out (PCRE2's \s adds U+180E).
//  - \p{L}, \p{M}, \p{N}, \p{Nd}, \d (and \P{..} outside a class): PCRE2's
//    property plus the code points assigned in Unicode 15.0-16.0, from a table
//    generated from the reference (src/unicode_additions.inc).
// \w and \W are not rewritten (the engines' word classes differ in ways a
// class cannot express); no supported model's pattern uses them.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mmgen::text {

class SplitRegex {
 public:
  // `literal`: the pattern is a plain string ({"String": ...} in tokenizer.json).
  // Throws ProtocolError(invalid_request) with PCRE2's message on a bad pattern.
  SplitRegex(std::string_view pattern, bool literal);
  ~SplitRegex();
  SplitRegex(SplitRegex&&) noexcept;
  SplitRegex& operator=(SplitRegex&&) noexcept;

  // Appends the pieces of `text` (valid UTF-8) to `pieces`: each match and each
  // non-empty gap, in order. Empty matches produce no piece.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::string pattern_;  // as given
  std::unique_ptr<Code> code_;
};

// The Oniguruma-compatible rewrite described above (exposed for tests).
std::string onig_compatible_pattern(std::string_view pattern);

}  // namespace mmgen::text
