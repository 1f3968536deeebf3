// The continuous-batching scheduler: a plain class (no model, no threads).
//
// Every step, schedule() returns a plan — per request: which tokens to
// compute, where they go (block table), whether the step ends at the last
// known token (then the engine samples one) — and update() takes the step's
// result back (sampled tokens, finished requests). Policy, in one place:
//
//   1. Running requests first, in admission order: each gets its remaining
//      tokens (one while decoding, a chunk while prefilling) within the
//      per-step token budget, so decoding streams are never stalled by a long
//      prompt (chunked prefill).
//   2. When a running request cannot grow, the most recently admitted running
//      request is preempted: its blocks are freed and it goes back to the head
//      of the queue to be recomputed later (its tokens so far are kept).
//   3. Waiting requests are admitted (FIFO) while budget, sequence slots,
//      recurrent-state slots (hybrid models: one per running sequence) and
//      blocks last; a new request first takes its cached prefix blocks.
//   4. Cancellation frees a request's blocks at once.
//
// Requests that could never run (prompt beyond the context, or more KV than
// the whole cache) are refused by add() with a ProtocolError naming the limit.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "mmgen/text/kv_cache_manager.hpp"

namespace mmgen::text {

using RequestId = std::uint64_t;

struct SchedulerConfig {
  std::int32_t max_num_seqs = 16;              // running requests at once
  std::int64_t max_num_batched_tokens = 512;   // tokens computed per step (the chunk budget)
  std::int64_t max_model_len = 4096;           // prompt + output
};

struct ScheduledSeq {
  RequestId id = 0;
  std::int64_t context_len = 0;        // tokens already in the cache (positions start here)
  std::vector<TokenId> tokens;         // the tokens to compute this step
  std::vector<BlockId> blocks;         // block table covering context_len + tokens.size()
  std::optional<std::int32_t> state_slot;
  bool samples = false;                // the step reaches the last known token: sample the next one
};

struct SchedulePlan {
  std::vector<ScheduledSeq> seqs;
  std::vector<RequestId> preempted;    // freed this step, will be recomputed
  std::int64_t num_tokens = 0;
  bool empty() const { return seqs.empty(); }
};

struct StepResult {
  struct Sampled {
    RequestId id = 0;
    TokenId token = 0;
  };
  std::vector<Sampled> sampled;        // one per plan seq that had samples = true (unless finished by it)
  std::vector<RequestId> finished;     // requests that are done (their blocks are freed)
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& cfg, const KvCacheConfig& cache_cfg);

  // Queues a request. Returns how many new tokens it may generate
  // (max_new_tokens capped by the context). Throws ProtocolError
  // (invalid_request) for an empty prompt, a prompt that fills the context,
  // or a request the whole cache cannot hold.
  std::int64_t add(RequestId id, std::vector<TokenId> prompt, std::int64_t max_new_tokens);
  // Removes a request wherever it is and frees its blocks. False if unknown.
  bool cancel(RequestId id);

  SchedulePlan schedule();
  void update(const StepResult& result);

  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  std::size_t num_running() const { return running_.size(); }
  std::size_t num_waiting() const { return waiting_.size(); }
  const KvCacheManager& cache() const { return cache_; }
  const SchedulerConfig& config() const { return cfg_; }
  // Tokens the request took from the prefix cache when last admitted.
  std::int64_t cached_prefix_tokens(RequestId id) const;
  std::int64_t num_preemptions(RequestId id) const;

 private:
  struct Request {
    RequestId id = 0;
    std::vector<TokenId> tokens;  // prompt, then every sampled token
    std::int64_t num_computed = 0;
    std::int64_t cached_prefix = 0;
    std::int64_t preemptions = 0;
    SequenceCache cache;
  };
  ScheduledSeq make_scheduled(Request& r, std::int64_t n) const;
  void preempt(Request& r);
  Request* find(RequestId id);

  SchedulerConfig cfg_;
  KvCacheManager cache_;
  std::unordered_map<RequestId, std::unique_ptr<Request>> requests_;
  std::deque<Request*> waiting_;
  std::vector<Request*> running_;
  std::vector<std::pair<RequestId, std::int64_t>> in_flight_;  // last plan: id, tokens computed
};

}  // namespace mmgen::text
