// Decode attention over a paged KV cache (one query token per sequence, GQA).
//
// Grid: (kv_heads x query-head chunks, batch, partitions). A block serves up to
// kMaxG query heads that share one kv head, so every cached key/value row is
// read from memory once per block, and covers one partition of the context.
//  1. q (pre-scaled) -> shared memory.
//  2. scores: lane groups of TG lanes take one token each; each lane loads 16
//     bytes of the key row, dots it with each head's q slice, and the group
//     reduces with __shfl_xor_sync. Loops are trip-uniform so that whole
//     warps always reach the shuffles together.
//  3. softmax per head (one warp per head) in float32.
//  4. P.V: each warp takes every kWarps-th token; each lane owns D/32 output
//     features of every head; warps are summed through shared memory.
// With one partition the block writes the output; otherwise it writes an
// unnormalised partial result plus (max, sum), and a second kernel merges the
// partitions (flash-decoding). Partitions are 512 tokens, halved down to 128
// while the grid would give the GPU fewer than 4 blocks per multiprocessor
// (paged_attention_pick_partition): short batches need the parallelism.
// A block id outside [0, num_blocks) in block_tables makes that sequence's
// output NaN instead of reading out of bounds; context lengths are clamped to
// the table's capacity; an empty context gives zeros.
#include "cuda/compat.cuh"
#include "cuda/launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {
namespace {

using kernels::PagedAttentionArgs;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxG = 8;  // query heads per block

template <class T, int D> struct Geometry {
  static constexpr int VEC = 16 / int(sizeof(T));              // elements per 16-byte load
  static constexpr int TG = D / VEC < 32 ? D / VEC : 32;       // lanes per token (q.k)
  static constexpr int NV = D / (TG * VEC);                    // 16-byte loads per lane per token
  static constexpr int TOKENS_PER_ITER = kThreads / TG;
  static constexpr int EPL = D / 32;                           // output features per lane (P.V)
  static_assert(D % (TG * VEC) == 0 && D % 32 == 0, "unsupported head_dim");
};

MMGEN_DEV std::int64_t context_len(const PagedAttentionArgs& a, int b) {
  const std::int64_t cap = a.max_blocks * a.block_size;
  const std::int64_t L = a.context_lens[b];
  return L < 0 ? 0 : (L > cap ? cap : L);
}

// single: the whole context is one partition, so the block writes the final
// output (a run-time flag, uniform for the launch: one instantiation fewer).
template <class T, int D>
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(PagedAttentionArgs a, int partition_size,
                                                                   bool single) {
  using Gm = Geometry<T, D>;
  const int G = int(a.q_heads / a.kv_heads);
  const int chunks = (G + kMaxG - 1) / kMaxG;
  const int kvh = int(blockIdx.x) / chunks;
  const int h0 = kvh * G + (int(blockIdx.x) % chunks) * kMaxG;  // first query head of this block
  const int nh = (kvh + 1) * G - h0 < kMaxG ? (kvh + 1) * G - h0 : kMaxG;
  const int b = int(blockIdx.y);
  const int part = int(blockIdx.z);
  const int tid = int(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const std::int64_t L = context_len(a, b);
  const std::int64_t start = std::int64_t(part) * partition_size;

  if (L == 0) {  // (uniform for the block) no keys: the output is defined as zeros
    if (single && part == 0) {
      for (int i = tid; i < nh * D; i += kThreads)
        static_cast<T*>(a.out)[(std::int64_t(b) * a.q_heads + h0) * D + i] = from_f32<T>(0.0f);
    }
    return;
  }
  if (start >= L) return;  // (uniform) this partition is past the end of this sequence
  const int n = int((start + partition_size < L ? start + partition_size : L) - start);

  MMGEN_DYNAMIC_SHARED(float, smem);
  float* q_s = smem;               // [kMaxG][D]
  float* logits = q_s + kMaxG * D;  // [kMaxG][partition_size], later [kWarps][kMaxG][D]
  __shared__ float row_max[kMaxG];
  __shared__ float row_sum[kMaxG];

  const T* q = static_cast<const T*>(a.q);
  for (int i = tid; i < nh * D; i += kThreads) {
    const int g = i / D, d = i % D;
    q_s[g * D + d] = to_f32(q[b * a.q_stride_b + (h0 + g) * a.q_stride_h + d]) * a.scale;
  }
  __syncthreads();

  // ---- scores ----
  // kUnroll tokens per lane group are loaded before any is used, so several
  // loads are in flight. q slices are re-read from shared memory as 16-byte
  // loads rather than held in registers: registers go to the keys, and
  // occupancy matters more here. Trip counts stay uniform so whole warps
  // reach the shuffles together.
  constexpr int kSlice = Gm::NV * Gm::VEC;
  constexpr int kUnroll = 4;
  const T* kc = static_cast<const T*>(a.k_cache);
  const std::int32_t* bt = a.block_tables + b * a.bt_stride;
  const FastDiv bs(int(a.block_size));  // token t -> (t / block_size, t % block_size)
  const int group = tid / Gm::TG, gl = tid % Gm::TG;
  for (int base = 0; base < n; base += Gm::TOKENS_PER_ITER * kUnroll) {
    // Raw packs (not yet float32): half the registers for 16-bit caches.
    Pack<T, Gm::VEC> kraw[kUnroll][Gm::NV];
    bool bad[kUnroll];
    MMGEN_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      const int i = base + u * Gm::TOKENS_PER_ITER + group;
      bad[u] = false;
      MMGEN_UNROLL
      for (int v = 0; v < Gm::NV; ++v)
        MMGEN_UNROLL
        for (int e = 0; e < Gm::VEC; ++e) kraw[u][v].v[e] = from_f32<T>(0.0f);
      if (i < n) {
        const int t = int(start) + i;
        const std::int32_t blk = bt[bs.div(t)];
        bad[u] = blk < 0 || blk >= a.num_blocks;
        if (!bad[u]) {
          const T* krow = kc + ((std::int64_t(blk) * a.block_size + bs.mod(t)) * a.kv_heads + kvh) * D;
          MMGEN_UNROLL
          for (int v = 0; v < Gm::NV; ++v) kraw[u][v] = load_pack<Gm::VEC>(krow + (v * Gm::TG + gl) * Gm::VEC);
        }
      }
    }
    MMGEN_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      const int i = base + u * Gm::TOKENS_PER_ITER + group;
      float kf[kSlice];
      MMGEN_UNROLL
      for (int v = 0; v < Gm::NV; ++v)
        MMGEN_UNROLL
        for (int e = 0; e < Gm::VEC; ++e) kf[v * Gm::VEC + e] = to_f32(kraw[u][v].v[e]);
      MMGEN_UNROLL
      for (int g = 0; g < kMaxG; ++g) {
        if (g >= nh) break;  // uniform
        float dot = 0.0f;
        MMGEN_UNROLL
        for (int v = 0; v < Gm::NV; ++v) {
          MMGEN_UNROLL
          for (int e4 = 0; e4 < Gm::VEC; e4 += 4) {
            const Pack<float, 4> qv = load_pack<4>(q_s + g * D + (v * Gm::TG + gl) * Gm::VEC + e4);
            MMGEN_UNROLL
            for (int e = 0; e < 4; ++e) dot += kf[v * Gm::VEC + e4 + e] * qv.v[e];
          }
        }
        for (int off = Gm::TG / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        if (i < n && gl == 0) logits[g * partition_size + i] = bad[u] ? NAN : dot;
      }
    }
  }
  __syncthreads();

  // ---- softmax (float32), one warp per head ----
  for (int g = warp; g < nh; g += kWarps) {
    float* lg = logits + g * partition_size;
    float m = -INFINITY;
    for (int i = lane; i < n; i += 32) m = fmaxf(m, lg[i]);  // fmaxf skips NaN; NaN still poisons the sum
    m = warp_max(m);
    float s = 0.0f;
    for (int i = lane; i < n; i += 32) {
      const float e = expf(lg[i] - m);
      lg[i] = e;
      s += e;
    }
    s = warp_sum(s);
    if (lane == 0) {
      row_max[g] = m;
      row_sum[g] = s;
    }
  }
  __syncthreads();

  // ---- P.V ----
  const T* vc = static_cast<const T*>(a.v_cache);
  float acc[kMaxG][Gm::EPL];
  MMGEN_UNROLL
  for (int g = 0; g < kMaxG; ++g)
    MMGEN_UNROLL
    for (int e = 0; e < Gm::EPL; ++e) acc[g][e] = 0.0f;
  for (int base = warp; base < n; base += kWarps * kUnroll) {
    Pack<T, Gm::EPL> pv[kUnroll];
    bool ok[kUnroll];
    MMGEN_UNROLL
    for (int u = 0; u < kUnroll; ++u) {  // loads first: several in flight
      const int i = base + u * kWarps;
      ok[u] = false;
      if (i < n) {
        const int t = int(start) + i;
        const std::int32_t blk = bt[bs.div(t)];
        ok[u] = blk >= 0 && blk < a.num_blocks;  // a bad block's NaN score already poisons the result
        if (ok[u]) {
          const T* vrow = vc + ((std::int64_t(blk) * a.block_size + bs.mod(t)) * a.kv_heads + kvh) * D;
          pv[u] = load_pack<Gm::EPL>(vrow + lane * Gm::EPL);
        }
      }
    }
    MMGEN_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      if (!ok[u]) continue;
      const int i = base + u * kWarps;
      MMGEN_UNROLL
      for (int g = 0; g < kMaxG; ++g) {
        if (g >= nh) break;
        const float p = logits[g * partition_size + i];
        MMGEN_UNROLL
        for (int e = 0; e < Gm::EPL; ++e) acc[g][e] += p * to_f32(pv[u].v[e]);
      }
    }
  }
  __syncthreads();  // all reads of the probabilities are done: reuse the buffer
  float* red = logits;  // [kWarps][kMaxG][D]
  MMGEN_UNROLL
  for (int g = 0; g < kMaxG; ++g) {
    if (g >= nh) break;
    MMGEN_UNROLL
    for (int e = 0; e < Gm::EPL; ++e) red[(warp * kMaxG + g) * D + lane * Gm::EPL + e] = acc[g][e];
  }
  __syncthreads();
  for (int i = tid; i < nh * D; i += kThreads) {
    const int g = i / D, d = i % D;
    float o = 0.0f;
    MMGEN_UNROLL
    for (int w = 0; w < kWarps; ++w) o += red[(w * kMaxG + g) * D + d];
    const std::int64_t bh = std::int64_t(b) * a.q_heads + h0 + g;
    if (single) {
      static_cast<T*>(a.out)[bh * D + d] = from_f32<T>(o / row_sum[g]);
    } else {
      a.tmp_out[(bh * a.partitions + part) * D + d] = o;
      if (d == 0) {
        a.max_logits[bh * a.partitions + part] = row_max[g];
        a.exp_sums[bh * a.partitions + part] = row_sum[g];
      }
    }
  }
}

