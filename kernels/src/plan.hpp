// Validation of an op's tensors and translation into its op_args struct,
// shared by the CPU and CUDA implementations (src/cpu/ops_cpu.cpp,
// src/cuda/ops_cuda.cpp). A plan also owns the tensors it had to make: the
// output, and contiguous copies of inputs whose strides the kernels cannot
// address (an in-place op copies its result back with finish()).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "common/op_args.hpp"

namespace mmgen::kernels::plan {

DType dtype_of(const at::Tensor& t, const char* op, const char* name);

// Rows of t viewed as [..., C] (C = last dim), if its leading dims collapse
// into at most two strided levels and the last dim is contiguous.
std::optional<Rows> rows_of(const at::Tensor& t);

struct RmsNorm {
  RmsNormArgs args;
  at::Tensor out;
  at::Tensor x, weight, residual, residual_user;  // residual_user: the caller's tensor if a copy was made
  void finish();
};
RmsNorm rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor* residual);

struct Rope {
  RopeArgs args;
  at::Tensor q, k, cos, sin, q_user, k_user;
  void finish();
};
Rope rope(at::Tensor& q, at::Tensor& k, const at::Tensor& cos, const at::Tensor& sin, std::int64_t style);

struct Act {
  ActArgs args;
  at::Tensor x, out;
};
Act silu_and_mul(const at::Tensor& gate_up);
Act gelu_tanh(const at::Tensor& x);

struct Modulate {
  ModulateArgs args;
  at::Tensor x, shift, scale, out;
};
Modulate adaln_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps);

struct GatedResidual {
  GatedResidualArgs args;
  at::Tensor x, y, gate, out;
};
GatedResidual gated_residual(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate);

struct PagedAttention {
  PagedAttentionArgs args;
  at::Tensor q, block_tables, context_lens, out;
};
PagedAttention paged_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                               const at::Tensor& block_tables, const at::Tensor& context_lens, double scale);
// CPU only: reads context_lens and block_tables and rejects out-of-range values.
void check_paged_attention_indices(const PagedAttention& p);

struct ReshapeAndCache {
  ReshapeAndCacheArgs args;
  at::Tensor k, v, slots;
};
ReshapeAndCache reshape_and_cache(const at::Tensor& k, const at::Tensor& v, const at::Tensor& k_cache,
                                  const at::Tensor& v_cache, const at::Tensor& slot_mapping);
// CPU only: rejects slots outside [-1, num_blocks * block_size).
void check_slots(const ReshapeAndCache& p);

}  // namespace mmgen::kernels::plan
