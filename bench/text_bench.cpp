// text_bench: the text engine against Hugging Face transformers on the same
// weights and threads, in the same run.
//
// Models (--model), random weights (seeded), written by
// bench/text_bench_reference.py:
//   qwen3    (default) Qwen3 architecture: vocab 32000, hidden 768, 12 layers,
//            12 query / 4 KV heads of 64, intermediate 2048, tied embeddings
//            (~100 M parameters)
//   qwen3_5  a Qwen3.5-0.8B-shaped hybrid (Qwen3_5ForCausalLM): the published
//            per-layer shape (hidden 1024, 8/2 heads of 256 with output gate,
//            Gated DeltaNet 16/16 heads of 128 with conv 4, MLP 3584, every 4th
//            layer full attention, tied) with 8 layers instead of 24 and vocab
//            32000 instead of 248320 (~199 M parameters), to fit the run's time
// For float32 and bfloat16, with --threads (default 2):
//   prefill   tokens/s of one forward over a 512-token prompt
//   decode@1  tokens/s of greedy decoding after a 32-token prompt
//   decode@16 aggregate tokens/s of 16 such requests batched
// Decode is (N - 1) tokens over the time from the first sampled token to the
// last (transformers: time of generate(N) minus generate(1)).
// For the first dtype only, decode at batch 1 after a prompt of each --contexts
// length (default 64,4096), both sides timed from the first sampled token to
// the last, and the slowdown from the shortest to the longest context: a
// hybrid model's linear-attention layers carry a fixed-size state, so its
// decode cost grows far less with context than a full-attention model's.
// Decode at batch 1 is also shown as a fraction of the memory-bandwidth bound:
// bytes of weights read per token (every parameter once: the heads are tied)
// x tokens/s / measured copy bandwidth (bytes read + written per second by a
// 256 MiB tensor copy on the same threads).
// Each dtype's transformers run comes right before the engine's, and both sides
// keep their best repetition, so a busy shared machine skews the ratio less.
//
// --checkpoint DIR keeps the checkpoint in DIR (written there unless DIR
// already holds one, which is then reused); --no-reference skips the
// transformers timings (engine figures only, e.g. under a profiler); --only
// runs one of the measurements (and no context rows); --linear only times
// at::linear against mmgen::ops::linear_small_m on the checkpoint's matrix
// shapes for 1 to 64 rows (no checkpoint, no transformers).
//
//   text_bench [--model qwen3|qwen3_5] [--threads N] [--decode-tokens N] [--dtypes float32,bfloat16]
//              [--contexts 64,4096] [--python PATH] [--checkpoint DIR] [--no-reference]
//              [--only prefill|decode1|decode16] [--linear]
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_child.hpp"  // run_capture, cpu_seconds
#include "mmgen/io/checkpoint.hpp"
#include "mmgen/text/engine.hpp"
#include "mmgen/text/engine_model.hpp"
#include "mmgen/ops.hpp"
#include "mmgen/text/json.hpp"

namespace fs = std::filesystem;
using namespace mmgen::text;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU time of the whole process (all threads), seconds. At --threads 1 the
// rate per CPU second is what a quiet machine's wall clock would give, which
// a loaded shared machine's wall clock does not.
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
  double cpu_prefill = 0, cpu_decode1 = 0, cpu_decode16 = 0;  // tokens per CPU second (best repetition)
  std::map<int, double> ctx_decode;  // prompt length -> batch-1 decode tokens/s
};

// Which measurements to run (--only): all by default.
struct Phases {
  bool prefill = true, decode1 = true, decode16 = true;
};

