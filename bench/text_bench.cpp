// text_bench: the text engine against Hugging Face transformers on the same
// weights and threads, in the same run.
//
// Model: a Qwen3-architecture checkpoint with random weights (seeded),
// written by bench/text_bench_reference.py: vocab 32000, hidden 768, 12
// layers, 12 query / 4 KV heads of 64, intermediate 2048, tied embeddings
// (~100 M parameters). For float32 and bfloat16, with --threads (default 2):
//   prefill   tokens/s of one forward over a 512-token prompt
//   decode@1  tokens/s of greedy decoding after a 32-token prompt
//   decode@16 aggregate tokens/s of 16 such requests batched
// Decode is (N - 1) tokens over the time from the first sampled token to the
// last (transformers: time of generate(N) minus generate(1)).
// Decode at batch 1 is also shown as a fraction of the memory-bandwidth bound:
// bytes of weights read per token x tokens/s / measured copy bandwidth
// (bytes read + written per second by a 256 MiB tensor copy on the same threads).
// Each dtype's transformers run comes right before the engine's, and both sides
// keep their best repetition, so a busy shared machine skews the ratio less.
//
//   text_bench [--threads N] [--decode-tokens N] [--dtypes float32,bfloat16] [--python PATH]
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/randint.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/text/engine.hpp"
#include "mmgen/text/json.hpp"

namespace fs = std::filesystem;
using namespace mmgen::text;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run: " + cmd);
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0) throw std::runtime_error("reference script failed (" + std::to_string(rc) + "): " + cmd);
  return out;
}

double copy_bandwidth() {
  const std::int64_t n = (std::int64_t(256) << 20) / 4;
  at::Tensor a = at::empty({n}, at::kFloat).fill_(1.0f), b = at::empty({n}, at::kFloat);
  b.copy_(a);
  double best = 1e9;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    b.copy_(a);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * double(n) * 4 / best;
}

// Weights read to produce one token (every matmul weight once, the head included).
double weight_bytes_per_token(const QwenConfig& c, std::int64_t elem) {
  const double H = double(c.hidden_size), I = double(c.intermediate_size);
  const double per_layer = H * double(c.q_size()) * 2 + H * double(c.kv_size()) * 2 + 3 * H * I + 2 * H;
  return (per_layer * double(c.num_hidden_layers) + double(c.vocab_size) * H + H) * double(elem);
}

std::vector<TokenId> random_prompt(std::mt19937& rng, int n, std::int64_t vocab) {
  std::uniform_int_distribution<TokenId> d(3, TokenId(vocab - 1));
  std::vector<TokenId> v(static_cast<std::size_t>(n));
  for (auto& t : v) t = d(rng);
  return v;
}

SamplingParams greedy(std::int64_t n) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = n;
  p.ignore_eos = true;
  return p;
}

struct Figures {
  double prefill = 0, decode1 = 0, decode16 = 0;
};

