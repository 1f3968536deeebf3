// Plain argument structs, one per op: raw pointers, sizes and strides (in
// elements). The torch-facing code validates tensors once and fills these
// (src/plan.cpp); the CPU loops, the CUDA launchers and the emulated CUDA
// launchers all take the same struct, so the three paths cannot disagree on
// layout. Nothing here includes torch or CUDA headers.
#pragma once

#include <cstdint>

#include "common/scalar.hpp"

#if defined(__CUDACC__)
#define MMGEN_HD __host__ __device__
#else
#define MMGEN_HD
#endif

namespace mmgen::kernels {

// Rows addressed as [outer][inner] with arbitrary strides; each row is
// contiguous. Covers a plain [N, C] matrix (inner = 1) as well as views such
// as q = qkv[..., :Hq*D].view(T, Hq, D) whose per-head rows are not evenly
// spaced. A broadcast operand (e.g. shift [B, 1, D] against x [B, S, D]) has
// stride_inner = 0.
struct Rows {
  std::int64_t outer = 1;
  std::int64_t inner = 1;
  std::int64_t stride_outer = 0;
  std::int64_t stride_inner = 0;
  MMGEN_HD std::int64_t count() const { return outer * inner; }
  MMGEN_HD std::int64_t offset(std::int64_t r) const {
    return (r / inner) * stride_outer + (r % inner) * stride_inner;
  }
};

// out = rms_norm(x) (or, fused: residual += x; out = rms_norm(residual)).
// Math (transformers Qwen3RMSNorm): r = rsqrt(mean(h^2) + eps) in float32,
// n = round_to_x_dtype(h * r), out = round_to_out_dtype(n * weight).
struct RmsNormArgs {
  DType x_dtype = DType::f32;    // also the residual's dtype
  DType w_dtype = DType::f32;    // x_dtype or f32
  DType out_dtype = DType::f32;  // result_type(x, weight)
  const void* x = nullptr;
  Rows x_rows;
  void* residual = nullptr;      // fused variant only (read, then overwritten with x + residual)
  Rows res_rows;
  const void* weight = nullptr;  // [cols], contiguous
  void* out = nullptr;           // [rows, cols], contiguous
  std::int64_t cols = 0;
  float eps = 1e-6f;
};

enum class RopeStyleCode : int { neox = 0, interleaved = 1 };

// In-place rotation of the first rot_dim features of every q and k head.
// Token t (the leading dims of q/k collapsed) uses table row t % table_rows.
struct RopeArgs {
  DType dtype = DType::f32;        // q and k
  DType table_dtype = DType::f32;  // cos and sin
  int style = 0;                   // RopeStyleCode
  void* q = nullptr;
  void* k = nullptr;
  std::int64_t tokens = 0;
  std::int64_t q_heads = 0, k_heads = 0;
  std::int64_t head_dim = 0, rot_dim = 0;
  std::int64_t q_stride_tok = 0, q_stride_head = 0;
  std::int64_t k_stride_tok = 0, k_stride_head = 0;
  const void* cos = nullptr;       // [table_rows, rot_dim / 2]
  const void* sin = nullptr;
  std::int64_t table_rows = 0;
  std::int64_t cos_stride = 0, sin_stride = 0;
};

// silu_and_mul: x rows hold [gate | up] (2 * cols), out = silu(gate) * up.
// gelu_tanh: x rows hold cols values, out = gelu(x, approximate="tanh").
struct ActArgs {
  DType dtype = DType::f32;
  const void* x = nullptr;
  Rows x_rows;
  void* out = nullptr;  // [rows, cols], contiguous
  std::int64_t cols = 0;
};

// out = layer_norm(x, no affine, eps) * (1 + scale) + shift, statistics and
// arithmetic in float32, one rounding at the end. Row r of x = (b, s) with
// b = r / S, s = r % S; shift/scale rows use the same (b, s) with their own
// strides (stride_inner 0 = one modulation row per sample).
struct ModulateArgs {
  DType dtype = DType::f32;      // x and out
  DType mod_dtype = DType::f32;  // shift and scale
  const void* x = nullptr;
  Rows x_rows;
  const void* shift = nullptr;
  Rows shift_rows;
  const void* scale = nullptr;
  Rows scale_rows;
  void* out = nullptr;  // contiguous
  std::int64_t cols = 0;
  float eps = 1e-6f;
};

// out = x + gate * y in float32, one rounding.
struct GatedResidualArgs {
  DType dtype = DType::f32;       // x, y, out
  DType gate_dtype = DType::f32;
  const void* x = nullptr;
  Rows x_rows;
  const void* y = nullptr;
  Rows y_rows;
  const void* gate = nullptr;
  Rows gate_rows;
  void* out = nullptr;  // contiguous
  std::int64_t cols = 0;
};

// Decode attention of one query token per sequence over a paged KV cache.
// Cache layout [num_blocks, block_size, kv_heads, head_dim], contiguous.
// Query head h reads kv head h / (q_heads / kv_heads) (GQA).
struct PagedAttentionArgs {
  DType dtype = DType::f32;
  const void* q = nullptr;  // [batch, q_heads, head_dim]
  std::int64_t q_stride_b = 0, q_stride_h = 0;
  void* out = nullptr;      // [batch, q_heads, head_dim], contiguous
  const void* k_cache = nullptr;
  const void* v_cache = nullptr;
  std::int64_t batch = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  std::int64_t num_blocks = 0, block_size = 0;
  const std::int32_t* block_tables = nullptr;  // [batch, max_blocks]
  std::int64_t bt_stride = 0, max_blocks = 0;
  const std::int32_t* context_lens = nullptr;  // [batch]
  float scale = 1.0f;
  // CUDA only: split-context workspace, filled in by the CUDA wrapper.
  float* tmp_out = nullptr;     // [batch, q_heads, partitions, head_dim]
  float* max_logits = nullptr;  // [batch, q_heads, partitions]
  float* exp_sums = nullptr;    // [batch, q_heads, partitions]
  std::int64_t partitions = 1;
  // CPU only: kv heads per work item (0 = all of them, one item per sequence).
  std::int64_t cpu_kv_heads_per_item = 0;
};

// k_cache[slot / block_size, slot % block_size] = k[t] (same for v); slot -1 skips.
struct ReshapeAndCacheArgs {
  int elem_size = 4;  // bytes; a pure copy, dtype does not matter
  const void* k = nullptr;
  const void* v = nullptr;
  std::int64_t tokens = 0, kv_heads = 0, head_dim = 0;
  std::int64_t k_stride_tok = 0, k_stride_head = 0;
  std::int64_t v_stride_tok = 0, v_stride_head = 0;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  std::int64_t num_blocks = 0, block_size = 0;
  const std::int64_t* slot_mapping = nullptr;  // [tokens]
};

}  // namespace mmgen::kernels
