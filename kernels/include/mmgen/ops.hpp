// mmgen::ops — the one door to the project's custom kernels (DESIGN.md,
// principle 4). Every op is also a registered torch operator (namespace
// "mmgen", e.g. torch.ops.mmgen.rms_norm) with a CPU and, when the CUDA
// toolkit was present at build time, a CUDA kernel; these functions call
// through the dispatcher, so the device of the inputs picks the kernel.
//
// Common rules
//  - Floating tensors are float32, bfloat16 or float16; arithmetic is float32
//    with one rounding to the output dtype unless an op says otherwise.
//  - The innermost dimension must be contiguous (stride 1); other strides are
//    free (views such as q = qkv[..., :Hq*D].view(T, Hq, D) work as they are).
//  - Bad input (shape, dtype, device, out-of-range index) throws c10::Error
//    (a std::exception) whose message names the op and the argument.
//  - Outputs are new contiguous tensors unless an op says "in place".
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <optional>
#include <tuple>

namespace mmgen::ops {

// out = weight * (x * rsqrt(mean(x^2) + eps)).to(x.dtype)   (transformers' Qwen3RMSNorm)
// x [..., C]; weight [C] of x's dtype or float32; out dtype = result_type(x, weight).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// residual = (x + residual).to(residual.dtype) IN PLACE; returns rms_norm(residual, weight, eps).
// x, residual [..., C] of one dtype (the pre-norm residual stream of a decoder layer).
at::Tensor fused_add_rms_norm(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight, double eps);

enum class RopeStyle : std::int64_t {
  NeoX = 0,         // rotate_half: feature i pairs with i + R/2 (Qwen LLMs, Qwen-VL text)
  Interleaved = 1,  // complex pairs (2i, 2i+1) (Qwen-Image, Wan)
};

// Rotates the first R = 2 * cos.size(-1) features of every head of q and k IN
// PLACE (features past R are left alone: partial rotary).
// q [T, Hq, D] or [B, S, Hq, D]; k the same leading dims with Hk heads.
// cos, sin: [T or S, R/2] (one row per position, shared across the batch) or
// [B, S, R/2]; float32 (recommended) or q's dtype. Build them with the
// rope_tables* helpers below; multi-axis layouts are only a matter of tables.
void rope(at::Tensor& q, at::Tensor& k, const at::Tensor& cos, const at::Tensor& sin, RopeStyle style);

// gate_up [..., 2I] = [gate | up] -> silu(gate) * up  [..., I]
at::Tensor silu_and_mul(const at::Tensor& gate_up);

// gelu(x, approximate="tanh")
at::Tensor gelu_tanh(const at::Tensor& x);

// layer_norm(x, no affine, eps) * (1 + scale) + shift, statistics and arithmetic in float32.
// x [B, S, D]; shift, scale [B, D], [B, 1, D] or [B, S, D] (per-token modulation), of
// x's dtype or float32.
at::Tensor adaln_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps);

// x + gate * y in float32. x, y [B, S, D]; gate [B, D], [B, 1, D] or [B, S, D], x's dtype or float32.
at::Tensor gated_residual(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate);

// Decode attention (one new token per sequence) over a paged KV cache, GQA.
// q [B, Hq, D]; k_cache, v_cache [num_blocks, block_size, Hkv, D] contiguous, q's
// dtype; block_tables [B, max_blocks] int32; context_lens [B] int32 (0 gives
// zeros); softmax(q.k * scale) in float32. Returns [B, Hq, D].
// CUDA kernels exist for D in {64, 128, 256}.
at::Tensor paged_attention_decode(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                  const at::Tensor& block_tables, const at::Tensor& context_lens, double scale);

// Writes k, v [T, Hkv, D] into the caches at slot_mapping [T] int64
// (slot = block * block_size + offset; -1 skips the token) IN PLACE.
void reshape_and_cache(const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache, at::Tensor& v_cache,
                       const at::Tensor& slot_mapping);

