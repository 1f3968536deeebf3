// Sampling: the per-request logits processing and token choice, model-free.
//
//   SamplingParams   what a request asks for (temperature, top-k/p, min-p,
//                    penalties, stops, max tokens, seed, logprobs), with the
//                    model's generation_config.json as defaults.
//   Sampler          one per request. Owns the request's own random generator,
//                    so a token depends only on the request's seed, its logits
//                    and its own history, never on what else shares the batch.
//
// Order as transformers' generate applies its processors: repetition penalty
// (prompt + output), presence/frequency penalties (output only, as OpenAI and
// vLLM define them), temperature, top-k, top-p, min-p, then one draw from the
// remaining distribution. temperature == 0 is greedy (argmax, lowest id wins a tie).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace mmgen::text {

using TokenId = std::int32_t;  // as in bpe.hpp

// The defaults a model folder's generation_config.json gives.
struct GenerationDefaults {
  double temperature = 1.0;
  std::int64_t top_k = 0;  // 0: off
  double top_p = 1.0;
  double min_p = 0.0;
  double repetition_penalty = 1.0;
  bool do_sample = true;                    // false: greedy unless the request sets a temperature
  std::vector<TokenId> eos_token_ids;

  // Missing file -> transformers' defaults. A malformed file throws
  // ProtocolError(invalid_request) naming it.
  static GenerationDefaults load(const std::filesystem::path& model_dir);
  static GenerationDefaults from_json(std::string_view text);
};

struct SamplingParams {
  double temperature = 1.0;       // 0: greedy
  std::int64_t top_k = 0;         // 0 or -1: off
  double top_p = 1.0;             // (0, 1]
  double min_p = 0.0;             // [0, 1]
  double repetition_penalty = 1.0;  // > 0; 1: off (transformers' rule: divide positive, multiply negative)
  double presence_penalty = 0.0;    // [-2, 2]
  double frequency_penalty = 0.0;   // [-2, 2]
  std::int64_t max_tokens = 256;
  std::vector<TokenId> stop_token_ids;  // besides the model's EOS ids (unless ignore_eos)
  std::vector<std::string> stop;         // stop strings, matched on the detokenized text
  bool ignore_eos = false;
  std::optional<std::uint64_t> seed;     // none: drawn from std::random_device
  std::int64_t logprobs = 0;             // top-n log-probabilities per token (0: none)

  // Starts from the model's defaults (greedy when do_sample is false).
  static SamplingParams from_defaults(const GenerationDefaults& d);
  // Throws ProtocolError(invalid_request) naming the first bad field.
  void validate() const;
  bool greedy() const { return temperature == 0.0; }
};

struct TokenLogprob {
  TokenId token = 0;
  float logprob = 0;
};

struct SampleOutput {
  TokenId token = 0;
  float logprob = 0;                  // of the chosen token (log-softmax of the raw logits)
  std::vector<TokenLogprob> top;      // the top-n by raw logit, when requested
};

class Sampler {
 public:
  // `prompt` feeds the repetition penalty (transformers applies it over the whole input).
  Sampler(SamplingParams params, std::span<const TokenId> prompt);

  // logits: [V] float32 of the next position. Appends the chosen token to the
  // sampler's own history (for the penalties) and returns it.
  SampleOutput sample(std::span<const float> logits);

  const SamplingParams& params() const { return params_; }

 private:
  void apply_penalties(std::vector<float>& x) const;

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::unordered_map<TokenId, std::int32_t> prompt_seen_;  // token -> 1 (set)
  std::unordered_map<TokenId, std::int32_t> output_counts_;
  std::vector<float> scratch_;
  std::vector<std::int32_t> order_;
};

// ---- stop strings ----------------------------------------------------------
// Text leaves as soon as it can no longer be the start of a stop string; the
// stop string itself (and everything after it) is never emitted.
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);
  struct Result {
    std::string text;   // safe to emit now
    bool stopped = false;
  };
  Result push(std::string_view delta);
  std::string finish();  // held-back text at the end of the stream

 private:
  std::vector<std::string> stops_;
  std::size_t longest_ = 0;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace mmgen::text
