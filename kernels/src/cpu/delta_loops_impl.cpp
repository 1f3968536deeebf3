// CPU loops of the Gated DeltaNet ops. Compiled once per ISA level (see
// kernels/CMakeLists.txt: delta_loops_<isa>.cpp), under the same rules as
// loops_impl.cpp: internal linkage only, and no out-of-line inline function
// from shared headers (hence the local scalar conversions below instead of
// scalar.hpp's helpers, and __builtin_expf/__builtin_sqrtf instead of <cmath>).
#include "cpu/isa_prologue.hpp"

#include "common/scalar.hpp"
#include "cpu/delta_loops.hpp"

namespace mmgen::kernels::cpu {
namespace {

#include "cpu/vec.hpp"


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
MMGEN_INLINE i64 imin(i64 x, i64 y) { return x < y ? x : y; }

// ---- gated delta rule ---------------------------------------------------------------
// One item = one (sequence, value head): its state S [dk, dv] stays in cache over
// all T tokens. Per token two passes over S: kv = (S e^g)^T k; then
// S <- S e^g + k delta^T and o = S^T q in the same sweep. The vectors run along dv.
// A padding entry of state_indices (< 0): its outputs for value head h of
// sequence b are zeros over all Tn tokens; its state is left as it is.
template <class T> void zero_head_outputs(const DeltaRuleArgs& a, i64 b, i64 h, i64 Tn) {
  const i64 H = a.v_heads, dv = a.dv;
  for (i64 t = 0; t < Tn; ++t) {
    T* op = static_cast<T*>(a.out) + ((b * Tn + t) * H + h) * dv;
    for_chunks(dv, [&](i64 j, int c) { store_n(op + j, splat(0.0f), c); });
  }
}

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
      zero_head_outputs<T>(a, b, h, Tn);
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

// ---- gated delta rule, chunked ---------------------------------------------------------
// The same recurrence evaluated C tokens at a time (transformers'
// torch_chunk_gated_delta_rule, reassociated). Within a chunk, with cum the
// cumulative log decay from the chunk start and S the state entering it:
//   A[i, j] = beta_i (k_i . k_j) e^(cum_i - cum_j), j < i   (strictly lower)
//   P[i, j] = (q_i . k_j) e^(cum_i - cum_j),        j <= i
//   v_new = (I + A)^-1 R,  R_i = beta_i (v_i - e^cum_i (k_i^T S))
//   o_i = e^cum_i (q_i^T S) + sum_j P[i, j] v_new_j
//   S <- e^cum_last S + sum_i k_i e^(cum_last - cum_i) v_new_i^T
// (the reference's u - w S with u = T beta v, w = T beta k e^cum, T = (I + A)^-1,
// taken as one solve on beta v - beta e^cum k S). Everything is a small
// matrix product on float32 scratch rows padded to whole vectors, done by the
// register-blocked kernel below, plus a forward substitution for the solve.

MMGEN_INLINE fv fmadd(fv a, fv b, fv c) {
#if MMGEN_W == 16
  return (fv)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif MMGEN_W == 8 && defined(__FMA__)
  return (fv)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}

// Cm[m, n] = cs * Cm[m, n] + alpha * sum_kk A[m * lda + kk * acs] * B[kk * ldb + n]
// for m < M, n < N (N a multiple of W). tri_k: rows [m0, m0 + MR) sum kk < m0 + MR
// only (A is zero beyond); tri_n: they compute n < m0 + MR (rounded up to W)
// only, the rest of the row is left as it was.
struct Gemm {
  i64 M, N, K;
  const float* A;
  i64 lda, acs;
  const float* B;
  i64 ldb;
  float* C;
  i64 ldc;
  float alpha = 1.0f, cs = 0.0f;
  bool tri_k = false, tri_n = false;
};

template <int MR, int NV>
MMGEN_INLINE void gemm_tile(const Gemm& g, i64 m0, i64 n0, i64 K) {
  fv acc[MR][NV];
  MMGEN_UNROLL_ALL
  for (int r = 0; r < MR; ++r) {
    MMGEN_UNROLL_ALL
    for (int v = 0; v < NV; ++v) acc[r][v] = splat(0.0f);
  }
  const float* A = g.A + m0 * g.lda;
  const float* B = g.B + n0;
  for (i64 kk = 0; kk < K; ++kk) {
    fv b[NV];
    MMGEN_UNROLL_ALL
    for (int v = 0; v < NV; ++v) b[v] = load(B + kk * g.ldb + v * W);
    MMGEN_UNROLL_ALL
    for (int r = 0; r < MR; ++r) {
      const fv a = splat(A[r * g.lda + kk * g.acs]);
      MMGEN_UNROLL_ALL
      for (int v = 0; v < NV; ++v) acc[r][v] = fmadd(a, b[v], acc[r][v]);
    }
  }
  MMGEN_UNROLL_ALL
  for (int r = 0; r < MR; ++r) {
    MMGEN_UNROLL_ALL
    for (int v = 0; v < NV; ++v) {
      float* c = g.C + (m0 + r) * g.ldc + n0 + v * W;
      store(c, g.cs == 0.0f ? acc[r][v] * g.alpha : load(c) * g.cs + acc[r][v] * g.alpha);
    }
  }
}

template <int MR> MMGEN_INLINE void gemm_block(const Gemm& g, i64 m0, i64 n0, int nv) {
  const i64 K = g.tri_k ? imin(g.K, m0 + MR) : g.K;
  if (nv == 2) {
    gemm_tile<MR, 2>(g, m0, n0, K);
  } else {
    gemm_tile<MR, 1>(g, m0, n0, K);
  }
}

// Rows per block: 6 x 2 vectors of accumulators with AVX-512's 32 registers,
// 4 x 2 with 16.
constexpr int kGemmRows = W == 16 ? 6 : 4;

// Rows m0.. (at most kGemmRows of them) against the column tile at n0.
void gemm_rows(const Gemm& g, i64 m0, i64 n0, int nv) {
  switch (imin(kGemmRows, g.M - m0)) {
    case 6: gemm_block<6>(g, m0, n0, nv); break;
    case 5: gemm_block<5>(g, m0, n0, nv); break;
    case 4: gemm_block<4>(g, m0, n0, nv); break;
    case 3: gemm_block<3>(g, m0, n0, nv); break;
    case 2: gemm_block<2>(g, m0, n0, nv); break;
    default: gemm_block<1>(g, m0, n0, nv); break;
  }
}

// Column tiles outside, row blocks inside: the tile of B (K x 2 vectors, 16 KB
// at K 128 with AVX-512) stays in L1 while every row block passes over it.
void gemm(const Gemm& g) {
  for (i64 n0 = 0; n0 < g.N; n0 += 2 * W) {
    for (i64 m0 = 0; m0 < g.M; m0 += kGemmRows) {
      const i64 rows = imin(kGemmRows, g.M - m0);
      const i64 N = g.tri_n ? imin(g.N, pad_w(m0 + rows)) : g.N;
      if (n0 >= N) continue;
      gemm_rows(g, m0, n0, N - n0 >= 2 * W ? 2 : 1);
    }
  }
}

template <class T, class G, class Bt> void delta_rule_chunked_t(const DeltaRuleArgs& a, i64 C, i64 i0, i64 i1) {
  const i64 dk = a.dk, dv = a.dv, H = a.v_heads, ratio = a.v_heads / a.k_heads, Tn = a.tokens;
  const i64 dkp = pad_w(dk), dvp = pad_w(dv), Cp = pad_w(C);
  float* const buf = tl_scratch.get(dk * dvp + 2 * C * dkp + dk * Cp + 2 * C * Cp + 2 * C * dvp + 4 * Cp);
  float* const S = buf;          // [dk, dvp] the state, padded columns zero
  float* const Kc = S + dk * dvp;  // [C, dkp] normalised k rows of the chunk
  float* const Qc = Kc + C * dkp;  // [C, dkp] normalised, scaled q rows
  float* const Kt = Qc + C * dkp;  // [dk, Cp] Kc transposed
  float* const Am = Kt + dk * Cp;  // [C, Cp] A (strictly lower)
  float* const Pm = Am + C * Cp;   // [C, Cp] P (lower)
  float* const R = Pm + C * Cp;    // [C, dvp] R, then v_new
  float* const O = R + C * dvp;    // [C, dvp] outputs
  float* const cum = O + C * dvp;  // [Cp] each
  float* const bet = cum + Cp;
  float* const ecum = bet + Cp;
  float* const dec = ecum + Cp;
  for (i64 it = i0; it < i1; ++it) {
    const i64 b = it / H, h = it % H, kh = h / ratio;
    const i64 row = a.state_indices ? a.state_indices[b] : b;
    if (row < 0) {  // padding entry: zeros out, state untouched
      zero_head_outputs<T>(a, b, h, Tn);
      continue;
    }
    float* const state = a.state + (row * H + h) * dk * dv;
    for (i64 i = 0; i < dk; ++i)
      for (i64 j = 0; j < dvp; j += W) store(S + i * dvp + j, load_n(state + i * dv + j, int(imin(W, dv - j))));
    for (i64 s0 = 0; s0 < Tn; s0 += C) {
      const i64 L = imin(C, Tn - s0), Lp = pad_w(L);
      // q, k rows: l2norm, q scaled; Kt gets zeros in the padding columns.
      for (i64 i = 0; i < L; ++i) {
        const i64 t = s0 + i;
        const T* qp = static_cast<const T*>(a.q) + b * a.q_sb + t * a.q_st + kh * a.q_sh;
        const T* kp = static_cast<const T*>(a.k) + b * a.k_sb + t * a.k_st + kh * a.k_sh;
        float* qr = Qc + i * dkp;
        float* kr = Kc + i * dkp;
        fv sq = {}, sk = {};
        for (i64 j = 0; j < dkp; j += W) {
          const int c = int(imin(W, dk - j));
          const fv qv = load_n(qp + j, c), kv_ = load_n(kp + j, c);
          store(qr + j, qv);
          store(kr + j, kv_);
          sq += qv * qv;
          sk += kv_ * kv_;
        }
        float qn = 1.0f, kn = 1.0f;
        if (a.l2norm) {  // x * rsqrt(sum(x^2) + 1e-6), in float32
          qn = 1.0f / __builtin_sqrtf(hsum(sq) + 1e-6f);
          kn = 1.0f / __builtin_sqrtf(hsum(sk) + 1e-6f);
        }
        for (i64 j = 0; j < dkp; j += W) {
          store(qr + j, (load(qr + j) * qn) * a.scale);
          store(kr + j, load(kr + j) * kn);
        }
        for (i64 j = 0; j < dk; ++j) Kt[j * Cp + i] = kr[j];
        bet[i] = ld(static_cast<const Bt*>(a.beta) + b * a.beta_sb + t * a.beta_st + h * a.beta_sh);
      }
      for (i64 j = 0; j < dk; ++j)
        for (i64 i = L; i < Lp; ++i) Kt[j * Cp + i] = 0.0f;
      double acc = 0.0;  // cumsum accumulates in double, as ATen's CPU cumsum does
      for (i64 i = 0; i < L; ++i) {
        acc += double(ld(static_cast<const G*>(a.g) + b * a.g_sb + (s0 + i) * a.g_st + h * a.g_sh));
        cum[i] = float(acc);
      }
      for (i64 i = L; i < Lp; ++i) cum[i] = cum[L - 1];
      for (i64 i = 0; i < L; ++i) {
        ecum[i] = __builtin_expf(cum[i]);
        dec[i] = __builtin_expf(cum[L - 1] - cum[i]);
      }
      // k_i . k_j and q_i . k_j for j <= i, then the decay and the masks.
      gemm({.M = L, .N = Lp, .K = dk, .A = Kc, .lda = dkp, .acs = 1, .B = Kt, .ldb = Cp, .C = Am, .ldc = Cp,
            .tri_n = true});
      gemm({.M = L, .N = Lp, .K = dk, .A = Qc, .lda = dkp, .acs = 1, .B = Kt, .ldb = Cp, .C = Pm, .ldc = Cp,
            .tri_n = true});
      for (i64 i = 0; i < L; ++i) {
        const fv ci = splat(cum[i]), bi = splat(bet[i]);
        const iv ii = iv{} + int(i);
        for (i64 j = 0; j < Lp; j += W) {
          const iv jj = iota() + int(j);
          float* ar = Am + i * Cp + j;
          float* pr = Pm + i * Cp + j;
          if (j > i) {
            store(ar, splat(0.0f));
            store(pr, splat(0.0f));
            continue;
          }
          const fv d = vexp(ci - load(cum + j));  // finite (clamped) where j > i; masked below
          store(ar, jj < ii ? (load(ar) * bi) * d : splat(0.0f));
          store(pr, jj <= ii ? load(pr) * d : splat(0.0f));
        }
      }
      // R = beta (v - e^cum (K S));  O = Q S
      gemm({.M = L, .N = dvp, .K = dk, .A = Kc, .lda = dkp, .acs = 1, .B = S, .ldb = dvp, .C = R, .ldc = dvp});
      gemm({.M = L, .N = dvp, .K = dk, .A = Qc, .lda = dkp, .acs = 1, .B = S, .ldb = dvp, .C = O, .ldc = dvp});
      for (i64 i = 0; i < L; ++i) {
        const T* vp = static_cast<const T*>(a.v) + b * a.v_sb + (s0 + i) * a.v_st + h * a.v_sh;
        const fv bi = splat(bet[i]), ei = splat(ecum[i]);
        float* rr = R + i * dvp;
        float* orow = O + i * dvp;
        for (i64 j = 0; j < dvp; j += W) {
          const fv vv = load_n(vp + j, int(imin(W, dv - j)));
          store(rr + j, (vv - load(rr + j) * ei) * bi);
          store(orow + j, load(orow + j) * ei);
        }
      }
      // v_new = (I + A)^-1 R by forward substitution, a row block at a time: the
      // rows above a block are applied as one product, then the block itself.
      for (i64 r0 = 0; r0 < L; r0 += kGemmRows) {
        const i64 mr = imin(kGemmRows, L - r0);
        if (r0 > 0) {
          gemm({.M = mr, .N = dvp, .K = r0, .A = Am + r0 * Cp, .lda = Cp, .acs = 1, .B = R, .ldb = dvp,
                .C = R + r0 * dvp, .ldc = dvp, .alpha = -1.0f, .cs = 1.0f});
        }
        for (i64 r = 1; r < mr; ++r) {
          float* xr = R + (r0 + r) * dvp;
          for (i64 j = r0; j < r0 + r; ++j) {
            const fv aij = splat(Am[(r0 + r) * Cp + j]);
            const float* xj = R + j * dvp;
            for (i64 n = 0; n < dvp; n += W) store(xr + n, load(xr + n) - aij * load(xj + n));
          }
        }
      }
      // O += P v_new, written out.
      gemm({.M = L, .N = dvp, .K = L, .A = Pm, .lda = Cp, .acs = 1, .B = R, .ldb = dvp, .C = O, .ldc = dvp,
            .cs = 1.0f, .tri_k = true});
      for (i64 i = 0; i < L; ++i) {
        T* op = static_cast<T*>(a.out) + ((b * Tn + s0 + i) * H + h) * dv;
        for_chunks(dv, [&](i64 j, int c) { store_n(op + j, load(O + i * dvp + j), c); });
      }
      // S <- e^cum_last S + K^T (e^(cum_last - cum) v_new)
      for (i64 i = 0; i < L; ++i) {
        const fv di = splat(dec[i]);
        for (i64 n = 0; n < dvp; n += W) store(R + i * dvp + n, load(R + i * dvp + n) * di);
      }
      gemm({.M = dk, .N = dvp, .K = L, .A = Kt, .lda = Cp, .acs = 1, .B = R, .ldb = dvp, .C = S, .ldc = dvp,
            .cs = ecum[L - 1]});
    }
    for (i64 i = 0; i < dk; ++i)
      for_chunks(dv, [&](i64 j, int c) { store_n(state + i * dv + j, load(S + i * dvp + j), c); });
  }
}
void delta_rule_chunked(const DeltaRuleArgs& a, i64 C, i64 i0, i64 i1) {
  with_type(a.dtype, [&](auto tp) {
    with_type(a.g_dtype, [&](auto gp) {
      with_type(a.beta_dtype, [&](auto bp) {
        delta_rule_chunked_t<elem_t<decltype(tp)>, elem_t<decltype(gp)>, elem_t<decltype(bp)>>(a, C, i0, i1);
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
  i64 staged_c0 = -1;  // the channel run `wt` holds (decode: every item of a thread has the same)
  for (i64 it = i0; it < i1; ++it) {
    const i64 b = it / chunks, c0 = (it % chunks) * n, c1 = c0 + n < C ? c0 + n : C, nc = c1 - c0;
    const i64 row = a.state ? (a.state_indices ? a.state_indices[b] : b) : 0;
    T* out_b = static_cast<T*>(a.out) + b * S * C;
    if (a.state && row < 0) {  // padding entry: zeros out, state untouched
      for (i64 s = 0; s < S; ++s)
        for (i64 ch = c0; ch < c1; ++ch) st(out_b + s * C + ch, 0.0f);
      continue;
    }
    if (c0 != staged_c0) {
      for (i64 j = 0; j < nc; ++j) {
        const Wt* w = static_cast<const Wt*>(a.weight) + (c0 + j) * K;
        for (i64 k = 0; k < K; ++k) wt[k * np + j] = ld(w + k);
        wt[K * np + j] = a.bias ? ld(static_cast<const Wt*>(a.bias) + c0 + j) : 0.0f;
      }
      staged_c0 = c0;
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

const DeltaLoops& MMGEN_CAT(delta_loops_, MMGEN_CPU_ISA)() {
  static const DeltaLoops table{
      .isa = MMGEN_STR(MMGEN_CPU_ISA),
      .delta_rule = &delta_rule,
      .delta_rule_chunked = &delta_rule_chunked,
      .causal_conv1d = &causal_conv1d,
      .gated_rms_norm = &gated_rms_norm,
  };
  return table;
}

}  // namespace mmgen::kernels::cpu
