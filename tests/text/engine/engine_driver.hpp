// Shared by the engine tests: drive an Engine until every request finished and
// collect what each request streamed.
#pragma once

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mmgen/text/engine.hpp"

namespace mmgen::text::engine_test {

inline std::vector<TokenId> to_ids(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous();
  std::vector<TokenId> v;
  for (std::int64_t i = 0; i < c.numel(); ++i) v.push_back(TokenId(c.data_ptr<std::int64_t>()[i]));
  return v;
}

inline SamplingParams greedy(std::int64_t max_tokens) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;  // the references run 32 tokens regardless of EOS
  return p;
}

struct Collected {
  std::vector<TokenId> tokens;
  std::vector<float> logprobs;  // of each sampled token under the raw model distribution
  std::string text;
  std::string finish_reason;
  bool finished = false;
};

// A sink that records a request's tokens, logprobs, text and end.
inline EventSink collect(Collected& c) {
  return [&c](const TokenEvent& ev) {
    if (ev.token) {
      c.tokens.push_back(*ev.token);
      c.logprobs.push_back(ev.logprob);
    }
    c.text += ev.text;
    if (ev.finished) {
      c.finished = true;
      c.finish_reason = ev.finish_reason;
    }
  };
}

// Adds every request, steps the engine until it has no work (bounded), and
// expects each request to have finished.
inline std::vector<Collected> run_all(Engine& engine, const std::vector<std::vector<TokenId>>& prompts,
                                      const std::vector<SamplingParams>& params) {
  std::vector<Collected> out(prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    engine.add(prompts[i], params[i], collect(out[i]));
  }
  for (int guard = 0; engine.has_work(); ++guard) {
    EXPECT_LT(guard, 100000) << "engine does not finish";
    if (guard >= 100000) break;
    engine.step();
  }
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_TRUE(out[i].finished) << "request " << i;
  return out;
}

inline std::vector<TokenId> run_one(Engine& engine, const std::vector<TokenId>& prompt, const SamplingParams& p) {
  return run_all(engine, {prompt}, {p})[0].tokens;
}

}  // namespace mmgen::text::engine_test