Figures measure(std::unique_ptr<EngineModel> model, int decode_tokens, const std::vector<int>& contexts,
                const Phases& phases) {
  EngineConfig cfg;
  cfg.kv_cache_bytes = std::int64_t(1) << 30;
  cfg.max_num_batched_tokens = 512;
  cfg.max_num_seqs = 16;
  cfg.enable_prefix_caching = false;  // every run computes its prompt
  const std::int64_t V = model->vocab_size();
  Engine engine(std::move(model), nullptr, {}, cfg);
  std::mt19937 rng(1);
  Figures f;

  // Prefill: one step over a 512-token prompt (after a warm-up).
  double best = 1e9;
  for (int rep = 0; rep < (phases.prefill ? 4 : 0); ++rep) {
    engine.add(random_prompt(rng, 512, V), greedy(1), {});
    auto t0 = Clock::now();
    const double c0 = mmgen::bench::cpu_seconds();
    engine.step();
    if (rep > 0) {
      best = std::min(best, seconds_since(t0));
      f.cpu_prefill = std::max(f.cpu_prefill, 512 / (mmgen::bench::cpu_seconds() - c0));
    }
    while (engine.has_work()) engine.step();
  }
  f.prefill = 512 / best;

  for (int batch : {1, 16}) {
    if (!(batch == 1 ? phases.decode1 : phases.decode16)) continue;
    for (int rep = 0; rep < 3; ++rep) {  // the first is a warm-up
      std::vector<Clock::time_point> firsts, lasts;
      double cpu_first = 0, cpu_last = 0;
      int done = 0;
      for (int i = 0; i < batch; ++i) {
        engine.add(random_prompt(rng, 32, V), greedy(decode_tokens), [&](const TokenEvent& ev) {
          if (ev.token && !ev.finished && firsts.size() < std::size_t(batch)) {
            firsts.push_back(Clock::now());
            cpu_first = mmgen::bench::cpu_seconds();
          }
          if (ev.finished) {
            lasts.push_back(Clock::now());
            cpu_last = mmgen::bench::cpu_seconds();
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
      double& best_cpu = batch == 1 ? f.cpu_decode1 : f.cpu_decode16;
      best_cpu = std::max(best_cpu, double(batch) * (decode_tokens - 1) / (cpu_last - cpu_first));
    }
  }

  // Decode after a long prompt: one request, timed from its first sampled
  // token (the prompt done) to its last. Long prompts get one repetition (the
  // engine is warm by now), short ones keep the best of two.
  for (int c : contexts) {
    for (int rep = 0; rep < (c >= 1024 ? 1 : 2); ++rep) {
      Clock::time_point first{}, last{};
      bool have_first = false;
      engine.add(random_prompt(rng, c, V), greedy(decode_tokens), [&](const TokenEvent& ev) {
        if (ev.token && !have_first) {
          first = Clock::now();
          have_first = true;
        }
        if (ev.finished) last = Clock::now();
      });
      while (engine.has_work()) engine.step();
      const double rate = (decode_tokens - 1) / std::chrono::duration<double>(last - first).count();
      f.ctx_decode[c] = std::max(f.ctx_decode[c], rate);
    }
  }
  return f;
}

// --linear: at::linear against mmgen::ops::linear_small_m on the Qwen3
// checkpoint's matrices (one layer's q, k, v, o, gate_up, down, then lm_head)
// for growing row counts: where the model's linear() switches (kSmallLinearRows).
void linear_table(const std::string& dtypes) {
  struct Shape {
    const char* name;
    std::int64_t n, k;
  };
  const Shape layer[] = {{"q", 768, 768}, {"k", 256, 768},        {"v", 256, 768},
                         {"o", 768, 768}, {"gate_up", 4096, 768}, {"down", 768, 2048}};
  const Shape head{"lm_head", 32000, 768};
  auto time_us = [](auto&& f) {
    f();
    double best = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
      auto t0 = Clock::now();
      for (int i = 0; i < 4; ++i) f();
      best = std::min(best, seconds_since(t0) / 4);
    }
    return best * 1e6;
  };
  std::printf("%-9s %5s %16s %16s %8s %16s %16s %8s\n", "dtype", "rows", "layer at::linear", "layer small_m",
              "ratio", "head at::linear", "head small_m", "ratio");
  std::stringstream ss(dtypes);
  for (std::string dt; std::getline(ss, dt, ',');) {
    const c10::ScalarType st = dt == "bfloat16" ? at::kBFloat16 : dt == "float16" ? at::kHalf : at::kFloat;
    std::vector<at::Tensor> w;
    for (const Shape& s : layer) w.push_back(at::randn({s.n, s.k}).to(st) * 0.02);
    const at::Tensor wh = at::randn({head.n, head.k}).to(st) * 0.02;
    for (std::int64_t m : {1, 2, 4, 8, 16, 24, 32, 64}) {
      double ours = 0, theirs = 0;
      for (std::size_t i = 0; i < w.size(); ++i) {
        const at::Tensor x = at::randn({m, layer[i].k}).to(st);
        theirs += time_us([&] { (void)at::linear(x, w[i]); });
        ours += time_us([&] { (void)mmgen::ops::linear_small_m(x, w[i]); });
      }
      const at::Tensor xh = at::randn({m, head.k}).to(st);
      const double th = time_us([&] { (void)at::linear(xh, wh); });
      const double oh = time_us([&] { (void)mmgen::ops::linear_small_m(xh, wh); });
      std::printf("%-9s %5lld %14.0fus %14.0fus %7.2fx %14.0fus %14.0fus %7.2fx\n", dt.c_str(), (long long)m, theirs,
                  ours, theirs / ours, th, oh, th / oh);
    }
  }
}

std::vector<int> parse_ints(const std::string& list) {
  std::vector<int> v;
  std::stringstream ss(list);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) v.push_back(std::stoi(x));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, decode_tokens = 32;
  std::string dtypes = "float32,bfloat16", model_name = "qwen3", contexts_arg = "64,4096";
  std::string python = MMGEN_DEFAULT_PYTHON, checkpoint;
  bool reference = true, linear_only = false;
  Phases phases;
  const char* usage =
      "usage: text_bench [--model qwen3|qwen3_5] [--threads N] [--decode-tokens N] [--dtypes float32,bfloat16]\n"
      "                  [--contexts 64,4096] [--python PATH] [--checkpoint DIR] [--no-reference]\n"
      "                  [--only prefill|decode1|decode16] [--linear]\n";
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
    else if (a == "--model") model_name = value();
    else if (a == "--contexts") contexts_arg = value();
    else if (a == "--python") python = value();
    else if (a == "--checkpoint") checkpoint = value();
    else if (a == "--no-reference") reference = false;
    else if (a == "--linear") linear_only = true;
    else if (a == "--only") {
      const std::string what = value();
      phases = Phases{what == "prefill", what == "decode1", what == "decode16"};
      contexts_arg = "";
      if (!phases.prefill && !phases.decode1 && !phases.decode16) {
        std::cerr << "text_bench: --only takes prefill, decode1 or decode16\n";
        return 2;
      }
    }
    else {
      std::cerr << usage;
      return 2;
    }
  }
  if (model_name != "qwen3" && model_name != "qwen3_5") {
    std::cerr << "text_bench: --model must be qwen3 or qwen3_5, not '" << model_name << "'\n" << usage;
    return 2;
  }
  std::vector<int> contexts;
  try {
    contexts = parse_ints(contexts_arg);
  } catch (const std::exception&) {
    std::cerr << "text_bench: --contexts takes comma-separated prompt lengths, not '" << contexts_arg << "'\n";
    return 2;
  }
  for (int c : contexts) {
    if (c < 1) {
      std::cerr << "text_bench: --contexts lengths must be positive\n";
      return 2;
    }
  }
  at::set_num_threads(threads);
  if (linear_only) {
    std::printf("threads: %d; per-call times (best of 5 x 4 calls)\n", threads);
    linear_table(dtypes);
    return 0;
  }
  char tmpl[] = "/tmp/mmgen-text-bench-XXXXXX";
  const bool keep = !checkpoint.empty();
  if (keep) {
    fs::create_directories(checkpoint);
  } else if (!mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path dir = keep ? fs::path(checkpoint) : fs::path(tmpl);
  const bool reuse = keep && fs::exists(dir / "config.json") && fs::exists(dir / "model.safetensors");
  try {
    std::cout << "text_bench: writing the " << model_name << " checkpoint and timing transformers (" << threads
              << " threads)...\n"
              << std::flush;
    const std::string script = "'" + python + "' '" + MMGEN_TEXT_BENCH_SCRIPT + "' --out '" + dir.string() +
                               "' --model " + model_name + " --threads " + std::to_string(threads) +
                               " --decode-tokens " + std::to_string(decode_tokens);
    std::map<std::string, Figures> ref;
    std::int64_t params = 0;
    auto read_lines = [&](const std::string& out) {
      std::istringstream lines(out);
      for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] != '{') continue;
        const Json j = parse_json(line);
        if (const Json* p = j.find("params")) params = p->as_int();
        if (const Json* d = j.find("dtype")) {
          Figures& r = ref[d->as_string()];
          r.prefill = j.find("prefill_tok_s")->as_double();
          r.decode1 = j.find("decode1_tok_s")->as_double();
          r.decode16 = j.find("decode16_tok_s")->as_double();
          if (const Json* ctx = j.find("ctx_decode")) {
            for (int c : contexts)
              if (const Json* v = ctx->find(std::to_string(c))) r.ctx_decode[c] = v->as_double();
          }
        }
      }
    };
    if (reuse) {
      const auto ckpt = mmgen::io::Checkpoint::open(dir);
      for (const auto& name : ckpt.names()) params += ckpt.tensor(name).numel();
    } else {
      read_lines(mmgen::bench::run_capture(script + " --skip-timing"));
    }
    const double bw = copy_bandwidth();
    if (model_name == "qwen3")
      std::printf("\nmodel: Qwen3, %.1f M parameters (vocab 32000, hidden 768, 12 layers, 12/4 heads x 64, "
                  "intermediate 2048, tied), random weights\n",
                  double(params) / 1e6);
    else
      std::printf("\nmodel: Qwen3.5-0.8B-shaped hybrid, %.1f M parameters (hidden 1024, 8 layers = 6 Gated DeltaNet "
                  "16/16 heads x 128 + 2 full attention 8/2 heads x 256, MLP 3584, vocab 32000, tied; the published "
                  "model has 24 layers and vocab 248320), random weights\n",
                  double(params) / 1e6);
    std::printf("threads: %d; decode: %d tokens after a 32-token prompt; copy bandwidth %.2f GB/s\n\n", threads,
                decode_tokens, bw / 1e9);
    std::printf("%-9s %-14s %12s %14s %8s %16s\n", "dtype", "metric", "mmgen tok/s", "transformers", "ratio",
                "mmgen tok/cpu-s");
    std::stringstream ss(dtypes);
    bool first_dtype = true;
    for (std::string dt; std::getline(ss, dt, ',');) {
      const std::vector<int> ctx = first_dtype ? contexts : std::vector<int>{};
      std::string ctx_list;
      for (int c : ctx) ctx_list += (ctx_list.empty() ? "" : ",") + std::to_string(c);
      if (reference)
        read_lines(
            mmgen::bench::run_capture(script + " --no-write --dtypes " + dt + (ctx.empty() ? "" : " --contexts " + ctx_list)));
      const c10::ScalarType st = dt == "bfloat16" ? at::kBFloat16 : dt == "float16" ? at::kHalf : at::kFloat;
      const Figures f =
          measure(load_engine_model(dir, mmgen::io::LoadOptions{st, c10::Device(c10::kCPU)}), decode_tokens, ctx, phases);
      const Figures r = ref.count(dt) ? ref[dt] : Figures{};
      auto row = [&](const std::string& name, double ours, double theirs, double cpu = 0) {
        std::printf("%-9s %-14s %12.1f %14.1f %7.2fx", dt.c_str(), name.c_str(), ours, theirs,
                    theirs > 0 ? ours / theirs : 0.0);
        if (cpu > 0) std::printf(" %16.1f", cpu);
        std::printf("\n");
      };
      row("prefill 512", f.prefill, r.prefill, f.cpu_prefill);
      row("decode b=1", f.decode1, r.decode1, f.cpu_decode1);
      row("decode b=16", f.decode16, r.decode16, f.cpu_decode16);
      for (int c : ctx) {
        const auto theirs = r.ctx_decode.find(c);
        row("decode @" + std::to_string(c), f.ctx_decode.at(c), theirs == r.ctx_decode.end() ? 0.0 : theirs->second);
      }
      if (ctx.size() >= 2) {
        const int lo = *std::min_element(ctx.begin(), ctx.end()), hi = *std::max_element(ctx.begin(), ctx.end());
        auto slowdown = [&](const std::map<int, double>& m) {
          return m.count(lo) && m.count(hi) && m.at(hi) > 0 ? m.at(lo) / m.at(hi) : 0.0;
        };
        std::printf("%-9s decode b=1 slowdown from context %d to %d: mmgen %.2fx, transformers %.2fx\n", dt.c_str(),
                    lo, hi, slowdown(f.ctx_decode), slowdown(r.ctx_decode));
      }
      const double bytes = double(params) * double(c10::elementSize(st));
      std::printf("%-9s decode b=1 at %.0f%% of the bandwidth bound (%.0f MB of weights per token, bound %.1f tok/s); "
                  "b=16 aggregate %.2fx b=1\n",
                  dt.c_str(), 100.0 * bytes * f.decode1 / bw, bytes / 1e6, bw / bytes, f.decode16 / f.decode1);
      if (threads == 1)
        std::printf("%-9s per CPU second (1 thread, load-independent): decode b=1 at %.0f%% of the bound; b=16 "
                    "aggregate %.2fx b=1\n",
                    dt.c_str(), 100.0 * bytes * f.cpu_decode1 / bw, f.cpu_decode16 / f.cpu_decode1);
      first_dtype = false;
    }
  } catch (const std::exception& e) {
    std::cerr << "text_bench: " << e.what() << "\n";
    if (!keep) fs::remove_all(dir);
    return 1;
  }
  if (!keep) fs::remove_all(dir);
  return 0;
}
