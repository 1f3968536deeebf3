// Pointwise ops over rows: silu_and_mul, gelu_tanh, gated_residual. One block
// per row, packs of N elements (16-byte accesses when aligned), float32 math,
// one rounding on store.
#include "cuda/compat.cuh"
#include "cuda/launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {
namespace {

using kernels::ActArgs;
using kernels::GatedResidualArgs;

template <class T, int N>
__global__ void __launch_bounds__(256) silu_and_mul_kernel(ActArgs a) {
  const std::int64_t r = blockIdx.x;
  const T* g = static_cast<const T*>(a.x) + a.x_rows.offset(r);
  const T* u = g + a.cols;
  T* o = static_cast<T*>(a.out) + r * a.cols;
  for (std::int64_t p = threadIdx.x; p < a.cols / N; p += blockDim.x) {
    const Pack<T, N> gv = load_pack<N>(g + p * N), uv = load_pack<N>(u + p * N);
    Pack<T, N> ov;
    for (int i = 0; i < N; ++i) {
      const float x = to_f32(gv.v[i]);
      ov.v[i] = from_f32<T>(x / (1.0f + expf(-x)) * to_f32(uv.v[i]));
    }
    store_pack<N>(o + p * N, ov);
  }
}

// gelu(x, tanh) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
template <class T, int N>
__global__ void __launch_bounds__(256) gelu_tanh_kernel(ActArgs a) {
  const std::int64_t r = blockIdx.x;
  const T* x = static_cast<const T*>(a.x) + a.x_rows.offset(r);
  T* o = static_cast<T*>(a.out) + r * a.cols;
  for (std::int64_t p = threadIdx.x; p < a.cols / N; p += blockDim.x) {
    const Pack<T, N> xv = load_pack<N>(x + p * N);
    Pack<T, N> ov;
    for (int i = 0; i < N; ++i) {
      const float v = to_f32(xv.v[i]);
      const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
      ov.v[i] = from_f32<T>(v / (1.0f + expf(-2.0f * u)));
    }
    store_pack<N>(o + p * N, ov);
  }
}

template <class T, class G, int N>
__global__ void __launch_bounds__(256) gated_residual_kernel(GatedResidualArgs a) {
  const std::int64_t r = blockIdx.x;
  const T* x = static_cast<const T*>(a.x) + a.x_rows.offset(r);
  const T* y = static_cast<const T*>(a.y) + a.y_rows.offset(r);
  const G* g = static_cast<const G*>(a.gate) + a.gate_rows.offset(r);
  T* o = static_cast<T*>(a.out) + r * a.cols;
  for (std::int64_t p = threadIdx.x; p < a.cols / N; p += blockDim.x) {
    const Pack<T, N> xv = load_pack<N>(x + p * N), yv = load_pack<N>(y + p * N);
    const Pack<G, N> gv = load_pack<N>(g + p * N);
    Pack<T, N> ov;
    for (int i = 0; i < N; ++i) ov.v[i] = from_f32<T>(to_f32(xv.v[i]) + to_f32(gv.v[i]) * to_f32(yv.v[i]));
    store_pack<N>(o + p * N, ov);
  }
}

}  // namespace

int silu_and_mul(const ActArgs& a, void* stream) {
  const std::int64_t rows = a.x_rows.count();
  if (rows == 0 || a.cols == 0) return 0;
  with_dev_type(a.dtype, [&](auto p) {
    using T = elem_t<decltype(p)>;
    constexpr int N = 16 / sizeof(T);
    const bool packed = a.cols % N == 0 && rows_multiple_of(a.x_rows, N) && aligned_to(a.x, 16) &&
                        aligned_to(a.out, 16);
    auto* k = packed ? &silu_and_mul_kernel<T, N> : &silu_and_mul_kernel<T, 1>;
    MMGEN_LAUNCH(k, dim3(unsigned(rows)), dim3(threads_for(packed ? a.cols / N : a.cols)), 0, stream)(a);
  });
  return int(cudaGetLastError());
}

int gelu_tanh(const ActArgs& a, void* stream) {
  const std::int64_t rows = a.x_rows.count();
  if (rows == 0 || a.cols == 0) return 0;
  with_dev_type(a.dtype, [&](auto p) {
    using T = elem_t<decltype(p)>;
    constexpr int N = 16 / sizeof(T);
    const bool packed = a.cols % N == 0 && rows_multiple_of(a.x_rows, N) && aligned_to(a.x, 16) &&
                        aligned_to(a.out, 16);
    auto* k = packed ? &gelu_tanh_kernel<T, N> : &gelu_tanh_kernel<T, 1>;
    MMGEN_LAUNCH(k, dim3(unsigned(rows)), dim3(threads_for(packed ? a.cols / N : a.cols)), 0, stream)(a);
  });
  return int(cudaGetLastError());
}

int gated_residual(const GatedResidualArgs& a, void* stream) {
  const std::int64_t rows = a.x_rows.count();
  if (rows == 0 || a.cols == 0) return 0;
  with_dev_type(a.dtype, [&](auto p) {
    using T = elem_t<decltype(p)>;
    auto go = [&](auto gp) {
      using G = elem_t<decltype(gp)>;
      constexpr int N = 16 / sizeof(T);
      const bool packed = a.cols % N == 0 && rows_multiple_of(a.x_rows, N) && rows_multiple_of(a.y_rows, N) &&
                          rows_multiple_of(a.gate_rows, N) && aligned_to(a.x, 16) && aligned_to(a.y, 16) &&
                          aligned_to(a.gate, sizeof(G) * N) && aligned_to(a.out, 16);
      auto* k = packed ? &gated_residual_kernel<T, G, N> : &gated_residual_kernel<T, G, 1>;
      MMGEN_LAUNCH(k, dim3(unsigned(rows)), dim3(threads_for(packed ? a.cols / N : a.cols)), 0, stream)(a);
    };
    if (a.gate_dtype == a.dtype) {
      go(static_cast<T*>(nullptr));
    } else {
      go(static_cast<float*>(nullptr));
    }
  });
  return int(cudaGetLastError());
}

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
