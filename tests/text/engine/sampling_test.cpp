// Sampler and stop strings: model-free, on hand-made logits.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "mmgen/protocol.hpp"
#include "mmgen/text/sampling.hpp"

using namespace mmgen::text;

namespace {

SamplingParams sampled(double t) {
  SamplingParams p;
  p.temperature = t;
  p.seed = 7;
  return p;
}

std::vector<TokenId> draw(SamplingParams p, const std::vector<float>& logits, int n) {
  Sampler s(p, {});
  std::vector<TokenId> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(logits).token);
  return out;
}

}  // namespace

TEST(Sampler, GreedyTakesTheArgmaxAndTheFirstOfATie) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, {});
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 3.0f, -1.0f, 2.0f}).token, 1);
  EXPECT_EQ(s.sample(std::vector<float>{5.0f, 1.0f, 5.0f}).token, 0);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  std::vector<float> logits(50, 0.0f);  // uniform: every draw is the generator's
  auto a = draw(sampled(1.0), logits, 40);
  auto b = draw(sampled(1.0), logits, 40);
  EXPECT_EQ(a, b);
  SamplingParams other = sampled(1.0);
  other.seed = 8;
  EXPECT_NE(a, draw(other, logits, 40));
  // Several tokens come up: it really samples.
  EXPECT_GT(std::set<TokenId>(a.begin(), a.end()).size(), 10u);
}

TEST(Sampler, TopKKeepsOnlyTheKMostLikely) {
  std::vector<float> logits{1.0f, 5.0f, 4.0f, 0.5f, 4.5f, 3.0f};
  SamplingParams p = sampled(5.0);  // flatten: without top-k everything would show up
  p.top_k = 2;
  auto toks = draw(p, logits, 300);
  std::set<TokenId> seen(toks.begin(), toks.end());
  EXPECT_EQ(seen, (std::set<TokenId>{1, 4}));
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  // probabilities ~ 0.5, 0.3, 0.15, 0.05
  std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams p = sampled(1.0);
  p.top_p = 0.75;  // 0.5 < 0.75 <= 0.8: tokens 0 and 1
  auto toks = draw(p, logits, 400);
  std::set<TokenId> seen(toks.begin(), toks.end());
  EXPECT_EQ(seen, (std::set<TokenId>{0, 1}));
}

TEST(Sampler, MinPDropsTokensBelowTheFraction) {
  std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams p = sampled(1.0);
  p.min_p = 0.25;  // floor 0.125: tokens 0, 1, 2
  auto toks = draw(p, logits, 600);
  std::set<TokenId> seen(toks.begin(), toks.end());
  EXPECT_EQ(seen, (std::set<TokenId>{0, 1, 2}));
}

TEST(Sampler, FrequenciesFollowTheDistribution) {
  std::vector<float> logits{std::log(0.7f), std::log(0.2f), std::log(0.1f)};
  auto toks = draw(sampled(1.0), logits, 4000);
  std::map<TokenId, int> n;
  for (auto t : toks) ++n[t];
  EXPECT_NEAR(n[0] / 4000.0, 0.7, 0.04);
  EXPECT_NEAR(n[1] / 4000.0, 0.2, 0.04);
  EXPECT_NEAR(n[2] / 4000.0, 0.1, 0.04);
}

