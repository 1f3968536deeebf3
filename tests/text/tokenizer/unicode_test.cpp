#include "mmgen/text/unicode.hpp"

#include <gtest/gtest.h>

#include "mmgen/protocol.hpp"
#include "mmgen/text/byte_level.hpp"
#include "mmgen/text/split_regex.hpp"
#include "mmgen/text/tokenizer.hpp"

namespace mmgen::text {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(Utf8, LossyReplacesEachMaximalSubpart) {
  EXPECT_EQ(utf8_lossy("abc"), "abc");
  EXPECT_EQ(utf8_lossy("\xE4\xB8\xAD"), "\xE4\xB8\xAD");
  // A truncated 3-byte sequence is one subpart; the byte after it starts anew.
  EXPECT_EQ(utf8_lossy("\xE4\xB8" "A"), kFFFD + "A");
  // Lone continuation bytes and never-valid bytes each become one U+FFFD.
  EXPECT_EQ(utf8_lossy("\x80\x80"), kFFFD + kFFFD);
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), kFFFD + kFFFD);
  // Surrogates (ED A0..BF) are ill-formed from the second byte.
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), kFFFD);
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);
}

TEST(Utf8, IncompleteTailIsOnlyAWellFormedPrefix) {
  EXPECT_EQ(utf8_incomplete_tail("ab\xE4"), 1u);
  EXPECT_EQ(utf8_incomplete_tail("ab\xE4\xB8"), 2u);
  EXPECT_EQ(utf8_incomplete_tail("ab\xE4\xB8\xAD"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8_incomplete_tail("\xC3\xA9"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\xE0\x80"), 0u);  // E0 80 can never complete
  EXPECT_EQ(utf8_incomplete_tail("\x80\x80\x80"), 0u);
}

TEST(Utf8, ErrorOffsetFindsTheFirstBadByte) {
  EXPECT_FALSE(utf8_error_offset("plain ascii text, long enough for the fast path"));
  EXPECT_EQ(utf8_error_offset("0123456789\xFF"), 10u);
  EXPECT_EQ(utf8_error_offset("\xE4\xB8\xAD\xE4\xB8"), 3u);
}

TEST(Nfc, ComposesAndReordersMarks) {
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");                  // e + acute -> é
  EXPECT_EQ(nfc("\xE2\x84\xAB"), "\xC3\x85");               // Angstrom sign -> Å
  EXPECT_EQ(nfc("a\xCC\xA3\xCC\x87"), "\xE1\xBA\xA1\xCC\x87");  // dot below before dot above
  EXPECT_EQ(nfc("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), "\xED\x95\x9C");  // Hangul jamo -> 한
  EXPECT_TRUE(is_nfc("plain"));
  EXPECT_FALSE(is_nfc("e\xCC\x81"));
}

TEST(ByteLevel, MapsAllBytesBothWays) {
  for (int b = 0; b < 256; ++b) {
    char32_t c = byte_to_char(static_cast<std::uint8_t>(b));
    EXPECT_EQ(char_to_byte(c), b);
  }
  EXPECT_EQ(to_byte_level(" "), "\xC4\xA0");    // Ġ
  EXPECT_EQ(to_byte_level("\n"), "\xC4\x8A");   // Ċ
  EXPECT_EQ(to_byte_level("A"), "A");
  EXPECT_EQ(from_byte_level("\xC4\xA0" "A"), std::string(" A"));
  EXPECT_FALSE(from_byte_level("\xE4\xB8\xAD"));  // 中 is not in the byte alphabet
}

std::vector<std::string> split(std::string_view pattern, std::string_view text) {
  SplitRegex re(pattern, false);
  std::vector<std::string_view> pieces;
  re.split(text, pieces);
  return {pieces.begin(), pieces.end()};
}

TEST(SplitRegex, QwenPatternPieces) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(kQwen2SplitPattern, "Hello world"), (V{"Hello", " world"}));
  // The last space before a word goes with the word; the others stay alone.
  EXPECT_EQ(split(kQwen2SplitPattern, "a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(split(kQwen2SplitPattern, "I'LL 12"), (V{"I", "'LL", " ", "1", "2"}));
  EXPECT_EQ(split(kQwen2SplitPattern, "x\r\n\r\ny"), (V{"x", "\r\n\r\n", "y"}));
  EXPECT_EQ(split(kQwen2SplitPattern, "ok!!\n\nnext"), (V{"ok", "!!\n\n", "next"}));
  EXPECT_EQ(split(kQwen2SplitPattern, "trailing  "), (V{"trailing", "  "}));
}

TEST(SplitRegex, WhitespaceIsOnigurumasWhiteSpace) {
  using V = std::vector<std::string>;
  // U+0085 (NEL) is White_Space: "a<NEL><NEL>b" has a whitespace run.
  EXPECT_EQ(split(kQwen2SplitPattern, "a\xC2\x85\xC2\x85" "b"), (V{"a", "\xC2\x85", "\xC2\x85" "b"}));
  // U+180E (Mongolian vowel separator) is not, though PCRE2's own \s says so.
  EXPECT_EQ(split(kQwen2SplitPattern, "x\xE1\xA0\x8E y"), (V{"x", "\xE1\xA0\x8E", " y"}));
  EXPECT_EQ(onig_compatible_pattern(R"(\S)"),
            "[^\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}"
            "\\x{2029}\\x{202F}\\x{205F}\\x{3000}]");
}

TEST(SplitRegex, LettersAndNumbersFollowUnicode16) {
  using V = std::vector<std::string>;
  // U+1D2C0 KAKTOVIK NUMERAL ZERO (Unicode 15.0) is \p{N}: one piece per digit,
  // and the space before it stays alone.
  EXPECT_EQ(split(kQwen2SplitPattern, "a \xF0\x9D\x8B\x80\xF0\x9D\x8B\x80"),
            (V{"a", " ", "\xF0\x9D\x8B\x80", "\xF0\x9D\x8B\x80"}));
  // U+2EBF0 (CJK Extension I, Unicode 15.1) is a letter: it joins the word.
  EXPECT_EQ(split(kQwen2SplitPattern, "\xE4\xB8\xAD\xF0\xAE\xAF\xB0"),
            (V{"\xE4\xB8\xAD\xF0\xAE\xAF\xB0"}));
  // Inside a negated class the additions are excluded too.
  std::string p = onig_compatible_pattern(R"([^\p{N}x])");
  EXPECT_TRUE(p.starts_with("[^\\p{N}\\x{10D40}-\\x{10D49}")) << p;
  EXPECT_TRUE(p.ends_with("x]")) << p;
}

// Qwen3.5's pattern differs only in treating marks as part of words; it is
// configuration (tokenizer.json), not code.
constexpr std::string_view kQwen35Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

TEST(SplitRegex, Qwen35PatternKeepsMarksInWords) {
  using V = std::vector<std::string>;
  const std::string hindi = "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87";  // नमस्ते
  EXPECT_EQ(split(kQwen35Pattern, " " + hindi), (V{" " + hindi}));
  // The Qwen2 pattern cuts the word at each combining mark.
  EXPECT_GT(split(kQwen2SplitPattern, " " + hindi).size(), 1u);
}

TEST(SplitRegex, BadPatternIsATypedError) {
  EXPECT_THROW((void)SplitRegex("(unclosed", false), proto::ProtocolError);
  EXPECT_NO_THROW((void)SplitRegex("(unclosed", true));  // a literal string pattern
}

}  // namespace
}  // namespace mmgen::text
