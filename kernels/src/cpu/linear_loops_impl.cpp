// CPU loops of linear_small_m. Compiled once per ISA level (see
// kernels/CMakeLists.txt: linear_loops_<isa>.cpp), under the rules of
// loops_impl.cpp: internal linkage only, and no out-of-line inline function
// from shared headers.
//
// Decode multiplies a few token rows by whole weight matrices, so the time is
// reading each weight once. The loops stream a block of NR weight rows and
// keep MR x NR float32 accumulators (vectors along K) in registers: every
// weight vector loaded (and, for 16-bit weights, widened) is used by MR token
// rows, every token vector by NR weight rows. x is widened to float32 once per
// call by the caller (widen), so the inner loop converts only the weights.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

// GCC 12 flags the deliberately undefined vectors inside its AVX-512
// conversion intrinsics once inlined here (see loops_impl.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "common/scalar.hpp"
#include "cpu/linear_loops.hpp"

#ifndef MMGEN_CPU_ISA
#error "MMGEN_CPU_ISA must name the ISA variant (baseline, avx2, avx512)"
#endif

namespace mmgen::kernels::cpu {
namespace {

#include "cpu/vec.hpp"


// Register blocking. AVX-512 has 32 vector registers: 4 x 4 accumulators +
// 4 weight vectors + 1 token vector. AVX2 and SSE have 16: 2 x 4 + 4 + 1.
// One token row (the batch-1 decode) takes 8 weight rows at a time: more
// independent loads in flight for a loop that only streams memory.
constexpr int kMaxMr = W == 16 ? 4 : 2;
constexpr int kNr = 4;
constexpr int kNrSingle = 8;

// res[i * NR + r] = sum_k x[i, k] * w[r, k] for MR token rows and NR weight rows.
template <int MR, int NR, class T>
MMGEN_INLINE void dot_tile(const float* x, i64 xs, const T* w, i64 ws, i64 K, float* res) {
  fv acc[MR][NR];
  MMGEN_UNROLL_ALL
  for (int i = 0; i < MR; ++i) {
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) acc[i][r] = fv{};
  }
  i64 k = 0;
  for (; k + W <= K; k += W) {
    fv wv[NR];
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) wv[r] = load(w + r * ws + k);
    MMGEN_UNROLL_ALL
    for (int i = 0; i < MR; ++i) {
      const fv xv = load(x + i * xs + k);
      MMGEN_UNROLL_ALL
      for (int r = 0; r < NR; ++r) acc[i][r] += xv * wv[r];
    }
  }
  if (k < K) {  // tail: missing lanes read as zeros on both sides
    const int c = int(K - k);
    fv wv[NR];
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) wv[r] = load_n(w + r * ws + k, c);
    MMGEN_UNROLL_ALL
    for (int i = 0; i < MR; ++i) {
      const fv xv = load_n(x + i * xs + k, c);
      MMGEN_UNROLL_ALL
      for (int r = 0; r < NR; ++r) acc[i][r] += xv * wv[r];
    }
  }
  MMGEN_UNROLL_ALL
  for (int i = 0; i < MR; ++i) {
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) res[i * NR + r] = hsum(acc[i][r]);
  }
}

// Writes out[i, n0 .. n0 + nr) = round(res[i, :nr] + bias[n0 ..]) for MR rows.
template <int MR, int NR, class T>
MMGEN_INLINE void store_tile(const LinearArgs& a, const float* res, i64 m0, i64 n0, int nr) {
  const T* bias = static_cast<const T*>(a.bias);
  T* out = static_cast<T*>(a.out) + m0 * a.n + n0;
  for (int i = 0; i < MR; ++i) {
    for_chunks(nr, [&](i64 j, int c) {
      fv v = load_n(res + i * NR + j, c);
      if (bias) v += load_n(bias + n0 + j, c);
      store_n(out + i * a.n + j, v, c);
    });
  }
}

