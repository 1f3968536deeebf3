// The per-device kernels registered in library.cpp: same signatures as the
// schemas there (and as mmgen::ops, except RopeStyle travels as int64).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#define MMGEN_DECLARE_OP_IMPLS                                                                                    \
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);                                 \
  at::Tensor fused_add_rms_norm(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight, double eps); \
  void rope(at::Tensor& q, at::Tensor& k, const at::Tensor& cos, const at::Tensor& sin, std::int64_t style);     \
  at::Tensor silu_and_mul(const at::Tensor& gate_up);                                                            \
  at::Tensor gelu_tanh(const at::Tensor& x);                                                                     \
  at::Tensor adaln_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps);  \
  at::Tensor gated_residual(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate);                   \
  at::Tensor paged_attention_decode(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,   \
                                    const at::Tensor& block_tables, const at::Tensor& context_lens,              \
                                    double scale);                                                               \
  void reshape_and_cache(const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache, at::Tensor& v_cache,    \
                         const at::Tensor& slot_mapping);

namespace mmgen::kernels::cpu {
MMGEN_DECLARE_OP_IMPLS
const char* isa_name();
}  // namespace mmgen::kernels::cpu

namespace mmgen::kernels::cuda {
MMGEN_DECLARE_OP_IMPLS
}  // namespace mmgen::kernels::cuda

#undef MMGEN_DECLARE_OP_IMPLS

// Gated DeltaNet ops (Qwen3.5 / Qwen3-Next linear attention), same pattern.
#include <optional>
#include <tuple>

#define MMGEN_DECLARE_DELTA_OP_IMPLS                                                                              \
  std::tuple<at::Tensor, at::Tensor> gated_delta_rule_chunked(                                                   \
      const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g, const at::Tensor& beta, \
      const std::optional<at::Tensor>& initial_state, bool use_qk_l2norm);                                       \
  at::Tensor gated_delta_rule_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,                \
                                   const at::Tensor& g, const at::Tensor& beta, at::Tensor& state,              \
                                   const std::optional<at::Tensor>& state_indices, bool use_qk_l2norm);          \
  at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias, \
                           bool silu);                                                                           \
  at::Tensor causal_conv1d_update(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,         \
                                  const std::optional<at::Tensor>& bias, bool silu,                              \
                                  const std::optional<at::Tensor>& state_indices);                               \
  at::Tensor gated_rms_norm(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, double eps);

namespace mmgen::kernels::cpu {
MMGEN_DECLARE_DELTA_OP_IMPLS
}  // namespace mmgen::kernels::cpu

namespace mmgen::kernels::cuda {
MMGEN_DECLARE_DELTA_OP_IMPLS
}  // namespace mmgen::kernels::cuda

#undef MMGEN_DECLARE_DELTA_OP_IMPLS

// Skinny linear (decode-time matmuls), same pattern.
#define MMGEN_DECLARE_LINEAR_OP_IMPLS \
  at::Tensor linear_small_m(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias);

namespace mmgen::kernels::cpu {
MMGEN_DECLARE_LINEAR_OP_IMPLS
}  // namespace mmgen::kernels::cpu

namespace mmgen::kernels::cuda {
MMGEN_DECLARE_LINEAR_OP_IMPLS
}  // namespace mmgen::kernels::cuda

#undef MMGEN_DECLARE_LINEAR_OP_IMPLS
