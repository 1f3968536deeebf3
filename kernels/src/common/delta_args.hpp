// Argument structs of the Gated DeltaNet ops (Qwen3.5 / Qwen3-Next linear
// attention): the gated delta rule, the depthwise causal conv1d and the gated
// RMSNorm. Same conventions as op_args.hpp: raw pointers, sizes and strides in
// elements, no torch and no CUDA; filled by src/delta_plan.cpp and read by the
// CPU loops (cpu/delta_loops_impl.cpp) and the CUDA kernels (cuda/delta_rule.cu).
#pragma once

#include <cstdint>

#include "common/op_args.hpp"

namespace mmgen::kernels {

// The gated delta rule over T tokens of B sequences, one recurrence per value
// head, state S [dk, dv] in float32 (transformers' torch_recurrent_gated_delta_rule):
//   q, k <- l2norm(q), l2norm(k) (eps 1e-6, when l2norm);  q <- q * scale
//   S <- S * exp(g);  delta = (v - S^T k) * beta;  S <- S + k delta^T;  o = S^T q
// Value head h reads key/query head h / (v_heads / k_heads) (repeat_interleave).
// Inputs are indexed [b, t, head, :] with the given strides (last dim contiguous).
struct DeltaRuleArgs {
  DType dtype = DType::f32;       // q, k, v and out
  DType g_dtype = DType::f32;     // g (log decay)
  DType beta_dtype = DType::f32;  // beta
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* g = nullptr;
  const void* beta = nullptr;
  std::int64_t q_sb = 0, q_st = 0, q_sh = 0;
  std::int64_t k_sb = 0, k_st = 0, k_sh = 0;
  std::int64_t v_sb = 0, v_st = 0, v_sh = 0;
  std::int64_t g_sb = 0, g_st = 0, g_sh = 0;
  std::int64_t beta_sb = 0, beta_st = 0, beta_sh = 0;
  std::int64_t batch = 0, tokens = 0, k_heads = 0, v_heads = 0, dk = 0, dv = 0;
  // float32 [states, v_heads, dk, dv], contiguous, updated in place. Sequence b
  // uses state row state_indices[b] (nullptr: row b).
  float* state = nullptr;
  std::int64_t states = 0;
  const std::int64_t* state_indices = nullptr;
  void* out = nullptr;  // [batch, tokens, v_heads, dv], contiguous, dtype
  bool l2norm = true;
  float scale = 1.0f;   // dk^-0.5
};

// Depthwise causal conv1d over the channels of x, optionally continuing from
// (and updating) a per-sequence window of past inputs (transformers'
// causal_conv1d_fn without state, causal_conv1d_update with it):
//   cat = [state | x] along time (state absent: K-1 zeros), cast to weight's dtype
//   y[s] = bias + sum_k w[k] * cat[L + s - (K-1) + k]   (float32 accumulation)
//   y rounded to weight's dtype; silu (rounded again) when silu; out = y in x's dtype
//   state <- the last L entries of cat (stored in the state's dtype)
struct CausalConvArgs {
  DType dtype = DType::f32;    // x, out and the state
  DType w_dtype = DType::f32;  // weight and bias
  const void* x = nullptr;     // [batch, channels, seq] with strides
  std::int64_t x_sb = 0, x_sc = 0, x_ss = 0;
  const void* weight = nullptr;  // [channels, width], contiguous
  const void* bias = nullptr;    // [channels] or nullptr
  void* state = nullptr;         // [states, channels, state_len] with strides, or nullptr
  std::int64_t st_sb = 0, st_sc = 0, st_sl = 0;
  std::int64_t states = 0, state_len = 0;
  const std::int64_t* state_indices = nullptr;  // [batch] or nullptr (row b)
  void* out = nullptr;  // memory [batch, seq, channels], contiguous
  std::int64_t batch = 0, channels = 0, seq = 0, width = 0;
  bool silu = true;
};

// out = round_x(round_{w*x}(weight * round_x(x * rsqrt(mean(x^2) + eps))) * silu(z))
// (transformers' Qwen3_5RMSNormGated / Qwen3NextRMSNormGated): statistics and
// silu(z) in float32; the product with weight rounds to result_type(weight, x).
struct GatedRmsNormArgs {
  DType dtype = DType::f32;    // x and out
  DType z_dtype = DType::f32;  // z (the gate)
  DType w_dtype = DType::f32;  // weight: x's dtype or float32
  const void* x = nullptr;
  Rows x_rows;
  const void* z = nullptr;
  Rows z_rows;
  const void* weight = nullptr;  // [cols], contiguous
  void* out = nullptr;           // [rows, cols], contiguous
  std::int64_t cols = 0;
  float eps = 1e-6f;
};

}  // namespace mmgen::kernels
