// The cache manager: who owns which piece of the KV cache. No tensors here —
// blocks are opaque integer handles into the engine's cache tensors, so the
// policy is tested with fake caches and no model (DESIGN.md, vLLM v1 example).
//
//   BlockPool        fixed-size KV blocks with reference counts, a free queue
//                    in least-recently-freed order and the prefix cache (full
//                    blocks by chained hash). A cached block whose last user
//                    left stays findable until the pool hands it out again.
//   StateSlotPool    fixed-size per-sequence state slots (the recurrent conv
//                    window + delta-rule state of Qwen3.5's linear-attention
//                    layers). Models without such layers have zero slots.
//   KvCacheManager   per-sequence cache state (SequenceCache) over both pools:
//                    prefix lookup, growing a sequence's block table, caching
//                    its full blocks, freeing.
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "mmgen/text/sampling.hpp"  // TokenId

namespace mmgen::text {

using BlockId = std::int32_t;
using BlockHash = std::uint64_t;

// Hash of a full block: its tokens chained with the hash of the block before
// it, so equal hashes mean equal prefixes (up to 64-bit collisions; the tokens
// are compared as well, see BlockPool::lookup).
BlockHash hash_block(BlockHash parent, std::span<const TokenId> tokens);

class BlockPool {
 public:
  BlockPool(std::int32_t num_blocks, bool enable_prefix_caching);

  std::int32_t num_blocks() const { return std::int32_t(blocks_.size()); }
  // Blocks that allocate() can hand out (free ones and cached ones nobody uses).
  std::int32_t num_free() const { return std::int32_t(free_.size()); }
  bool prefix_caching() const { return prefix_caching_; }

  // Takes `n` blocks (ref count 1), evicting cached ones in LRU order.
  // Returns nullopt (and takes nothing) when fewer than n are free.
  std::optional<std::vector<BlockId>> allocate(std::int32_t n);
  // A cached full block with this hash and these tokens; takes a reference.
  std::optional<BlockId> lookup(BlockHash hash, std::span<const TokenId> tokens);
  // Makes a full block findable by its hash (no-op when caching is off or the
  // hash is already cached by another block).
  void cache(BlockId block, BlockHash hash, std::span<const TokenId> tokens);
  // Drops one reference; at zero the block returns to the free queue (still
  // findable if cached). Release a sequence's blocks tail first so its
  // deepest blocks are evicted first.
  void release(BlockId block);
  std::int32_t ref_count(BlockId block) const { return blocks_[std::size_t(block)].refs; }
  std::int64_t cached_blocks() const { return std::int64_t(by_hash_.size()); }

 private:
  struct Block {
    std::int32_t refs = 0;
    std::optional<BlockHash> hash;
    std::vector<TokenId> tokens;  // the block's tokens while cached
    std::list<BlockId>::iterator free_pos;
    bool in_free = false;
  };
  void take_from_free(BlockId b);

  std::vector<Block> blocks_;
  std::list<BlockId> free_;  // front: evicted first
  std::unordered_map<BlockHash, BlockId> by_hash_;
  bool prefix_caching_;
};

class StateSlotPool {
 public:
  explicit StateSlotPool(std::int32_t num_slots);
  std::int32_t num_slots() const { return total_; }
  std::int32_t num_free() const { return std::int32_t(free_.size()); }
  std::optional<std::int32_t> allocate();
  // Throws std::logic_error for a slot outside the pool or one already free.
  void release(std::int32_t slot);

 private:
  std::int32_t total_;
  std::vector<std::int32_t> free_;
};

// Everything the cache holds for one sequence. A new kind of per-sequence
// state gets its own member here and its own pool in KvCacheManager.
struct SequenceCache {
  std::vector<BlockId> blocks;            // block table: token i lives in blocks[i / block_size]
  std::vector<BlockHash> block_hashes;    // hashes of the leading full blocks already cached
  std::optional<std::int32_t> state_slot; // recurrent-state slot (hybrid models), if any
};

struct KvCacheConfig {
  std::int32_t num_blocks = 0;
  std::int32_t block_size = 16;
  bool enable_prefix_caching = true;
  std::int32_t num_state_slots = 0;  // > 0 only for models with recurrent layers (turns prefix caching off)

  // Blocks that fit a byte budget: bytes_per_block = K and V of every
  // attention layer for block_size tokens.
  static std::int32_t blocks_for_budget(std::int64_t budget_bytes, std::int32_t block_size, std::int64_t num_layers,
                                        std::int64_t num_kv_heads, std::int64_t head_dim, std::int64_t dtype_bytes);
};

class KvCacheManager {
 public:
  explicit KvCacheManager(const KvCacheConfig& cfg);

  std::int32_t block_size() const { return block_size_; }
  std::int32_t num_blocks() const { return pool_.num_blocks(); }
  std::int32_t num_free_blocks() const { return pool_.num_free(); }
  std::int64_t capacity_tokens() const { return std::int64_t(pool_.num_blocks()) * block_size_; }
  std::int32_t blocks_for(std::int64_t tokens) const { return std::int32_t((tokens + block_size_ - 1) / block_size_); }
  const BlockPool& pool() const { return pool_; }
  // Recurrent-state slots (hybrid models; 0 otherwise): every running sequence
  // holds exactly one, never shared, from its first allocate() until free().
  std::int32_t num_state_slots() const { return slots_.num_slots(); }
  std::int32_t num_free_state_slots() const { return slots_.num_free(); }

  // Prefix-cache hit for a sequence that has nothing computed yet: takes the
  // longest run of cached full blocks matching `tokens` (never the whole
  // sequence: at least one token is left to compute, so there are logits to
  // sample from). Returns the number of tokens covered.
  std::int64_t match_prefix(SequenceCache& seq, std::span<const TokenId> tokens);
  // Grows the block table to hold `total_tokens`; false (and no change) when
  // the pool cannot provide the blocks (or the state slot).
  bool allocate(SequenceCache& seq, std::int64_t total_tokens);
  // Registers the sequence's full blocks among its first `computed` tokens in
  // the prefix cache.
  void cache_full_blocks(SequenceCache& seq, std::span<const TokenId> tokens, std::int64_t computed);
  // Returns every block and slot of the sequence to the pools.
  void free(SequenceCache& seq);

 private:
  std::int32_t block_size_;
  bool uses_state_slots_;
  BlockPool pool_;
  StateSlotPool slots_;
};

}  // namespace mmgen::text
