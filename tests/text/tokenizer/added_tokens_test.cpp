// Added tokens on the tiny vocabulary: <|im_start|>=268 <|im_end|>=269 (special),
// <think>=270, [LS]=271 (lstrip), [RS]=272 (rstrip), [SW]=273 (single_word),
// <|im=274, Ω=275 (normalized), o+U+0308=276 (raw, decomposed).
#include <gtest/gtest.h>

#include <algorithm>

#include "mmgen/text/tokenizer.hpp"
#include "test_support.hpp"

namespace mmgen::text {
namespace {

using Ids = std::vector<TokenId>;

Tokenizer tiny() {
  return Tokenizer::from_json(testing::tiny_tokenizer_json(true, testing::tiny_added_tokens()));
}

TEST(AddedTokens, MatchedBeforeSplittingLongestFirst) {
  Tokenizer tok = tiny();
  EXPECT_EQ(tok.encode("a<|im_start|>b"), (Ids{'a', 268, 'b'}));
  EXPECT_EQ(tok.encode("<|im_start|><|im_end|>"), (Ids{268, 269}));
  EXPECT_EQ(tok.encode("<|im"), (Ids{274}));
  EXPECT_EQ(tok.encode("<|im_sta"), (Ids{274, '_', 's', 't', 'a'}));
  EXPECT_EQ(tok.encode("hello<think>world"), (Ids{260, 270, 'w', 262, 'l', 'd'}));
}

TEST(AddedTokens, LstripRstripSwallowWhitespace) {
  Tokenizer tok = tiny();
  EXPECT_EQ(tok.encode("x  [LS]y"), (Ids{'x', 271, 'y'}));
  EXPECT_EQ(tok.encode("x[RS] \t y"), (Ids{'x', 272, 'y'}));
  EXPECT_EQ(tok.encode("x [RS]"), (Ids{'x', ' ', 272}));
}

TEST(AddedTokens, SingleWordOnlyOutsideWords) {
  Tokenizer tok = tiny();
  EXPECT_EQ(tok.encode("[SW] x"), (Ids{273, ' ', 'x'}));
  EXPECT_EQ(tok.encode("a [SW]"), (Ids{'a', ' ', 273}));
  // Inside a word it is plain text.
  Ids inside = tok.encode("a[SW]");
  EXPECT_EQ(std::count(inside.begin(), inside.end(), 273), 0);
  EXPECT_EQ(tok.decode(inside), "a[SW]");
}

TEST(AddedTokens, NormalizedTokensMatchNormalizedText) {
  Tokenizer tok = tiny();
  EXPECT_EQ(tok.encode("\xCE\xA9"), (Ids{275}));      // Ω
  EXPECT_EQ(tok.encode("\xE2\x84\xA6"), (Ids{275}));  // the Ohm sign, Ω after NFC
  // A raw (not normalized) token is matched before NFC, in its own spelling.
  EXPECT_EQ(tok.encode("o\xCC\x88"), (Ids{276}));
}

TEST(AddedTokens, CanBeTreatedAsText) {
  Tokenizer tok = tiny();
  Ids ids = tok.encode("<|im_start|>", /*match_added_tokens=*/false);
  EXPECT_GT(ids.size(), 1u);
  EXPECT_EQ(tok.decode(ids), "<|im_start|>");
}

TEST(AddedTokens, SkipSpecialDropsOnlySpecialOnes) {
  Tokenizer tok = tiny();
  Ids ids = tok.encode("<|im_start|>hello<think><|im_end|>");
  EXPECT_EQ(tok.decode(ids), "<|im_start|>hello<think><|im_end|>");
  EXPECT_EQ(tok.decode(ids, true), "hello<think>");
  EXPECT_TRUE(tok.is_special(268));
  EXPECT_FALSE(tok.is_special(270));
  EXPECT_EQ(tok.token_to_id("<think>"), 270);
  EXPECT_EQ(tok.id_to_token(269), "<|im_end|>");
  EXPECT_EQ(tok.id_to_token(32), "\xC4\xA0");  // the byte-level spelling of a space
  EXPECT_EQ(tok.vocab_size(), 277u);
}

}  // namespace
}  // namespace mmgen::text
