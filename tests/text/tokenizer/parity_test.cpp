// Exact id parity with Hugging Face tokenizers, computed at test time by
// scripts/fixtures/tokenizer_reference.py: the real Qwen2 vocabulary on the
// corpus in tests/text/corpus and on a sweep of the Unicode code space, and
// the tiny vocabulary's added-token flags.
#include <gtest/gtest.h>

#include "mmgen/text/tokenizer.hpp"
#include "mmgen/text/unicode.hpp"
#include "test_support.hpp"

namespace mmgen::text {
namespace {

using namespace testing;

std::string show_ids(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

std::vector<TokenId> ids_of(const Json& row) {
  std::vector<TokenId> ids;
  for (const Json& v : row.find("ids")->as_array()) ids.push_back(static_cast<TokenId>(v.as_int()));
  return ids;
}

// Compares every case with the reference rows; returns the number of cases
// that differ and reports the first few.
std::size_t compare(const std::vector<std::string>& cases, const std::vector<Json>& rows,
                    const std::vector<std::pair<std::string, const Tokenizer*>>& tokenizers,
                    bool check_round_trip) {
  EXPECT_EQ(rows.size(), cases.size());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < std::min(rows.size(), cases.size()); ++i) {
    std::vector<TokenId> want = ids_of(rows[i]);
    bool ok = true;
    for (const auto& [name, tok] : tokenizers) {
      std::vector<TokenId> got = tok->encode(cases[i]);
      std::string decoded = tok->decode(got);
      bool same = got == want && decoded == rows[i].find("decoded")->as_string() &&
                  tok->decode(got, true) == rows[i].find("decoded_skip")->as_string() &&
                  (!check_round_trip || decoded == rows[i].find("nfc")->as_string());
      if (!same && bad < 5)
        ADD_FAILURE() << name << " differs on case " << i << ": " << json_quote(cases[i])
                      << "\n  reference: " << show_ids(want) << "\n  mmgen:     " << show_ids(got)
                      << "\n  decoded:   " << json_quote(decoded);
      ok = ok && same;
    }
    if (!ok) ++bad;
  }
  return bad;
}

class Qwen2Parity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(qwen2_dir() / "vocab.json"))
      GTEST_SKIP() << "no Qwen2 vocabulary at " << qwen2_dir()
                   << " (set MMGEN_QWEN2_TOKENIZER_DIR to the folder with vocab.json and merges.txt)";
    if (auto why = reference_unavailable(); !why.empty()) GTEST_SKIP() << why;
  }

  // Reference rows for `cases`; also writes the reference tokenizer.json to
  // work/tokenizer.json.
  std::vector<Json> reference(const std::vector<std::string>& cases) {
    write_jsonl(work_.path() / "cases.jsonl", cases);
    std::string err = run_reference({"encode", "--qwen2-dir", qwen2_dir().string(), "--cases",
                                     (work_.path() / "cases.jsonl").string(), "--out",
                                     (work_.path() / "ref.jsonl").string(), "--save-tokenizer-json",
                                     (work_.path() / "tokenizer.json").string()},
                                    work_.path());
    EXPECT_EQ(err, "");
    return err.empty() ? read_jsonl(work_.path() / "ref.jsonl") : std::vector<Json>{};
  }

  TempDir work_;
};

TEST_F(Qwen2Parity, CorpusIdsAndRoundTrip) {
  std::size_t lines = 0;
  std::vector<std::string> cases = corpus_cases(&lines);
  EXPECT_GE(lines, 2000u) << "the corpus should have at least 2,000 lines";
  std::vector<Json> rows = reference(cases);
  ASSERT_FALSE(rows.empty());
  // The same vocabulary two ways: the published file triplet, and the
  // tokenizer.json that transformers builds from it.
  Tokenizer from_files = Tokenizer::from_directory(qwen2_dir());
  Tokenizer from_json = Tokenizer::from_file(work_.path() / "tokenizer.json");
  std::size_t bad = compare(cases, rows, {{"vocab.json+merges.txt", &from_files},
                                          {"tokenizer.json", &from_json}},
                            /*check_round_trip=*/true);
  EXPECT_EQ(bad, 0u) << bad << " of " << cases.size() << " cases differ";
  std::size_t tokens = 0;
  for (const Json& r : rows) tokens += r.find("ids")->as_array().size();
  std::printf("[ parity ] %zu corpus lines, %zu cases, %zu reference tokens, %zu differ\n", lines,
              cases.size(), tokens, bad);
}

// Every code point of planes 0, 1, 3 and 14 (and every 7th of 2, 15, 16) in
// a few contexts: after a letter, doubled, after a space, before a digit.
TEST_F(Qwen2Parity, UnicodeSweep) {
  std::vector<std::string> cases;
  std::string current;
  int in_case = 0;
  auto add = [&](char32_t cp) {
    std::string c;
    append_utf8(c, cp);
    current += "x" + c + c + " " + c + "9\n";
    if (++in_case == 64) {
      cases.push_back(std::move(current));
      current.clear();
      in_case = 0;
    }
  };
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    unsigned plane = cp >> 16;
    bool full = plane == 0 || plane == 1 || plane == 3 || plane == 14;
    bool sampled = plane == 2 || plane >= 15;
    if (full || (sampled && cp % 7 == 0)) add(cp);
  }
  if (!current.empty()) cases.push_back(current);
  std::vector<Json> rows = reference(cases);
  ASSERT_FALSE(rows.empty());
  Tokenizer tok = Tokenizer::from_directory(qwen2_dir());
  // Round trip is not checked here: NFC tables of different Unicode versions
  // may disagree on characters assigned after Unicode 14.
  std::size_t bad = compare(cases, rows, {{"qwen2", &tok}}, /*check_round_trip=*/false);
  EXPECT_EQ(bad, 0u) << bad << " of " << cases.size() << " sweep cases differ";
}

