// reshape_and_cache: copy each new token's k/v rows into its paged-cache slot.
// One block per token; a pure copy in units of U (the element's bytes), in
// 16-byte packs when rows are aligned. Slots outside [0, num_blocks *
// block_size) are skipped (-1 is the documented "no slot"; the CPU path
// rejects other out-of-range values up front, which a kernel cannot do
// without a device-to-host sync).
#include "cuda/compat.cuh"
#include "cuda/launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {
namespace {

using kernels::ReshapeAndCacheArgs;

template <class U, int N>
__global__ void __launch_bounds__(256) reshape_and_cache_kernel(ReshapeAndCacheArgs a) {
  const std::int64_t t = blockIdx.x;
  const std::int64_t slot = a.slot_mapping[t];
  if (slot < 0 || slot >= a.num_blocks * a.block_size) return;
  const std::int64_t row = a.kv_heads * a.head_dim;
  const std::int64_t packs = row / N;
  U* kd = static_cast<U*>(a.k_cache) + slot * row;
  U* vd = static_cast<U*>(a.v_cache) + slot * row;
  const U* ks = static_cast<const U*>(a.k) + t * a.k_stride_tok;
  const U* vs = static_cast<const U*>(a.v) + t * a.v_stride_tok;
  const FastDiv dim(int(a.head_dim));
  for (int p = int(threadIdx.x); p < int(packs); p += int(blockDim.x)) {
    const int h = dim.div(p * N), d = dim.mod(p * N);
    store_pack<N>(kd + p * N, load_pack<N>(ks + h * a.k_stride_head + d));
    store_pack<N>(vd + p * N, load_pack<N>(vs + h * a.v_stride_head + d));
  }
}

template <class U> void launch(const ReshapeAndCacheArgs& a, void* stream) {
  constexpr int N = 16 / sizeof(U);
  const bool packed = a.head_dim % N == 0 && a.k_stride_tok % N == 0 && a.k_stride_head % N == 0 &&
                      a.v_stride_tok % N == 0 && a.v_stride_head % N == 0 && aligned_to(a.k, 16) &&
                      aligned_to(a.v, 16) && aligned_to(a.k_cache, 16) && aligned_to(a.v_cache, 16);
  const std::int64_t row = a.kv_heads * a.head_dim;
  auto* k = packed ? &reshape_and_cache_kernel<U, N> : &reshape_and_cache_kernel<U, 1>;
  MMGEN_LAUNCH(k, dim3(unsigned(a.tokens)), dim3(threads_for(packed ? row / N : row)), 0, stream)(a);
}

}  // namespace

int reshape_and_cache(const ReshapeAndCacheArgs& a, void* stream) {
  if (a.tokens == 0 || a.kv_heads * a.head_dim == 0) return 0;
  if (a.elem_size == 4) {
    launch<std::uint32_t>(a, stream);
  } else if (a.elem_size == 2) {
    launch<std::uint16_t>(a, stream);
  } else {
    return int(cudaErrorInvalidValue);
  }
  return int(cudaGetLastError());
}

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
