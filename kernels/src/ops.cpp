// mmgen::ops: thin calls through the torch dispatcher, so that the device of
// the arguments selects the CPU or CUDA kernel registered in library.cpp.
#include "mmgen/ops.hpp"

#include <ATen/core/dispatch/Dispatcher.h>

#include <string>

#include "op_impls.hpp"

namespace mmgen::ops {
namespace {

template <class Sig> c10::TypedOperatorHandle<Sig> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  static const auto h = op<at::Tensor(const at::Tensor&, const at::Tensor&, double)>("mmgen::rms_norm");
  return h.call(x, weight, eps);
}

at::Tensor fused_add_rms_norm(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight, double eps) {
  static const auto h =
      op<at::Tensor(const at::Tensor&, at::Tensor&, const at::Tensor&, double)>("mmgen::fused_add_rms_norm");
  return h.call(x, residual, weight, eps);
}

void rope(at::Tensor& q, at::Tensor& k, const at::Tensor& cos, const at::Tensor& sin, RopeStyle style) {
  static const auto h =
      op<void(at::Tensor&, at::Tensor&, const at::Tensor&, const at::Tensor&, std::int64_t)>("mmgen::rope");
  h.call(q, k, cos, sin, static_cast<std::int64_t>(style));
}

at::Tensor silu_and_mul(const at::Tensor& gate_up) {
  static const auto h = op<at::Tensor(const at::Tensor&)>("mmgen::silu_and_mul");
  return h.call(gate_up);
}

at::Tensor gelu_tanh(const at::Tensor& x) {
  static const auto h = op<at::Tensor(const at::Tensor&)>("mmgen::gelu_tanh");
  return h.call(x);
}

at::Tensor adaln_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps) {
  static const auto h =
      op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double)>("mmgen::adaln_modulate");
  return h.call(x, shift, scale, eps);
}

at::Tensor gated_residual(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate) {
  static const auto h =
      op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>("mmgen::gated_residual");
  return h.call(x, y, gate);
}

at::Tensor paged_attention_decode(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                  const at::Tensor& block_tables, const at::Tensor& context_lens, double scale) {
  static const auto h = op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                      const at::Tensor&, double)>("mmgen::paged_attention_decode");
  return h.call(q, k_cache, v_cache, block_tables, context_lens, scale);
}

void reshape_and_cache(const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache, at::Tensor& v_cache,
                       const at::Tensor& slot_mapping) {
  static const auto h = op<void(const at::Tensor&, const at::Tensor&, at::Tensor&, at::Tensor&, const at::Tensor&)>(
      "mmgen::reshape_and_cache");
  h.call(k, v, k_cache, v_cache, slot_mapping);
}

std::tuple<at::Tensor, at::Tensor> gated_delta_rule_chunked(const at::Tensor& q, const at::Tensor& k,
                                                            const at::Tensor& v, const at::Tensor& g,
                                                            const at::Tensor& beta,
                                                            const std::optional<at::Tensor>& initial_state,
                                                            bool use_qk_l2norm) {
  static const auto h =
      op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                            const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                            bool)>("mmgen::gated_delta_rule_chunked");
  return h.call(q, k, v, g, beta, initial_state, use_qk_l2norm);
}

at::Tensor gated_delta_rule_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                 const at::Tensor& beta, at::Tensor& state,
                                 const std::optional<at::Tensor>& state_indices, bool use_qk_l2norm) {
  static const auto h =
      op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                    at::Tensor&, const std::optional<at::Tensor>&, bool)>("mmgen::gated_delta_rule_step");
  return h.call(q, k, v, g, beta, state, state_indices, use_qk_l2norm);
}

at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                         bool silu) {
  static const auto h =
      op<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, bool)>(
          "mmgen::causal_conv1d");
  return h.call(x, weight, bias, silu);
}

at::Tensor causal_conv1d_update(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, bool silu,
                                const std::optional<at::Tensor>& state_indices) {
  static const auto h = op<at::Tensor(const at::Tensor&, at::Tensor&, const at::Tensor&,
                                      const std::optional<at::Tensor>&, bool, const std::optional<at::Tensor>&)>(
      "mmgen::causal_conv1d_update");
  return h.call(x, conv_state, weight, bias, silu, state_indices);
}

at::Tensor gated_rms_norm(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, double eps) {
  static const auto h =
      op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double)>("mmgen::gated_rms_norm");
  return h.call(x, z, weight, eps);
}

at::Tensor linear_small_m(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  static const auto h =
      op<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&)>("mmgen::linear_small_m");
  return h.call(x, weight, bias);
}

const char* build_info() {
  static const std::string info = std::string("cpu:") + kernels::cpu::isa_name()
#if defined(MMGEN_WITH_CUDA_KERNELS)
                                  + " cuda"
#endif
      ;
  return info.c_str();
}

}  // namespace mmgen::ops
