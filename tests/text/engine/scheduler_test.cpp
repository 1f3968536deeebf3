// Block pool, cache manager and scheduler, driven step by step with a fake
// "model": a step's result samples token 1000 + step for every request that
// reached its last token.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "mmgen/protocol.hpp"
#include "mmgen/text/scheduler.hpp"

using namespace mmgen::text;

namespace {

std::vector<TokenId> seq(TokenId first, int n) {
  std::vector<TokenId> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

KvCacheConfig cache_cfg(std::int32_t blocks, std::int32_t block_size = 4, bool prefix = true) {
  KvCacheConfig c;
  c.num_blocks = blocks;
  c.block_size = block_size;
  c.enable_prefix_caching = prefix;
  return c;
}

// Runs a step: every seq that samples gets `token`; finishes those in `finish`.
StepResult fake_result(const SchedulePlan& plan, TokenId token, std::set<RequestId> finish = {}) {
  StepResult r;
  for (const auto& s : plan.seqs) {
    if (!s.samples) continue;
    if (finish.count(s.id)) {
      r.finished.push_back(s.id);
    } else {
      r.sampled.push_back({s.id, token});
    }
  }
  return r;
}

const ScheduledSeq* find(const SchedulePlan& p, RequestId id) {
  for (const auto& s : p.seqs)
    if (s.id == id) return &s;
  return nullptr;
}

}  // namespace

TEST(BlockPool, AllocatesReleasesAndEvictsCachedBlocksLast) {
  BlockPool pool(4, true);
  auto a = pool.allocate(3);
  ASSERT_TRUE(a);
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_FALSE(pool.allocate(2));  // all or nothing
  EXPECT_EQ(pool.num_free(), 1);
  std::vector<TokenId> t{1, 2};
  pool.cache((*a)[0], 42, t);
  for (BlockId b : *a) pool.release(b);
  EXPECT_EQ(pool.num_free(), 4);
  // The cached block is still findable and takes a reference.
  auto hit = pool.lookup(42, t);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, (*a)[0]);
  EXPECT_EQ(pool.num_free(), 3);
  EXPECT_FALSE(pool.lookup(42, std::vector<TokenId>{1, 3}));  // same hash, other tokens: no hit
  pool.release(*hit);
  // Uncached blocks are handed out first; the cached one last, then evicted.
  auto all = pool.allocate(4);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->back(), (*a)[0]);
  EXPECT_FALSE(pool.lookup(42, t));
  EXPECT_THROW({ pool.release((*all)[0]); pool.release((*all)[0]); }, std::logic_error);
}

TEST(KvCacheManager, BudgetInBytes) {
  // 2 layers * 2 (k, v) * 16 tokens * 2 heads * 64 dims * 4 bytes = 32 KiB per block.
  EXPECT_EQ(KvCacheConfig::blocks_for_budget(1 << 20, 16, 2, 2, 64, 4), 32);
  EXPECT_EQ(KvCacheConfig::blocks_for_budget(100, 16, 2, 2, 64, 4), 0);
}

TEST(KvCacheManager, PrefixMatchTakesFullBlocksButLeavesOneTokenToCompute) {
  KvCacheManager m(cache_cfg(16));
  auto tokens = seq(0, 12);  // 3 full blocks
  SequenceCache a;
  ASSERT_TRUE(m.allocate(a, 12));
  m.cache_full_blocks(a, tokens, 12);
  SequenceCache b;
  EXPECT_EQ(m.match_prefix(b, tokens), 8);  // not the 3rd block: one token must be computed
  EXPECT_EQ(std::vector<BlockId>(b.blocks.begin(), b.blocks.end()),
            std::vector<BlockId>(a.blocks.begin(), a.blocks.begin() + 2));
  auto longer = seq(0, 13);
  SequenceCache c;
  EXPECT_EQ(m.match_prefix(c, longer), 12);
  auto other = tokens;
  other[5] = 99;  // differs in the second block: only the first matches
  SequenceCache d;
  EXPECT_EQ(m.match_prefix(d, other), 4);
  for (auto* s : {&a, &b, &c, &d}) m.free(*s);
  EXPECT_EQ(m.num_free_blocks(), 16);
}

TEST(KvCacheManager, StateSlotsArePerSequenceAndFreedWithIt) {
  KvCacheConfig cfg = cache_cfg(8);
  cfg.num_state_slots = 2;
  KvCacheManager m(cfg);
  SequenceCache a, b, c;
  ASSERT_TRUE(m.allocate(a, 3));
  ASSERT_TRUE(m.allocate(b, 3));
  ASSERT_TRUE(a.state_slot && b.state_slot);
  EXPECT_NE(*a.state_slot, *b.state_slot);
  EXPECT_FALSE(m.allocate(c, 3));  // no slot left: nothing taken
  EXPECT_TRUE(c.blocks.empty());
  m.free(a);
  EXPECT_TRUE(m.allocate(c, 3));
  // Recurrent state is not snapshotted per block, so hybrid models get no prefix hits.
  EXPECT_FALSE(m.pool().prefix_caching());
}

TEST(Scheduler, ContinuousBatchingJoinAndLeaveEveryStep) {
  Scheduler s({4, 64, 256}, cache_cfg(64));
  s.add(1, seq(0, 5), 3);
  auto p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].tokens.size(), 5u);
  EXPECT_TRUE(p.seqs[0].samples);
  EXPECT_EQ(p.seqs[0].blocks.size(), 2u);
  s.update(fake_result(p, 100));

  s.add(2, seq(50, 3), 3);  // joins while 1 decodes
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 2u);
  const ScheduledSeq* one = find(p, 1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->context_len, 5);
  EXPECT_EQ(one->tokens, std::vector<TokenId>{100});
  EXPECT_EQ(find(p, 2)->tokens.size(), 3u);
  s.update(fake_result(p, 101, {1}));  // 1 leaves
  EXPECT_EQ(s.num_running(), 1u);
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].id, 2u);
  EXPECT_EQ(p.seqs[0].context_len, 3);
}