// Merges the partitions of one (sequence, query head): out = sum_p e^(m_p - M) o_p
// / sum_p e^(m_p - M) s_p.
template <class T, int D>
__global__ void __launch_bounds__(kThreads) paged_attention_merge_kernel(PagedAttentionArgs a, int partition_size) {
  const int h = int(blockIdx.x), b = int(blockIdx.y);
  const std::int64_t bh = std::int64_t(b) * a.q_heads + h;
  T* out = static_cast<T*>(a.out) + bh * D;
  const std::int64_t L = context_len(a, b);
  if (L == 0) {
    for (int d = int(threadIdx.x); d < D; d += kThreads) out[d] = from_f32<T>(0.0f);
    return;
  }
  const int parts = int((L + partition_size - 1) / partition_size);
  const float* ml = a.max_logits + bh * a.partitions;
  const float* es = a.exp_sums + bh * a.partitions;
  float m = -INFINITY;
  for (int p = 0; p < parts; ++p) m = fmaxf(m, ml[p]);
  float denom = 0.0f;
  for (int p = 0; p < parts; ++p) denom += es[p] * expf(ml[p] - m);
  for (int d = int(threadIdx.x); d < D; d += kThreads) {
    float o = 0.0f;
    for (int p = 0; p < parts; ++p) o += a.tmp_out[(bh * a.partitions + p) * D + d] * expf(ml[p] - m);
    out[d] = from_f32<T>(o / denom);
  }
}