// Weight rows [n0, n0 + nr), nr <= NR, against token rows [m0, m0 + MR).
template <int MR, int NR, class T>
MMGEN_INLINE void block(const LinearArgs& a, const float* x32, i64 xs, i64 m0, i64 n0, int nr) {
  const T* w = static_cast<const T*>(a.weight) + n0 * a.w_stride;
  float res[MR * NR];
  if (nr == NR) {
    dot_tile<MR, NR>(x32 + m0 * xs, xs, w, a.w_stride, a.k, res);
  } else {  // the short last block of a range: one weight row at a time
    for (int r = 0; r < nr; ++r) {
      float one[MR];
      dot_tile<MR, 1>(x32 + m0 * xs, xs, w + r * a.w_stride, a.w_stride, a.k, one);
      for (int i = 0; i < MR; ++i) res[i * NR + r] = one[i];
    }
  }
  store_tile<MR, NR, T>(a, res, m0, n0, nr);
}

template <int NR, class T>
MMGEN_INLINE void rows_of_tokens(const LinearArgs& a, const float* x32, i64 xs, i64 n0, int nr) {
  i64 m0 = 0;
  for (; m0 + kMaxMr <= a.m; m0 += kMaxMr) block<kMaxMr, NR, T>(a, x32, xs, m0, n0, nr);
  switch (int(a.m - m0)) {
    case 1: block<1, NR, T>(a, x32, xs, m0, n0, nr); break;
#if MMGEN_W == 16
    case 2: block<2, NR, T>(a, x32, xs, m0, n0, nr); break;
    case 3: block<3, NR, T>(a, x32, xs, m0, n0, nr); break;
#endif
    default: break;
  }
}

#if MMGEN_W == 16
// ---- bfloat16 x bfloat16 with AVX-512 BF16 ---------------------------------------
// vdpbf16ps multiplies 32 bfloat16 pairs exactly and adds them pairwise into 16
// float32 lanes: twice the multiply-adds of an FMA per instruction, and
// neither x nor the weights need widening. Products of bfloat16 values are
// exact in float32, so the sums differ from the widen-and-FMA path only in
// order (and in flushing float32 denormals, as oneDNN's bf16 GEMM on the same
// instruction does). Only called after a run-time check for the extension.
#define MMGEN_BF16_TARGET __attribute__((target("avx512bf16")))

// 32 pairs (k .. k + 31) of every row into acc; lanes outside `mask` read as zeros.
template <int MR, int NR>
MMGEN_BF16_TARGET MMGEN_INLINE void dot_step_bf16(__m512 (&acc)[MR][NR], const bf16_t* x, i64 xs, const bf16_t* w,
                                                  i64 ws, i64 k, __mmask32 mask) {
  __m512i wv[NR];
  MMGEN_UNROLL_ALL
  for (int r = 0; r < NR; ++r) wv[r] = _mm512_maskz_loadu_epi16(mask, w + r * ws + k);
  MMGEN_UNROLL_ALL
  for (int i = 0; i < MR; ++i) {
    const __m512i xv = _mm512_maskz_loadu_epi16(mask, x + i * xs + k);
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_dpbf16_ps(acc[i][r], (__m512bh)xv, (__m512bh)wv[r]);
  }
}

template <int MR, int NR>
MMGEN_BF16_TARGET MMGEN_INLINE void dot_tile_bf16(const bf16_t* x, i64 xs, const bf16_t* w, i64 ws, i64 K,
                                                  float* res) {
  __m512 acc[MR][NR];
  MMGEN_UNROLL_ALL
  for (int i = 0; i < MR; ++i) {
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
  }
  i64 k = 0;
  for (; k + 32 <= K; k += 32) dot_step_bf16<MR, NR>(acc, x, xs, w, ws, k, ~__mmask32(0));
  if (k < K) dot_step_bf16<MR, NR>(acc, x, xs, w, ws, k, __mmask32((1u << (K - k)) - 1u));
  MMGEN_UNROLL_ALL
  for (int i = 0; i < MR; ++i) {
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) res[i * NR + r] = _mm512_reduce_add_ps(acc[i][r]);
  }
}

