// Rotary position embedding, in place on q and k. One block per token; the
// token's cos/sin row is shared by all of its q and k heads.
#include "cuda/compat.cuh"
#include "cuda/launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {
namespace {

using kernels::RopeArgs;

template <class T, class C, bool kNeox>
__global__ void __launch_bounds__(256) rope_kernel(RopeArgs a) {
  const std::int64_t t = blockIdx.x;
  const std::int64_t half = a.rot_dim / 2;
  const std::int64_t row = t % a.table_rows;
  const C* cr = static_cast<const C*>(a.cos) + row * a.cos_stride;
  const C* sr = static_cast<const C*>(a.sin) + row * a.sin_stride;
  const int items = int((a.q_heads + a.k_heads) * half);
  const FastDiv halves{int(half)};  // 32-bit index math: see FastDiv
  for (int i = int(threadIdx.x); i < items; i += int(blockDim.x)) {
    const int h = halves.div(i), j = halves.mod(i);
    T* p = h < a.q_heads ? static_cast<T*>(a.q) + t * a.q_stride_tok + h * a.q_stride_head
                         : static_cast<T*>(a.k) + t * a.k_stride_tok + (h - a.q_heads) * a.k_stride_head;
    // NeoX pairs feature j with j + half (rotate_half); interleaved pairs 2j with 2j+1.
    const int i1 = kNeox ? j : 2 * j;
    const int i2 = kNeox ? j + int(half) : 2 * j + 1;
    const float c = to_f32(cr[j]), s = to_f32(sr[j]);
    const float x1 = to_f32(p[i1]), x2 = to_f32(p[i2]);
    p[i1] = from_f32<T>(x1 * c - x2 * s);
    p[i2] = from_f32<T>(x2 * c + x1 * s);
  }
}

}  // namespace

int rope(const RopeArgs& a, void* stream) {
  if (a.tokens == 0 || a.rot_dim == 0 || a.q_heads + a.k_heads == 0) return 0;
  with_dev_type(a.dtype, [&](auto qp) {
    using T = elem_t<decltype(qp)>;
    auto go = [&](auto cp) {
      using C = elem_t<decltype(cp)>;
      const bool neox = a.style == int(kernels::RopeStyleCode::neox);
      auto* k = neox ? &rope_kernel<T, C, true> : &rope_kernel<T, C, false>;
      MMGEN_LAUNCH(k, dim3(unsigned(a.tokens)), dim3(threads_for((a.q_heads + a.k_heads) * a.rot_dim / 2)), 0,
                   stream)(a);
    };
    if (a.table_dtype == a.dtype) {
      go(static_cast<T*>(nullptr));
    } else {
      go(static_cast<float*>(nullptr));
    }
  });
  return int(cudaGetLastError());
}

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
