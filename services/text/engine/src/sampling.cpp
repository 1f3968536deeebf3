// Sampling (sampling.hpp): logits processing in the order transformers'
// generate applies it, one draw from a per-request generator.
#include "mmgen/text/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

#include "mmgen/protocol.hpp"
#include "mmgen/text/json.hpp"

namespace mmgen::text {

namespace {

[[noreturn]] void bad(const std::string& msg) { throw proto::ProtocolError(proto::ErrorCode::invalid_request, msg); }

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Uniform in [0, 1) from the top 53 bits: the same stream on every platform
// (std::uniform_real_distribution is implementation-defined).
double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * (1.0 / 9007199254740992.0); }

}  // namespace

// ---- generation_config.json ---------------------------------------------------

GenerationDefaults GenerationDefaults::from_json(std::string_view text) {
  GenerationDefaults d;
  const Json j = parse_json(text);
  if (!j.is_object()) bad("generation_config.json is not a JSON object");
  auto num = [&](const char* key, double& out) {
    if (const Json* v = j.find(key); v && !v->is_null()) out = v->as_double(key);
  };
  num("temperature", d.temperature);
  num("top_p", d.top_p);
  num("min_p", d.min_p);
  num("repetition_penalty", d.repetition_penalty);
  if (const Json* v = j.find("top_k"); v && !v->is_null()) d.top_k = v->as_int("top_k");
  if (const Json* v = j.find("do_sample"); v && !v->is_null()) d.do_sample = v->as_bool("do_sample");
  if (const Json* v = j.find("eos_token_id"); v && !v->is_null()) {
    if (v->is_array()) {
      for (const Json& e : v->as_array("eos_token_id")) d.eos_token_ids.push_back(TokenId(e.as_int("eos_token_id")));
    } else {
      d.eos_token_ids.push_back(TokenId(v->as_int("eos_token_id")));
    }
  }
  return d;
}

GenerationDefaults GenerationDefaults::load(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "generation_config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return from_json(ss.str());
  } catch (const proto::ProtocolError& e) {
    bad(path.string() + ": " + e.what());
  }
}

// ---- params ------------------------------------------------------------------------

SamplingParams SamplingParams::from_defaults(const GenerationDefaults& d) {
  SamplingParams p;
  p.temperature = d.do_sample ? d.temperature : 0.0;
  p.top_k = d.top_k;
  p.top_p = d.top_p;
  p.min_p = d.min_p;
  p.repetition_penalty = d.repetition_penalty;
  return p;
}

void SamplingParams::validate() const {
  if (!(temperature >= 0.0) || temperature > 100.0) bad("temperature must be in [0, 100]");
  if (top_k < -1) bad("top_k must be -1, 0 (off) or positive");
  if (!(top_p > 0.0 && top_p <= 1.0)) bad("top_p must be in (0, 1]");
  if (!(min_p >= 0.0 && min_p <= 1.0)) bad("min_p must be in [0, 1]");
  if (!(repetition_penalty > 0.0) || repetition_penalty > 100.0) bad("repetition_penalty must be in (0, 100]");
  if (!(presence_penalty >= -2.0 && presence_penalty <= 2.0)) bad("presence_penalty must be in [-2, 2]");
  if (!(frequency_penalty >= -2.0 && frequency_penalty <= 2.0)) bad("frequency_penalty must be in [-2, 2]");
  if (max_tokens < 1) bad("max_tokens must be at least 1");
  if (logprobs < 0 || logprobs > 20) bad("logprobs must be in [0, 20]");
  for (const auto& s : stop)
    if (s.empty()) bad("stop strings must not be empty");
  for (TokenId t : stop_token_ids)
    if (t < 0) bad("stop_token_ids must be non-negative");
}

// ---- sampler -----------------------------------------------------------------------

Sampler::Sampler(SamplingParams params, std::span<const TokenId> prompt) : params_(std::move(params)) {
  rng_.seed(params_.seed ? *params_.seed : (std::uint64_t(std::random_device{}()) << 32) ^ std::random_device{}());
  if (params_.repetition_penalty != 1.0)
    for (TokenId t : prompt) prompt_seen_[t] = 1;
}

void Sampler::apply_penalties(std::vector<float>& x) const {
  const auto V = TokenId(x.size());
  if (params_.repetition_penalty != 1.0) {
    const float p = float(params_.repetition_penalty);
    auto penalise = [&](TokenId t) {
      if (t >= 0 && t < V) x[std::size_t(t)] = x[std::size_t(t)] > 0 ? x[std::size_t(t)] / p : x[std::size_t(t)] * p;
    };
    for (const auto& [t, _] : prompt_seen_) penalise(t);
    for (const auto& [t, _] : output_counts_)
      if (!prompt_seen_.count(t)) penalise(t);
  }
  if (params_.presence_penalty != 0.0 || params_.frequency_penalty != 0.0) {
    for (const auto& [t, n] : output_counts_) {
      if (t < 0 || t >= V) continue;
      x[std::size_t(t)] -= float(params_.presence_penalty + params_.frequency_penalty * n);
    }
  }
}

