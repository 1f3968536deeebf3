// Row-wise normalisations: rms_norm, fused_add_rms_norm, adaln_modulate.
// One thread block per row; each thread walks the row in packs of N elements
// (16-byte accesses when the host saw aligned rows, else N = 1), reduces with
// warp shuffles + shared memory, then rewrites its own packs.
#include "cuda/compat.cuh"
#include "cuda/launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {
namespace {

using kernels::ModulateArgs;
using kernels::RmsNormArgs;

// Wt is the weight type and also the output type (out dtype = result_type(x, weight)).
// warp_rows: short rows (per-head q/k norms) take one warp each, 8 per block;
// otherwise a whole block works on one row. warp_rows and "fused" (residual
// != nullptr) are run-time flags, uniform for a launch: fewer instantiations
// to compile for the same code.
template <class T, class Wt, int N>
__global__ void __launch_bounds__(256) rms_norm_kernel(RmsNormArgs a, bool warp_rows) {
  __shared__ float scratch[32];
  const bool fused = a.residual != nullptr;
  const std::int64_t r = warp_rows ? std::int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32 : blockIdx.x;
  if (warp_rows && r >= a.x_rows.count()) return;  // whole warps; no block barrier in this mode
  const int first = warp_rows ? int(threadIdx.x % 32) : int(threadIdx.x);
  const int stride = warp_rows ? 32 : int(blockDim.x);
  const std::int64_t packs = a.cols / N;
  const T* x = static_cast<const T*>(a.x) + a.x_rows.offset(r);
  T* res = fused ? static_cast<T*>(a.residual) + a.res_rows.offset(r) : nullptr;
  const T* h = fused ? res : x;

  float ss = 0.0f;
  for (std::int64_t p = first; p < packs; p += stride) {
    const Pack<T, N> xv = load_pack<N>(x + p * N);
    if (fused) {
      Pack<T, N> rv = load_pack<N>(res + p * N);
      for (int i = 0; i < N; ++i) {
        rv.v[i] = from_f32<T>(to_f32(xv.v[i]) + to_f32(rv.v[i]));  // residual in its own dtype
        const float s = to_f32(rv.v[i]);
        ss += s * s;
      }
      store_pack<N>(res + p * N, rv);  // read back below by this same thread
    } else {
      for (int i = 0; i < N; ++i) {
        const float v = to_f32(xv.v[i]);
        ss += v * v;
      }
    }
  }
  ss = warp_rows ? warp_sum(ss) : block_sum(ss, scratch);
  const float rinv = rsqrtf(ss / float(a.cols) + a.eps);

  const Wt* w = static_cast<const Wt*>(a.weight);
  Wt* out = static_cast<Wt*>(a.out) + r * a.cols;
  for (std::int64_t p = first; p < packs; p += stride) {
    const Pack<T, N> hv = load_pack<N>(h + p * N);
    const Pack<Wt, N> wv = load_pack<N>(w + p * N);
    Pack<Wt, N> ov;
    for (int i = 0; i < N; ++i) {
      const float normed = to_f32(from_f32<T>(to_f32(hv.v[i]) * rinv));  // .to(input_dtype)
      ov.v[i] = from_f32<Wt>(normed * to_f32(wv.v[i]));
    }
    store_pack<N>(out + p * N, ov);
  }
}

template <class T, class M, int N>
__global__ void __launch_bounds__(256) adaln_modulate_kernel(ModulateArgs a) {
  __shared__ float scratch[32];
  const std::int64_t r = blockIdx.x;
  const std::int64_t packs = a.cols / N;
  const T* x = static_cast<const T*>(a.x) + a.x_rows.offset(r);
  const M* sh = static_cast<const M*>(a.shift) + a.shift_rows.offset(r);
  const M* sc = static_cast<const M*>(a.scale) + a.scale_rows.offset(r);
  T* out = static_cast<T*>(a.out) + r * a.cols;

  float sum = 0.0f;
  for (std::int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    const Pack<T, N> xv = load_pack<N>(x + p * N);
    for (int i = 0; i < N; ++i) sum += to_f32(xv.v[i]);
  }
  const float mean = block_sum(sum, scratch) / float(a.cols);
  float sq = 0.0f;  // centred second pass: no cancellation for large means
  for (std::int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    const Pack<T, N> xv = load_pack<N>(x + p * N);
    for (int i = 0; i < N; ++i) {
      const float d = to_f32(xv.v[i]) - mean;
      sq += d * d;
    }
  }
  const float rstd = rsqrtf(block_sum(sq, scratch) / float(a.cols) + a.eps);
  for (std::int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    const Pack<T, N> xv = load_pack<N>(x + p * N);
    const Pack<M, N> shv = load_pack<N>(sh + p * N);
    const Pack<M, N> scv = load_pack<N>(sc + p * N);
    Pack<T, N> ov;
    for (int i = 0; i < N; ++i) {
      const float y = (to_f32(xv.v[i]) - mean) * rstd;
      ov.v[i] = from_f32<T>(y * (1.0f + to_f32(scv.v[i])) + to_f32(shv.v[i]));
    }
    store_pack<N>(out + p * N, ov);
  }
}

}  // namespace

