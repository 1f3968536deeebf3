// Id parity of the Qwen3.5-layout tokenizer on the real Qwen2 vocabulary
// (../shared/data/qwen2-tokenizer, read in place): the fixture script builds,
// at test time, the tokenizer.json with Qwen3.5's split regex and special
// tokens over those 151k merges, and records transformers' ids for the corpus.
// Nothing of it is kept. Skips without the vocabulary or the Python packages.
#include <gtest/gtest.h>

#include "mmgen/text/chat.hpp"
#include "mmgen/text/tokenizer.hpp"
#include "mmgen/text/unicode.hpp"
#include "test_support.hpp"

namespace mmgen::text {
namespace {

using namespace testing;

std::vector<TokenId> ids_of(const Json& row) {
  std::vector<TokenId> ids;
  for (const Json& v : row.find("ids")->as_array()) ids.push_back(static_cast<TokenId>(v.as_int()));
  return ids;
}

TEST(Qwen35RealVocabulary, CorpusIdsMatchTransformers) {
  if (!fs::exists(qwen2_dir() / "vocab.json"))
    GTEST_SKIP() << "no Qwen2 vocabulary at " << qwen2_dir()
                 << " (set MMGEN_QWEN2_TOKENIZER_DIR to the folder with vocab.json and merges.txt)";
  if (auto why = reference_unavailable(); !why.empty()) GTEST_SKIP() << why;
  TempDir work;
  std::size_t lines = 0;
  std::vector<std::string> cases = corpus_cases(&lines);
  EXPECT_GE(lines, 2000u);
  write_jsonl(work.path() / "cases.jsonl", cases);
  std::string cmd = shell_quote(python()) + " " + shell_quote(MMGEN_QWEN35_FIXTURE_SCRIPT) +
                    " real --qwen2-dir " + shell_quote(qwen2_dir().string()) + " --out " +
                    shell_quote((work.path() / "tok").string()) + " --cases " +
                    shell_quote((work.path() / "cases.jsonl").string()) + " --ids-out " +
                    shell_quote((work.path() / "ref.jsonl").string()) + " 2> " +
                    shell_quote((work.path() / "err.txt").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(work.path() / "err.txt");

  Tokenizer tok = Tokenizer::from_directory(work.path() / "tok");
  EXPECT_EQ(tok.token_to_id("<|im_start|>"), 248045);
  EXPECT_EQ(tok.token_to_id("<think>"), 248068);
  EXPECT_EQ(ChatTemplate::from_model_dir(work.path() / "tok").format, ChatFormat::qwen3_5);
  Tokenizer qwen2 = Tokenizer::from_directory(qwen2_dir());

  std::vector<Json> rows = read_jsonl(work.path() / "ref.jsonl");
  ASSERT_EQ(rows.size(), cases.size());
  std::size_t bad = 0, tokens = 0, differs_from_qwen2 = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::vector<TokenId> want = ids_of(rows[i]), got = tok.encode(cases[i]);
    tokens += want.size();
    bool same = got == want && tok.decode(got) == rows[i].find("decoded")->as_string() &&
                tok.decode(got, true) == rows[i].find("decoded_skip")->as_string();
    if (!same && bad < 5) ADD_FAILURE() << "case " << i << " differs: " << json_quote(cases[i]);
    bad += !same;
    // Qwen2's ids for the same text differ where the regexes split differently
    // (and wherever a special token appears, its id having moved).
    differs_from_qwen2 += qwen2.encode(cases[i], false) != tok.encode(cases[i], false);
  }
  EXPECT_EQ(bad, 0u) << bad << " of " << cases.size() << " cases differ";
  EXPECT_GT(differs_from_qwen2, 0u);
  std::printf("[ qwen3.5 real vocab ] %zu corpus lines, %zu cases, %zu reference tokens, %zu differ; "
              "%zu cases split differently from Qwen2\n",
              lines, cases.size(), tokens, bad, differs_from_qwen2);
}

}  // namespace
}  // namespace mmgen::text
