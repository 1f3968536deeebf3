// The umT5 tokenizer (SentencePiece) and prompt_clean against the Hugging Face
// tokenizer the Wan pipeline loads (AutoTokenizer -> T5Tokenizer) and
// diffusers' prompt_clean, on tests/fixtures/video/umt5:
//   - every line of tests/text/corpus: identical ids (the mismatching lines are
//     printed with both id lists);
//   - extra lines with special tokens, sentinels, whitespace and unknowns;
//   - prompt_clean on HTML references and whitespace corner cases;
//   - padding / truncation / mask of the pipeline's batch; errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/json.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/video/prompt_clean.hpp"
#include "mmgen/video/umt5_tokenizer.hpp"

namespace fs = std::filesystem;
using mmgen::Value;
using mmgen::io::LoadError;
using mmgen::video::UMT5Tokenizer;

namespace {

const fs::path kFixtures = MMGEN_UMT5_FIXTURES;
const fs::path kCorpus = MMGEN_UMT5_CORPUS;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Value cases() { return mmgen::io::parse_json(read_file(kFixtures / "cases.json"), "cases.json"); }

std::vector<std::int64_t> int_list(const Value& v) {
  std::vector<std::int64_t> out;
  for (const Value& x : v.as_array()) out.push_back(x.as_int());
  return out;
}

std::string show(const std::vector<std::int64_t>& ids) {
  std::string s;
  for (auto id : ids) s += std::to_string(id) + " ";
  return s;
}

std::string escaped(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

const UMT5Tokenizer& tokenizer() {
  static const UMT5Tokenizer t = UMT5Tokenizer::load(kFixtures / "tokenizer");
  return t;
}

}  // namespace

TEST(UMT5Tokenizer, SizeAndSpecialIds) {
  const UMT5Tokenizer& t = tokenizer();
  EXPECT_EQ(t.size(), 1500);  // 1200 pieces + 300 sentinels, len(tokenizer) in the fixture script
  EXPECT_EQ(t.extra_ids(), 300);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.unk_id(), 2);
  EXPECT_EQ(t.special_token_id("<extra_id_0>"), 1499);
  EXPECT_EQ(t.special_token_id("<extra_id_299>"), 1200);
  EXPECT_EQ(t.special_token_id("<extra_id_300>"), -1);
}

TEST(UMT5Tokenizer, WholeCorpusMatchesHuggingFace) {
  mmgen::io::Checkpoint ref = mmgen::io::Checkpoint::open(kFixtures / "reference.safetensors");
  const at::Tensor ids = ref.tensor("corpus_ids").to(at::kLong).contiguous();
  const at::Tensor offsets = ref.tensor("corpus_offsets").to(at::kLong).contiguous();
  const std::int64_t* id = ids.data_ptr<std::int64_t>();
  const std::int64_t* off = offsets.data_ptr<std::int64_t>();

  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kCorpus)) {
    if (e.path().extension() == ".txt") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());  // the fixture script's sorted(glob) order
  std::int64_t line_no = 0, mismatches = 0;
  for (const fs::path& f : files) {
    const std::string text = read_file(f);
    std::size_t begin = 0;
    while (true) {  // Python's str.split("\n"): a trailing newline gives a last empty line
      const std::size_t nl = text.find('\n', begin);
      const std::string line = text.substr(begin, nl == std::string::npos ? std::string::npos : nl - begin);
      ASSERT_LT(line_no + 1, offsets.numel()) << "more corpus lines than the reference has";
      const std::vector<std::int64_t> want(id + off[line_no], id + off[line_no + 1]);
      const std::vector<std::int64_t> got = tokenizer().encode(line);
      if (got != want) {
        ++mismatches;
        std::cout << f.filename().string() << " line '" << escaped(line) << "'\n  hf:   " << show(want)
                  << "\n  ours: " << show(got) << "\n";
      }
      ++line_no;
      if (nl == std::string::npos) break;
      begin = nl + 1;
    }
  }
  EXPECT_EQ(line_no + 1, offsets.numel()) << "corpus changed since the fixtures were made";
  std::cout << line_no << " corpus lines, " << mismatches << " differ from Hugging Face\n";
  EXPECT_EQ(mismatches, 0);
}

TEST(UMT5Tokenizer, ExtraLinesMatchHuggingFace) {
  const Value all = cases();
  for (const Value& c : all.as_map().at("lines").as_array()) {
    const std::string& text = c.as_map().at("text").as_string();
    EXPECT_EQ(show(tokenizer().encode(text)), show(int_list(c.as_map().at("ids")))) << "'" << escaped(text) << "'";
  }
}

