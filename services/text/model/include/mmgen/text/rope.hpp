// Rotary position embedding tables for the Qwen family, as transformers'
// Qwen*RotaryEmbedding + modeling_rope_utils compute them: inverse
// frequencies in float32 (default, linear, dynamic NTK, yarn), cos/sin of
// position × inv_freq in float32 times the attention scaling. M-RoPE
// (Qwen2.5-VL) takes three position rows and recomposes the frequency bands
// by mrope_section. The rotation itself is mmgen::ops::rope (NeoX layout).
//
// Tables hold the D/2 distinct frequencies in float32; the model casts them to
// its dtype as transformers does before rotating. The op then rotates with
// one rounding where transformers rounds after each multiply and add.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>

#include "mmgen/text/qwen_config.hpp"

namespace mmgen::text {

class RotaryEmbedding {
 public:
  explicit RotaryEmbedding(const QwenConfig& cfg);

  // positions: [T] int64, or [3, T] for M-RoPE (rows t, h, w).
  // seq_len: the sequence length the dynamic type scales for (transformers:
  //   max(position_ids) + 1); ignored by the other types.
  // Returns cos, sin: [T, head_dim / 2] float32, on the positions' device.
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& positions, std::int64_t seq_len) const;

  const at::Tensor& inv_freq() const { return inv_freq_; }  // [head_dim / 2] float32
  double attention_scaling() const { return attention_scaling_; }
  // The dynamic type's frequencies for a given sequence length.
  at::Tensor inv_freq_for(std::int64_t seq_len) const;

 private:
  RopeConfig rope_;
  std::int64_t dim_;
  std::int64_t max_position_embeddings_;
  at::Tensor inv_freq_;  // [dim / 2] float32, CPU
  double attention_scaling_ = 1.0;
};

// Rotates q [T, Hq, D] and k [T, Hkv, D] IN PLACE with cos/sin [T, D/2]
// (NeoX layout: feature i pairs with i + D/2, transformers' rotate_half).
void apply_rotary(at::Tensor& q, at::Tensor& k, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace mmgen::text