SampleOutput Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) bad("sampler: empty logits");
  const std::size_t V = logits.size();
  SampleOutput out;

  std::vector<float>& x = scratch_;
  x.assign(logits.begin(), logits.end());
  apply_penalties(x);

  if (params_.greedy()) {
    out.token = TokenId(std::max_element(x.begin(), x.end()) - x.begin());  // first maximum
  } else {
    const float inv_t = float(1.0 / params_.temperature);
    for (float& v : x) v *= inv_t;
    // Candidates in descending order of logit; ties by id for determinism.
    std::vector<std::int32_t>& order = order_;
    order.resize(V);
    std::iota(order.begin(), order.end(), 0);
    auto by_logit = [&](std::int32_t a, std::int32_t b) {
      return x[std::size_t(a)] > x[std::size_t(b)] || (x[std::size_t(a)] == x[std::size_t(b)] && a < b);
    };
    std::size_t n = V;
    if (params_.top_k > 0 && std::size_t(params_.top_k) < V) {
      n = std::size_t(params_.top_k);
      std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(n), order.end(), by_logit);
    } else {
      std::sort(order.begin(), order.end(), by_logit);
    }
    // Softmax over the n candidates (float64 accumulation).
    const double mx = x[std::size_t(order[0])];
    std::vector<double> prob(n);
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += prob[i] = std::exp(double(x[std::size_t(order[i])]) - mx);
    for (double& p : prob) p /= sum;
    // top-p: the smallest prefix whose mass reaches top_p (at least one token).
    if (params_.top_p < 1.0) {
      double cum = 0;
      std::size_t keep = 0;
      while (keep < n) {
        cum += prob[keep++];
        if (cum >= params_.top_p) break;
      }
      n = keep;
    }
    // min-p: drop tokens below min_p times the most likely one.
    if (params_.min_p > 0.0) {
      const double floor = params_.min_p * prob[0];
      std::size_t keep = 1;
      while (keep < n && prob[keep] >= floor) ++keep;
      n = keep;
    }
    double mass = 0;
    for (std::size_t i = 0; i < n; ++i) mass += prob[i];
    const double u = uniform01(rng_) * mass;
    double cum = 0;
    out.token = order[n - 1];
    for (std::size_t i = 0; i < n; ++i) {
      cum += prob[i];
      if (u < cum) {
        out.token = order[i];
        break;
      }
    }
  }

  // Log-probabilities of the raw model distribution.
  double mx = logits[0];
  for (float v : logits) mx = std::max(mx, double(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v) - mx);
  const double lse = mx + std::log(sum);
  out.logprob = float(double(logits[std::size_t(out.token)]) - lse);
  if (params_.logprobs > 0) {
    const std::size_t n = std::min<std::size_t>(std::size_t(params_.logprobs), V);
    std::vector<std::int32_t> idx(V);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + std::ptrdiff_t(n), idx.end(), [&](std::int32_t a, std::int32_t b) {
      return logits[std::size_t(a)] > logits[std::size_t(b)] || (logits[std::size_t(a)] == logits[std::size_t(b)] && a < b);
    });
    for (std::size_t i = 0; i < n; ++i)
      out.top.push_back({idx[i], float(double(logits[std::size_t(idx[i])]) - lse)});
  }
  ++output_counts_[out.token];
  return out;
}

// ---- stop strings --------------------------------------------------------------------

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& s : stops_) longest_ = std::max(longest_, s.size());
}

StopStringMatcher::Result StopStringMatcher::push(std::string_view delta) {
  Result r;
  if (stopped_) {
    r.stopped = true;
    return r;
  }
  held_.append(delta);
  if (stops_.empty()) {
    r.text.swap(held_);
    return r;
  }
  // The earliest occurrence of any stop string ends the text.
  std::size_t cut = std::string::npos;
  for (const auto& s : stops_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    r.text = held_.substr(0, cut);
    held_.clear();
    stopped_ = r.stopped = true;
    return r;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  std::size_t hold = 0;
  for (const auto& s : stops_) {
    for (std::size_t len = std::min(s.size() - 1, held_.size()); len > hold; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  r.text = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return r;
}

std::string StopStringMatcher::finish() {
  std::string s;
  if (!stopped_) s.swap(held_);
  return s;
}

}  // namespace mmgen::text
