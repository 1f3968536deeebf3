// Torch operator registration: the schemas of namespace "mmgen" and their CPU
// and (when built) CUDA kernels. Runs when libmmgen_kernels.so is loaded.
#include <torch/library.h>

#include "op_impls.hpp"

TORCH_LIBRARY(mmgen, m) {
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
  m.def("fused_add_rms_norm(Tensor x, Tensor(a!) residual, Tensor weight, float eps) -> Tensor");
  m.def("rope(Tensor(a!) q, Tensor(b!) k, Tensor cos, Tensor sin, int style) -> ()");
  m.def("silu_and_mul(Tensor gate_up) -> Tensor");
  m.def("gelu_tanh(Tensor x) -> Tensor");
  m.def("adaln_modulate(Tensor x, Tensor shift, Tensor scale, float eps) -> Tensor");
  m.def("gated_residual(Tensor x, Tensor y, Tensor gate) -> Tensor");
  m.def(
      "paged_attention_decode(Tensor q, Tensor k_cache, Tensor v_cache, Tensor block_tables, "
      "Tensor context_lens, float scale) -> Tensor");
  m.def("reshape_and_cache(Tensor k, Tensor v, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor slot_mapping) -> ()");
}

#define MMGEN_REGISTER_IMPLS(ns)                                     \
  m.impl("rms_norm", &ns::rms_norm);                                 \
  m.impl("fused_add_rms_norm", &ns::fused_add_rms_norm);             \
  m.impl("rope", &ns::rope);                                         \
  m.impl("silu_and_mul", &ns::silu_and_mul);                         \
  m.impl("gelu_tanh", &ns::gelu_tanh);                               \
  m.impl("adaln_modulate", &ns::adaln_modulate);                     \
  m.impl("gated_residual", &ns::gated_residual);                     \
  m.impl("paged_attention_decode", &ns::paged_attention_decode);     \
  m.impl("reshape_and_cache", &ns::reshape_and_cache);

// Gated DeltaNet ops (Qwen3.5 / Qwen3-Next linear attention).
TORCH_LIBRARY_FRAGMENT(mmgen, m) {
  m.def(
      "gated_delta_rule_chunked(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta, Tensor? initial_state, "
      "bool use_qk_l2norm) -> (Tensor, Tensor)");
  m.def(
      "gated_delta_rule_step(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta, Tensor(a!) state, "
      "Tensor? state_indices, bool use_qk_l2norm) -> Tensor");
  m.def("causal_conv1d(Tensor x, Tensor weight, Tensor? bias, bool silu) -> Tensor");
  m.def(
      "causal_conv1d_update(Tensor x, Tensor(a!) conv_state, Tensor weight, Tensor? bias, bool silu, "
      "Tensor? state_indices) -> Tensor");
  m.def("gated_rms_norm(Tensor x, Tensor z, Tensor weight, float eps) -> Tensor");
}

#define MMGEN_REGISTER_DELTA_IMPLS(ns)                               \
  m.impl("gated_delta_rule_chunked", &ns::gated_delta_rule_chunked); \
  m.impl("gated_delta_rule_step", &ns::gated_delta_rule_step);       \
  m.impl("causal_conv1d", &ns::causal_conv1d);                       \
  m.impl("causal_conv1d_update", &ns::causal_conv1d_update);         \
  m.impl("gated_rms_norm", &ns::gated_rms_norm);

TORCH_LIBRARY_IMPL(mmgen, CPU, m) {
  MMGEN_REGISTER_IMPLS(mmgen::kernels::cpu)
  MMGEN_REGISTER_DELTA_IMPLS(mmgen::kernels::cpu)
}

#if defined(MMGEN_WITH_CUDA_KERNELS)
TORCH_LIBRARY_IMPL(mmgen, CUDA, m) {
  MMGEN_REGISTER_IMPLS(mmgen::kernels::cuda)
  MMGEN_REGISTER_DELTA_IMPLS(mmgen::kernels::cuda)
}
#endif

// Skinny linear for decode (linear_small_m).
TORCH_LIBRARY_FRAGMENT(mmgen, m) { m.def("linear_small_m(Tensor x, Tensor weight, Tensor? bias) -> Tensor"); }

TORCH_LIBRARY_IMPL(mmgen, CPU, m) { m.impl("linear_small_m", &mmgen::kernels::cpu::linear_small_m); }

#if defined(MMGEN_WITH_CUDA_KERNELS)
TORCH_LIBRARY_IMPL(mmgen, CUDA, m) { m.impl("linear_small_m", &mmgen::kernels::cuda::linear_small_m); }
#endif
