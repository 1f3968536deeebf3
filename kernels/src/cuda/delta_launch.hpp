// C-style entry points of the Gated DeltaNet CUDA kernels (cuda/delta_rule.cu),
// in the style of launch.hpp: op_args structs in, a stream as void*, the
// cudaError_t of the launch out (0 = success). Under the emulator build they
// live in mmgen::cuda_kernels::emulated.
#pragma once

#include "common/delta_args.hpp"
#include "cuda/launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {

// One block per (sequence, value head, 64 value columns). A state row outside
// [0, states) cannot be checked without a device sync: negative skips the
// sequence (zeros out), too large gives NaN outputs; the state is untouched.
int gated_delta_rule(const kernels::DeltaRuleArgs& a, void* stream);
// Two launches: the outputs (reading the old window), then the window update.
int causal_conv1d(const kernels::CausalConvArgs& a, void* stream);
int gated_rms_norm(const kernels::GatedRmsNormArgs& a, void* stream);

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
