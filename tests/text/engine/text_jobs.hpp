// Helpers shared by the mmgen-text integration tests: text jobs, and running
// a batch of them to completion through a client (PARTIALs and RESULT each).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "harness.hpp"
#include "mmgen/client.hpp"

namespace mmgen::itest {

inline proto::Submit text_job(ValueMap params) {
  proto::Submit s;
  s.service = "text";
  s.params = std::move(params);
  return s;
}

inline ValueMap greedy_params(const std::string& prompt, int max_tokens) {
  return ValueMap{{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0.0}, {"ignore_eos", true}};
}

struct JobRun {
  std::vector<std::int64_t> tokens;
  std::string partial_text, partial_reasoning;
  int partials = 0;
  proto::Result result;
};

inline std::vector<std::int64_t> ints(const Value& v) {
  std::vector<std::int64_t> out;
  for (const auto& e : v.as_array()) out.push_back(e.as_int());
  return out;
}

// Submits every job, then collects each job's PARTIALs and RESULT.
inline std::vector<JobRun> run_jobs(client::Client& c, const std::vector<ValueMap>& params, const std::string& logs_hint) {
  std::vector<std::string> jobs;
  for (const auto& p : params) {
    auto acc = c.submit_and_wait(text_job(p), {}, 10s);
    EXPECT_TRUE(acc && acc->kind == proto::EventCmd::Accepted) << "submit not accepted";
    jobs.push_back(acc ? acc->job : "");
  }
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < jobs.size(); ++i) index[jobs[i]] = i;
  std::vector<JobRun> runs(jobs.size());
  std::size_t done = 0;
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (done < jobs.size() && std::chrono::steady_clock::now() < deadline) {
    auto ev = c.next(1s);
    if (!ev || !index.count(ev->job)) continue;
    JobRun& r = runs[index[ev->job]];
    if (const auto* p = ev->get_if<proto::Partial>()) {
      ++r.partials;
      r.partial_text += p->data.at("text").as_string();
      r.partial_reasoning += p->data.at("reasoning").as_string();
    } else if (const auto* res = ev->get_if<proto::Result>()) {
      r.result = *res;
      r.tokens = ints(res->data.at("tokens"));
      ++done;
    } else if (ev->is_terminal()) {
      ADD_FAILURE() << "job " << ev->job << " ended without a result; logs:\n" << logs_hint;
      ++done;
    }
  }
  EXPECT_EQ(done, jobs.size()) << "jobs did not finish in time";
  return runs;
}

}  // namespace mmgen::itest