int rms_norm(const RmsNormArgs& a, void* stream) {
  const std::int64_t rows = a.x_rows.count();
  if (rows == 0 || a.cols == 0) return 0;
  with_dev_type(a.x_dtype, [&](auto xp) {
    using T = elem_t<decltype(xp)>;
    auto go = [&](auto wp) {
      using Wt = elem_t<decltype(wp)>;
      constexpr int N = 16 / sizeof(T);
      const bool fused = a.residual != nullptr;
      const bool packed = a.cols % N == 0 && rows_multiple_of(a.x_rows, N) && aligned_to(a.x, sizeof(T) * N) &&
                          (!fused || (rows_multiple_of(a.res_rows, N) && aligned_to(a.residual, sizeof(T) * N))) &&
                          aligned_to(a.weight, sizeof(Wt) * N) && aligned_to(a.out, sizeof(Wt) * N);
      const std::int64_t items = packed ? a.cols / N : a.cols;
      auto* k = packed ? &rms_norm_kernel<T, Wt, N> : &rms_norm_kernel<T, Wt, 1>;
      if (items <= 64) {  // short rows: a warp per row
        MMGEN_LAUNCH(k, dim3(unsigned((rows + 7) / 8)), dim3(256), 0, stream)(a, true);
      } else {
        MMGEN_LAUNCH(k, dim3(unsigned(rows)), dim3(threads_for(items)), 0, stream)(a, false);
      }
    };
    if (a.w_dtype == a.x_dtype) {
      go(static_cast<T*>(nullptr));
    } else {
      go(static_cast<float*>(nullptr));
    }
  });
  return int(cudaGetLastError());
}

int adaln_modulate(const ModulateArgs& a, void* stream) {
  const std::int64_t rows = a.x_rows.count();
  if (rows == 0 || a.cols == 0) return 0;
  with_dev_type(a.dtype, [&](auto xp) {
    using T = elem_t<decltype(xp)>;
    auto go = [&](auto mp) {
      using M = elem_t<decltype(mp)>;
      constexpr int N = 16 / sizeof(T);
      const bool packed = a.cols % N == 0 && rows_multiple_of(a.x_rows, N) && rows_multiple_of(a.shift_rows, N) &&
                          rows_multiple_of(a.scale_rows, N) && aligned_to(a.x, sizeof(T) * N) &&
                          aligned_to(a.shift, sizeof(M) * N) && aligned_to(a.scale, sizeof(M) * N) &&
                          aligned_to(a.out, sizeof(T) * N);
      const dim3 grid{unsigned(rows)};
      if (packed) {
        auto* k = &adaln_modulate_kernel<T, M, N>;
        MMGEN_LAUNCH(k, grid, dim3(threads_for(a.cols / N)), 0, stream)(a);
      } else {
        auto* k = &adaln_modulate_kernel<T, M, 1>;
        MMGEN_LAUNCH(k, grid, dim3(threads_for(a.cols)), 0, stream)(a);
      }
    };
    if (a.mod_dtype == a.dtype) {
      go(static_cast<T*>(nullptr));
    } else {
      go(static_cast<float*>(nullptr));
    }
  });
  return int(cudaGetLastError());
}

const char* error_string(int code) {
#if defined(__CUDACC__)
  return cudaGetErrorString(static_cast<cudaError_t>(code));
#else
  const char* detail = ::mmgen::emu::last_launch_message();
  return *detail ? detail : cudaGetErrorString(static_cast<cudaError_t>(code));
#endif
}

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
