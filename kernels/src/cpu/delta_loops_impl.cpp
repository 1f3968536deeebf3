// CPU loops of the Gated DeltaNet ops. Compiled once per ISA level (see
// kernels/CMakeLists.txt: delta_loops_<isa>.cpp), under the same rules as
// loops_impl.cpp: internal linkage only, and no out-of-line inline function
// from shared headers (hence the local scalar conversions below instead of
// scalar.hpp's helpers, and __builtin_expf/__builtin_sqrtf instead of <cmath>).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

// GCC 12 flags the deliberately undefined vectors inside its AVX-512
// conversion intrinsics (_mm512_cvtps_ph, _mm512_cvtph_ps) once inlined here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "common/scalar.hpp"
#include "cpu/delta_loops.hpp"

#ifndef MMGEN_CPU_ISA
#error "MMGEN_CPU_ISA must name the ISA variant (baseline, avx2, avx512)"
#endif

namespace mmgen::kernels::cpu {
namespace {

#include "cpu/vec.hpp"

using i64 = std::int64_t;

template <class F> MMGEN_INLINE void with_type(DType d, F&& f) {
  switch (d) {
    case DType::f32: f(static_cast<float*>(nullptr)); break;
    case DType::bf16: f(static_cast<bf16_t*>(nullptr)); break;
    case DType::f16: f(static_cast<f16_t*>(nullptr)); break;
  }
}
template <class P> using elem_t = std::remove_cv_t<std::remove_pointer_t<P>>;

// ---- scalar conversions (same rounding as common/scalar.hpp, local copies) ---------
MMGEN_INLINE float ld(const float* p) { return *p; }
MMGEN_INLINE float ld(const bf16_t* p) { return __builtin_bit_cast(float, std::uint32_t(p->bits) << 16); }
MMGEN_INLINE float ld(const f16_t* p) {
  const std::uint32_t h = p->bits;
  const std::uint32_t sign = (h & 0x8000u) << 16, em = h & 0x7fffu;
  float mag = __builtin_bit_cast(float, em << 13) * 0x1p112f;
  if (em >= 0x7c00u) mag = __builtin_bit_cast(float, (em << 13) | 0x7f800000u);
  return __builtin_bit_cast(float, __builtin_bit_cast(std::uint32_t, mag) | sign);
}
MMGEN_INLINE void st(float* p, float v) { *p = v; }
MMGEN_INLINE void st(bf16_t* p, float v) {
  std::uint32_t u = __builtin_bit_cast(std::uint32_t, v);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    p->bits = 0x7fc0;
    return;
  }
  u += 0x7fffu + ((u >> 16) & 1u);
  p->bits = std::uint16_t(u >> 16);
}
MMGEN_INLINE void st(f16_t* p, float v) {
  std::uint32_t u = __builtin_bit_cast(std::uint32_t, v);
  const std::uint32_t sign = u & 0x80000000u;
  u ^= sign;
  std::uint32_t o;
  if (u >= (143u << 23)) {
    o = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (u < (113u << 23)) {
    const float magic = __builtin_bit_cast(float, ((127u - 15u) + (23u - 10u) + 1u) << 23);
    o = __builtin_bit_cast(std::uint32_t, __builtin_bit_cast(float, u) + magic) -
        __builtin_bit_cast(std::uint32_t, magic);
  } else {
    const std::uint32_t mant_odd = (u >> 13) & 1u;
    u += (std::uint32_t(15 - 127) << 23) + 0xfffu;
    u += mant_odd;
    o = u >> 13;
  }
  p->bits = std::uint16_t(o | (sign >> 16));
}
template <class T> MMGEN_INLINE float round_s(float v) {
  T t;
  st(&t, v);
  return ld(&t);
}

// Per-thread float scratch that only grows.
struct Scratch {
  float* data = nullptr;
  i64 size = 0;
  ~Scratch() { std::free(data); }
  float* get(i64 n) {
    if (n > size) {
      std::free(data);
      size = (n + 1023) & ~i64(1023);
      data = static_cast<float*>(std::aligned_alloc(64, size_t(size) * sizeof(float)));
      if (!data) std::abort();
    }
    return data;
  }
};
thread_local Scratch tl_scratch;

MMGEN_INLINE i64 pad_w(i64 n) { return (n + W - 1) / W * W; }

// ---- gated delta rule ---------------------------------------------------------------
// One item = one (sequence, value head): its state S [dk, dv] stays in cache over
// all T tokens. Per token two passes over S: kv = (S e^g)^T k; then
// S <- S e^g + k delta^T and o = S^T q in the same sweep. The vectors run along dv.
template <class T, class G, class Bt> void delta_rule_t(const DeltaRuleArgs& a, i64 i0, i64 i1) {
  const i64 dk = a.dk, dv = a.dv, H = a.v_heads, ratio = a.v_heads / a.k_heads, Tn = a.tokens;
  const i64 dkp = pad_w(dk), dvp = pad_w(dv);
  float* buf = tl_scratch.get(2 * dkp + 3 * dvp);
  float* qf = buf;
  float* kf = qf + dkp;
  float* kv = kf + dkp;
  float* dl = kv + dvp;
  float* o = dl + dvp;
  for (i64 it = i0; it < i1; ++it) {
    const i64 b = it / H, h = it % H, kh = h / ratio;
    const i64 row = a.state_indices ? a.state_indices[b] : b;
    if (row < 0) {  // padding entry: zeros out, state untouched
      for (i64 t = 0; t < Tn; ++t) {
        T* op = static_cast<T*>(a.out) + ((b * Tn + t) * H + h) * dv;
        for_chunks(dv, [&](i64 j, int c) { store_n(op + j, splat(0.0f), c); });
      }
      continue;
    }
    float* S = a.state + (row * H + h) * dk * dv;
    for (i64 t = 0; t < Tn; ++t) {
      const T* qp = static_cast<const T*>(a.q) + b * a.q_sb + t * a.q_st + kh * a.q_sh;
      const T* kp = static_cast<const T*>(a.k) + b * a.k_sb + t * a.k_st + kh * a.k_sh;
      const T* vp = static_cast<const T*>(a.v) + b * a.v_sb + t * a.v_st + h * a.v_sh;
      const float gt = ld(static_cast<const G*>(a.g) + b * a.g_sb + t * a.g_st + h * a.g_sh);
      const float bt = ld(static_cast<const Bt*>(a.beta) + b * a.beta_sb + t * a.beta_st + h * a.beta_sh);
      fv sq = {}, sk = {};
      for_chunks(dk, [&](i64 j, int c) {
        const fv qv = load_n(qp + j, c), kv_ = load_n(kp + j, c);
        store(qf + j, qv);
        store(kf + j, kv_);
        sq += qv * qv;
        sk += kv_ * kv_;
      });
      float qn = 1.0f, kn = 1.0f;
      if (a.l2norm) {  // x * rsqrt(sum(x^2) + 1e-6), in float32 (transformers' l2norm)
        qn = 1.0f / __builtin_sqrtf(hsum(sq) + 1e-6f);
        kn = 1.0f / __builtin_sqrtf(hsum(sk) + 1e-6f);
      }
      for (i64 j = 0; j < dkp; j += W) {
        store(qf + j, (load(qf + j) * qn) * a.scale);
        store(kf + j, load(kf + j) * kn);
      }
      const float e = __builtin_expf(gt);
      const fv ev = splat(e);
      for (i64 j = 0; j < dvp; j += W) store(kv + j, splat(0.0f));
      for (i64 i = 0; i < dk; ++i) {
        const fv ki = splat(kf[i]);
        const float* Si = S + i * dv;
        for_chunks(dv, [&](i64 j, int c) { store(kv + j, load(kv + j) + (load_n(Si + j, c) * ev) * ki); });
      }
      for_chunks(dv, [&](i64 j, int c) { store(dl + j, (load_n(vp + j, c) - load(kv + j)) * bt); });
      for (i64 j = 0; j < dvp; j += W) store(o + j, splat(0.0f));
      for (i64 i = 0; i < dk; ++i) {
        const fv ki = splat(kf[i]), qi = splat(qf[i]);
        float* Si = S + i * dv;
        for_chunks(dv, [&](i64 j, int c) {
          const fv s = load_n(Si + j, c) * ev + ki * load(dl + j);
          store_n(Si + j, s, c);
          store(o + j, load(o + j) + s * qi);
        });
      }
      T* op = static_cast<T*>(a.out) + ((b * Tn + t) * H + h) * dv;
      for_chunks(dv, [&](i64 j, int c) { store_n(op + j, load(o + j), c); });
    }
  }
}
void delta_rule(const DeltaRuleArgs& a, i64 i0, i64 i1) {
  with_type(a.dtype, [&](auto tp) {
    with_type(a.g_dtype, [&](auto gp) {
      with_type(a.beta_dtype, [&](auto bp) {
        delta_rule_t<elem_t<decltype(tp)>, elem_t<decltype(gp)>, elem_t<decltype(bp)>>(a, i0, i1);
      });
    });
  });
}

// ---- causal conv1d ---------------------------------------------------------------------
// One item = a sequence and a run of channels. Where the channels of x are
// contiguous (the model's transposed view) the loop runs vectorised across
// channels; other layouts take a scalar path that sums the taps in the same
// order with the same silu.
template <class T, class Wt> void causal_conv1d_t(const CausalConvArgs& a, i64 n, i64 i0, i64 i1) {
  const i64 C = a.channels, S = a.seq, K = a.width, L = a.state_len;
  const i64 chunks = (C + n - 1) / n, np = pad_w(n);
  float* wt = tl_scratch.get((K + 1) * np);  // wt[k * np + j]: tap k of channel c0 + j; row K: bias
  for (i64 it = i0; it < i1; ++it) {
    const i64 b = it / chunks, c0 = (it % chunks) * n, c1 = c0 + n < C ? c0 + n : C, nc = c1 - c0;
    const i64 row = a.state ? (a.state_indices ? a.state_indices[b] : b) : 0;
    T* out_b = static_cast<T*>(a.out) + b * S * C;
    if (a.state && row < 0) {  // padding entry: zeros out, state untouched
      for (i64 s = 0; s < S; ++s)
        for (i64 ch = c0; ch < c1; ++ch) st(out_b + s * C + ch, 0.0f);
      continue;
    }
    for (i64 j = 0; j < nc; ++j) {
      const Wt* w = static_cast<const Wt*>(a.weight) + (c0 + j) * K;
      for (i64 k = 0; k < K; ++k) wt[k * np + j] = ld(w + k);
      wt[K * np + j] = a.bias ? ld(static_cast<const Wt*>(a.bias) + c0 + j) : 0.0f;
    }
    const T* x_b = static_cast<const T*>(a.x) + b * a.x_sb;
    const T* st_b = a.state ? static_cast<const T*>(a.state) + row * a.st_sb : nullptr;
    if (a.x_sc != 1) {  // general strides: scalar, one channel at a time
      for (i64 j = 0; j < nc; ++j) {
        const i64 ch = c0 + j;
        const T* x = x_b + ch * a.x_sc;
        const T* state = st_b ? st_b + ch * a.st_sc : nullptr;
        for (i64 s = 0; s < S; ++s) {
          float acc = wt[K * np + j];
          for (i64 k = 0; k < K; ++k) {
            const i64 p = s - (K - 1) + k;
            float v = 0.0f;
            if (p >= 0) {
              v = round_s<Wt>(ld(x + p * a.x_ss));
            } else if (state) {
              v = round_s<Wt>(ld(state + (L + p) * a.st_sl));
            }
            acc = acc + wt[k * np + j] * v;
          }
          float y = round_s<Wt>(acc);
          if (a.silu) y = round_s<Wt>(y / (1.0f + vexp(splat(-y))[0]));
          st(out_b + s * C + ch, y);
        }
      }
    } else {
      // Channels contiguous in x: vectors across channels. Window entries
      // before the first token come from the state (gathered, one lane per
      // channel) or are zeros.
      for (i64 s = 0; s < S; ++s) {
        for_chunks(nc, [&](i64 j, int c) {
          fv acc = load_n(wt + K * np + j, c);
          for (i64 k = 0; k < K; ++k) {
            const i64 p = s - (K - 1) + k;
            fv v = splat(0.0f);
            if (p >= 0) {
              v = round_to<Wt>(load_n(x_b + p * a.x_ss + c0 + j, c));
            } else if (st_b) {
              float g[W] = {};
              for (int u = 0; u < c; ++u) g[u] = ld(st_b + (c0 + j + u) * a.st_sc + (L + p) * a.st_sl);
              v = round_to<Wt>(load(g));
            }
            acc = acc + load_n(wt + k * np + j, c) * v;
          }
          fv y = round_to<Wt>(acc);
          if (a.silu) y = round_to<Wt>(y / (1.0f + vexp(-y)));
          store_n(out_b + s * C + c0 + j, y, c);
        });
      }
    }
    if (a.state) {
      // New window = the last L entries of [state | x]. Ascending l reads
      // source index l + S >= l, never a slot already rewritten.
      for (i64 ch = c0; ch < c1; ++ch) {
        const T* x = x_b + ch * a.x_sc;
        T* state = static_cast<T*>(a.state) + row * a.st_sb + ch * a.st_sc;
        for (i64 l = 0; l < L; ++l) {
          const i64 src = l + S;
          if (src < L) {
            state[l * a.st_sl] = state[src * a.st_sl];
          } else if constexpr (std::is_same_v<Wt, T>) {
            state[l * a.st_sl] = x[(src - L) * a.x_ss];  // .to(weight dtype) is the identity here
          } else {
            st(state + l * a.st_sl, round_s<Wt>(ld(x + (src - L) * a.x_ss)));
          }
        }
      }
    }
  }
}
void causal_conv1d(const CausalConvArgs& a, i64 n, i64 i0, i64 i1) {
  with_type(a.dtype, [&](auto tp) {
    using T = elem_t<decltype(tp)>;
    if (a.w_dtype == a.dtype) {
      causal_conv1d_t<T, T>(a, n, i0, i1);
    } else {
      causal_conv1d_t<T, float>(a, n, i0, i1);
    }
  });
}

// ---- gated rms norm ------------------------------------------------------------------------
template <class T, class Z, class Wt> void gated_rms_norm_t(const GatedRmsNormArgs& a, i64 r0, i64 r1) {
  // weight * normed rounds to result_type(weight, x): x's dtype unless weight is float32.
  using Prod = std::conditional_t<std::is_same_v<Wt, float>, float, T>;
  const i64 n = a.cols;
  const Wt* w = static_cast<const Wt*>(a.weight);
  for (i64 r = r0; r < r1; ++r) {
    const T* x = static_cast<const T*>(a.x) + (r / a.x_rows.inner) * a.x_rows.stride_outer +
                 (r % a.x_rows.inner) * a.x_rows.stride_inner;
    const Z* z = static_cast<const Z*>(a.z) + (r / a.z_rows.inner) * a.z_rows.stride_outer +
                 (r % a.z_rows.inner) * a.z_rows.stride_inner;
    T* out = static_cast<T*>(a.out) + r * n;
    fv acc = {};
    for_chunks(n, [&](i64 j, int c) {
      const fv v = load_n(x + j, c);
      acc += v * v;
    });
    const float rinv = 1.0f / __builtin_sqrtf(hsum(acc) / float(n) + a.eps);
    for_chunks(n, [&](i64 j, int c) {
      const fv normed = round_to<T>(load_n(x + j, c) * rinv);
      const fv h = round_to<Prod>(load_n(w + j, c) * normed);
      const fv zf = load_n(z + j, c);
      const fv gate = zf / (1.0f + vexp(-zf));
      store_n(out + j, h * gate, c);
    });
  }
}
void gated_rms_norm(const GatedRmsNormArgs& a, i64 r0, i64 r1) {
  with_type(a.dtype, [&](auto tp) {
    using T = elem_t<decltype(tp)>;
    with_type(a.z_dtype, [&](auto zp) {
      using Z = elem_t<decltype(zp)>;
      if (a.w_dtype == a.dtype) {
        gated_rms_norm_t<T, Z, T>(a, r0, r1);
      } else {
        gated_rms_norm_t<T, Z, float>(a, r0, r1);
      }
    });
  });
}

}  // namespace

#define MMGEN_CAT2(a, b) a##b
#define MMGEN_CAT(a, b) MMGEN_CAT2(a, b)
#define MMGEN_STR2(a) #a
#define MMGEN_STR(a) MMGEN_STR2(a)

const DeltaLoops& MMGEN_CAT(delta_loops_, MMGEN_CPU_ISA)() {
  static const DeltaLoops table{
      .isa = MMGEN_STR(MMGEN_CPU_ISA),
      .delta_rule = &delta_rule,
      .causal_conv1d = &causal_conv1d,
      .gated_rms_norm = &gated_rms_norm,
  };
  return table;
}

}  // namespace mmgen::kernels::cpu
