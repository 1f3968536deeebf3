// A small CUDA execution emulator: lets the project's unchanged .cu kernel
// sources be compiled by the host C++ compiler and run on the CPU, so CI
// (which has no GPU) executes the real kernel code and compares it with the
// ATen reference.
//
// What it models
//  - A launch runs its blocks one after another; each block runs as
//    blockDim.x*y*z real OS threads (a team created per launch and reused for
//    every block). threadIdx/blockIdx/blockDim/gridDim are thread-locals.
//  - __syncthreads() is a real barrier over the block's threads. Divergent
//    barriers (some threads at __syncthreads, others finished with the block)
//    are detected and fail the launch; a barrier nobody completes within
//    MMGEN_EMU_TIMEOUT_S seconds (default 60) fails the launch as a deadlock.
//  - __shared__ variables are block-shared (they expand to function `static`
//    storage, which is correct because only one block runs at a time and
//    launches are serialised). Dynamic shared memory (MMGEN_DYNAMIC_SHARED) is
//    a per-launch buffer; its size is checked against 48 KB, or the limit set
//    with cudaFuncSetAttribute(MaxDynamicSharedMemorySize), up to 163 KB (sm_80).
//  - Warp shuffles (__shfl_sync/_xor/_down/_up) exchange values between the 32
//    lanes of a warp (consecutive linear thread ids) through a per-warp buffer
//    and barrier, with CUDA's `width` rules. The mask must name every lane the
//    warp has: partial-warp (divergent) shuffles fail the launch.
//  - atomicAdd/Sub/Max/Min/Exch/CAS are std::atomic_ref operations.
//
// What it does not model: timing and concurrency between blocks (so kernels
// that wait on other blocks would hang), independent thread scheduling within
// a warp (lanes only meet at shuffles/__syncwarp), memory coalescing, caches,
// bank conflicts, tensor cores, the static shared-memory size limit, register
// limits, streams (launches are synchronous), and device vs host address
// spaces (kernels receive host pointers). Floating-point results can differ
// from a GPU in the last bits (no fused multiply-add contraction guarantees,
// different expf/rsqrtf implementations).
#pragma once

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- CUDA keywords -----------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};

inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
constexpr int warpSize = 32;

// ---- runtime API subset ---------------------------------------------------------
struct CUstream_st;
typedef CUstream_st* cudaStream_t;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchFailure = 719,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);

namespace mmgen::emu {

cudaError_t set_max_dynamic_shared(const void* kernel, int bytes);

// Launches `body` (which calls the kernel) on every thread of every block.
cudaError_t run_launch(dim3 grid, dim3 block, std::size_t dynamic_smem, const void* kernel,
                       const std::function<void()>& body);

// Message of the last failed launch on this host thread ("" if none).
const char* last_launch_message();

// Per-thread helpers the device-function shims below use.
unsigned lane_id();
void sync_block();
void sync_warp(unsigned mask);
void warp_exchange(unsigned mask, const void* value, void* result, std::size_t size, int src_lane);
void* dynamic_shared_memory();

// Test hook: how many threads of the current block are blocked in
// __syncthreads right now (lets a test order threads deterministically).
int threads_blocked_in_syncthreads();

template <class... P> struct Launcher {
  dim3 grid, block;
  std::size_t smem;
  void (*kernel)(P...);
  template <class... A> void operator()(A&&... args) const {
    const std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    run_launch(grid, block, smem, reinterpret_cast<const void*>(kernel),
               [&] { std::apply(kernel, params); });
  }
};
template <class... P> Launcher<P...> launcher(dim3 grid, dim3 block, std::size_t smem, void (*kernel)(P...)) {
  return Launcher<P...>{grid, block, smem, kernel};
}

}  // namespace mmgen::emu

template <class... P> cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return mmgen::emu::set_max_dynamic_shared(reinterpret_cast<const void*>(kernel), value);
}

// ---- device functions --------------------------------------------------------------
inline void __syncthreads() { mmgen::emu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { mmgen::emu::sync_warp(mask); }

namespace mmgen::emu::detail {
template <class T> T shuffle(unsigned mask, T v, int src) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffle of up to 8 bytes");
  T out;
  warp_exchange(mask, &v, &out, sizeof(T), src);
  return out;
}
// Lane groups of `width` (a power of two <= 32) shuffle among themselves.
inline int group_base(int lane, int width) { return lane & ~(width - 1); }
}  // namespace mmgen::emu::detail

template <class T> T __shfl_sync(unsigned mask, T v, int src_lane, int width = warpSize) {
  const int lane = int(mmgen::emu::lane_id());
  return mmgen::emu::detail::shuffle(mask, v, mmgen::emu::detail::group_base(lane, width) + (src_lane & (width - 1)));
}
template <class T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize) {
  const int lane = int(mmgen::emu::lane_id());
  int src = lane ^ lane_mask;
  // A source in a later group than the caller's returns the caller's own value.
  if (mmgen::emu::detail::group_base(src, width) > mmgen::emu::detail::group_base(lane, width)) src = lane;
  return mmgen::emu::detail::shuffle(mask, v, src);
}
template <class T> T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize) {
  const int lane = int(mmgen::emu::lane_id());
  const int in_group = lane & (width - 1);
  const int src = in_group + int(delta) < width ? lane + int(delta) : lane;
  return mmgen::emu::detail::shuffle(mask, v, src);
}
template <class T> T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize) {
  const int lane = int(mmgen::emu::lane_id());
  const int in_group = lane & (width - 1);
  const int src = in_group >= int(delta) ? lane - int(delta) : lane;
  return mmgen::emu::detail::shuffle(mask, v, src);
}

template <class T> T atomicAdd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
template <class T> T atomicSub(T* p, T v) { return std::atomic_ref<T>(*p).fetch_sub(v); }
template <class T> T atomicExch(T* p, T v) { return std::atomic_ref<T>(*p).exchange(v); }
template <class T> T atomicCAS(T* p, T expected, T desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired);
  return expected;  // the old value, as CUDA returns
}
template <class T> T atomicMax(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <class T> T atomicMin(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old > v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
template <class T> T __ldg(const T* p) { return *p; }

// Launch syntax shim: MMGEN_LAUNCH(k, grid, block, smem, stream)(args...)
// is k<<<grid, block, smem, stream>>>(args...) under nvcc.
#define MMGEN_EMU_LAUNCH(kernel, grid, block, smem, stream) \
  ((void)(stream), ::mmgen::emu::launcher(grid, block, smem, kernel))
