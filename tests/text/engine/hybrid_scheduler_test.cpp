// The scheduler's recurrent-state slot accounting for hybrid (Qwen3.5) models,
// with fake caches and no model: every running sequence holds exactly one
// slot, a request that cannot get one waits, preemption and cancellation give
// it back, and no slot is ever held by two sequences.
#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <set>
#include <stdexcept>

#include "mmgen/text/scheduler.hpp"

using namespace mmgen::text;

namespace {

std::vector<TokenId> seq(TokenId first, int n) {
  std::vector<TokenId> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

KvCacheConfig hybrid_cache(std::int32_t blocks, std::int32_t slots, std::int32_t block_size = 4) {
  KvCacheConfig c;
  c.num_blocks = blocks;
  c.block_size = block_size;
  c.enable_prefix_caching = true;  // asked for, but a hybrid cache turns it off
  c.num_state_slots = slots;
  return c;
}

StepResult sample_all(const SchedulePlan& plan, TokenId token, std::set<RequestId> finish = {}) {
  StepResult r;
  for (const auto& s : plan.seqs) {
    if (!s.samples) continue;
    if (finish.count(s.id)) r.finished.push_back(s.id);
    else r.sampled.push_back({s.id, token});
  }
  return r;
}

// Every scheduled sequence has a slot, no two share one, and a sequence keeps
// its slot from step to step until it is preempted (then context_len is 0).
class SlotChecker {
 public:
  void check(const SchedulePlan& plan) {
    std::set<std::int32_t> used;
    for (const auto& s : plan.seqs) {
      ASSERT_TRUE(s.state_slot) << "request " << s.id << " runs without a state slot";
      EXPECT_TRUE(used.insert(*s.state_slot).second) << "slot " << *s.state_slot << " shared in one step";
      auto it = slot_of_.find(s.id);
      if (it != slot_of_.end() && s.context_len > 0) {
        EXPECT_EQ(it->second, *s.state_slot) << "request " << s.id << " changed slot without recomputing";
      }
      if (s.context_len == 0) ++fresh_starts_[s.id];
      slot_of_[s.id] = *s.state_slot;
    }
    for (RequestId id : plan.preempted) slot_of_.erase(id);
  }
  int fresh_starts(RequestId id) const {
    auto it = fresh_starts_.find(id);
    return it == fresh_starts_.end() ? 0 : it->second;
  }

 private:
  std::map<RequestId, std::int32_t> slot_of_;
  std::map<RequestId, int> fresh_starts_;
};

}  // namespace

TEST(StateSlotPool, HandsOutEachSlotOnceAndRefusesDoubleRelease) {
  StateSlotPool pool(3);
  std::set<std::int32_t> got;
  for (int i = 0; i < 3; ++i) {
    auto s = pool.allocate();
    ASSERT_TRUE(s);
    EXPECT_TRUE(got.insert(*s).second);
  }
  EXPECT_FALSE(pool.allocate());
  pool.release(1);
  EXPECT_THROW(pool.release(1), std::logic_error);
  EXPECT_THROW(pool.release(7), std::logic_error);
  EXPECT_EQ(pool.allocate(), 1);
}

TEST(HybridKvCacheManager, SlotAndBlocksAreTakenTogetherOrNotAtAll) {
  KvCacheManager m(hybrid_cache(4, 1));
  EXPECT_FALSE(m.pool().prefix_caching()) << "prefix caching must be off with recurrent state";
  SequenceCache a, b;
  // Too many blocks: neither blocks nor the slot are taken.
  EXPECT_FALSE(m.allocate(a, 20));
  EXPECT_FALSE(a.state_slot);
  EXPECT_EQ(m.num_free_state_slots(), 1);
  EXPECT_EQ(m.num_free_blocks(), 4);
  ASSERT_TRUE(m.allocate(a, 5));
  EXPECT_TRUE(a.state_slot);
  EXPECT_EQ(m.num_free_state_slots(), 0);
  // Blocks are free but the only slot is taken: b gets nothing.
  EXPECT_FALSE(m.allocate(b, 1));
  EXPECT_TRUE(b.blocks.empty());
  EXPECT_EQ(m.num_free_blocks(), 2);
  // Growing a keeps its slot.
  const auto slot = a.state_slot;
  ASSERT_TRUE(m.allocate(a, 8));
  EXPECT_EQ(a.state_slot, slot);
  m.free(a);
  EXPECT_EQ(m.num_free_state_slots(), 1);
  EXPECT_TRUE(m.allocate(b, 1));
  // The prefix cache never matches for a hybrid cache.
  SequenceCache c;
  EXPECT_EQ(m.match_prefix(c, seq(0, 12)), 0);
}

TEST(HybridScheduler, RequestWithoutASlotWaitsUntilOneIsFreed) {
  // Plenty of blocks and sequence room, two state slots.
  Scheduler s(SchedulerConfig{8, 64, 256}, hybrid_cache(64, 2));
  SlotChecker slots;
  s.add(1, seq(0, 6), 3);
  s.add(2, seq(10, 5), 6);
  s.add(3, seq(20, 4), 2);
  auto p = s.schedule();
  slots.check(p);
  ASSERT_EQ(p.seqs.size(), 2u) << "the third request has no slot and must wait";
  EXPECT_EQ(s.num_waiting(), 1u);
  EXPECT_EQ(s.cache().num_free_state_slots(), 0);
  s.update(sample_all(p, 100));
  // Request 1 decodes until its third token finishes it; request 3 waits all along.
  for (int step = 0; step < 2; ++step) {
    p = s.schedule();
    slots.check(p);
    EXPECT_EQ(p.seqs.size(), 2u);
    for (const auto& q : p.seqs) EXPECT_NE(q.id, 3u);
    s.update(sample_all(p, 101, step == 1 ? std::set<RequestId>{1} : std::set<RequestId>{}));
  }
  EXPECT_EQ(s.cache().num_free_state_slots(), 1) << "a finished request returns its slot";
  p = s.schedule();
  slots.check(p);
  ASSERT_EQ(p.seqs.size(), 2u);
  bool admitted = false;
  for (const auto& q : p.seqs) admitted |= q.id == 3 && q.context_len == 0 && q.tokens.size() == 4u;
  EXPECT_TRUE(admitted) << "the waiting request takes the freed slot";
  EXPECT_EQ(s.num_waiting(), 0u);
}

TEST(HybridScheduler, PreemptionReturnsTheSlotAndRecomputesFromScratch) {
  // Four slots but only six blocks of 4 tokens: two growing requests collide.
  Scheduler s(SchedulerConfig{4, 64, 256}, hybrid_cache(6, 4));
  SlotChecker slots;
  s.add(1, seq(0, 8), 12);
  s.add(2, seq(50, 8), 12);
  int preempted = 0;
  std::map<RequestId, int> produced;
  for (int step = 0; step < 100 && s.has_work(); ++step) {
    auto p = s.schedule();
    slots.check(p);
    preempted += int(p.preempted.size());
    // Only running requests hold slots: a preempted one gave its slot back.
    EXPECT_EQ(s.cache().num_free_state_slots(), 4 - std::int32_t(s.num_running()));
    std::set<RequestId> finish;
    for (const auto& q : p.seqs)
      if (q.samples && ++produced[q.id] == 12) finish.insert(q.id);
    s.update(sample_all(p, TokenId(200 + step), finish));
  }
  EXPECT_FALSE(s.has_work());
  EXPECT_GT(preempted, 0) << "the cache was not small enough to preempt";
  EXPECT_GT(slots.fresh_starts(1) + slots.fresh_starts(2), 2) << "a preempted request restarts at context 0";
  EXPECT_EQ(s.cache().num_free_state_slots(), 4);
  EXPECT_EQ(s.cache().num_free_blocks(), 6);
}

TEST(HybridScheduler, CancelFreesTheSlotAtOnce) {
  Scheduler s(SchedulerConfig{8, 64, 256}, hybrid_cache(32, 1));
  s.add(1, seq(0, 6), 10);
  s.add(2, seq(10, 6), 10);
  auto p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  s.update(sample_all(p, 7));
  EXPECT_EQ(s.cache().num_free_state_slots(), 0);
  EXPECT_TRUE(s.cancel(1));
  EXPECT_EQ(s.cache().num_free_state_slots(), 1);
  EXPECT_EQ(s.cache().num_free_blocks(), 32);
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].id, 2u);
  EXPECT_EQ(p.seqs[0].context_len, 0);
  EXPECT_TRUE(p.seqs[0].state_slot);
}