// ---- Gated DeltaNet (Qwen3.5 / Qwen3-Next linear-attention layers) ------------------
// Each mirrors one transformers function (models/qwen3_5/modeling_qwen3_5.py) so
// the model calls the op where the reference calls the function.

// torch_chunk_gated_delta_rule(q, k, v, g, beta, initial_state, output_final_state=True,
// use_qk_l2norm_in_kernel): q, k [B, T, Hk, dk]; v [B, T, Hv, dv] (Hv a multiple of Hk,
// value head h reads key head h / (Hv / Hk)); g (log decay) and beta [B, T, Hv], any
// float dtype; initial_state [B, Hv, dk, dv] or none (zeros). q/k l2-normalised
// (eps 1e-6) when use_qk_l2norm, q scaled by dk^-0.5, all in float32; per token
//   S <- S exp(g);  delta = (v - S^T k) beta;  S <- S + k delta^T;  o = S^T q.
// Returns (o [B, T, Hv, dv] in q's dtype, final state [B, Hv, dk, dv] float32);
// the caller's initial_state is not modified.
// Two evaluations of that recurrence, both float32 throughout and equal within
// 1e-5 (tests/kernels/test_delta_chunked*.cpp):
//  - chunked, as the reference's torch_chunk_gated_delta_rule: 64-token chunks
//    (a shorter last one), cumulative log decay and decay mask inside the chunk,
//    the UT transform by forward substitution, then the chunk's output and state
//    update as small matrix products;
//  - token by token, the state held in cache/registers.
// CPU: chunked from 6 tokens on, token by token below. Measured (one thread, CPU
// time, AVX-512, Qwen3.5-0.8B layer: 16 value and 16 key heads x 128, batch 1),
// token vs chunked: T 1 0.06 vs 0.12 ms, T 4 0.17 vs 0.17 ms, T 8 0.31 vs 0.25 ms,
// T 64 2.2 vs 1.6 ms, T 512 21.4 vs 15.4 ms, T 4096 202 vs 149 ms in float32
// (bf16 inputs: 19.5 vs 13.6 ms at T 512, 191 vs 135 ms at T 4096; bench:
// ops_bench --filter gated_delta_rule_chunked). The chunked form does ~1.3x the
// token form's flops, but as register-blocked matrix products.
// MMGEN_DELTA_CPU_PATH=token|chunked forces one path (tests, ops_bench).
// CUDA: the chunked kernel (a block per sequence, value head and 32 value
// columns, chunk after chunk, the intra-chunk work spread over 256 threads with
// the state tile in shared memory) from 16 tokens on and for dk <= 176; the
// token kernel otherwise. That threshold is a guess not yet measured on a GPU.
std::tuple<at::Tensor, at::Tensor> gated_delta_rule_chunked(const at::Tensor& q, const at::Tensor& k,
                                                            const at::Tensor& v, const at::Tensor& g,
                                                            const at::Tensor& beta,
                                                            const std::optional<at::Tensor>& initial_state,
                                                            bool use_qk_l2norm = true);

// torch_recurrent_gated_delta_rule for one decode token of each of B sequences,
// each with its own state row in a pool: q, k [B, Hk, dk]; v [B, Hv, dv]; g, beta
// [B, Hv]; state [N, Hv, dk, dv] float32 contiguous, updated IN PLACE at rows
// state_indices [B] (int32/int64; none = rows 0..B-1; a negative entry skips that
// sequence: zeros out, state untouched). Rows must be distinct (checked on CPU).
// Returns o [B, Hv, dv] in q's dtype.
at::Tensor gated_delta_rule_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                 const at::Tensor& beta, at::Tensor& state,
                                 const std::optional<at::Tensor>& state_indices = std::nullopt,
                                 bool use_qk_l2norm = true);

// causal_conv1d_fn(x, weight, bias, activation="silu" if silu): depthwise causal
// conv over time with K-1 zeros of left padding. x [B, C, S] (any strides: the
// model's mixed_qkv.transpose(1, 2)); weight [C, K] or nn.Conv1d's [C, 1, K] of x's
// dtype or float32; bias [C] (weight's dtype) or none. Computed in float32, rounded
// to weight's dtype after the conv and after silu, returned in x's dtype as a
// [B, C, S] tensor whose memory is [B, S, C] (so .transpose(1, 2) is contiguous).
at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                         bool silu = true);

