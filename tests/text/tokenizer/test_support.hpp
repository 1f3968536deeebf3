// Shared helpers of the tokenizer tests: files, the corpus, a tiny hand-made
// vocabulary, and running the Hugging Face reference script.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "mmgen/text/byte_level.hpp"
#include "mmgen/text/json.hpp"

namespace mmgen::text::testing {

namespace fs = std::filesystem;

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

inline std::string python() { return env_or("MMGEN_PYTHON", MMGEN_DEFAULT_PYTHON); }
inline fs::path qwen2_dir() {
  return env_or("MMGEN_QWEN2_TOKENIZER_DIR", MMGEN_DEFAULT_QWEN2_TOKENIZER_DIR);
}

// A folder under /tmp removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "mmgen_tok_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? fs::path(tmpl) : fs::path();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Why the Python reference cannot run here, or "" if it can.
inline std::string reference_unavailable() {
  static const std::string reason = [] {
    if (!fs::exists(python())) return "no Python at " + python() + " (run scripts/setup.sh)";
    std::string cmd = shell_quote(python()) + " -c 'import tokenizers, transformers' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0)
      return python() + " lacks tokenizers/transformers (pip install -r scripts/fixtures/requirements.txt)";
    return std::string();
  }();
  return reason;
}

// Runs tokenizer_reference.py; returns "" on success, else its stderr.
inline std::string run_reference(const std::vector<std::string>& args, const fs::path& work) {
  std::string cmd = shell_quote(python()) + " " + shell_quote(MMGEN_REFERENCE_SCRIPT);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  fs::path err = work / "reference.err";
  cmd += " 2> " + shell_quote(err.string());
  if (std::system(cmd.c_str()) == 0) return "";
  std::string e = read_file(err);
  return e.empty() ? "reference script failed" : e;
}

inline void write_jsonl(const fs::path& p, const std::vector<std::string>& texts) {
  std::string out;
  for (const auto& t : texts) out += json_quote(t) + "\n";
  write_file(p, out);
}

inline std::vector<Json> read_jsonl(const fs::path& p) {
  std::vector<Json> rows;
  std::istringstream in(read_file(p));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(parse_json(line));
  return rows;
}

// Corpus files in name order.
inline std::vector<fs::path> corpus_files() {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(MMGEN_CORPUS_DIR))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

// Lines split on '\n' only (a CRLF file keeps its '\r').
inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

// Test cases from the corpus: every line, every run of six lines with their
// line ends, and every whole file.
inline std::vector<std::string> corpus_cases(std::size_t* line_count = nullptr) {
  std::vector<std::string> cases;
  std::size_t lines_total = 0;
  for (const auto& f : corpus_files()) {
    std::string text = read_file(f);
    auto lines = split_lines(text);
    lines_total += lines.size();
    cases.insert(cases.end(), lines.begin(), lines.end());
    for (std::size_t i = 0; i < lines.size(); i += 6) {
      std::string block;
      for (std::size_t j = i; j < std::min(i + 6, lines.size()); ++j) block += lines[j] + "\n";
      cases.push_back(block);
    }
    cases.push_back(text);
  }
  if (line_count) *line_count = lines_total;
  return cases;
}

// A tiny tokenizer.json: the 256 byte tokens (id = byte value) and a few
// merges spelling "hello", " world", "lo" and "中" (3 bytes). `string_merges`
// picks the legacy "a b" merge form instead of [a, b].
inline std::string tiny_tokenizer_json(bool string_merges, const std::string& added_tokens = "[]",
                                       const std::string& extra_fields = "") {
  std::string vocab = "{";
  for (int b = 0; b < 256; ++b) {
    if (b) vocab += ", ";
    vocab += json_quote(to_byte_level(std::string(1, static_cast<char>(b)))) + ": " + std::to_string(b);
  }
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"l", "l"}, {"h", "e"}, {"he", "ll"}, {"l", "o"}, {"hell", "o"}, {"Ġ", "w"},
      {"o", "r"}, {"Ġw", "or"}, {"Ġwor", "l"}, {"Ġworl", "d"},
      {"ä", "¸"}, {"ä¸", "Ń"}};  // the bytes E4 B8 AD of 中
  int next = 256;
  std::string merge_list;
  for (const auto& [a, b] : merges) {
    vocab += ", " + json_quote(a + b) + ": " + std::to_string(next++);
    if (!merge_list.empty()) merge_list += ", ";
    merge_list += string_merges ? json_quote(a + " " + b)
                                : "[" + json_quote(a) + ", " + json_quote(b) + "]";
  }
  vocab += "}";
  return R"({"version": "1.0", "truncation": null, "padding": null, "added_tokens": )" + added_tokens +
         R"(, "normalizer": {"type": "NFC"},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]},
  "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
  "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, )" +
         extra_fields + R"("vocab": )" + vocab + R"(, "merges": [)" + merge_list + "]}}";
}

// Added tokens exercising every flag, ids 268..276 right after the tiny
// vocabulary (the reference renumbers added tokens that leave a gap).
inline std::string tiny_added_tokens() {
  auto tok = [](int id, const char* content, bool special, bool normalized, bool lstrip = false,
                bool rstrip = false, bool single_word = false) {
    auto b = [](bool v) { return v ? "true" : "false"; };
    return "{\"id\": " + std::to_string(id) + ", \"content\": " + json_quote(content) +
           ", \"single_word\": " + b(single_word) + ", \"lstrip\": " + b(lstrip) +
           ", \"rstrip\": " + b(rstrip) + ", \"normalized\": " + b(normalized) +
           ", \"special\": " + b(special) + "}";
  };
  return "[" + tok(268, "<|im_start|>", true, false) + ", " + tok(269, "<|im_end|>", true, false) +
         ", " + tok(270, "<think>", false, false) + ", " + tok(271, "[LS]", true, false, true) + ", " +
         tok(272, "[RS]", true, false, false, true) + ", " +
         tok(273, "[SW]", false, false, false, false, true) + ", " + tok(274, "<|im", false, false) +
         ", " + tok(275, "\xCE\xA9", false, true) + ", " + tok(276, "o\xCC\x88", false, false) + "]";
}

}  // namespace mmgen::text::testing
