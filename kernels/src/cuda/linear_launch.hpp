// C-style entry point of the linear_small_m CUDA kernel (cuda/linear.cu), in
// the style of launch.hpp: op_args struct in, a stream as void*, the
// cudaError_t of the launch out (0 = success). Under the emulator build it
// lives in mmgen::cuda_kernels::emulated.
#pragma once

#include "common/linear_args.hpp"
#include "cuda/launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {

// One warp per output feature (8 per block of 256 threads), every token row
// of the call; float32 accumulation, one rounding.
int linear_small_m(const kernels::LinearArgs& a, void* stream);

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