// causal_conv1d_update(x, conv_state, weight, bias, activation): the same conv
// continuing from each sequence's window of past inputs, for any S >= 1 (decode
// or a chunk of prefill): conv_state [N, C, L] (L >= K - 1, x's dtype) holds the
// last L inputs; rows state_indices [B] as in gated_delta_rule_step (none = rows
// 0..B-1). The window is updated IN PLACE to the last L entries of [state | x].
at::Tensor causal_conv1d_update(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, bool silu = true,
                                const std::optional<at::Tensor>& state_indices = std::nullopt);

// Qwen3_5RMSNormGated(x, gate=z): weight * (x * rsqrt(mean x^2 + eps)).to(x.dtype),
// times silu(z.float()), returned in x's dtype. x, z [..., C] (z any float dtype);
// weight [C] of x's dtype or float32 (not zero-centred).
at::Tensor gated_rms_norm(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, double eps);

// ---- skinny linear -------------------------------------------------------------------
// at::linear(x, weight, bias) for the few token rows of a decode step: x [..., K];
// weight [N, K] (rows contiguous); bias [N] or none; one dtype. Products and sums
// in float32, rounded once to the dtype (as at::linear's CPU GEMMs). Any row
// count is valid, but the kernels are built for small M (up to ~16 rows: each
// weight row is read once per call and reused by every token row from
// registers); larger M belongs to at::linear's blocked GEMMs.
at::Tensor linear_small_m(const at::Tensor& x, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias = std::nullopt);

// ---- rotary tables ---------------------------------------------------------------
// cos/sin tables in float32, shape [N, R/2], for rope(). Angles are computed
// in `compute` precision (float32 as transformers and Qwen-Image do; float64
// as diffusers' Wan does), then cast.
struct RopeTables {
  at::Tensor cos;
  at::Tensor sin;
};

// 1/theta^(2i/R), i < R/2, as float32 (transformers' default inv_freq).
at::Tensor rope_inv_freq(std::int64_t rot_dim, double theta, at::ScalarType compute = at::kFloat);

// 1-D positions [N] (any real or integer dtype): angle[n, i] = pos[n] * inv_freq[i].
RopeTables rope_tables(const at::Tensor& positions, std::int64_t rot_dim, double theta,
                       at::ScalarType compute = at::kFloat);

// Several axes, each with its own share of the rotary features, concatenated
// in axis order: positions [N, A], axes_dims[a] features (even) for axis a,
// each axis with its own inv_freq over axes_dims[a]. Qwen-Image: (16, 56, 56)
// for (frame, height, width); Wan: (44, 42, 42) for (t, h, w), in float64.
RopeTables rope_tables_multi_axis(const at::Tensor& positions, c10::IntArrayRef axes_dims, double theta,
                                  at::ScalarType compute = at::kFloat);

// M-RoPE (Qwen2.5-VL / Qwen3-VL): positions [3, N] (t, h, w); one inv_freq over
// rot_dim; frequency i takes its angle from the axis its section assigns.
// Contiguous sections (Qwen2.5-VL, mrope_section [16, 24, 24]): the first
// sections[0] frequencies from t, the next sections[1] from h, then w.
// Interleaved (Qwen3-VL/3.5, e.g. [11, 11, 10]): frequency i from h when
// i % 3 == 1 and i < 3 * sections[1], from w when i % 3 == 2 and
// i < 3 * sections[2], else from t.
RopeTables rope_tables_mrope(const at::Tensor& positions, std::int64_t rot_dim, double theta,
                             c10::IntArrayRef sections, bool interleaved, at::ScalarType compute = at::kFloat);

// Which kernels this build holds: "cpu:<isa>" and, if built, "cuda".
const char* build_info();

}  // namespace mmgen::ops
