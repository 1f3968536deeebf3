#include "mmgen/text/detokenizer.hpp"

#include <gtest/gtest.h>

#include <random>

#include "mmgen/text/unicode.hpp"
#include "test_support.hpp"

namespace mmgen::text {
namespace {

using Ids = std::vector<TokenId>;

Tokenizer tiny() {
  return Tokenizer::from_json(testing::tiny_tokenizer_json(true, testing::tiny_added_tokens()));
}

TEST(IncrementalDetokenizer, HoldsBackACharacterSplitAcrossTokens) {
  Tokenizer tok = tiny();
  IncrementalDetokenizer detok(tok);
  // 中 = E4 B8 AD as three byte tokens; 😀 = F0 9F 98 80.
  EXPECT_EQ(detok.push(260), "hello");
  EXPECT_EQ(detok.push(0xE4), "");
  EXPECT_EQ(detok.pending_bytes(), 1u);
  EXPECT_EQ(detok.push(0xB8), "");
  EXPECT_EQ(detok.push(0xAD), "\xE4\xB8\xAD");
  EXPECT_EQ(detok.pending_bytes(), 0u);
  EXPECT_EQ(detok.push(Ids{0xF0, 0x9F}), "");
  EXPECT_EQ(detok.push(Ids{0x98, 0x80, '!'}), "\xF0\x9F\x98\x80!");
  EXPECT_EQ(detok.finish(), "");
}

TEST(IncrementalDetokenizer, MergedPrefixTokenThenLastByte) {
  Tokenizer tok = tiny();
  IncrementalDetokenizer detok(tok);
  EXPECT_EQ(detok.push(266), "");  // ä¸ = bytes E4 B8
  EXPECT_EQ(detok.push(0xAD), "\xE4\xB8\xAD");
}

TEST(IncrementalDetokenizer, InvalidBytesBecomeReplacementAtOnce) {
  Tokenizer tok = tiny();
  IncrementalDetokenizer detok(tok);
  EXPECT_EQ(detok.push(0xE4), "");
  // 'A' cannot continue E4: the pending byte is replaced, then A follows.
  EXPECT_EQ(detok.push('A'), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(detok.push(0x80), "\xEF\xBF\xBD");
  EXPECT_EQ(detok.push(0xF0), "");
  EXPECT_EQ(detok.finish(), "\xEF\xBF\xBD");  // stream ended inside a character
}

TEST(IncrementalDetokenizer, SpecialTokensKeptOrSkipped) {
  Tokenizer tok = tiny();
  IncrementalDetokenizer keep(tok), skip(tok, /*skip_special_tokens=*/true);
  Ids ids = tok.encode("<|im_start|>hello<think>\xE4\xB8\xAD<|im_end|>");
  std::string kept, skipped;
  for (TokenId id : ids) {
    kept += keep.push(id);
    skipped += skip.push(id);
  }
  EXPECT_EQ(kept + keep.finish(), "<|im_start|>hello<think>\xE4\xB8\xAD<|im_end|>");
  EXPECT_EQ(skipped + skip.finish(), "hello<think>\xE4\xB8\xAD");
}

TEST(IncrementalDetokenizer, StreamEqualsWholeDecodeForRandomBytes) {
  Tokenizer tok = tiny();
  std::mt19937 rng(1234);
  for (int round = 0; round < 200; ++round) {
    Ids ids;
    int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      // Mostly bytes that start or continue multi-byte characters.
      int pick = static_cast<int>(rng() % 10);
      ids.push_back(pick < 7 ? static_cast<TokenId>(0x80 + rng() % 0x78)
                             : pick < 9 ? static_cast<TokenId>(rng() % 268) : 268);
    }
    IncrementalDetokenizer detok(tok);
    std::string streamed;
    for (TokenId id : ids) {
      std::string piece = detok.push(id);
      EXPECT_FALSE(utf8_error_offset(piece).has_value()) << "round " << round;
      streamed += piece;
    }
    streamed += detok.finish();
    EXPECT_EQ(streamed, tok.decode(ids)) << "round " << round;
  }
}

}  // namespace
}  // namespace mmgen::text