TEST(Sampler, RepetitionPenaltyCoversPromptAndOutput) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0;
  std::vector<TokenId> prompt{0};
  Sampler s(p, prompt);
  // token 0: 3.0 / 2 = 1.5 < 2.0 -> token 1 wins.
  EXPECT_EQ(s.sample(std::vector<float>{3.0f, 2.0f, -1.0f}).token, 1);
  // now 1 is penalised too: 0 -> 1.5, 1 -> 1.0, 2 keeps 1.6.
  EXPECT_EQ(s.sample(std::vector<float>{3.0f, 2.0f, 1.6f}).token, 2);
  // negative logits are multiplied: token 2 (-0.5 -> -1.0) falls below token 3 (-0.8).
  EXPECT_EQ(s.sample(std::vector<float>{-9.0f, -9.0f, -0.5f, -0.8f}).token, 3);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesCountOutputTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.frequency_penalty = 1.0;
  Sampler s(p, std::vector<TokenId>{1});  // prompt tokens do not count
  std::vector<float> logits{3.0f, 2.5f, 0.0f};
  EXPECT_EQ(s.sample(logits).token, 0);  // 3.0
  EXPECT_EQ(s.sample(logits).token, 1);  // 0 now 2.0
  EXPECT_EQ(s.sample(logits).token, 0);  // 0: 2.0, 1: 1.5
  EXPECT_EQ(s.sample(logits).token, 1);  // 0: 1.0, 1: 1.5
  SamplingParams q;
  q.temperature = 0;
  q.presence_penalty = 0.6;
  Sampler s2(q, {});
  EXPECT_EQ(s2.sample(logits).token, 0);
  EXPECT_EQ(s2.sample(logits).token, 1);  // 2.4 < 2.5
  EXPECT_EQ(s2.sample(logits).token, 0);  // presence does not grow with the count: 2.4 vs 1.9
}

TEST(Sampler, LogprobsAreTheRawLogSoftmax) {
  SamplingParams p;
  p.temperature = 0;
  p.logprobs = 2;
  Sampler s(p, {});
  std::vector<float> logits{std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  auto out = s.sample(logits);
  EXPECT_EQ(out.token, 0);
  EXPECT_NEAR(out.logprob, std::log(0.6), 1e-5);
  ASSERT_EQ(out.top.size(), 2u);
  EXPECT_EQ(out.top[1].token, 1);
  EXPECT_NEAR(out.top[1].logprob, std::log(0.3), 1e-5);
}

TEST(SamplingParams, ValidateNamesTheBadField) {
  SamplingParams p;
  p.top_p = 0;
  try {
    p.validate();
    FAIL() << "no error";
  } catch (const mmgen::proto::ProtocolError& e) {
    EXPECT_EQ(e.code(), mmgen::proto::ErrorCode::invalid_request);
    EXPECT_NE(std::string(e.what()).find("top_p"), std::string::npos);
  }
  SamplingParams q;
  q.max_tokens = 0;
  EXPECT_THROW(q.validate(), mmgen::proto::ProtocolError);
}

TEST(GenerationDefaults, ReadsGenerationConfig) {
  auto d = GenerationDefaults::from_json(
      R"({"do_sample": true, "eos_token_id": [151645, 151643], "temperature": 0.6, "top_k": 20, "top_p": 0.95})");
  EXPECT_DOUBLE_EQ(d.temperature, 0.6);
  EXPECT_EQ(d.top_k, 20);
  EXPECT_DOUBLE_EQ(d.top_p, 0.95);
  EXPECT_EQ(d.eos_token_ids, (std::vector<TokenId>{151645, 151643}));
  auto p = SamplingParams::from_defaults(d);
  EXPECT_FALSE(p.greedy());
  auto g = SamplingParams::from_defaults(GenerationDefaults::from_json(R"({"do_sample": false, "eos_token_id": 2})"));
  EXPECT_TRUE(g.greedy());
  EXPECT_THROW(GenerationDefaults::from_json("[1]"), mmgen::proto::ProtocolError);
}

TEST(StopStringMatcher, HoldsBackPossibleStartsAndCutsAtTheStop) {
  StopStringMatcher m({"\n\nUser:", "END"});
  std::string out;
  auto r = m.push("Hello");
  out += r.text;
  EXPECT_EQ(r.text, "Hello");
  r = m.push(" wor\n");
  out += r.text;
  EXPECT_EQ(r.text, " wor");  // "\n" may start "\n\nUser:"
  r = m.push("ld E");
  out += r.text;
  EXPECT_EQ(out, "Hello wor\nld ");
  r = m.push("NDING");
  out += r.text;
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(out, "Hello wor\nld ");
  EXPECT_TRUE(m.push("more").stopped);
}

TEST(StopStringMatcher, FinishReleasesHeldText) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.push("abcST").text, "abc");
  EXPECT_EQ(m.finish(), "ST");
  StopStringMatcher none({});
  EXPECT_EQ(none.push("x").text, "x");
}
