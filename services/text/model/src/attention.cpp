// Contiguous KV cache and the attention call (attention.hpp).
//
// The math is scaled-dot-product attention as transformers' sdpa path runs it
// (softmax(q·kᵀ·scale + mask)·v with fp32 accumulation inside ATen's kernel);
// key j is visible to the query at sequence index i when j <= i and, on a
// sliding layer, j > i - window (masking_utils' sliding_window_overlay).
#include "mmgen/text/attention.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <string>

#include "mmgen/ops.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::text {

std::int64_t AttentionMetadata::num_tokens() const {
  std::int64_t n = 0;
  for (const auto& s : seqs) n += s.query_len;
  return n;
}

AttentionMetadata AttentionMetadata::single(std::int64_t query_len, std::int64_t context_len) {
  AttentionMetadata m;
  m.seqs.push_back(SequenceSlice{0, query_len, context_len, 0});
  return m;
}

AttentionMetadata AttentionMetadata::build_paged(std::vector<SequenceSlice> seqs,
                                                 const std::vector<std::vector<std::int32_t>>& block_tables,
                                                 std::int64_t block_size, c10::Device device) {
  if (block_tables.size() != seqs.size() || block_size <= 0) {
    throw proto::ProtocolError(proto::ErrorCode::invalid_request, "paged metadata: one block table per sequence");
  }
  AttentionMetadata m;
  PagedLayout p;
  p.block_size = block_size;
  std::vector<std::int64_t> slots, decode_rows;
  std::vector<std::int32_t> decode_lens;
  std::size_t max_blocks = 1;
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    const SequenceSlice& s = seqs[i];
    const auto& table = block_tables[i];
    if (std::int64_t(table.size()) * block_size < s.total_len()) {
      throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                                 "paged metadata: block table of sequence " + std::to_string(i) + " covers " +
                                     std::to_string(table.size() * std::size_t(block_size)) + " tokens, needs " +
                                     std::to_string(s.total_len()));
    }
    for (std::int64_t j = s.context_len; j < s.total_len(); ++j)
      slots.push_back(std::int64_t(table[std::size_t(j / block_size)]) * block_size + j % block_size);
    std::vector<std::int64_t> idx(table.begin(), table.end());
    p.block_indices.push_back(at::tensor(idx, at::TensorOptions().dtype(at::kLong)).to(device));
    if (s.query_len == 1) {
      p.decode_seqs.push_back(i);
      decode_rows.push_back(s.query_start);
      decode_lens.push_back(std::int32_t(s.total_len()));
      max_blocks = std::max(max_blocks, table.size());
    }
  }
  auto long_opts = at::TensorOptions().dtype(at::kLong);
  p.slot_mapping = at::tensor(slots, long_opts).to(device);
  if (!p.decode_seqs.empty()) {
    std::vector<std::int32_t> bt(p.decode_seqs.size() * max_blocks, 0);
    for (std::size_t b = 0; b < p.decode_seqs.size(); ++b) {
      const auto& table = block_tables[p.decode_seqs[b]];
      std::copy(table.begin(), table.end(), bt.begin() + std::ptrdiff_t(b * max_blocks));
    }
    auto int_opts = at::TensorOptions().dtype(at::kInt);
    p.decode_rows = at::tensor(decode_rows, long_opts).to(device);
    p.decode_block_tables =
        at::tensor(bt, int_opts).view({std::int64_t(p.decode_seqs.size()), std::int64_t(max_blocks)}).to(device);
    p.decode_context_lens = at::tensor(decode_lens, int_opts).to(device);
  }
  m.seqs = std::move(seqs);
  m.paged = std::move(p);
  return m;
}

KvCache KvCache::paged(std::int64_t num_layers, std::int64_t num_blocks, std::int64_t block_size,
                       std::int64_t num_kv_heads, std::int64_t head_dim, c10::ScalarType dtype, c10::Device device) {
  // Not zeroed: a slot is read only after reshape_and_cache wrote it (the
  // kernels and the gather stop at each sequence's length), and an untouched
  // budget costs no resident memory.
  KvCache c;
  auto opts = at::TensorOptions().dtype(dtype).device(device);
  c.k_ = at::empty({num_layers, num_blocks, block_size, num_kv_heads, head_dim}, opts);
  c.v_ = at::empty({num_layers, num_blocks, block_size, num_kv_heads, head_dim}, opts);
  c.paged_ = true;
  return c;
}