template <class T, int D> int launch(const PagedAttentionArgs& a, int partition_size, void* stream) {
  const int G = int(a.q_heads / a.kv_heads);
  const int chunks = (G + kMaxG - 1) / kMaxG;
  const std::int64_t parts = paged_attention_partitions(a.max_blocks * a.block_size, partition_size);
  const int logits = kMaxG * partition_size > kWarps * kMaxG * D ? kMaxG * partition_size : kWarps * kMaxG * D;
  const std::size_t smem = sizeof(float) * std::size_t(kMaxG * D + logits);
  const dim3 grid(unsigned(a.kv_heads * chunks), unsigned(a.batch), unsigned(parts));
  auto* k = &paged_attention_kernel<T, D>;
  if (smem > 48 * 1024) cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (parts == 1) {
    MMGEN_LAUNCH(k, grid, dim3(kThreads), smem, stream)(a, partition_size, true);
  } else {
    if (a.partitions < parts || !a.tmp_out || !a.max_logits || !a.exp_sums) return int(cudaErrorInvalidValue);
    MMGEN_LAUNCH(k, grid, dim3(kThreads), smem, stream)(a, partition_size, false);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return int(err);
    auto* m = &paged_attention_merge_kernel<T, D>;
    MMGEN_LAUNCH(m, dim3(unsigned(a.q_heads), unsigned(a.batch)), dim3(kThreads), 0, stream)(a, partition_size);
  }
  return int(cudaGetLastError());
}

}  // namespace