Figures measure(const QwenForCausalLM& model, int decode_tokens) {
  EngineConfig cfg;
  cfg.kv_cache_bytes = std::int64_t(1) << 30;
  cfg.max_num_batched_tokens = 512;
  cfg.max_num_seqs = 16;
  cfg.enable_prefix_caching = false;  // every run computes its prompt
  Engine engine(model, nullptr, {}, cfg);
  std::mt19937 rng(1);
  const std::int64_t V = model.config().vocab_size;
  Figures f;

  // Prefill: one step over a 512-token prompt (after a warm-up).
  double best = 1e9;
  for (int rep = 0; rep < 4; ++rep) {
    engine.add(random_prompt(rng, 512, V), greedy(1), {});
    auto t0 = Clock::now();
    engine.step();
    if (rep > 0) best = std::min(best, seconds_since(t0));
    while (engine.has_work()) engine.step();
  }
  f.prefill = 512 / best;

  for (int batch : {1, 16}) {
    for (int rep = 0; rep < 3; ++rep) {  // the first is a warm-up
      std::vector<Clock::time_point> firsts, lasts;
      int done = 0;
      for (int i = 0; i < batch; ++i) {
        engine.add(random_prompt(rng, 32, V), greedy(decode_tokens), [&](const TokenEvent& ev) {
          if (ev.token && !ev.finished && firsts.size() < std::size_t(batch)) firsts.push_back(Clock::now());
          if (ev.finished) {
            lasts.push_back(Clock::now());
            ++done;
          }
        });
      }
      while (engine.has_work()) engine.step();
      if (rep == 0) continue;
      const auto t_first = *std::max_element(firsts.begin(), firsts.end());  // every prompt done
      const auto t_last = *std::max_element(lasts.begin(), lasts.end());
      const double dt = std::chrono::duration<double>(t_last - t_first).count();
      const double rate = double(batch) * (decode_tokens - 1) / dt;
      double& best_rate = batch == 1 ? f.decode1 : f.decode16;
      best_rate = std::max(best_rate, rate);
    }
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, decode_tokens = 32;
  std::string dtypes = "float32,bfloat16";
  std::string python = MMGEN_DEFAULT_PYTHON;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--threads") threads = std::stoi(value());
    else if (a == "--decode-tokens") decode_tokens = std::max(2, std::stoi(value()));
    else if (a == "--dtypes") dtypes = value();
    else if (a == "--python") python = value();
    else {
      std::cerr << "usage: text_bench [--threads N] [--decode-tokens N] [--dtypes float32,bfloat16] [--python PATH]\n";
      return 2;
    }
  }
  at::set_num_threads(threads);
  char tmpl[] = "/tmp/mmgen-text-bench-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path dir = tmpl;
  try {
    std::cout << "text_bench: writing the checkpoint and timing transformers (" << threads << " threads)...\n"
              << std::flush;
    const std::string script = "'" + python + "' '" + MMGEN_TEXT_BENCH_SCRIPT + "' --out '" + dir.string() +
                               "' --threads " + std::to_string(threads) + " --decode-tokens " +
                               std::to_string(decode_tokens);
    std::map<std::string, Figures> ref;
    std::int64_t params = 0;
    auto read_lines = [&](const std::string& out) {
      std::istringstream lines(out);
      for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] != '{') continue;
        const Json j = parse_json(line);
        if (const Json* p = j.find("params")) params = p->as_int();
        if (const Json* d = j.find("dtype")) {
          ref[d->as_string()] = Figures{j.find("prefill_tok_s")->as_double(), j.find("decode1_tok_s")->as_double(),
                                        j.find("decode16_tok_s")->as_double()};
        }
      }
    };
    read_lines(run_capture(script + " --skip-timing"));
    const double bw = copy_bandwidth();
    std::printf("\nmodel: Qwen3, %.1f M parameters (vocab 32000, hidden 768, 12 layers, 12/4 heads x 64, "
                "intermediate 2048, tied), random weights\n",
                double(params) / 1e6);
    std::printf("threads: %d; decode: %d tokens after a 32-token prompt; copy bandwidth %.2f GB/s\n\n", threads,
                decode_tokens, bw / 1e9);
    std::printf("%-9s %-14s %12s %14s %8s\n", "dtype", "metric", "mmgen tok/s", "transformers", "ratio");
    std::stringstream ss(dtypes);
    for (std::string dt; std::getline(ss, dt, ',');) {
      read_lines(run_capture(script + " --no-write --dtypes " + dt));
      const c10::ScalarType st = dt == "bfloat16" ? at::kBFloat16 : dt == "float16" ? at::kHalf : at::kFloat;
      const QwenForCausalLM model = QwenForCausalLM::load(dir, mmgen::io::LoadOptions{st, c10::Device(c10::kCPU)});
      const Figures f = measure(model, decode_tokens);
      const Figures r = ref.count(dt) ? ref[dt] : Figures{};
      auto row = [&](const char* name, double ours, double theirs) {
        std::printf("%-9s %-14s %12.1f %14.1f %7.2fx\n", dt.c_str(), name, ours, theirs, theirs > 0 ? ours / theirs : 0.0);
      };
      row("prefill 512", f.prefill, r.prefill);
      row("decode b=1", f.decode1, r.decode1);
      row("decode b=16", f.decode16, r.decode16);
      const double bytes = weight_bytes_per_token(model.config(), std::int64_t(c10::elementSize(st)));
      std::printf("%-9s decode b=1 at %.0f%% of the bandwidth bound (%.0f MB of weights per token, bound %.1f tok/s); "
                  "b=16 aggregate %.2fx b=1\n",
                  dt.c_str(), 100.0 * bytes * f.decode1 / bw, bytes / 1e6, bw / bytes, f.decode16 / f.decode1);
    }
  } catch (const std::exception& e) {
    std::cerr << "text_bench: " << e.what() << "\n";
    fs::remove_all(dir);
    return 1;
  }
  fs::remove_all(dir);
  return 0;
}
