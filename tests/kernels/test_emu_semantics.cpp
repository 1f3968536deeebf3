// The CUDA emulator's semantics, tested with small CUDA-style kernels: block
// barriers really block, shared memory is shared per block, shuffles move
// values between lanes with CUDA's width rules, atomics do not lose updates,
// and misuse (divergent barriers, partial-warp shuffles, oversize shared
// memory, bad launch shapes) fails the launch instead of hanging.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "mmgen/emu/cuda_emu.hpp"

namespace {

using mmgen::emu::launcher;

// ---- block reduction in shared memory (fails without a working __syncthreads) ----
__global__ void tree_sum(const int* in, int* out) {
  __shared__ int buf[256];
  const unsigned t = threadIdx.x;
  buf[t] = in[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) buf[t] += buf[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = buf[0];
}

TEST(EmuSemantics, SharedMemoryTreeReductionPerBlock) {
  const int blocks = 3, threads = 256;
  std::vector<int> in(blocks * threads), out(blocks, -1);
  for (int i = 0; i < blocks * threads; ++i) in[i] = (i * 7919) % 1000 - 500;
  launcher(dim3(blocks), dim3(threads), 0, &tree_sum)(in.data(), out.data());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess) << mmgen::emu::last_launch_message();
  for (int b = 0; b < blocks; ++b) {
    int expect = 0;
    for (int t = 0; t < threads; ++t) expect += in[b * threads + t];
    EXPECT_EQ(out[b], expect) << "block " << b;
  }
}

// ---- a barrier holds every thread until the last one arrives --------------------------
// The last thread waits (bounded) until the other n-1 are either blocked in
// __syncthreads (real barrier) or have already gone past it (no-op barrier),
// and only then writes its value. With a real barrier every thread reads the
// value; with a no-op "barrier" the others have read the old value first.
// Both outcomes are deterministic: no timing decides them.
struct NoSync {
  static void sync() {}
};
struct RealSync {
  static void sync() { __syncthreads(); }
};

template <class Sync> __global__ void late_writer(int* seen, std::atomic<int>* departed) {
  __shared__ int value;
  const unsigned t = threadIdx.x, n = blockDim.x;
  if (t == 0) value = 0;
  __syncthreads();
  if (t == n - 1) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (mmgen::emu::threads_blocked_in_syncthreads() < int(n - 1) && departed->load() < int(n - 1) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    value = 42;
  }
  Sync::sync();
  seen[t] = value;
  departed->fetch_add(1);
  __syncthreads();
}

TEST(EmuSemantics, SyncthreadsBlocksUntilTheLastThreadArrives) {
  const int n = 64;
  std::vector<int> seen(n, -1);
  std::atomic<int> departed{0};
  launcher(dim3(1), dim3(n), 0, &late_writer<RealSync>)(seen.data(), &departed);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess) << mmgen::emu::last_launch_message();
  for (int t = 0; t < n; ++t) EXPECT_EQ(seen[t], 42) << "thread " << t << " passed the barrier early";
}

TEST(EmuSemantics, TheSameTestCatchesAMissingBarrier) {
  const int n = 64;
  std::vector<int> seen(n, -1);
  std::atomic<int> departed{0};
  launcher(dim3(1), dim3(n), 0, &late_writer<NoSync>)(seen.data(), &departed);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess) << mmgen::emu::last_launch_message();
  int stale = 0;
  for (int t = 0; t < n - 1; ++t) stale += seen[t] == 0;
  EXPECT_EQ(stale, n - 1) << "without __syncthreads the early threads must have read the old value";
}

// ---- warp shuffles --------------------------------------------------------------------
__global__ void shuffles(float* xor_sum, int* down_sum, int* bcast, int* up, int* xor16, int* down16) {
  const int t = int(threadIdx.x), lane = t % 32;
  float v = float(t);
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  xor_sum[t] = v;
  int d = t;
  for (int off = 16; off > 0; off >>= 1) d += __shfl_down_sync(0xffffffffu, d, unsigned(off));
  down_sum[t] = d;
  bcast[t] = __shfl_sync(0xffffffffu, t * 10, 5);
  up[t] = __shfl_up_sync(0xffffffffu, t, 3u);
  // Width 16: a source in a later group gives the caller's own value, an
  // earlier group may be read (PTX shfl.bfly: valid iff source <= maxLane).
  xor16[t] = __shfl_xor_sync(0xffffffffu, lane, 16, 16);
  down16[t] = __shfl_down_sync(0xffffffffu, lane, 4u, 16);
}

TEST(EmuSemantics, WarpShufflesFollowCudaLaneRules) {
  const int n = 64;  // two warps
  std::vector<float> xs(n);
  std::vector<int> ds(n), bc(n), up(n), x16(n), d16(n);
  launcher(dim3(1), dim3(n), 0, &shuffles)(xs.data(), ds.data(), bc.data(), up.data(), x16.data(), d16.data());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess) << mmgen::emu::last_launch_message();
  for (int t = 0; t < n; ++t) {
    const int w = t / 32, lane = t % 32;
    const int warp_total = 32 * (32 * w) + 31 * 32 / 2;
    EXPECT_EQ(xs[t], float(warp_total)) << "butterfly sum, thread " << t;
    if (lane == 0) {
      EXPECT_EQ(ds[t], warp_total) << "down-reduction result lands in lane 0, warp " << w;
    }
    EXPECT_EQ(bc[t], (w * 32 + 5) * 10) << "broadcast from lane 5, thread " << t;
    EXPECT_EQ(up[t], lane >= 3 ? t - 3 : t) << "shfl_up, thread " << t;
    EXPECT_EQ(x16[t], lane < 16 ? lane : lane - 16) << "xor across 16-lane groups, thread " << t;
    EXPECT_EQ(d16[t], (lane % 16) + 4 < 16 ? lane + 4 : lane) << "shfl_down within width 16, thread " << t;
  }
}