KvCache::KvCache(std::int64_t num_layers, std::int64_t slots, std::int64_t max_len, std::int64_t num_kv_heads,
                 std::int64_t head_dim, c10::ScalarType dtype, c10::Device device) {
  auto opts = at::TensorOptions().dtype(dtype).device(device);
  k_ = at::zeros({num_layers, slots, max_len, num_kv_heads, head_dim}, opts);
  v_ = at::zeros({num_layers, slots, max_len, num_kv_heads, head_dim}, opts);
}

namespace {

// [S, Hkv, D] -> [1, Hq, S, D], each kv head repeated for its query group
// (transformers' repeat_kv: expand then reshape).
at::Tensor heads_first(const at::Tensor& x, std::int64_t num_q_heads) {
  at::Tensor t = x.permute({1, 0, 2});  // [Hkv, S, D]
  const std::int64_t hkv = t.size(0), s = t.size(1), d = t.size(2);
  if (hkv != num_q_heads) {
    const std::int64_t rep = num_q_heads / hkv;
    t = t.unsqueeze(1).expand({hkv, rep, s, d}).reshape({num_q_heads, s, d});
  }
  return t.unsqueeze(0);
}

// Attention of one sequence's new queries over its keys [first, total):
// q_seq [q, Hq, D]; keys/values [kv_len, Hkv, D] holding tokens first..total-1.
// Returns [q, Hq, D]. A query at sequence index i sees j <= i, and j > i - window
// on sliding layers.
at::Tensor attend_sequence(const at::Tensor& q_seq, const at::Tensor& keys, const at::Tensor& values,
                           const SequenceSlice& s, std::int64_t first, std::int64_t window, double scale) {
  const std::int64_t num_q_heads = q_seq.size(1);
  const std::int64_t total = s.total_len();
  at::Tensor qh = q_seq.permute({1, 0, 2}).unsqueeze(0);  // [1, Hq, q, D]
  at::Tensor kh = heads_first(keys, num_q_heads);         // [1, Hq, kv, D]
  at::Tensor vh = heads_first(values, num_q_heads);
  at::Tensor o;
  const bool one_query = s.query_len == 1;
  const bool plain_causal = first == 0 && s.context_len == 0 && (window == 0 || total <= window);
  if (one_query) {
    // Decode: the window was applied by `first`; everything left is visible.
    o = at::scaled_dot_product_attention(qh, kh, vh, {}, 0.0, false, scale);
  } else if (plain_causal) {
    o = at::scaled_dot_product_attention(qh, kh, vh, {}, 0.0, true, scale);
  } else {
    auto idx_opts = at::TensorOptions().dtype(at::kLong).device(q_seq.device());
    at::Tensor qi = at::arange(s.context_len, total, idx_opts).unsqueeze(1);  // [q, 1] sequence index
    at::Tensor kj = at::arange(first, total, idx_opts).unsqueeze(0);          // [1, kv]
    at::Tensor allowed = kj <= qi;
    if (window > 0) allowed = allowed.logical_and(kj > qi - window);
    o = at::scaled_dot_product_attention(qh, kh, vh, allowed, 0.0, false, scale);
  }
  return o.squeeze(0).permute({1, 0, 2});
}

// Keys this step can see start here (sliding layers drop the oldest).
std::int64_t first_visible(const SequenceSlice& s, std::int64_t window) {
  return window > 0 ? std::max<std::int64_t>(0, s.context_len - window + 1) : 0;
}

at::Tensor attend_paged(std::int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const AttentionMetadata& meta, KvCache& cache, std::int64_t window, double scale) {
  const PagedLayout& p = *meta.paged;
  if (!cache.is_paged() || cache.block_size() != p.block_size) {
    throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                               "paged attention metadata needs a paged KV cache with its block size");
  }
  at::Tensor k_cache = cache.keys(layer);  // [num_blocks, block_size, Hkv, D]
  at::Tensor v_cache = cache.values(layer);
  mmgen::ops::reshape_and_cache(k, v, k_cache, v_cache, p.slot_mapping);

