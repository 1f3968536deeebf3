// Block pool, state slots and the per-sequence cache manager (kv_cache_manager.hpp).
#include "mmgen/text/kv_cache_manager.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace mmgen::text {

BlockHash hash_block(BlockHash parent, std::span<const TokenId> tokens) {
  // FNV-1a over the parent hash and the token ids, then a final mix.
  BlockHash h = 1469598103934665603ull ^ parent;
  auto mix = [&](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(parent);
  for (TokenId t : tokens) mix(std::uint64_t(std::uint32_t(t)));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

// ---- BlockPool ----------------------------------------------------------------

BlockPool::BlockPool(std::int32_t num_blocks, bool enable_prefix_caching)
    : blocks_(std::size_t(std::max(0, num_blocks))), prefix_caching_(enable_prefix_caching) {
  for (BlockId b = 0; b < num_blocks; ++b) {
    blocks_[std::size_t(b)].free_pos = free_.insert(free_.end(), b);
    blocks_[std::size_t(b)].in_free = true;
  }
}

void BlockPool::take_from_free(BlockId b) {
  Block& blk = blocks_[std::size_t(b)];
  if (blk.in_free) {
    free_.erase(blk.free_pos);
    blk.in_free = false;
  }
}

std::optional<std::vector<BlockId>> BlockPool::allocate(std::int32_t n) {
  if (n < 0 || n > num_free()) return std::nullopt;
  std::vector<BlockId> out;
  out.reserve(std::size_t(n));
  for (std::int32_t i = 0; i < n; ++i) {
    const BlockId b = free_.front();
    take_from_free(b);
    Block& blk = blocks_[std::size_t(b)];
    if (blk.hash) {  // evict from the prefix cache
      auto it = by_hash_.find(*blk.hash);
      if (it != by_hash_.end() && it->second == b) by_hash_.erase(it);
      blk.hash.reset();
      blk.tokens.clear();
    }
    blk.refs = 1;
    out.push_back(b);
  }
  return out;
}

std::optional<BlockId> BlockPool::lookup(BlockHash hash, std::span<const TokenId> tokens) {
  if (!prefix_caching_) return std::nullopt;
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  Block& blk = blocks_[std::size_t(it->second)];
  if (!std::equal(blk.tokens.begin(), blk.tokens.end(), tokens.begin(), tokens.end())) return std::nullopt;
  take_from_free(it->second);
  ++blk.refs;
  return it->second;
}

void BlockPool::cache(BlockId b, BlockHash hash, std::span<const TokenId> tokens) {
  if (!prefix_caching_) return;
  Block& blk = blocks_[std::size_t(b)];
  if (blk.hash || by_hash_.count(hash)) return;
  blk.hash = hash;
  blk.tokens.assign(tokens.begin(), tokens.end());
  by_hash_.emplace(hash, b);
}

void BlockPool::release(BlockId b) {
  Block& blk = blocks_[std::size_t(b)];
  if (blk.refs <= 0) throw std::logic_error("BlockPool: block " + std::to_string(b) + " released twice");
  if (--blk.refs == 0) {
    // Uncached blocks are reused first; cached ones wait at the back (LRU).
    blk.free_pos = blk.hash ? free_.insert(free_.end(), b) : free_.insert(free_.begin(), b);
    blk.in_free = true;
  }
}

// ---- StateSlotPool ---------------------------------------------------------------

StateSlotPool::StateSlotPool(std::int32_t num_slots) : total_(std::max(0, num_slots)) {
  for (std::int32_t s = total_ - 1; s >= 0; --s) free_.push_back(s);
}

std::optional<std::int32_t> StateSlotPool::allocate() {
  if (free_.empty()) return std::nullopt;
  const std::int32_t s = free_.back();
  free_.pop_back();
  return s;
}

void StateSlotPool::release(std::int32_t slot) {
  // A slot freed twice would later be handed to two sequences at once (their
  // recurrent states mixed): refuse loudly instead.
  if (slot < 0 || slot >= total_ || std::find(free_.begin(), free_.end(), slot) != free_.end())
    throw std::logic_error("StateSlotPool: slot " + std::to_string(slot) + " released twice or unknown");
  free_.push_back(slot);
}

// ---- KvCacheManager ------------------------------------------------------------------

std::int32_t KvCacheConfig::blocks_for_budget(std::int64_t budget_bytes, std::int32_t block_size,
                                              std::int64_t num_layers, std::int64_t num_kv_heads,
                                              std::int64_t head_dim, std::int64_t dtype_bytes) {
  const std::int64_t per_block = 2 * num_layers * block_size * num_kv_heads * head_dim * dtype_bytes;
  if (per_block <= 0) return 0;
  return std::int32_t(std::min<std::int64_t>(budget_bytes / per_block, INT32_MAX));
}

KvCacheManager::KvCacheManager(const KvCacheConfig& cfg)
    : block_size_(cfg.block_size),
      uses_state_slots_(cfg.num_state_slots > 0),
      // A cached KV prefix is useless to a hybrid model without the recurrent
      // state at that point, which is not snapshotted (yet): no prefix caching.
      pool_(cfg.num_blocks, cfg.enable_prefix_caching && cfg.num_state_slots == 0),
      slots_(cfg.num_state_slots) {
  if (cfg.block_size <= 0) throw std::invalid_argument("KvCacheManager: block_size must be positive");
}

std::int64_t KvCacheManager::match_prefix(SequenceCache& seq, std::span<const TokenId> tokens) {
  if (!pool_.prefix_caching() || !seq.blocks.empty() || tokens.empty()) return 0;
  const std::int64_t max_blocks = std::int64_t(tokens.size() - 1) / block_size_;
  BlockHash parent = 0;
  for (std::int64_t i = 0; i < max_blocks; ++i) {
    auto blk_tokens = tokens.subspan(std::size_t(i * block_size_), std::size_t(block_size_));
    const BlockHash h = hash_block(parent, blk_tokens);
    auto b = pool_.lookup(h, blk_tokens);
    if (!b) break;
    seq.blocks.push_back(*b);
    seq.block_hashes.push_back(h);
    parent = h;
  }
  return std::int64_t(seq.blocks.size()) * block_size_;
}

bool KvCacheManager::allocate(SequenceCache& seq, std::int64_t total_tokens) {
  const std::int32_t need = blocks_for(total_tokens) - std::int32_t(seq.blocks.size());
  const bool need_slot = uses_state_slots_ && !seq.state_slot;
  if (need_slot && slots_.num_free() == 0) return false;
  if (need > 0) {
    auto got = pool_.allocate(need);
    if (!got) return false;
    seq.blocks.insert(seq.blocks.end(), got->begin(), got->end());
  }
  if (need_slot) seq.state_slot = slots_.allocate();
  return true;
}

void KvCacheManager::cache_full_blocks(SequenceCache& seq, std::span<const TokenId> tokens, std::int64_t computed) {
  if (!pool_.prefix_caching()) return;
  const std::size_t full = std::size_t(std::min<std::int64_t>(computed, std::int64_t(tokens.size())) / block_size_);
  BlockHash parent = seq.block_hashes.empty() ? 0 : seq.block_hashes.back();
  for (std::size_t i = seq.block_hashes.size(); i < full && i < seq.blocks.size(); ++i) {
    auto blk_tokens = tokens.subspan(i * std::size_t(block_size_), std::size_t(block_size_));
    const BlockHash h = hash_block(parent, blk_tokens);
    pool_.cache(seq.blocks[i], h, blk_tokens);
    seq.block_hashes.push_back(h);
    parent = h;
  }
}

void KvCacheManager::free(SequenceCache& seq) {
  for (auto it = seq.blocks.rbegin(); it != seq.blocks.rend(); ++it) pool_.release(*it);
  seq.blocks.clear();
  seq.block_hashes.clear();
  if (seq.state_slot) slots_.release(*seq.state_slot);
  seq.state_slot.reset();
}

}  // namespace mmgen::text
