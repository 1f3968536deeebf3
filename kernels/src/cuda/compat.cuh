// What every .cu kernel file includes first. Under nvcc it brings in the CUDA
// runtime and the bf16/fp16 types; under a host compiler (the emulator build,
// MMGEN_CUDA_EMULATION) it brings in mmgen/emu/cuda_emu.hpp and the exact
// host conversions of common/scalar.hpp. Kernels only use what this header
// and the emulator provide; the same source thus runs on a GPU and in CI.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/op_args.hpp"
#include "common/scalar.hpp"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define MMGEN_DEV __device__ __forceinline__
#define MMGEN_UNROLL _Pragma("unroll")
#define MMGEN_LAUNCH(kernel, grid, block, smem, stream) \
  kernel<<<grid, block, smem, static_cast<cudaStream_t>(stream)>>>
#define MMGEN_DYNAMIC_SHARED(type, name)                     \
  extern __shared__ __align__(16) unsigned char mmgen_smem_[]; \
  type* name = reinterpret_cast<type*>(mmgen_smem_)
#else
#if !defined(MMGEN_CUDA_EMULATION)
#error "compile .cu files with nvcc, or with a host compiler and -DMMGEN_CUDA_EMULATION"
#endif
#include "mmgen/emu/cuda_emu.hpp"
#define MMGEN_DEV inline
#define MMGEN_UNROLL
#define MMGEN_LAUNCH(kernel, grid, block, smem, stream) MMGEN_EMU_LAUNCH(kernel, grid, block, smem, stream)
#define MMGEN_DYNAMIC_SHARED(type, name) \
  type* name = reinterpret_cast<type*>(::mmgen::emu::dynamic_shared_memory())
#endif

#ifndef MMGEN_CUDA_NS
#define MMGEN_CUDA_NS device
#endif

// Everything lives in an inline namespace named after the build (device or
// emulated) so the nvcc and the emulator builds of one kernel never clash.
namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {

// Device element types. Under the emulator they are the host storage types.
#if defined(__CUDACC__)
using dev_bf16 = __nv_bfloat16;
using dev_f16 = __half;
MMGEN_DEV float to_f32(float v) { return v; }
MMGEN_DEV float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
MMGEN_DEV float to_f32(__half v) { return __half2float(v); }
template <class T> MMGEN_DEV T from_f32(float v);
template <> MMGEN_DEV float from_f32<float>(float v) { return v; }
template <> MMGEN_DEV __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> MMGEN_DEV __half from_f32<__half>(float v) { return __float2half_rn(v); }
#else
using dev_bf16 = ::mmgen::kernels::bf16_t;
using dev_f16 = ::mmgen::kernels::f16_t;
using ::mmgen::kernels::from_f32;
using ::mmgen::kernels::to_f32;
#endif

using ::mmgen::kernels::DType;
using ::mmgen::kernels::Rows;

// N consecutive elements moved as one access (16 bytes when aligned): under
// nvcc an aligned struct load/store becomes a single vector instruction.
template <class T, int N> struct alignas(sizeof(T) * N) Pack {
  T v[N];
};
template <int N, class T> MMGEN_DEV Pack<T, N> load_pack(const T* p) {
#if defined(__CUDACC__)
  return *reinterpret_cast<const Pack<T, N>*>(p);
#else
  Pack<T, N> r;
  std::memcpy(&r, p, sizeof r);
  return r;
#endif
}
template <int N, class T> MMGEN_DEV void store_pack(T* p, const Pack<T, N>& v) {
#if defined(__CUDACC__)
  *reinterpret_cast<Pack<T, N>*>(p) = v;
#else
  std::memcpy(p, &v, sizeof v);
#endif
}

MMGEN_DEV float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
MMGEN_DEV float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Division by a run-time divisor that is usually a power of two (block
// sizes): a shift and a mask then, 32-bit division otherwise. 64-bit integer
// division is a long instruction sequence on GPUs; keep it out of inner loops.
struct FastDiv {
  int d;
  int shift;  // log2(d) when d is a power of two, else -1
  MMGEN_DEV explicit FastDiv(int divisor) : d(divisor), shift(-1) {
    if (d > 0 && (d & (d - 1)) == 0) {
      shift = 0;
      while ((1 << shift) < d) ++shift;
    }
  }
  MMGEN_DEV int div(int x) const { return shift >= 0 ? x >> shift : x / d; }
  MMGEN_DEV int mod(int x) const { return shift >= 0 ? x & (d - 1) : x % d; }
};

// Sum over the block; every thread gets the result. `scratch` holds 32 floats
// of shared memory. Must be reached by all threads of the block.
MMGEN_DEV float block_sum(float v, float* scratch) {
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int warps = (int(blockDim.x) + 31) / 32;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

// Host-side dtype dispatch: calls f with a null pointer of the device type.
template <class F> void with_dev_type(DType d, F&& f) {
  switch (d) {
    case DType::f32: f(static_cast<float*>(nullptr)); break;
    case DType::bf16: f(static_cast<dev_bf16*>(nullptr)); break;
    case DType::f16: f(static_cast<dev_f16*>(nullptr)); break;
  }
}
template <class P> using elem_t = typename std::remove_pointer<P>::type;

// Host-side checks that decide whether a kernel may use packed accesses.
inline bool aligned_to(const void* p, std::size_t bytes) {
  return (reinterpret_cast<std::uintptr_t>(p) % bytes) == 0;
}
inline bool rows_multiple_of(const Rows& r, std::int64_t n) {
  return r.stride_outer % n == 0 && r.stride_inner % n == 0;
}
// Threads for a row of `items` work items: a multiple of 32 in [32, cap].
inline int threads_for(std::int64_t items, int cap = 256) {
  const std::int64_t t = (items + 31) / 32 * 32;
  return int(t < 32 ? 32 : (t > cap ? cap : t));
}

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