// ---- atomics ---------------------------------------------------------------------------
__global__ void counters(int* count, float* fsum, int* maxv) {
  for (int i = 0; i < 50; ++i) {
    atomicAdd(count, 1);
    atomicAdd(fsum, 1.0f);
  }
  atomicMax(maxv, int(blockIdx.x * blockDim.x + threadIdx.x));
}

TEST(EmuSemantics, AtomicsLoseNoUpdates) {
  int count = 0, maxv = -1;
  float fsum = 0.0f;
  launcher(dim3(4), dim3(128), 0, &counters)(&count, &fsum, &maxv);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess) << mmgen::emu::last_launch_message();
  EXPECT_EQ(count, 4 * 128 * 50);
  EXPECT_EQ(fsum, float(4 * 128 * 50));  // exact: integers below 2^24
  EXPECT_EQ(maxv, 4 * 128 - 1);
}

// ---- indices in 3-D blocks and grids ----------------------------------------------------
__global__ void ids(int* out) {
  const unsigned tl = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned bl = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  out[bl * (blockDim.x * blockDim.y * blockDim.z) + tl] = int(bl * 1000 + tl);
}

TEST(EmuSemantics, ThreeDimensionalIndices) {
  const dim3 grid(2, 3, 2), block(4, 2, 3);
  const int total = 12 * 24;
  std::vector<int> out(total, -1);
  launcher(grid, block, 0, &ids)(out.data());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess) << mmgen::emu::last_launch_message();
  for (int i = 0; i < total; ++i) EXPECT_EQ(out[i], (i / 24) * 1000 + i % 24) << i;
}

// ---- dynamic shared memory ----------------------------------------------------------------
__global__ void dyn_smem(int* out) {
  int* s = static_cast<int*>(mmgen::emu::dynamic_shared_memory());
  s[threadIdx.x] = int(threadIdx.x) * 2;
  __syncthreads();
  out[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

TEST(EmuSemantics, DynamicSharedMemoryAndItsLimit) {
  std::vector<int> out(32, -1);
  launcher(dim3(1), dim3(32), 32 * sizeof(int), &dyn_smem)(out.data());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess) << mmgen::emu::last_launch_message();
  for (int t = 0; t < 32; ++t) EXPECT_EQ(out[t], (31 - t) * 2);

  launcher(dim3(1), dim3(32), 64 * 1024, &dyn_smem)(out.data());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue) << "64 KB without the opt-in attribute";
  ASSERT_EQ(cudaFuncSetAttribute(&dyn_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024), cudaSuccess);
  launcher(dim3(1), dim3(32), 64 * 1024, &dyn_smem)(out.data());
  EXPECT_EQ(cudaGetLastError(), cudaSuccess) << mmgen::emu::last_launch_message();
}

// ---- misuse fails the launch ------------------------------------------------------------------
__global__ void early_return(int* out) {
  if (threadIdx.x == 0) return;  // thread 0 skips the barrier below
  __syncthreads();
  out[threadIdx.x] = 1;
}

TEST(EmuSemantics, DivergentSyncthreadsFailsTheLaunch) {
  std::vector<int> out(64, 0);
  launcher(dim3(2), dim3(64), 0, &early_return)(out.data());
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
  EXPECT_NE(std::string(mmgen::emu::last_launch_message()).find("divergent __syncthreads"), std::string::npos)
      << mmgen::emu::last_launch_message();
}

__global__ void partial_shuffle(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, int(threadIdx.x), 1);
}

TEST(EmuSemantics, PartialWarpShuffleIsRejected) {
  std::vector<int> out(32, 0);
  launcher(dim3(1), dim3(32), 0, &partial_shuffle)(out.data());
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
  EXPECT_NE(std::string(mmgen::emu::last_launch_message()).find("partial lane mask"), std::string::npos)
      << mmgen::emu::last_launch_message();
}

TEST(EmuSemantics, InvalidLaunchShapes) {
  std::vector<int> out(2048, 0);
  launcher(dim3(1), dim3(1025), 0, &ids)(out.data());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  launcher(dim3(0), dim3(32), 0, &ids)(out.data());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
}

TEST(EmuSemantics, PartialLastWarpShufflesAmongExistingLanes) {
  // 40 threads: warp 1 has 8 lanes; a full-mask butterfly over 8 lanes works.
  std::vector<float> xs(40), unused(40);
  std::vector<int> a(40), b(40), c(40), d(40), e(40);
  launcher(dim3(1), dim3(40), 0, &shuffles)(xs.data(), a.data(), b.data(), c.data(), d.data(), e.data());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess) << mmgen::emu::last_launch_message();
  // Lanes of warp 1 whose partners do not exist read their own value, so
  // lanes 0..7 reduce among themselves (sum 32..39) doubled per missing step:
  // offsets 16 and 8 read their own value (x2 each), then 4, 2, 1 sum 8 lanes.
  EXPECT_EQ(xs[32], 4.0f * float(32 + 33 + 34 + 35 + 36 + 37 + 38 + 39));
}

}  // namespace
