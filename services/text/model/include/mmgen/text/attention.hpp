// What a forward pass needs to know about the sequences in its flattened batch,
// the KV cache it writes to, and the one attention function every layer calls.
//
// The forward API is the one a paged-KV engine drives: tokens of several
// sequences are concatenated ([T] ids, [T] positions), and AttentionMetadata
// says where each sequence's tokens start, how many it has already cached
// and where its cache lives. Today the cache is contiguous per sequence slot
// (preallocated [layers, slots, max_len, Hkv, D], written by index as gpt-fast
// does); the engine will switch attend() to the paged kernels
// (mmgen::ops paged attention) without touching the models.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace mmgen::text {

struct SequenceSlice {
  std::int64_t query_start = 0;  // first row of this sequence in the flattened batch
  std::int64_t query_len = 0;    // new tokens this step
  std::int64_t context_len = 0;  // tokens already in the cache before this step
  std::int64_t cache_slot = 0;   // which sequence slot of the cache
  std::int64_t total_len() const { return context_len + query_len; }
};

// The paged layout of one step, built once per step (build_paged) and used by
// every layer. Sequence order is that of AttentionMetadata::seqs.
struct PagedLayout {
  std::int64_t block_size = 0;
  at::Tensor slot_mapping;                 // [T] int64: cache slot (block * block_size + offset) of each new token
  std::vector<at::Tensor> block_indices;   // per sequence: [blocks] int64, its block table
  // Sequences with one new token (decode), attended by the paged kernel.
  std::vector<std::size_t> decode_seqs;    // indices into seqs
  at::Tensor decode_rows;                  // [B] int64: their rows in the flattened batch
  at::Tensor decode_block_tables;          // [B, max_blocks] int32
  at::Tensor decode_context_lens;          // [B] int32: tokens to attend (the new one included)
};

struct AttentionMetadata {
  std::vector<SequenceSlice> seqs;
  std::optional<PagedLayout> paged;  // set: the cache is paged (cache_slot is unused)

  std::int64_t num_tokens() const;
  // One sequence in slot 0: `query_len` new tokens after `context_len` cached ones.
  static AttentionMetadata single(std::int64_t query_len, std::int64_t context_len);
  // Paged metadata: seqs in flattened order, block_tables[i] the block table of
  // seqs[i] (covering its total_len()); index tensors are made on `device`.
  static AttentionMetadata build_paged(std::vector<SequenceSlice> seqs,
                                       const std::vector<std::vector<std::int32_t>>& block_tables,
                                       std::int64_t block_size, c10::Device device);
};

// KV cache, allocated once in the model dtype.
// Contiguous: k, v [num_layers, slots, max_len, Hkv, D]; row j of a slot holds
// the key/value of the j-th token of the sequence in that slot.
// Paged (KvCache::paged): k, v [num_layers, num_blocks, block_size, Hkv, D];
// token j of a sequence lives in block table[j / block_size], row j % block_size
// (the layout of mmgen::ops::paged_attention_decode / reshape_and_cache).
class KvCache {
 public:
  KvCache(std::int64_t num_layers, std::int64_t slots, std::int64_t max_len, std::int64_t num_kv_heads,
          std::int64_t head_dim, c10::ScalarType dtype, c10::Device device);
  static KvCache paged(std::int64_t num_layers, std::int64_t num_blocks, std::int64_t block_size,
                       std::int64_t num_kv_heads, std::int64_t head_dim, c10::ScalarType dtype, c10::Device device);

  bool is_paged() const { return paged_; }
  std::int64_t num_blocks() const { return k_.size(1); }  // paged
  std::int64_t block_size() const { return k_.size(2); }  // paged

  std::int64_t num_layers() const { return k_.size(0); }
  std::int64_t slots() const { return k_.size(1); }
  std::int64_t max_len() const { return k_.size(2); }
  // [slots, max_len, Hkv, D] (paged: [num_blocks, block_size, Hkv, D]) views of one layer.
  at::Tensor keys(std::int64_t layer) const { return k_[layer]; }
  at::Tensor values(std::int64_t layer) const { return v_[layer]; }

 private:
  at::Tensor k_;  // [L, S, max_len, Hkv, D]
  at::Tensor v_;
  bool paged_ = false;
  KvCache() = default;  // for paged(): its blocks are allocated, not zeroed
};

// Writes this step's k/v into `cache` (layer `layer`) and attends.
//   q: [T, Hq, D], k/v: [T, Hkv, D] (rotated already).
//   window: sliding window in tokens (the current one included), 0 = full.
//   scale: softmax scale (head_dim^-0.5 for Qwen).
// Returns [T, Hq, D]. Causal within each sequence; sequences never see each
// other. Throws mmgen::proto::ProtocolError(invalid_request) when a sequence
// does not fit its slot (or when metadata and cache layouts disagree).
// Paged: new k/v go in with reshape_and_cache; decode sequences attend with
// paged_attention_decode (full-attention layers); prefill chunks (with any
// cached prefix) gather their blocks and run SDPA with the causal offset.
at::Tensor attend(std::int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const AttentionMetadata& meta, KvCache& cache, std::int64_t window, double scale);

}  // namespace mmgen::text