TEST(Scheduler, ChunkedPrefillDoesNotStallDecoding) {
  Scheduler s({4, 8, 256}, cache_cfg(64));
  s.add(1, seq(0, 3), 50);
  auto p = s.schedule();
  s.update(fake_result(p, 7));
  s.add(2, seq(100, 20), 5);  // a long prompt: 20 tokens, budget 8 per step
  std::vector<std::size_t> chunks;
  for (int step = 0; step < 3; ++step) {
    p = s.schedule();
    const ScheduledSeq* a = find(p, 1);
    ASSERT_TRUE(a) << "decoding stream stalled at step " << step;
    EXPECT_EQ(a->tokens.size(), 1u);
    const ScheduledSeq* b = find(p, 2);
    ASSERT_TRUE(b);
    chunks.push_back(b->tokens.size());
    EXPECT_EQ(b->samples, step == 2);
    EXPECT_LE(p.num_tokens, 8);
    s.update(fake_result(p, 7));
  }
  EXPECT_EQ(chunks, (std::vector<std::size_t>{7, 7, 6}));
}

TEST(Scheduler, SharedPrefixIsComputedOnce) {
  Scheduler s({4, 64, 256}, cache_cfg(64));
  auto system = seq(0, 16);
  auto a = system, b = system;
  a.push_back(500);
  b.push_back(600);
  b.push_back(601);
  s.add(1, a, 2);
  auto p = s.schedule();
  s.update(fake_result(p, 9));
  s.add(2, b, 2);
  p = s.schedule();
  const ScheduledSeq* two = find(p, 2);
  ASSERT_TRUE(two);
  EXPECT_EQ(two->context_len, 16);  // 4 blocks of 4 from request 1
  EXPECT_EQ(two->tokens, (std::vector<TokenId>{600, 601}));
  EXPECT_EQ(s.cached_prefix_tokens(2), 16);
  const ScheduledSeq* one = find(p, 1);
  EXPECT_TRUE(std::equal(one->blocks.begin(), one->blocks.begin() + 4, two->blocks.begin()));
}

TEST(Scheduler, PreemptsTheNewestWhenBlocksRunOutAndRecomputesIt) {
  // 4 blocks of 4 tokens. Two requests of 7 prompt tokens take 2 blocks each;
  // when request 1 needs a third block, request 2 is preempted.
  Scheduler s({4, 64, 256}, cache_cfg(4));
  s.add(1, seq(0, 7), 6);
  s.add(2, seq(100, 7), 6);
  auto p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 2u);
  s.update(fake_result(p, 50));  // both now 8 tokens known, 7 computed
  p = s.schedule();              // token 8 still fits block 2 of each
  ASSERT_EQ(p.seqs.size(), 2u);
  s.update(fake_result(p, 51));
  p = s.schedule();  // request 1 needs a 3rd block: 2 is preempted
  EXPECT_EQ(p.preempted, std::vector<RequestId>{2});
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].id, 1u);
  EXPECT_EQ(s.num_preemptions(2), 1);
  s.update(fake_result(p, 52, {1}));  // 1 finishes: its blocks come back
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  // Request 2 is recomputed with the tokens it had sampled. Its first block
  // survived in the prefix cache (its tail block was evicted first, for
  // request 1's third block), so only the rest is recomputed.
  EXPECT_EQ(p.seqs[0].id, 2u);
  EXPECT_EQ(p.seqs[0].context_len, 4);
  std::vector<TokenId> want = seq(104, 3);
  want.push_back(50);
  want.push_back(51);
  EXPECT_EQ(p.seqs[0].tokens, want);
  EXPECT_TRUE(p.seqs[0].samples);
}

TEST(Scheduler, CancelFreesBlocksAtOnce) {
  Scheduler s({4, 64, 256}, cache_cfg(8, 4, false));
  s.add(1, seq(0, 10), 4);
  auto p = s.schedule();
  EXPECT_EQ(s.cache().num_free_blocks(), 5);
  EXPECT_TRUE(s.cancel(1));
  EXPECT_EQ(s.cache().num_free_blocks(), 8);
  EXPECT_FALSE(s.has_work());
  s.update(fake_result(p, 1));  // a late result for a cancelled request is ignored
  EXPECT_FALSE(s.cancel(1));
  s.add(2, seq(0, 3), 2);  // waiting requests cancel too
  EXPECT_TRUE(s.cancel(2));
  EXPECT_TRUE(s.schedule().empty());
}

TEST(Scheduler, RefusesRequestsBeyondContextOrCache) {
  Scheduler s({4, 64, 32}, cache_cfg(4));  // context 32, cache 16 tokens
  auto expect_refused = [&](std::vector<TokenId> prompt, std::int64_t max_new, const std::string& word) {
    try {
      s.add(9, std::move(prompt), max_new);
      FAIL() << "accepted";
    } catch (const mmgen::proto::ProtocolError& e) {
      EXPECT_EQ(e.code(), mmgen::proto::ErrorCode::invalid_request);
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    }
  };
  expect_refused(seq(0, 32), 1, "context");
  expect_refused(seq(0, 10), 10, "cache");
  expect_refused({}, 1, "empty");
  EXPECT_EQ(s.add(1, seq(0, 10), 7), 7);    // 16 tokens of KV: fits exactly
  Scheduler t({4, 64, 16}, cache_cfg(64));
  EXPECT_EQ(t.add(2, seq(0, 14), 100), 2);  // max_tokens capped by the context
}
