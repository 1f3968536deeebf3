// Continuous-batching scheduler (scheduler.hpp).
#include "mmgen/text/scheduler.hpp"

#include <algorithm>
#include <string>

#include "mmgen/protocol.hpp"

namespace mmgen::text {

namespace {
[[noreturn]] void refuse(const std::string& msg) {
  throw proto::ProtocolError(proto::ErrorCode::invalid_request, msg);
}
}  // namespace

Scheduler::Scheduler(const SchedulerConfig& cfg, const KvCacheConfig& cache_cfg) : cfg_(cfg), cache_(cache_cfg) {}

std::int64_t Scheduler::add(RequestId id, std::vector<TokenId> prompt, std::int64_t max_new_tokens) {
  const auto n = std::int64_t(prompt.size());
  if (n == 0) refuse("the prompt is empty");
  if (requests_.count(id)) refuse("request " + std::to_string(id) + " is already queued");
  if (n >= cfg_.max_model_len) {
    refuse("the prompt has " + std::to_string(n) + " tokens; the context is " + std::to_string(cfg_.max_model_len) +
           " tokens (prompt + output)");
  }
  const std::int64_t new_tokens = std::min(max_new_tokens, cfg_.max_model_len - n);
  // The last sampled token is never fed back, so n + new_tokens - 1 tokens need KV.
  const std::int64_t kv_tokens = n + new_tokens - 1;
  if (kv_tokens > cache_.capacity_tokens()) {
    refuse("the request needs KV cache for " + std::to_string(kv_tokens) + " tokens (prompt " + std::to_string(n) +
           " + max_tokens " + std::to_string(new_tokens) + ") but the whole cache holds " +
           std::to_string(cache_.capacity_tokens()) + " tokens (raise --kv-cache-memory or lower max_tokens)");
  }
  auto r = std::make_unique<Request>();
  r->id = id;
  r->tokens = std::move(prompt);
  waiting_.push_back(r.get());
  requests_.emplace(id, std::move(r));
  return new_tokens;
}

Scheduler::Request* Scheduler::find(RequestId id) {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : it->second.get();
}

bool Scheduler::cancel(RequestId id) {
  Request* r = find(id);
  if (!r) return false;
  cache_.free(r->cache);
  std::erase(running_, r);
  std::erase(waiting_, r);
  std::erase_if(in_flight_, [&](const auto& p) { return p.first == id; });
  requests_.erase(id);
  return true;
}

std::int64_t Scheduler::cached_prefix_tokens(RequestId id) const {
  auto it = requests_.find(id);
  return it == requests_.end() ? 0 : it->second->cached_prefix;
}

std::int64_t Scheduler::num_preemptions(RequestId id) const {
  auto it = requests_.find(id);
  return it == requests_.end() ? 0 : it->second->preemptions;
}

ScheduledSeq Scheduler::make_scheduled(Request& r, std::int64_t n) const {
  ScheduledSeq s;
  s.id = r.id;
  s.context_len = r.num_computed;
  s.tokens.assign(r.tokens.begin() + r.num_computed, r.tokens.begin() + r.num_computed + n);
  s.blocks = r.cache.blocks;
  s.state_slot = r.cache.state_slot;
  s.samples = r.num_computed + n == std::int64_t(r.tokens.size());
  return s;
}

void Scheduler::preempt(Request& r) {
  cache_.free(r.cache);
  r.num_computed = 0;
  ++r.preemptions;
  waiting_.push_front(&r);
}

SchedulePlan Scheduler::schedule() {
  SchedulePlan plan;
  in_flight_.clear();
  std::int64_t budget = cfg_.max_num_batched_tokens;

  // 1-2. Running requests, preempting from the back when blocks run out.
  for (std::size_t i = 0; i < running_.size() && budget > 0;) {
    Request& r = *running_[i];
    const std::int64_t n = std::min(std::int64_t(r.tokens.size()) - r.num_computed, budget);
    if (n <= 0) {
      ++i;
      continue;
    }
    bool self_preempted = false;
    while (!cache_.allocate(r.cache, r.num_computed + n)) {
      Request* victim = running_.back();
      running_.pop_back();
      preempt(*victim);
      plan.preempted.push_back(victim->id);
      if (victim == &r) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    plan.seqs.push_back(make_scheduled(r, n));
    in_flight_.emplace_back(r.id, n);
    budget -= n;
    ++i;
  }

  // 3. Admit waiting requests (not in a step that had to preempt: the cache is full).
  while (plan.preempted.empty() && !waiting_.empty() && budget > 0 &&
         running_.size() < std::size_t(cfg_.max_num_seqs)) {
    Request& r = *waiting_.front();
    if (r.num_computed == 0 && r.cache.blocks.empty()) {
      r.num_computed = r.cached_prefix = cache_.match_prefix(r.cache, r.tokens);
    }
    const std::int64_t n = std::min(std::int64_t(r.tokens.size()) - r.num_computed, budget);
    if (!cache_.allocate(r.cache, r.num_computed + n)) {
      cache_.free(r.cache);  // give back the prefix hits; retried next step
      r.num_computed = 0;
      break;
    }
    waiting_.pop_front();
    running_.push_back(&r);
    plan.seqs.push_back(make_scheduled(r, n));
    in_flight_.emplace_back(r.id, n);
    budget -= n;
  }
  for (const auto& s : plan.seqs) plan.num_tokens += std::int64_t(s.tokens.size());
  return plan;
}

void Scheduler::update(const StepResult& result) {
  for (const auto& [id, n] : in_flight_) {
    Request* r = find(id);
    if (!r) continue;
    r->num_computed += n;
    cache_.cache_full_blocks(r->cache, r->tokens, r->num_computed);
  }
  in_flight_.clear();
  for (const auto& s : result.sampled) {
    if (Request* r = find(s.id)) r->tokens.push_back(s.token);
  }
  for (RequestId id : result.finished) cancel(id);
}

}  // namespace mmgen::text