int paged_attention_pick_partition(std::int64_t batch, std::int64_t kv_heads, std::int64_t q_heads,
                                   std::int64_t max_context, int multiprocessors) {
  // Enough blocks to give every multiprocessor several (latency hiding), but
  // no partitions shorter than 128 tokens (merge overhead).
  const std::int64_t chunks = (q_heads / kv_heads + kMaxG - 1) / kMaxG;
  int part = kPagedAttentionDefaultPartition;
  while (part > 128 && batch * kv_heads * chunks * paged_attention_partitions(max_context, part) < 4 * multiprocessors)
    part /= 2;
  return part;
}

std::int64_t paged_attention_partitions(std::int64_t max_context, int partition_size) {
  if (partition_size <= 0) partition_size = kPagedAttentionDefaultPartition;
  const std::int64_t p = (max_context + partition_size - 1) / partition_size;
  return p < 1 ? 1 : p;
}

bool paged_attention_supports_head_dim(std::int64_t head_dim) {
  return head_dim == 64 || head_dim == 128 || head_dim == 256;
}

int paged_attention(const PagedAttentionArgs& a, int partition_size, void* stream) {
  if (a.batch == 0 || a.q_heads == 0) return 0;
  if (partition_size <= 0) partition_size = kPagedAttentionDefaultPartition;
  if (!paged_attention_supports_head_dim(a.head_dim) || a.kv_heads <= 0 || a.q_heads % a.kv_heads != 0 ||
      partition_size % 32 != 0) {
    return int(cudaErrorInvalidValue);
  }
  int err = 0;
  with_dev_type(a.dtype, [&](auto p) {
    using T = elem_t<decltype(p)>;
    switch (a.head_dim) {
      case 64: err = launch<T, 64>(a, partition_size, stream); break;
      case 128: err = launch<T, 128>(a, partition_size, stream); break;
      default: err = launch<T, 256>(a, partition_size, stream); break;
    }
  });
  return err;
}

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