TEST(UMT5Tokenizer, RandomStringsMatchHuggingFace) {
  // 2,000 strings mixing scripts, combining marks, jamo, whitespace and
  // control characters, emoji sequences, special tokens and byte literals.
  const Value all = cases();
  int mismatches = 0, n = 0;
  for (const Value& c : all.as_map().at("fuzz").as_array()) {
    ++n;
    const std::string& text = c.as_map().at("text").as_string();
    const std::vector<std::int64_t> want = int_list(c.as_map().at("ids"));
    const std::vector<std::int64_t> got = tokenizer().encode(text);
    if (got != want && ++mismatches <= 10) {
      std::cout << "'" << escaped(text) << "'\n  hf:   " << show(want) << "\n  ours: " << show(got) << "\n";
    }
  }
  EXPECT_EQ(n, 2000);
  EXPECT_EQ(mismatches, 0);
}

TEST(UMT5Tokenizer, PaddingTruncationMask) {
  const UMT5Tokenizer& t = tokenizer();
  const std::vector<std::int64_t> full = t.encode("A cat sleeps on the window sill in the evening light.");
  ASSERT_GT(full.size(), 6u);
  auto b = t.encode_batch({"A cat sleeps on the window sill in the evening light.", ""}, 6);
  ASSERT_EQ(b.batch, 2);
  ASSERT_EQ(b.length, 6);
  // Truncated: the first 5 ids, then </s>.
  std::vector<std::int64_t> row0(b.input_ids.begin(), b.input_ids.begin() + 6);
  std::vector<std::int64_t> want0(full.begin(), full.begin() + 5);
  want0.push_back(t.eos_id());
  EXPECT_EQ(row0, want0);
  EXPECT_EQ(std::vector<std::int64_t>(b.attention_mask.begin(), b.attention_mask.begin() + 6),
            std::vector<std::int64_t>(6, 1));
  // Empty: just </s>, then padding.
  EXPECT_EQ(std::vector<std::int64_t>(b.input_ids.begin() + 6, b.input_ids.end()),
            (std::vector<std::int64_t>{1, 0, 0, 0, 0, 0}));
  EXPECT_EQ(std::vector<std::int64_t>(b.attention_mask.begin() + 6, b.attention_mask.end()),
            (std::vector<std::int64_t>{1, 0, 0, 0, 0, 0}));
  EXPECT_THROW(t.encode_batch({"x"}, 0), std::invalid_argument);
  EXPECT_THROW(t.encode("bad \xFF byte"), std::invalid_argument);
}

TEST(PromptClean, MatchesDiffusers) {
  const Value all = cases();
  for (const Value& c : all.as_map().at("prompt_clean").as_array()) {
    const std::string& raw = c.as_map().at("raw").as_string();
    EXPECT_EQ(escaped(mmgen::video::prompt_clean(raw)), escaped(c.as_map().at("clean").as_string()))
        << "raw '" << escaped(raw) << "'";
  }
}

TEST(PromptClean, RejectsInvalidUtf8) {
  EXPECT_THROW(mmgen::video::prompt_clean("bad \xC3\x28 byte"), std::invalid_argument);
  EXPECT_THROW(mmgen::video::prompt_clean("surrogate \xED\xA0\x80"), std::invalid_argument);
  EXPECT_THROW(mmgen::video::prompt_clean("overlong \xC0\xAF"), std::invalid_argument);
  EXPECT_THROW(mmgen::video::prompt_clean("cut \xE4\xB8"), std::invalid_argument);
  EXPECT_EQ(mmgen::video::prompt_clean("ok \xE4\xB8\xAD"), "ok \xE4\xB8\xAD");
}

TEST(UMT5Tokenizer, MissingSpieceModelIsAClearLoadError) {
  const fs::path dir = fs::temp_directory_path() / ("umt5_tok_missing_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(kFixtures / "tokenizer" / "tokenizer_config.json", dir / "tokenizer_config.json",
                fs::copy_options::overwrite_existing);
  try {
    UMT5Tokenizer::load(dir);
    ADD_FAILURE() << "no error";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), mmgen::io::LoadErrorKind::io);
    EXPECT_NE(std::string(e.what()).find("spiece.model"), std::string::npos) << e.what();
  }
  // Not a SentencePiece model.
  { std::ofstream(dir / "spiece.model") << "this is not a protobuf"; }
  try {
    UMT5Tokenizer::load(dir);
    ADD_FAILURE() << "no error";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.kind(), mmgen::io::LoadErrorKind::bad_header);
    EXPECT_NE(std::string(e.what()).find("spiece.model"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
