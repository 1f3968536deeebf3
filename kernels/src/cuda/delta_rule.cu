// Gated DeltaNet kernels: the gated delta rule (prefill and decode), the
// depthwise causal conv1d with its state window, and the gated RMSNorm.
// Compiled by nvcc and, unchanged, by the host compiler against the emulator.
//
// Delta rule: value column j of the state evolves independently of the other
// columns (S[:, j] only meets k, q, v_j, g and beta), so each thread owns one
// column of one head's state and walks the tokens in order; q and k (after
// their l2 norm) are shared by the block. For dk 64 and 128 the column lives in
// registers for the whole sequence (read once, written once); other dk work on
// the state in global memory (cached in L1/L2).
#include "cuda/compat.cuh"
#include "cuda/delta_launch.hpp"

namespace mmgen::cuda_kernels {
inline namespace MMGEN_CUDA_NS {
namespace {

using kernels::CausalConvArgs;
using kernels::DeltaRuleArgs;
using kernels::GatedRmsNormArgs;

// An element of a tensor whose dtype is only known at run time (small
// per-token operands: g, beta, the gate of the norm).
MMGEN_DEV float load_any(const void* p, DType d, std::int64_t i) {
  switch (d) {
    case DType::bf16: return to_f32(static_cast<const dev_bf16*>(p)[i]);
    case DType::f16: return to_f32(static_cast<const dev_f16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

constexpr int kDeltaThreads = 64;

template <class T, int DKC>
__global__ void __launch_bounds__(kDeltaThreads) delta_rule_kernel(DeltaRuleArgs a) {
  __shared__ float scratch[32];
  MMGEN_DYNAMIC_SHARED(float, qk);  // q [dk] then k [dk], float32
  float* qs = qk;
  float* ks = qk + a.dk;
  const int H = int(a.v_heads), dk = int(a.dk);
  const std::int64_t b = blockIdx.x / H;
  const int h = int(blockIdx.x % H), kh = h / (H / int(a.k_heads));
  const std::int64_t col = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  const bool active = col < a.dv;
  const std::int64_t row = a.state_indices ? a.state_indices[b] : b;
  T* out = static_cast<T*>(a.out) + (b * a.tokens * H + h) * a.dv + col;
  if (row < 0 || row >= a.states) {  // uniform over the block: no barrier is skipped by some threads only
    const float fill = row < 0 ? 0.0f : NAN;
    if (active)
      for (std::int64_t t = 0; t < a.tokens; ++t) out[t * H * a.dv] = from_f32<T>(fill);
    return;
  }
  float* S = a.state + (row * H + h) * a.dk * a.dv + col;  // S[i][col] at S[i * dv]
  [[maybe_unused]] float sreg[DKC > 0 ? DKC : 1];
  if constexpr (DKC > 0) {
    if (active) {
      MMGEN_UNROLL
      for (int i = 0; i < DKC; ++i) sreg[i] = S[i * a.dv];
    }
  }
  const T* qb = static_cast<const T*>(a.q) + b * a.q_sb + kh * a.q_sh;
  const T* kb = static_cast<const T*>(a.k) + b * a.k_sb + kh * a.k_sh;
  const T* vb = static_cast<const T*>(a.v) + b * a.v_sb + h * a.v_sh;
  for (std::int64_t t = 0; t < a.tokens; ++t) {
    float sq = 0.0f, sk = 0.0f;
    for (int i = int(threadIdx.x); i < dk; i += int(blockDim.x)) {
      const float qv = to_f32(qb[t * a.q_st + i]), kv = to_f32(kb[t * a.k_st + i]);
      qs[i] = qv;
      ks[i] = kv;
      sq += qv * qv;
      sk += kv * kv;
    }
    float qn = 1.0f, kn = 1.0f;
    if (a.l2norm) {  // x * rsqrt(sum(x^2) + 1e-6) in float32
      qn = rsqrtf(block_sum(sq, scratch) + 1e-6f);
      kn = rsqrtf(block_sum(sk, scratch) + 1e-6f);
    }
    for (int i = int(threadIdx.x); i < dk; i += int(blockDim.x)) {  // the elements this thread wrote
      qs[i] = (qs[i] * qn) * a.scale;
      ks[i] = ks[i] * kn;
    }
    __syncthreads();
    if (active) {
      const float e = expf(load_any(a.g, a.g_dtype, b * a.g_sb + t * a.g_st + h * a.g_sh));
      const float beta = load_any(a.beta, a.beta_dtype, b * a.beta_sb + t * a.beta_st + h * a.beta_sh);
      float kv = 0.0f;
      if constexpr (DKC > 0) {
        MMGEN_UNROLL
        for (int i = 0; i < DKC; ++i) kv += (sreg[i] * e) * ks[i];
      } else {
        for (int i = 0; i < dk; ++i) kv += (S[i * a.dv] * e) * ks[i];
      }
      const float delta = (to_f32(vb[t * a.v_st + col]) - kv) * beta;
      float o = 0.0f;
      if constexpr (DKC > 0) {
        MMGEN_UNROLL
        for (int i = 0; i < DKC; ++i) {
          sreg[i] = sreg[i] * e + ks[i] * delta;
          o += sreg[i] * qs[i];
        }
      } else {
        for (int i = 0; i < dk; ++i) {
          const float s = S[i * a.dv] * e + ks[i] * delta;
          S[i * a.dv] = s;
          o += s * qs[i];
        }
      }
      out[t * H * a.dv] = from_f32<T>(o);
    }
    __syncthreads();  // the next token rewrites qs/ks
  }
  if constexpr (DKC > 0) {
    if (active) {
      MMGEN_UNROLL
      for (int i = 0; i < DKC; ++i) S[i * a.dv] = sreg[i];
    }
  }
}

// ---- causal conv1d ----------------------------------------------------------------------
constexpr int kConvThreads = 128;
constexpr int kConvTokens = 64;  // outputs per thread: blockIdx.y splits the sequence

template <class T, class Wt>
__global__ void __launch_bounds__(kConvThreads) causal_conv1d_kernel(CausalConvArgs a) {
  const std::int64_t c = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t b = blockIdx.z;
  if (c >= a.channels) return;  // no barriers in this kernel
  const std::int64_t s0 = std::int64_t(blockIdx.y) * kConvTokens;
  const std::int64_t s1 = s0 + kConvTokens < a.seq ? s0 + kConvTokens : a.seq;
  T* out = static_cast<T*>(a.out) + b * a.seq * a.channels + c;
  const T* state = nullptr;
  if (a.state) {
    const std::int64_t row = a.state_indices ? a.state_indices[b] : b;
    if (row < 0 || row >= a.states) {
      const float fill = row < 0 ? 0.0f : NAN;
      for (std::int64_t s = s0; s < s1; ++s) out[s * a.channels] = from_f32<T>(fill);
      return;
    }
    state = static_cast<const T*>(a.state) + row * a.st_sb + c * a.st_sc;
  }
  const Wt* w = static_cast<const Wt*>(a.weight) + c * a.width;
  const float bias = a.bias ? to_f32(static_cast<const Wt*>(a.bias)[c]) : 0.0f;
  const T* x = static_cast<const T*>(a.x) + b * a.x_sb + c * a.x_sc;
  const int K = int(a.width);
  for (std::int64_t s = s0; s < s1; ++s) {
    float acc = bias;
    for (int k = 0; k < K; ++k) {
      const std::int64_t p = s - (K - 1) + k;
      float v = 0.0f;
      if (p >= 0) {
        v = to_f32(from_f32<Wt>(to_f32(x[p * a.x_ss])));
      } else if (state) {
        v = to_f32(from_f32<Wt>(to_f32(state[(a.state_len + p) * a.st_sl])));
      }
      acc += to_f32(w[k]) * v;
    }
    float y = to_f32(from_f32<Wt>(acc));
    if (a.silu) y = to_f32(from_f32<Wt>(y / (1.0f + expf(-y))));
    out[s * a.channels] = from_f32<T>(y);
  }
}

// After causal_conv1d_kernel (stream order): window <- last L entries of [window | x].
template <class T, class Wt>
__global__ void __launch_bounds__(kConvThreads) conv_state_update_kernel(CausalConvArgs a) {
  const std::int64_t c = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t b = blockIdx.y;
  if (c >= a.channels) return;
  const std::int64_t row = a.state_indices ? a.state_indices[b] : b;
  if (row < 0 || row >= a.states) return;
  T* state = static_cast<T*>(a.state) + row * a.st_sb + c * a.st_sc;
  const T* x = static_cast<const T*>(a.x) + b * a.x_sb + c * a.x_sc;
  for (std::int64_t l = 0; l < a.state_len; ++l) {  // ascending: reads index l + S >= l
    const std::int64_t src = l + a.seq;
    state[l * a.st_sl] = src < a.state_len ? state[src * a.st_sl]
                                           : from_f32<T>(to_f32(from_f32<Wt>(to_f32(x[(src - a.state_len) * a.x_ss]))));
  }
}

// ---- gated rms norm: one warp per row, 8 rows per block --------------------------------------
template <class T, class Wt>
__global__ void __launch_bounds__(256) gated_rms_norm_kernel(GatedRmsNormArgs a, std::int64_t rows) {
  const std::int64_t r = std::int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return;  // whole warps; no block barrier here
  const int lane = int(threadIdx.x % 32);
  const T* x = static_cast<const T*>(a.x) + a.x_rows.offset(r);
  const std::int64_t zoff = a.z_rows.offset(r);
  const Wt* w = static_cast<const Wt*>(a.weight);
  T* out = static_cast<T*>(a.out) + r * a.cols;
  float ss = 0.0f;
  for (std::int64_t j = lane; j < a.cols; j += 32) {
    const float v = to_f32(x[j]);
    ss += v * v;
  }
  const float rinv = rsqrtf(warp_sum(ss) / float(a.cols) + a.eps);
  for (std::int64_t j = lane; j < a.cols; j += 32) {
    const float normed = to_f32(from_f32<T>(to_f32(x[j]) * rinv));  // .to(input_dtype)
    float hv = to_f32(w[j]) * normed;
    if constexpr (!std::is_same_v<Wt, float>) hv = to_f32(from_f32<T>(hv));  // weight * h in the model dtype
    const float z = load_any(a.z, a.z_dtype, zoff + j);
    out[j] = from_f32<T>(hv * (z / (1.0f + expf(-z))));
  }
}

}  // namespace

int gated_delta_rule(const DeltaRuleArgs& a, void* stream) {
  if (a.batch == 0 || a.tokens == 0 || a.v_heads == 0 || a.dv == 0) return 0;
  with_dev_type(a.dtype, [&](auto tp) {
    using T = elem_t<decltype(tp)>;
    const dim3 grid{unsigned(a.batch * a.v_heads), unsigned((a.dv + kDeltaThreads - 1) / kDeltaThreads)};
    const std::size_t smem = std::size_t(2 * a.dk) * sizeof(float);
    if (a.dk == 128) {
      auto* k = &delta_rule_kernel<T, 128>;
      MMGEN_LAUNCH(k, grid, dim3(kDeltaThreads), smem, stream)(a);
    } else if (a.dk == 64) {
      auto* k = &delta_rule_kernel<T, 64>;
      MMGEN_LAUNCH(k, grid, dim3(kDeltaThreads), smem, stream)(a);
    } else {
      auto* k = &delta_rule_kernel<T, 0>;
      MMGEN_LAUNCH(k, grid, dim3(kDeltaThreads), smem, stream)(a);
    }
  });
  return int(cudaGetLastError());
}

int causal_conv1d(const CausalConvArgs& a, void* stream) {
  if (a.batch == 0 || a.channels == 0 || a.seq == 0) return 0;
  int err = 0;
  with_dev_type(a.dtype, [&](auto tp) {
    using T = elem_t<decltype(tp)>;
    auto go = [&](auto wp) {
      using Wt = elem_t<decltype(wp)>;
      const unsigned cblocks = unsigned((a.channels + kConvThreads - 1) / kConvThreads);
      const dim3 grid{cblocks, unsigned((a.seq + kConvTokens - 1) / kConvTokens), unsigned(a.batch)};
      auto* conv = &causal_conv1d_kernel<T, Wt>;
      MMGEN_LAUNCH(conv, grid, dim3(kConvThreads), 0, stream)(a);
      err = int(cudaGetLastError());
      if (err == 0 && a.state && a.state_len > 0) {
        auto* upd = &conv_state_update_kernel<T, Wt>;
        MMGEN_LAUNCH(upd, dim3(cblocks, unsigned(a.batch)), dim3(kConvThreads), 0, stream)(a);
        err = int(cudaGetLastError());
      }
    };
    if (a.w_dtype == a.dtype) {
      go(static_cast<T*>(nullptr));
    } else {
      go(static_cast<float*>(nullptr));
    }
  });
  return err;
}

int gated_rms_norm(const GatedRmsNormArgs& a, void* stream) {
  const std::int64_t rows = a.x_rows.count();
  if (rows == 0 || a.cols == 0) return 0;
  with_dev_type(a.dtype, [&](auto tp) {
    using T = elem_t<decltype(tp)>;
    const dim3 grid{unsigned((rows + 7) / 8)};
    if (a.w_dtype == a.dtype) {
      auto* k = &gated_rms_norm_kernel<T, T>;
      MMGEN_LAUNCH(k, grid, dim3(256), 0, stream)(a, rows);
    } else {
      auto* k = &gated_rms_norm_kernel<T, float>;
      MMGEN_LAUNCH(k, grid, dim3(256), 0, stream)(a, rows);
    }
  });
  return int(cudaGetLastError());
}

}  // namespace MMGEN_CUDA_NS
}  // namespace mmgen::cuda_kernels