// The Qwen3.5 split pattern (letters include \p{M}) is configuration: the
// reference tokenizer.json with only the pattern changed, on the corpus.
TEST_F(Qwen2Parity, Qwen35SplitPatternFromTokenizerJson) {
  ASSERT_FALSE(reference({"x"}).empty());
  const std::string qwen2 = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+)";
  const std::string qwen35 = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+)";
  std::string json = read_file(work_.path() / "tokenizer.json");
  auto at = json.find(qwen2);
  ASSERT_NE(at, std::string::npos) << "the Qwen2 pattern is not in the reference tokenizer.json";
  json.replace(at, qwen2.size(), qwen35);
  const fs::path path = work_.path() / "qwen35_pattern.json";
  write_file(path, json);

  std::vector<std::string> cases = corpus_cases();
  write_jsonl(work_.path() / "cases35.jsonl", cases);
  ASSERT_EQ(run_reference({"encode", "--tokenizer-json", path.string(), "--cases",
                           (work_.path() / "cases35.jsonl").string(), "--out",
                           (work_.path() / "ref35.jsonl").string()},
                          work_.path()),
            "");
  Tokenizer tok = Tokenizer::from_file(path);
  std::vector<Json> rows = read_jsonl(work_.path() / "ref35.jsonl");
  EXPECT_EQ(compare(cases, rows, {{"qwen3.5 pattern", &tok}}, true), 0u);
  // And the pattern matters: some case tokenizes differently from Qwen2's.
  Tokenizer qwen2_tok = Tokenizer::from_directory(qwen2_dir());
  std::size_t changed = 0;
  for (const std::string& c : cases) changed += tok.encode(c) != qwen2_tok.encode(c);
  EXPECT_GT(changed, 0u);
}

TEST(TinyParity, AddedTokenFlagsMatchTheReference) {
  if (auto why = reference_unavailable(); !why.empty()) GTEST_SKIP() << why;
  TempDir work;
  write_file(work.path() / "tokenizer.json", tiny_tokenizer_json(true, tiny_added_tokens()));
  std::vector<std::string> cases = {
      "a<|im_start|>b", "<|im_start|><|im_end|>", "<|im", "<|im_sta", "hello<think>world",
      "x  [LS]y", " [LS] [LS]", "[LS]", "x[RS] \t y", "x [RS]", "[RS]   ", "[SW] x", "a [SW]", "a[SW]",
      "[SW]b", "[SW][SW]", "_[SW]", "\xC3\xA9[SW]", "\xCE\xA9", "\xE2\x84\xA6", "\xC3\x85", "A\xCC\x8A", "o\xCC\x88", "\xC3\xB6",
      "x\xC2\xA0[LS]", "\xE3\x80\x80[RS]\xE3\x80\x80y", "hello world llo lo", "\xE4\xB8\xAD\xE4\xB8\xAD"};
  for (const auto& line : split_lines(read_file(corpus_files().front()))) cases.push_back(line);
  write_jsonl(work.path() / "cases.jsonl", cases);
  ASSERT_EQ(run_reference({"encode", "--tokenizer-json", (work.path() / "tokenizer.json").string(),
                           "--cases", (work.path() / "cases.jsonl").string(), "--out",
                           (work.path() / "ref.jsonl").string()},
                          work.path()),
            "");
  Tokenizer tok = Tokenizer::from_file(work.path() / "tokenizer.json");
  EXPECT_EQ(compare(cases, read_jsonl(work.path() / "ref.jsonl"), {{"tiny", &tok}}, false), 0u);
}

TEST(FixtureParity, TinyCheckpointTokenizerMatchesTheReference) {
  auto path = fs::path(MMGEN_TEXT_FIXTURES_DIR) / "qwen3_tied_gqa" / "tokenizer.json";
  if (!fs::exists(path)) GTEST_SKIP() << "no fixture at " << path;
  if (auto why = reference_unavailable(); !why.empty()) GTEST_SKIP() << why;
  TempDir work;
  std::vector<std::string> cases = corpus_cases();
  write_jsonl(work.path() / "cases.jsonl", cases);
  ASSERT_EQ(run_reference({"encode", "--tokenizer-json", path.string(), "--cases",
                           (work.path() / "cases.jsonl").string(), "--out",
                           (work.path() / "ref.jsonl").string()},
                          work.path()),
            "");
  Tokenizer tok = Tokenizer::from_file(path);
  EXPECT_EQ(compare(cases, read_jsonl(work.path() / "ref.jsonl"), {{"fixture", &tok}}, false), 0u);
}

}  // namespace
}  // namespace mmgen::text