  at::Tensor out = at::empty_like(q);  // [T, Hq, D]
  std::vector<bool> done(meta.seqs.size(), false);
  // Decode sequences of full-attention layers: one kernel call for all of them.
  if (!p.decode_seqs.empty() && window == 0) {
    at::Tensor qd = q.index_select(0, p.decode_rows);  // [B, Hq, D]
    at::Tensor od = mmgen::ops::paged_attention_decode(qd, k_cache, v_cache, p.decode_block_tables,
                                                       p.decode_context_lens, scale);
    out.index_copy_(0, p.decode_rows, od);
    for (std::size_t i : p.decode_seqs) done[i] = true;
  }
  // The rest gather their visible blocks into contiguous keys/values.
  const std::int64_t bs = p.block_size, hkv = k_cache.size(2), d = k_cache.size(3);
  for (std::size_t i = 0; i < meta.seqs.size(); ++i) {
    if (done[i]) continue;
    const SequenceSlice& s = meta.seqs[i];
    const std::int64_t first = first_visible(s, window);
    const std::int64_t b0 = first / bs, b1 = (s.total_len() + bs - 1) / bs;
    at::Tensor idx = p.block_indices[i].narrow(0, b0, b1 - b0);
    const std::int64_t kv_len = s.total_len() - first;
    at::Tensor keys = k_cache.index_select(0, idx).view({-1, hkv, d}).narrow(0, first - b0 * bs, kv_len);
    at::Tensor values = v_cache.index_select(0, idx).view({-1, hkv, d}).narrow(0, first - b0 * bs, kv_len);
    out.narrow(0, s.query_start, s.query_len)
        .copy_(attend_sequence(q.narrow(0, s.query_start, s.query_len), keys, values, s, first, window, scale));
  }
  return out;
}

}  // namespace

at::Tensor attend(std::int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const AttentionMetadata& meta, KvCache& cache, std::int64_t window, double scale) {
  if (meta.paged) return attend_paged(layer, q, k, v, meta, cache, window, scale);
  if (cache.is_paged()) {
    throw proto::ProtocolError(proto::ErrorCode::invalid_request, "a paged KV cache needs paged attention metadata");
  }
  at::Tensor out = at::empty_like(q);  // [T, Hq, D]
  at::Tensor layer_k = cache.keys(layer);    // [S, max_len, Hkv, D]
  at::Tensor layer_v = cache.values(layer);
  for (const SequenceSlice& s : meta.seqs) {
    if (s.cache_slot < 0 || s.cache_slot >= cache.slots() || s.context_len < 0 || s.query_len <= 0 ||
        s.total_len() > cache.max_len()) {
      throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                                 "sequence of " + std::to_string(s.total_len()) + " tokens does not fit KV slot " +
                                     std::to_string(s.cache_slot) + " (max " + std::to_string(cache.max_len()) +
                                     " tokens, " + std::to_string(cache.slots()) + " slots)");
    }
    at::Tensor slot_k = layer_k[s.cache_slot];  // [max_len, Hkv, D]
    at::Tensor slot_v = layer_v[s.cache_slot];
    slot_k.narrow(0, s.context_len, s.query_len).copy_(k.narrow(0, s.query_start, s.query_len));
    slot_v.narrow(0, s.context_len, s.query_len).copy_(v.narrow(0, s.query_start, s.query_len));
    const std::int64_t first = first_visible(s, window);
    const std::int64_t kv_len = s.total_len() - first;
    out.narrow(0, s.query_start, s.query_len)
        .copy_(attend_sequence(q.narrow(0, s.query_start, s.query_len), slot_k.narrow(0, first, kv_len),
                               slot_v.narrow(0, first, kv_len), s, first, window, scale));
  }
  return out;
}

}  // namespace mmgen::text
