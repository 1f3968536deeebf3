// C-style entry points of the CUDA kernels: raw pointers and sizes in the
// op_args structs, a cudaStream_t passed as void*, and the cudaError_t of the
// launch returned as an int (0 = success). No torch and no CUDA headers, so
// the torch-side wrapper (ops_cuda.cpp) is a plain C++ file, and the same .cu
// sources compile under the emulator, where these functions live in the
// namespace mmgen::cuda_kernels::emulated instead of ::device.
#pragma once

#include <cstdint>

#include "common/op_args.hpp"

#ifndef MMGEN_CUDA_NS
#define MMGEN_CUDA_NS device
#endif

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {

int rms_norm(const kernels::RmsNormArgs& a, void* stream);  // fused when a.residual != nullptr
int rope(const kernels::RopeArgs& a, void* stream);
int silu_and_mul(const kernels::ActArgs& a, void* stream);
int gelu_tanh(const kernels::ActArgs& a, void* stream);
int adaln_modulate(const kernels::ModulateArgs& a, void* stream);
int gated_residual(const kernels::GatedResidualArgs& a, void* stream);

// Paged decode attention splits each context into partitions of
// `partition_size` tokens (0 = the default, 512); when there is more than one,
// the caller provides the float32 workspace (tmp_out, max_logits, exp_sums)
// sized by paged_attention_partitions(max_blocks * block_size, partition_size).
constexpr int kPagedAttentionDefaultPartition = 512;
std::int64_t paged_attention_partitions(std::int64_t max_context, int partition_size);
// A partition size that gives a GPU with `multiprocessors` SMs enough blocks.
int paged_attention_pick_partition(std::int64_t batch, std::int64_t kv_heads, std::int64_t q_heads,
                                   std::int64_t max_context, int multiprocessors);
bool paged_attention_supports_head_dim(std::int64_t head_dim);
int paged_attention(const kernels::PagedAttentionArgs& a, int partition_size, void* stream);

int reshape_and_cache(const kernels::ReshapeAndCacheArgs& a, void* stream);

// Message for a returned error code (the emulator adds what went wrong).
const char* error_string(int code);

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
