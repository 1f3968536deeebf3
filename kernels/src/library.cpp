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

TORCH_LIBRARY_IMPL(mmgen, CPU, m) { MMGEN_REGISTER_IMPLS(mmgen::kernels::cpu) }

#if defined(MMGEN_WITH_CUDA_KERNELS)
TORCH_LIBRARY_IMPL(mmgen, CUDA, m) { MMGEN_REGISTER_IMPLS(mmgen::kernels::cuda) }
#endif
