// linear_small_m on the GPU: simple and correct rather than tuned. One warp
// per output feature j: its lanes stride along K, each keeping float32 partial
// sums for up to kRows token rows, reduced with shuffles; rows beyond kRows
// take further passes over the (then cached) weight row.
#include "cuda/compat.cuh"
#include "cuda/linear_launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {
namespace {

using kernels::LinearArgs;

constexpr int kRows = 8;           // token rows per pass
constexpr int kWarpsPerBlock = 8;  // output features per block

template <class T>
__global__ void __launch_bounds__(256) linear_small_m_kernel(LinearArgs a) {
  const std::int64_t j = std::int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (j >= a.n) return;  // whole warps; no block barrier in this kernel
  const int lane = int(threadIdx.x % 32);
  const T* w = static_cast<const T*>(a.weight) + j * a.w_stride;
  const T* x = static_cast<const T*>(a.x);
  T* out = static_cast<T*>(a.out);
  const float b = a.bias ? to_f32(static_cast<const T*>(a.bias)[j]) : 0.0f;
  for (std::int64_t m0 = 0; m0 < a.m; m0 += kRows) {
    const int rows = int(a.m - m0 < kRows ? a.m - m0 : kRows);
    float acc[kRows];
    MMGEN_UNROLL
    for (int i = 0; i < kRows; ++i) acc[i] = 0.0f;
    for (std::int64_t k = lane; k < a.k; k += 32) {
      const float wk = to_f32(w[k]);
      MMGEN_UNROLL
      for (int i = 0; i < kRows; ++i)
        if (i < rows) acc[i] += to_f32(x[(m0 + i) * a.x_stride + k]) * wk;
    }
    MMGEN_UNROLL
    for (int i = 0; i < kRows; ++i) {
      const float s = warp_sum(acc[i]);  // every lane takes part
      if (lane == 0 && i < rows) out[(m0 + i) * a.n + j] = from_f32<T>(s + b);
    }
  }
}

}  // namespace

int linear_small_m(const LinearArgs& a, void* stream) {
  if (a.m == 0 || a.n == 0) return 0;
  with_dev_type(a.dtype, [&](auto p) {
    using T = elem_t<decltype(p)>;
    auto* k = &linear_small_m_kernel<T>;
    const dim3 grid{unsigned((a.n + kWarpsPerBlock - 1) / kWarpsPerBlock)};
    MMGEN_LAUNCH(k, grid, dim3(32 * kWarpsPerBlock), 0, stream)(a);
  });
  return int(cudaGetLastError());
}

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
