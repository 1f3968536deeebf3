// BPE and tokenizer loading on a tiny hand-made vocabulary (test_support.hpp):
// byte tokens 0..255, then ll=256 he=257 hell=258 lo=259 hello=260 Ġw=261
// or=262 Ġwor=263 Ġworl=264 Ġworld=265 ä¸=266 中=267.
#include <gtest/gtest.h>

#include <thread>

#include "mmgen/protocol.hpp"
#include "mmgen/text/tokenizer.hpp"
#include "mmgen/text/unicode.hpp"
#include "test_support.hpp"

namespace mmgen::text {
namespace {

using testing::tiny_tokenizer_json;
using Ids = std::vector<TokenId>;

TEST(Bpe, MergesByRankInBothMergeForms) {
  for (bool string_form : {true, false}) {
    Tokenizer tok = Tokenizer::from_json(tiny_tokenizer_json(string_form));
    EXPECT_EQ(tok.encode("hello"), (Ids{260}));
    EXPECT_EQ(tok.encode("hello world"), (Ids{260, 265}));
    EXPECT_EQ(tok.encode("\xE4\xB8\xAD"), (Ids{267}));
    // "llo": ll (rank 0) is applied before lo (rank 3), so lo never forms.
    EXPECT_EQ(tok.encode("llo"), (Ids{256, 'o'}));
    EXPECT_EQ(tok.encode("lo"), (Ids{259}));
    // Unmerged bytes stay byte tokens; a space before a digit stays alone.
    EXPECT_EQ(tok.encode("hex 1"), (Ids{257, 'x', ' ', '1'}));
  }
}

TEST(Bpe, SameResultFromTheWordCache) {
  Tokenizer tok = Tokenizer::from_json(tiny_tokenizer_json(false));
  Ids first = tok.encode("hello hello hello llo llo");
  Ids again = tok.encode("hello hello hello llo llo");
  EXPECT_EQ(first, again);
  EXPECT_EQ(first, (Ids{260, ' ', 260, ' ', 260, ' ', 256, 'o', ' ', 256, 'o'}));
}

TEST(Bpe, ConcurrentEncodesShareTheCacheSafely) {
  Tokenizer tok = Tokenizer::from_json(tiny_tokenizer_json(false));
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i)
    texts.push_back("hello world llo " + std::to_string(i) + " \xE4\xB8\xAD" + std::string(i % 7, 'l'));
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(Tokenizer::from_json(tiny_tokenizer_json(false)).encode(t));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int round = 0; round < 20; ++round)
        for (std::size_t i = 0; i < texts.size(); ++i)
          mismatches[k] += tok.encode(texts[(i + k * 31) % texts.size()]) != expected[(i + k * 31) % texts.size()];
    });
  for (auto& t : threads) t.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(Bpe, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  // "hel" is in the vocabulary but no merge builds it (there is no he + l).
  auto with_hel = [](std::string json) {
    json.replace(json.find(R"("hello": 260)"), 12, R"("hello": 260, "hel": 300)");
    return json;
  };
  Tokenizer merging = Tokenizer::from_json(with_hel(tiny_tokenizer_json(false)));
  Tokenizer whole = Tokenizer::from_json(
      with_hel(tiny_tokenizer_json(false, "[]", R"("ignore_merges": true, )")));
  EXPECT_EQ(merging.encode("hel"), (Ids{257, 'l'}));
  EXPECT_EQ(whole.encode("hel"), (Ids{300}));
  EXPECT_EQ(whole.encode("llo"), (Ids{256, 'o'}));
}

TEST(Bpe, DecodeInvertsEncode) {
  Tokenizer tok = Tokenizer::from_json(tiny_tokenizer_json(true));
  for (std::string s : {"hello world", "llo\n\n\tx", "\xE4\xB8\xAD\xE6\x96\x87 ok", "e\xCC\x81"}) {
    EXPECT_EQ(tok.decode(tok.encode(s)), nfc(s));
  }
  // A lone continuation byte decodes to U+FFFD, not to a crash or raw bytes.
  EXPECT_EQ(tok.decode(Ids{0xAD}), "\xEF\xBF\xBD");
  EXPECT_TRUE(tok.encode("").empty());
  // Unknown ids are skipped.
  EXPECT_EQ(tok.decode(Ids{260, 99999, -5, 265}), "hello world");
}

TEST(Bpe, NfcIsAppliedBeforeSplitting) {
  Tokenizer tok = Tokenizer::from_json(tiny_tokenizer_json(true));
  EXPECT_EQ(tok.encode("e\xCC\x81"), tok.encode("\xC3\xA9"));
  EXPECT_EQ(tok.encode("e\xCC\x81").size(), 2u);  // é is two bytes, no merge
}

TEST(Bpe, InvalidUtf8IsATypedError) {
  Tokenizer tok = Tokenizer::from_json(tiny_tokenizer_json(true));
  try {
    tok.encode("abc\xFF");
    FAIL();
  } catch (const proto::ProtocolError& e) {
    EXPECT_EQ(e.code(), proto::ErrorCode::invalid_request);
    EXPECT_NE(std::string(e.what()).find("byte 3"), std::string::npos);
  }
}

TEST(TokenizerFiles, MergeOutsideTheVocabularyIsNamed) {
  std::string json = tiny_tokenizer_json(true);
  json.insert(json.rfind(']'), R"(, "q z")");
  try {
    Tokenizer::from_json(json);
    FAIL();
  } catch (const proto::ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("\"q\", \"z\""), std::string::npos) << e.what();
  }
}

TEST(TokenizerFiles, UnsupportedFeaturesAreRefused) {
  auto with = [](std::string from, std::string to) {
    std::string json = tiny_tokenizer_json(true);
    json.replace(json.find(from), from.size(), to);
    return json;
  };
  for (const auto& json : {with(R"("byte_fallback": false)", R"("byte_fallback": true)"),
                           with(R"("type": "NFC")", R"("type": "NFKC")"),
                           with(R"("behavior": "Isolated")", R"("behavior": "Removed")"),
                           with(R"("type": "BPE")", R"("type": "WordPiece")"),
                           with(R"("truncation": null)", R"("truncation": {"max_length": 8})")}) {
    try {
      Tokenizer::from_json(json);
      ADD_FAILURE() << "accepted an unsupported tokenizer";
    } catch (const proto::ProtocolError& e) {
      EXPECT_EQ(e.code(), proto::ErrorCode::unsupported) << e.what();
    }
  }
  EXPECT_THROW(Tokenizer::from_json("{\"model\": 3}"), proto::ProtocolError);
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.json"), proto::ProtocolError);
}

TEST(TokenizerFiles, LoadsTheTinyFixtureCheckpointTokenizer) {
  // Written by Hugging Face tokenizers for the tiny text fixtures (array merges).
  auto path = std::filesystem::path(MMGEN_TEXT_FIXTURES_DIR) / "qwen3_tied_gqa" / "tokenizer.json";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no fixture at " << path;
  Tokenizer tok = Tokenizer::from_file(path);
  auto im_start = tok.token_to_id("<|im_start|>");
  ASSERT_TRUE(im_start.has_value());
  EXPECT_TRUE(tok.is_special(*im_start));
  Ids ids = tok.encode("<|im_start|>user\nThe quick brown fox<|im_end|>");
  EXPECT_EQ(ids.front(), *im_start);
  EXPECT_EQ(tok.decode(ids), "<|im_start|>user\nThe quick brown fox<|im_end|>");
  EXPECT_EQ(tok.decode(ids, /*skip_special_tokens=*/true), "user\nThe quick brown fox");
}

}  // namespace
}  // namespace mmgen::text
