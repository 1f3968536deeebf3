// tokenizer_bench: encode ~1 MiB of mixed text (the tokenizer test corpus
// repeated) with mmgen's tokenizer on one thread, then time Hugging Face
// `tokenizers` on the same text in the same run and print the ratio.
//
// Inputs (defaults from the build): MMGEN_QWEN2_TOKENIZER_DIR (the real Qwen2
// vocabulary, ../shared/data/qwen2-tokenizer), MMGEN_PYTHON (the venv python).
// Without the vocabulary it says so and exits 0; without Python it prints
// mmgen's figures only.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "mmgen/text/json.hpp"
#include "mmgen/text/tokenizer.hpp"
#include "mmgen/text/unicode.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The corpus files in name order, repeated and cut to `bytes` at a character boundary.
std::string mixed_text(const fs::path& corpus_dir, std::size_t bytes) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(corpus_dir))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::string unit;
  for (const auto& f : files) unit += read_file(f);
  if (unit.empty()) return unit;
  std::string text;
  while (text.size() < bytes) text += unit;
  text.resize(bytes);
  text.resize(bytes - mmgen::text::utf8_incomplete_tail(text));
  return text;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}


// Lines of `text` with their '\n' (the unit a chat server usually encodes).
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::size_t n = nl == std::string_view::npos ? text.size() : nl + 1;
    lines.push_back(text.substr(0, n));
    text.remove_prefix(n);
  }
  return lines;
}

struct Timing {
  double seconds = 0;
  std::size_t tokens = 0;
};

// The reference's best of three, or nullopt (with the reason printed).
std::optional<Timing> reference_timing(const std::string& python, const fs::path& tok_dir,
                                       const fs::path& tmp, std::size_t bytes, bool per_line) {
  const std::string cmd = "'" + python + "' '" + MMGEN_REFERENCE_SCRIPT + "' bench --qwen2-dir '" +
                          tok_dir.string() + "' --input '" + (tmp / "text.txt").string() +
                          "' --bytes " + std::to_string(bytes) + (per_line ? " --per-line" : "") +
                          " > '" + (tmp / "hf.json").string() + "' 2> '" +
                          (tmp / "hf.err").string() + "'";
  if (!fs::exists(python) || std::system(cmd.c_str()) != 0) {
    std::printf("(HF tokenizers not measured: %s)\n",
                fs::exists(python) ? read_file(tmp / "hf.err").c_str() : "no python");
    return std::nullopt;
  }
  auto hf = mmgen::text::parse_json(read_file(tmp / "hf.json"));
  return Timing{hf.find("seconds")->as_double(), static_cast<std::size_t>(hf.find("tokens")->as_int())};
}

}  // namespace

int main() {
  const fs::path tok_dir = env_or("MMGEN_QWEN2_TOKENIZER_DIR", MMGEN_DEFAULT_QWEN2_TOKENIZER_DIR);
  const std::string python = env_or("MMGEN_PYTHON", MMGEN_DEFAULT_PYTHON);
  if (!fs::exists(tok_dir / "vocab.json")) {
    std::printf("tokenizer_bench: skipped, no Qwen2 vocabulary at %s\n", tok_dir.c_str());
    return 0;
  }
  const std::string text = mixed_text(MMGEN_CORPUS_DIR, 1u << 20);
  const double mb = static_cast<double>(text.size()) / 1e6;
  const std::vector<std::string_view> lines = lines_of(text);

  auto t0 = Clock::now();
  auto tok = mmgen::text::Tokenizer::from_directory(tok_dir);
  const double load_s = seconds_since(t0);

  // The first run fills the word cache; the best of three is the steady state.
  auto run = [&](bool per_line) {
    t0 = Clock::now();
    std::size_t tokens = 0;
    if (per_line) {
      for (std::string_view l : lines) tokens += tok.encode(l).size();
    } else {
      tokens = tok.encode(text).size();
    }
    return Timing{seconds_since(t0), tokens};
  };
  const Timing first = run(false);

  const fs::path tmp = fs::temp_directory_path() / ("mmgen_tokbench_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  std::ofstream(tmp / "text.txt", std::ios::binary) << text;

  std::printf("tokenizer_bench: %.2f MB of mixed text (tests/text/corpus repeated, %zu lines), "
              "one thread\n", mb, lines.size());
  std::printf("vocabulary: %s (loaded in %.2f s)\n", tok_dir.c_str(), load_s);
  std::printf("mmgen first run (cold word cache), whole text: %.3f s = %.2f MB/s\n\n", first.seconds,
              mb / first.seconds);
  std::printf("%-12s %-22s %9s %9s %10s\n", "input", "tokenizer (best of 3)", "seconds", "MB/s", "tokens");
  int status = 0;
  for (bool per_line : {false, true}) {
    Timing ours{1e9, 0};
    for (int i = 0; i < 3; ++i) {
      Timing t = run(per_line);
      if (t.seconds < ours.seconds) ours = t;
    }
    const char* label = per_line ? "line by line" : "one string";
    std::printf("%-12s %-22s %9.3f %9.2f %10zu\n", label, "mmgen", ours.seconds, mb / ours.seconds,
                ours.tokens);
    auto hf = reference_timing(python, tok_dir, tmp, text.size(), per_line);
    if (!hf) continue;
    std::printf("%-12s %-22s %9.3f %9.2f %10zu\n", label, "HF tokenizers", hf->seconds,
                mb / hf->seconds, hf->tokens);
    std::printf("%-12s %-22s %9.2fx\n", label, "speed-up over HF", hf->seconds / ours.seconds);
    if (hf->tokens != ours.tokens) {
      std::printf("token counts differ: mmgen %zu, HF %zu\n", ours.tokens, hf->tokens);
      status = 1;
    }
  }
  std::printf("\ntarget 1 MB in under 1 s on one core (first run): %s\n",
              first.seconds / mb < 1.0 ? "met" : "NOT met");
  fs::remove_all(tmp);
  return status;
}
