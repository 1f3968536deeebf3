// Gated DeltaNet, the linear-attention token mixer of Qwen3.5 / Qwen3.5-MoE /
// Qwen3-Next (transformers' Qwen3_5GatedDeltaNet, Qwen3NextGatedDeltaNet).
//
// Per token: the input projections give the conv input [q | k | v] plus the
// output gate z, and b, a per value head; a depthwise causal conv1d + SiLU
// mixes each channel with its kernel-1 predecessors; q and k are
// l2-normalised (q also scaled by dk^-0.5), beta = sigmoid(b) and the decay
// g = -exp(A_log) * softplus(a + dt_bias) (float32). Key heads are shared by
// Hv / Hk consecutive value heads. The gated delta rule then updates a
// per-head state S [dk, dv] (float32):
//     S <- S * exp(g);  delta = (v - S^T k) * beta;  S <- S + k delta^T;  o = S^T q
// The conv, the delta rule and the gated norm go through mmgen::ops (DESIGN
// principle 4): decode runs one recurrent step for a batch of sequences over
// their state slots in place (ops::gated_delta_rule_step); prefill runs
// ops::gated_delta_rule_chunked by default (64-token chunks with the UT
// transform, token by token for very short inputs), or the ATen chunked form
// below (DeltaPrefill::aten_chunked; the same result up to float rounding). The output goes through the gated RMSNorm
// w * rmsnorm(o) * silu(z) (weight not zero-centred) and out_proj.
//
// Per sequence the layer keeps two fixed-size states (HybridStates): the
// conv window, the last kernel-1 conv inputs [conv_dim, kernel-1] in the
// model dtype, and S [Hv, dk, dv] in float32.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/text/attention.hpp"
#include "mmgen/text/qwen3_5_config.hpp"
#include "mmgen/text/qwen_model.hpp"  // Linear

namespace mmgen::text {

// ---- the ATen delta rule: the alternative prefill path, and the tests' yardstick ----

// Chunked gated delta rule over one sequence, continuing from `state`.
//   q, k: [T, H, dk] float32 (k l2-normalised; q l2-normalised and scaled);
//   v: [T, H, dv]; g, beta: [T, H] float32; state: [H, dk, dv] float32,
//   replaced by the state after the last token.
// Returns o [T, H, dv] float32. Chunks of `chunk_size` tokens are solved in
// closed form (the UT transform, as the reference does), the last one shorter.
at::Tensor chunk_gated_delta_rule(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                  const at::Tensor& beta, at::Tensor& state, std::int64_t chunk_size = 64);

// One recurrent step for N independent sequences.
//   q, k: [N, H, dk]; v: [N, H, dv]; g, beta: [N, H] (all float32);
//   state: [N, H, dk, dv] float32, updated IN PLACE.
// Returns o [N, H, dv] float32.
at::Tensor recurrent_gated_delta_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      const at::Tensor& g, const at::Tensor& beta, at::Tensor& state);

// x * rsqrt(sum(x^2, -1) + eps), as the reference's l2norm (eps 1e-6).
at::Tensor l2norm(const at::Tensor& x, double eps = 1e-6);

// ---- per-sequence state of the linear-attention layers ----

// The conv windows and delta-rule states of every linear-attention layer for
// `slots` sequence slots. Slot s belongs to one sequence at a time (the
// engine's StateSlotPool hands them out); a sequence whose context_len is 0
// starts from zero state, whatever the slot held before.
class HybridStates {
 public:
  HybridStates() = default;
  HybridStates(std::int64_t num_linear_layers, std::int64_t slots, std::int64_t conv_dim, std::int64_t kernel,
               std::int64_t num_v_heads, std::int64_t k_head_dim, std::int64_t v_head_dim, c10::ScalarType dtype,
               c10::Device device);

  std::int64_t slots() const { return conv_.defined() ? conv_.size(1) : 0; }
  // [slots, conv_dim, kernel-1] (model dtype) of linear layer `i` (ordinal among linear layers).
  at::Tensor conv_state(std::int64_t i) const { return conv_[i]; }
  // [slots, Hv, dk, dv] float32.
  at::Tensor recurrent_state(std::int64_t i) const { return recurrent_[i]; }
  // Zeroes one slot in every layer (optional: context_len 0 already starts from zero).
  void reset_slot(std::int64_t slot);
  // Bytes one slot takes across all layers (for the engine's budget).
  std::int64_t bytes_per_slot() const;

 private:
  at::Tensor conv_;       // [L_lin, slots, conv_dim, kernel-1]
  at::Tensor recurrent_;  // [L_lin, slots, Hv, dk, dv] float32
};

// ---- the layer ----

struct GatedRMSNorm {  // linear_attn.norm: weight * rmsnorm(x) * silu(gate)
  at::Tensor weight;   // [dv], gain 1 at weight 1 (not zero-centred)
  double eps = 1e-6;
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& gate) const;  // [N, dv] each
};

// Which implementation runs the delta rule of a prefill (or prefill chunk).
// kernel_op: ops::gated_delta_rule_chunked, the fused chunked kernel (faster,
// see gated_deltanet.cpp). aten_chunked: chunk_gated_delta_rule above, chunks
// of 64 solved in closed form with ATen matmuls and triangular solves.
enum class DeltaPrefill { kernel_op, aten_chunked };

struct GatedDeltaNet {  // model.layers.N.linear_attn
  // Qwen3.5: in_proj_qkv [2Kd + Vd, H], in_proj_z [Vd, H], in_proj_b / in_proj_a [Hv, H].
  Linear in_proj_qkv, in_proj_z, in_proj_b, in_proj_a;
  // Qwen3-Next stores q, k, v, z grouped per key head and b, a likewise; the
  // loader permutes the rows once into the flat [q | k | v | z] and [b | a]
  // order (the reference's fix_query_key_value_ordering), so one matmul each.
  Linear in_proj_qkvz, in_proj_ba;
  bool fused = false;

  at::Tensor conv1d_weight;  // conv1d.weight [conv_dim, 1, kernel], no bias
  at::Tensor dt_bias;        // [Hv]
  at::Tensor A_log;          // [Hv]
  GatedRMSNorm norm;
  Linear out_proj;  // [H, Vd]

  std::int64_t num_k_heads = 0, num_v_heads = 0, head_k_dim = 0, head_v_dim = 0, kernel = 0;
  DeltaPrefill prefill_path = DeltaPrefill::kernel_op;

  // Loads "<p>in_proj_qkv.weight" ... (or the Qwen3-Next fused pair).
  static GatedDeltaNet load(const Qwen3_5Config& cfg, io::WeightLoader& w, const std::string& p);

  // x [T, H] (model dtype) for the sequences of `meta`; conv_state [slots,
  // conv_dim, kernel-1] and recurrent_state [slots, Hv, dk, dv] of this layer,
  // indexed by SequenceSlice::cache_slot and updated in place.
  // Sequences with one new token after a cached prefix take the batched
  // recurrent step; the others (prefill, chunked prefill) run one by one
  // through `prefill_path`. Sequences with no new tokens are left untouched.
  // Returns [T, H].
  at::Tensor forward(const at::Tensor& x, const AttentionMetadata& meta, const at::Tensor& conv_state,
                     const at::Tensor& recurrent_state) const;
};

}  // namespace mmgen::text
