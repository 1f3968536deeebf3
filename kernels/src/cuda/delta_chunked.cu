// The gated delta rule in chunked form (prefill): transformers'
// torch_chunk_gated_delta_rule, reassociated. Compiled by nvcc and, unchanged,
// by the host compiler against the emulator (tests/kernels/test_delta_chunked_emu.cpp).
//
// One block per (sequence, value head, tile of kDvTile value columns) walks the
// sequence chunk after chunk (kChunk tokens; the last may be shorter), the
// state tile S [dk, kDvTile] held in shared memory. Per chunk, with cum the
// cumulative log decay from the chunk start:
//   A[i, j] = beta_i (k_i . k_j) e^(cum_i - cum_j), j < i   (strictly lower)
//   P[i, j] = (q_i . k_j) e^(cum_i - cum_j),        j <= i  (the decay mask)
//   R_i = beta_i (v_i - e^cum_i (k_i^T S))
//   v_new = (I + A)^-1 R                        (the UT transform: forward substitution)
//   o_i = e^cum_i (q_i^T S) + sum_j P[i, j] v_new_j
//   S <- e^cum_last S + sum_i k_i e^(cum_last - cum_i) v_new_i^T
// The reference forms u = T beta v and w = T beta k e^cum (T = (I + A)^-1) and
// takes v_new = u - w S; solving once on beta v - beta e^cum k S is the same
// product and needs no [chunk, dk] buffer for w. Every step of a chunk is
// spread over the block's threads, six barriers per chunk; only the
// substitution runs on one warp (one thread per value column: the rows
// depend on each other, the columns do not).
//
// Shared memory (floats): q and k rows [kChunk][dk + 1] each (the odd row
// stride keeps the k_j . k_i products free of bank conflicts), S tile
// [dk][kDvTile], A and P [kChunk][kChunk], R [kChunk][kDvTile], the q S part of
// the output [kChunk][kDvTile], and six per-token vectors: 133 KB at dk 128,
// so the launch opts in to more than 48 KB (sm_80 allows 163 KB, sm_90 227 KB).
// Larger dk go to the token-by-token kernel (delta_rule_chunked_fits).
#include "cuda/compat.cuh"
#include "cuda/delta_chunked_launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {
namespace {

using kernels::DeltaRuleArgs;

constexpr int kChunk = 64;
constexpr int kDvTile = 32;  // = warp size: one warp covers a row of a [*, kDvTile] tile
constexpr int kChunkThreads = 256;
constexpr int kSmemLimit = 160 * 1024;

MMGEN_DEV float load_scalar(const void* p, DType d, std::int64_t i) {
  switch (d) {
    case DType::bf16: return to_f32(static_cast<const dev_bf16*>(p)[i]);
    case DType::f16: return to_f32(static_cast<const dev_f16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

std::size_t chunked_smem_floats(std::int64_t dk) {
  return std::size_t(2 * kChunk * (dk + 1) + dk * kDvTile + 2 * kChunk * kChunk + 2 * kChunk * kDvTile + 6 * kChunk);
}

template <class T>
__global__ void __launch_bounds__(kChunkThreads) delta_rule_chunked_kernel(DeltaRuleArgs a) {
  MMGEN_DYNAMIC_SHARED(float, smem);
  const int dk = int(a.dk), ldk = dk + 1, H = int(a.v_heads);
  float* Qs = smem;                  // [kChunk][ldk]
  float* Ks = Qs + kChunk * ldk;     // [kChunk][ldk]
  float* Ss = Ks + kChunk * ldk;     // [dk][kDvTile]
  float* Am = Ss + dk * kDvTile;     // [kChunk][kChunk]
  float* Pm = Am + kChunk * kChunk;  // [kChunk][kChunk]
  float* Rs = Pm + kChunk * kChunk;  // [kChunk][kDvTile]: R, then v_new
  float* Os = Rs + kChunk * kDvTile; // [kChunk][kDvTile]: e^cum q S
  float* cum = Os + kChunk * kDvTile;
  float* bet = cum + kChunk;
  float* ecum = bet + kChunk;
  float* dec = ecum + kChunk;
  float* qn = dec + kChunk;
  float* kn = qn + kChunk;

  const int tid = int(threadIdx.x), nt = int(blockDim.x);
  const std::int64_t b = blockIdx.x / H;
  const int h = int(blockIdx.x % H), kh = h / (H / int(a.k_heads));
  const std::int64_t c0 = std::int64_t(blockIdx.y) * kDvTile;
  const std::int64_t row = a.state_indices ? a.state_indices[b] : b;
  T* out = static_cast<T*>(a.out) + (b * a.tokens * H + h) * a.dv + c0;
  if (row < 0 || row >= a.states) {  // uniform over the block: no barrier is skipped by some threads only
    const float fill = row < 0 ? 0.0f : NAN;
    for (std::int64_t e = tid; e < a.tokens * kDvTile; e += nt) {
      const std::int64_t t = e / kDvTile, c = e % kDvTile;
      if (c0 + c < a.dv) out[t * H * a.dv + c] = from_f32<T>(fill);
    }
    return;
  }
  float* state = a.state + (row * H + h) * a.dk * a.dv + c0;  // S[i][c] at state[i * dv + c]
  for (int e = tid; e < dk * kDvTile; e += nt) {
    const int i = e / kDvTile, c = e % kDvTile;
    Ss[e] = c0 + c < a.dv ? state[i * a.dv + c] : 0.0f;
  }
  const T* qb = static_cast<const T*>(a.q) + b * a.q_sb + kh * a.q_sh;
  const T* kb = static_cast<const T*>(a.k) + b * a.k_sb + kh * a.k_sh;
  const T* vb = static_cast<const T*>(a.v) + b * a.v_sb + h * a.v_sh + c0;

  for (std::int64_t s0 = 0; s0 < a.tokens; s0 += kChunk) {
    const int L = int(a.tokens - s0 < kChunk ? a.tokens - s0 : kChunk);
    // (1) raw q, k rows; g and beta.
    for (int e = tid; e < L * dk; e += nt) {
      const int i = e / dk, j = e % dk;
      Qs[i * ldk + j] = to_f32(qb[(s0 + i) * a.q_st + j]);
      Ks[i * ldk + j] = to_f32(kb[(s0 + i) * a.k_st + j]);
    }
    if (tid < L) {
      const std::int64_t t = s0 + tid;
      cum[tid] = load_scalar(a.g, a.g_dtype, b * a.g_sb + t * a.g_st + h * a.g_sh);
      bet[tid] = load_scalar(a.beta, a.beta_dtype, b * a.beta_sb + t * a.beta_st + h * a.beta_sh);
    }
    __syncthreads();
    // (2) the norms of the rows (a thread per row: a few hundred cycles, and no
    // warp shuffles, which the emulator runs as barriers); the cumulative decay.
    if (tid < L) {
      float sq = 0.0f, sk = 0.0f;
      for (int j = 0; j < dk; ++j) {
        sq += Qs[tid * ldk + j] * Qs[tid * ldk + j];
        sk += Ks[tid * ldk + j] * Ks[tid * ldk + j];
      }
      // x * rsqrt(sum(x^2) + 1e-6) in float32; q also scaled by dk^-0.5
      qn[tid] = a.l2norm ? rsqrtf(sq + 1e-6f) : 1.0f;
      kn[tid] = a.l2norm ? rsqrtf(sk + 1e-6f) : 1.0f;
    }
    if (tid == nt - 1) {
      float acc = 0.0f;
      for (int i = 0; i < L; ++i) cum[i] = acc += cum[i];
    }
    __syncthreads();
    for (int e = tid; e < L * dk; e += nt) {
      const int i = e / dk, j = e % dk;
      Qs[i * ldk + j] = (Qs[i * ldk + j] * qn[i]) * a.scale;
      Ks[i * ldk + j] = Ks[i * ldk + j] * kn[i];
    }
    __syncthreads();
    // (3) A and P (pairs i, j: a warp shares i and walks consecutive j); and
    // per (token, column): R and the q S part of the output.
    for (int e = tid; e < kChunk * kChunk; e += nt) {
      const int i = e / kChunk, j = e % kChunk;
      float kk = 0.0f, qk = 0.0f;
      if (i < L && j <= i) {
        for (int x = 0; x < dk; ++x) {
          const float kj = Ks[j * ldk + x];
          kk += Ks[i * ldk + x] * kj;
          qk += Qs[i * ldk + x] * kj;
        }
        const float d = expf(cum[i] - cum[j]);
        kk = j < i ? (bet[i] * kk) * d : 0.0f;
        qk = qk * d;
      }
      Am[e] = kk;
      Pm[e] = qk;
    }
    for (int e = tid; e < L * kDvTile; e += nt) {
      const int i = e / kDvTile, c = e % kDvTile;
      float ks = 0.0f, qs = 0.0f;
      for (int x = 0; x < dk; ++x) {
        const float s = Ss[x * kDvTile + c];
        ks += Ks[i * ldk + x] * s;
        qs += Qs[i * ldk + x] * s;
      }
      const float ei = expf(cum[i]);
      const float vv = c0 + c < a.dv ? to_f32(vb[(s0 + i) * a.v_st + c]) : 0.0f;
      Rs[e] = (vv - ks * ei) * bet[i];
      Os[e] = qs * ei;
    }
    if (tid < L) {
      ecum[tid] = expf(cum[tid]);
      dec[tid] = expf(cum[L - 1] - cum[tid]);
    }
    __syncthreads();
    // (4) v_new = (I + A)^-1 R: forward substitution, one thread per column.
    if (tid < kDvTile) {
      for (int i = 1; i < L; ++i) {
        float r = Rs[i * kDvTile + tid];
        for (int j = 0; j < i; ++j) r -= Am[i * kChunk + j] * Rs[j * kDvTile + tid];
        Rs[i * kDvTile + tid] = r;
      }
    }
    __syncthreads();
    // (5) outputs; the state update (reads only v_new, k and its own S entries).
    for (int e = tid; e < L * kDvTile; e += nt) {
      const int i = e / kDvTile, c = e % kDvTile;
      float o = Os[e];
      for (int j = 0; j <= i; ++j) o += Pm[i * kChunk + j] * Rs[j * kDvTile + c];
      if (c0 + c < a.dv) out[(s0 + i) * H * a.dv + c] = from_f32<T>(o);
    }
    const float elast = ecum[L - 1];
    for (int e = tid; e < dk * kDvTile; e += nt) {
      const int x = e / kDvTile, c = e % kDvTile;
      float s = Ss[e] * elast;
      for (int i = 0; i < L; ++i) s += Ks[i * ldk + x] * (dec[i] * Rs[i * kDvTile + c]);
      Ss[e] = s;
    }
    __syncthreads();  // the next chunk rewrites q, k, A, P, R
  }
  for (int e = tid; e < dk * kDvTile; e += nt) {
    const int i = e / kDvTile, c = e % kDvTile;
    if (c0 + c < a.dv) state[i * a.dv + c] = Ss[e];
  }
}

}  // namespace

bool delta_rule_chunked_fits(const DeltaRuleArgs& a) {
  return chunked_smem_floats(a.dk) * sizeof(float) <= std::size_t(kSmemLimit);
}

int gated_delta_rule_by_chunks(const DeltaRuleArgs& a, void* stream, int threads) {
  if (threads == 0) threads = kChunkThreads;
  // Any whole number of warps with a thread per token of a chunk works.
  if (threads % 32 != 0 || threads < kChunk || threads > kChunkThreads) return int(cudaErrorInvalidConfiguration);
  if (a.batch == 0 || a.tokens == 0 || a.v_heads == 0 || a.dv == 0) return 0;
  if (!delta_rule_chunked_fits(a)) return int(cudaErrorInvalidValue);
  int err = 0;
  with_dev_type(a.dtype, [&](auto tp) {
    using T = elem_t<decltype(tp)>;
    const dim3 grid{unsigned(a.batch * a.v_heads), unsigned((a.dv + kDvTile - 1) / kDvTile)};
    const std::size_t smem = chunked_smem_floats(a.dk) * sizeof(float);
    auto* k = &delta_rule_chunked_kernel<T>;
    if (smem > 48 * 1024) err = int(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    if (err == 0) {
      MMGEN_LAUNCH(k, grid, dim3(unsigned(threads)), smem, stream)(a);
      err = int(cudaGetLastError());
    }
  });
  return err;
}

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
