// Entry points of the chunked gated delta rule kernel (cuda/delta_chunked.cu),
// in the style of delta_launch.hpp (a header of its own so that the
// token-by-token kernel's translation unit does not depend on it).
#pragma once

#include "common/delta_args.hpp"
#include "cuda/launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {

// The chunked form of gated_delta_rule (delta_launch.hpp): one block per
// (sequence, value head, 32 value columns), 64-token chunks, the state tile in
// shared memory; same state-row rules. Needs delta_rule_chunked_fits(a) (the
// shared memory for a's dk; true up to dk 176), else cudaErrorInvalidValue.
// threads: the block size, 0 = the tuned 256; any multiple of 32 in [64, 256]
// gives the same result (the emulator tests run most cases at 64: fewer OS
// threads per block).
bool delta_rule_chunked_fits(const kernels::DeltaRuleArgs& a);
int gated_delta_rule_by_chunks(const kernels::DeltaRuleArgs& a, void* stream, int threads = 0);

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
