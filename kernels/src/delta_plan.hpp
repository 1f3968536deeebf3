// Validation and argument building for the Gated DeltaNet ops (gated delta
// rule, causal conv1d, gated RMSNorm), shared by the CPU and CUDA wrappers the
// way plan.hpp is for the other ops. A plan owns the tensors it made: the
// output, the float32 state of the chunked op, contiguous copies, the int64
// index copy.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "common/delta_args.hpp"

namespace mmgen::kernels::plan {

struct DeltaRule {
  DeltaRuleArgs args;
  at::Tensor q, k, v, g, beta, state, indices, out;
};
// Chunked (prefill) form: q, k [B, T, Hk, dk], v [B, T, Hv, dv], g, beta [B, T, Hv];
// initial_state [B, Hv, dk, dv] (any float dtype; absent = zeros) is copied into
// a new float32 state that the op updates and returns.
DeltaRule delta_rule_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                             const at::Tensor& beta, const std::optional<at::Tensor>& initial_state, bool l2norm);
// Decode step: q, k [B, Hk, dk], v [B, Hv, dv], g, beta [B, Hv]; state
// [N, Hv, dk, dv] float32 contiguous, updated in place at rows state_indices [B]
// (int32/int64; absent = rows 0..B-1, N >= B).
DeltaRule delta_rule_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                          const at::Tensor& beta, const at::Tensor& state,
                          const std::optional<at::Tensor>& state_indices, bool l2norm);
// CPU only: rejects state indices outside [0, N) and repeated ones.
void check_state_indices(const at::Tensor& indices, std::int64_t states, const char* op);

struct CausalConv {
  CausalConvArgs args;
  at::Tensor x, weight, bias, indices, out_mem;
  at::Tensor out() const;  // [B, C, S] view of out_mem ([B, S, C] contiguous)
};
// x [B, C, S] (any strides, e.g. mixed_qkv.transpose(1, 2)); weight [C, K] or
// [C, 1, K]; bias [C]; conv_state [N, C, L] (L >= K - 1) of x's dtype, updated
// in place at rows state_indices (absent = rows 0..B-1).
CausalConv causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                         bool silu, at::Tensor* conv_state, const std::optional<at::Tensor>& state_indices);

struct GatedRmsNorm {
  GatedRmsNormArgs args;
  at::Tensor x, z, weight, out;
};
GatedRmsNorm gated_rms_norm(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, double eps);

}  // namespace mmgen::kernels::plan
