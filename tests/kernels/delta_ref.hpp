// Plain-ATen references for the Gated DeltaNet ops, each following one
// transformers function of models/qwen3_5/modeling_qwen3_5.py step by step
// (same casts, same operation order), for the kernel tests.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <utility>

namespace mmgen::testing {

// torch_recurrent_gated_delta_rule(..., output_final_state=True): returns (o, final state).
std::pair<at::Tensor, at::Tensor> ref_recurrent_gated_delta_rule(const at::Tensor& q, const at::Tensor& k,
                                                                 const at::Tensor& v, const at::Tensor& g,
                                                                 const at::Tensor& beta,
                                                                 const std::optional<at::Tensor>& initial_state,
                                                                 bool l2norm);
// torch_chunk_gated_delta_rule(..., output_final_state=True) with the UT transform
// solved by a triangular solve, as the reference does outside export.
std::pair<at::Tensor, at::Tensor> ref_chunk_gated_delta_rule(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, const at::Tensor& g,
                                                             const at::Tensor& beta,
                                                             const std::optional<at::Tensor>& initial_state,
                                                             bool l2norm, std::int64_t chunk_size = 64);
// causal_conv1d_fn(x [B, C, S], weight [C, K], bias, activation = silu ? "silu" : None).
at::Tensor ref_causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                             bool silu);
// causal_conv1d_update on a copy of conv_state [B, C, L]: returns (out, new state).
std::pair<at::Tensor, at::Tensor> ref_causal_conv1d_update(const at::Tensor& x, const at::Tensor& conv_state,
                                                           const at::Tensor& weight,
                                                           const std::optional<at::Tensor>& bias, bool silu);
// Qwen3_5RMSNormGated.forward(x, gate=z).
at::Tensor ref_gated_rms_norm(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, double eps);

}  // namespace mmgen::testing