template <int MR, int NR>
MMGEN_BF16_TARGET MMGEN_INLINE void block_bf16(const LinearArgs& a, i64 m0, i64 n0, int nr) {
  const bf16_t* x = static_cast<const bf16_t*>(a.x) + m0 * a.x_stride;
  const bf16_t* w = static_cast<const bf16_t*>(a.weight) + n0 * a.w_stride;
  float res[MR * NR];
  if (nr == NR) {
    dot_tile_bf16<MR, NR>(x, a.x_stride, w, a.w_stride, a.k, res);
  } else {
    for (int r = 0; r < nr; ++r) {
      float one[MR];
      dot_tile_bf16<MR, 1>(x, a.x_stride, w + r * a.w_stride, a.w_stride, a.k, one);
      for (int i = 0; i < MR; ++i) res[i * NR + r] = one[i];
    }
  }
  store_tile<MR, NR, bf16_t>(a, res, m0, n0, nr);
}

MMGEN_BF16_TARGET void linear_bf16_native(const LinearArgs& a, i64 n0, i64 n1) {
  if (a.m == 1) {
    for (i64 n = n0; n < n1; n += kNrSingle)
      block_bf16<1, kNrSingle>(a, 0, n, int(n1 - n < kNrSingle ? n1 - n : kNrSingle));
    return;
  }
  for (i64 n = n0; n < n1; n += kNr) {
    const int nr = int(n1 - n < kNr ? n1 - n : kNr);
    i64 m0 = 0;
    for (; m0 + 4 <= a.m; m0 += 4) block_bf16<4, kNr>(a, m0, n, nr);
    switch (int(a.m - m0)) {
      case 1: block_bf16<1, kNr>(a, m0, n, nr); break;
      case 2: block_bf16<2, kNr>(a, m0, n, nr); break;
      case 3: block_bf16<3, kNr>(a, m0, n, nr); break;
      default: break;
    }
  }
}

// Asked on first use, i.e. only once this AVX-512 build was chosen.
bool native_bf16() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
  }();
  return has;
}
#else
bool native_bf16() { return false; }
#endif

template <class T>
void linear_t(const LinearArgs& a, const float* x32, i64 xs, i64 n0, i64 n1) {
#if MMGEN_W == 16
  if constexpr (std::is_same_v<T, bf16_t>) {
    if (native_bf16()) return linear_bf16_native(a, n0, n1);
  }
#endif
  if (a.m == 1) {
    for (i64 n = n0; n < n1; n += kNrSingle) {
      const int nr = int(n1 - n < kNrSingle ? n1 - n : kNrSingle);
      block<1, kNrSingle, T>(a, x32, xs, 0, n, nr);
    }
    return;
  }
  for (i64 n = n0; n < n1; n += kNr) {
    const int nr = int(n1 - n < kNr ? n1 - n : kNr);
    rows_of_tokens<kNr, T>(a, x32, xs, n, nr);
  }
}

void linear(const LinearArgs& a, const float* x32, i64 xs, i64 n0, i64 n1) {
  with_type(a.dtype, [&](auto p) { linear_t<elem_t<decltype(p)>>(a, x32, xs, n0, n1); });
}

void widen(const LinearArgs& a, float* x32) {
  with_type(a.dtype, [&](auto p) {
    using T = elem_t<decltype(p)>;
    for (i64 i = 0; i < a.m; ++i) {
      const T* x = static_cast<const T*>(a.x) + i * a.x_stride;
      float* dst = x32 + i * a.k;
      for_chunks(a.k, [&](i64 j, int c) { store_n(dst + j, load_n(x + j, c), c); });
    }
  });
}

}  // namespace

const LinearLoops& MMGEN_CAT(linear_loops_, MMGEN_CPU_ISA)() {
  static const LinearLoops table{
      .isa = MMGEN_STR(MMGEN_CPU_ISA),
      .native_bf16 = native_bf16(),
      .widen = &widen,
      .linear = &linear,
  };
  return table;
}

}  // namespace mmgen::kernels::cpu