TEST(HybridScheduler, ManyRequestsNeverShareASlot) {
  // Mixed lengths, chunked prefill (small budget), few slots and blocks:
  // requests join, leave and get preempted; the invariant holds every step.
  Scheduler s(SchedulerConfig{6, 10, 256}, hybrid_cache(14, 3));
  SlotChecker slots;
  std::map<RequestId, int> want, produced;
  for (RequestId id = 1; id <= 9; ++id) {
    want[id] = 2 + int(id % 4) * 3;
    s.add(id, seq(TokenId(id * 100), 3 + int(id * 7 % 11)), want[id]);
  }
  for (int step = 0; step < 2000 && s.has_work(); ++step) {
    auto p = s.schedule();
    slots.check(p);
    EXPECT_LE(p.seqs.size(), 3u);
    EXPECT_LE(p.num_tokens, 10);
    std::set<RequestId> finish;
    for (const auto& q : p.seqs)
      if (q.samples && ++produced[q.id] == want[q.id]) finish.insert(q.id);
    // A preempted request recomputes; the tokens it produced so far stay in its sequence.
    s.update(sample_all(p, TokenId(5000 + step), finish));
  }
  EXPECT_FALSE(s.has_work());
  for (const auto& [id, n] : want) EXPECT_EQ(produced[id], n) << "request " << id;
  EXPECT_EQ(s.cache().num_free_state_slots(), 3);
}
