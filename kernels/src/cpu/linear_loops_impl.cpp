// CPU loops of linear_small_m. Compiled once per ISA level (see
// kernels/CMakeLists.txt: linear_loops_<isa>.cpp), under the rules of
// loops_impl.cpp: internal linkage only, and no out-of-line inline function
// from shared headers.
//
// Decode multiplies a few token rows by whole weight matrices, so the time is
// reading each weight once, at the rate the core streams memory (see the
// blocking notes below). x is widened to float32 once per call by the caller
// (widen), so the inner loop converts only the weights; bfloat16 on cores with
// AVX-512 BF16 multiplies the raw pairs instead.
#include "cpu/isa_prologue.hpp"

#include "common/scalar.hpp"
#include "cpu/linear_loops.hpp"

namespace mmgen::kernels::cpu {
namespace {

#include "cpu/vec.hpp"

// Blocking, measured on the Qwen3 shapes on one Zen 4 core (weights from DRAM):
//
// A few token rows (up to kStreamRows, decode at batch 1 in particular) read
// the weight rows one after another, each in full: consecutive rows are
// adjacent in memory, so a group of rows is one long ascending stream, which
// the hardware prefetchers follow at the core's read bandwidth. Interleaving
// 2 to 8 rows of 768 bfloat16 (1.5 KB each) streamed at ~11 GB/s against
// ~19-21 GB/s for the same rows in order (float32, rows twice as long: 18
// against 19-22). Each weight row meets up to kMaxMr token rows per pass (one
// float32 accumulator each, vectors along K).
//
// More token rows take kNr weight rows at a time in MR x kNr register tiles
// (AVX-512: 4 x 4 accumulators + 4 weight vectors + 1 token vector of 32
// registers; AVX2 and SSE have 16: 2 x 4 + 4 + 1): there the multiply-adds,
// not the stream, set the pace, and each token vector serves kNr rows. At 4
// token rows streaming was 1.3-1.7x faster (all but the K = 2048 matrix), at
// 8 and 16 the tiles (float32 1.2-1.6x).
//
// Either way the vector sums of kGroup consecutive weight rows are kept and
// reduced together (reduce_group): on AVX-512 16 rows in one transposed
// butterfly instead of one full horizontal reduction per row.
//
// Batch invariance: every output element is one accumulator over the K steps
// in order (a partial first step up to the weights' alignment, see head_of;
// tail lanes read as zeros) followed by the same reduction tree, so it does
// not depend on the row count, the blocking, the group a row falls in, or the
// range split between threads.
constexpr int kStreamRows = 4;
constexpr int kMaxMr = W == 16 ? 4 : 2;
constexpr int kNr = 4;
constexpr int kGroup = 16;
constexpr int kMaxTokens = 16;  // token rows per pass over the weights

using Part = fv[kGroup];  // the vector sums of one token row against a group of weight rows

// out[r] = the horizontal sum of v[r] for r < kGroup, with one tree for every row.
MMGEN_INLINE void reduce_group(const Part& v, float* out) {
#if MMGEN_W == 16
  // Level by level, pairs of rows share a vector: (lane j) + (lane j + 8),
  // then j + 4, j + 2, j + 1, the tree of hsum() for each row.
  __m512 a[8], b[4], c[2];
  MMGEN_UNROLL_ALL
  for (int r = 0; r < 8; ++r)  // 128-bit blocks: row r (b0 + b2, b1 + b3), row r + 8 (same)
    a[r] = _mm512_add_ps(_mm512_shuffle_f32x4((__m512)v[r], (__m512)v[r + 8], 0x44),
                         _mm512_shuffle_f32x4((__m512)v[r], (__m512)v[r + 8], 0xEE));
  MMGEN_UNROLL_ALL
  for (int r = 0; r < 4; ++r)  // blocks: rows r, r + 8, r + 4, r + 12 (4 partial lanes each)
    b[r] = _mm512_add_ps(_mm512_shuffle_f32x4(a[r], a[r + 4], 0x88), _mm512_shuffle_f32x4(a[r], a[r + 4], 0xDD));
  MMGEN_UNROLL_ALL
  for (int r = 0; r < 2; ++r)  // lanes (0 + 2), (1 + 3) of each block, for two rows
    c[r] = _mm512_add_ps(_mm512_unpacklo_ps(b[r], b[r + 2]), _mm512_unpackhi_ps(b[r], b[r + 2]));
  const __m512 d = _mm512_add_ps(_mm512_unpacklo_ps(c[0], c[1]), _mm512_unpackhi_ps(c[0], c[1]));
  // d holds rows 0-3, 8-11, 4-7, 12-15 by 128-bit block.
  _mm512_storeu_ps(out, _mm512_shuffle_f32x4(d, d, 0xD8));
#else
  for (int r = 0; r < kGroup; ++r) out[r] = hsum(v[r]);
#endif
}

// out[i, n0 .. n0 + nr) = round(sums[:nr] + bias[n0 ..]) for token row i.
template <class T>
MMGEN_INLINE void store_sums(const LinearArgs& a, const float* sums, i64 i, i64 n0, int nr) {
  const T* bias = static_cast<const T*>(a.bias);
  T* out = static_cast<T*>(a.out) + i * a.n + n0;
  for_chunks(nr, [&](i64 j, int c) {
    fv v = load_n(sums + j, c);
    if (bias) v += load_n(bias + n0 + j, c);
    store_n(out + j, v, c);
  });
}

// Reduces the parts of mt token rows (rows nr .. kGroup of each are unused) and stores them.
template <class T>
MMGEN_INLINE void finish_group(const LinearArgs& a, Part* part, i64 m0, int mt, i64 n0, int nr) {
  for (int i = 0; i < mt; ++i) {
    for (int r = nr; r < kGroup; ++r) part[i][r] = fv{};
    alignas(64) float sums[kGroup];
    reduce_group(part[i], sums);
    store_sums<T>(a, sums, m0 + i, n0, nr);
  }
}

// Weight elements before the first `align`-byte boundary of the weights, when
// every row starts at the same offset within such a block (else 0). The loops
// take them as a partial first vector so that the weight loads, the stream
// from memory, are aligned: rows straight from a safetensors mmap sit at any
// 8-byte offset, and unaligned 64-byte float32 loads streamed ~25% slower (15
// against 20 GB/s). The weights alone decide it, never the token rows, so
// batch invariance holds.
MMGEN_INLINE i64 head_of(const LinearArgs& a, i64 elem, i64 align) {
  const auto addr = reinterpret_cast<std::uintptr_t>(a.weight);
  if ((a.w_stride * elem) % align != 0 || addr % std::uintptr_t(elem) != 0) return 0;
  const i64 head = i64((std::uintptr_t(align) - addr % std::uintptr_t(align)) % std::uintptr_t(align)) / elem;
  return head < a.k ? head : a.k;
}

// part[i][r0 + r] = the vector sum of x[i, :] * w[r, :] for MR token rows
// (xs apart) and NR weight rows (ws apart); the first `head` elements form a
// partial vector of their own (see head_of).
template <int MR, int NR, class T>
MMGEN_INLINE void dot_tile(const float* x, i64 xs, const T* w, i64 ws, i64 K, i64 head, Part* part, int r0) {
  fv acc[MR][NR];
  MMGEN_UNROLL_ALL
  for (int i = 0; i < MR; ++i) {
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) acc[i][r] = fv{};
  }
  auto partial = [&](i64 k, int c) {  // lanes from c on read as zeros on both sides
    fv wv[NR];
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) wv[r] = load_n(w + r * ws + k, c);
    MMGEN_UNROLL_ALL
    for (int i = 0; i < MR; ++i) {
      const fv xv = load_n(x + i * xs + k, c);
      MMGEN_UNROLL_ALL
      for (int r = 0; r < NR; ++r) acc[i][r] += xv * wv[r];
    }
  };
  if (head > 0) partial(0, int(head));
  i64 k = head;
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
  if (k < K) partial(k, int(K - k));
  MMGEN_UNROLL_ALL
  for (int i = 0; i < MR; ++i) {
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) part[i][r0 + r] = acc[i][r];
  }
}

// Weight rows [r0, r0 + NR) of a group against mt token rows, MR at a time.
template <int NR, class T>
MMGEN_INLINE void tokens_tile(const float* x, i64 xs, const T* w, i64 ws, i64 K, i64 head, int mt, Part* part,
                              int r0) {
  int i = 0;
  for (; i + kMaxMr <= mt; i += kMaxMr) dot_tile<kMaxMr, NR>(x + i * xs, xs, w, ws, K, head, part + i, r0);
  switch (mt - i) {
    case 1: dot_tile<1, NR>(x + i * xs, xs, w, ws, K, head, part + i, r0); break;
    case 2: dot_tile<2, NR>(x + i * xs, xs, w, ws, K, head, part + i, r0); break;
    case 3: dot_tile<3, NR>(x + i * xs, xs, w, ws, K, head, part + i, r0); break;
    default: break;
  }
}

// Weight rows [n0, n0 + nr), nr <= kGroup, against token rows [m0, m0 + mt), mt <= kMaxTokens.
template <class T>
MMGEN_INLINE void group(const LinearArgs& a, const float* x32, i64 xs, i64 head, i64 m0, int mt, i64 n0, int nr) {
  Part part[kMaxTokens];
  const float* x = x32 + m0 * xs;
  const T* w = static_cast<const T*>(a.weight) + n0 * a.w_stride;
  const i64 ws = a.w_stride;
  int r = 0;
  if (mt > kStreamRows) {
    for (; r + kNr <= nr; r += kNr) tokens_tile<kNr>(x, xs, w + r * ws, ws, a.k, head, mt, part, r);
  }
  for (; r < nr; ++r) tokens_tile<1>(x, xs, w + r * ws, ws, a.k, head, mt, part, r);
  finish_group<T>(a, part, m0, mt, n0, nr);
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

// part[i][r0 + r] = the vector sum of x[i, :] * w[r, :] for MR token rows and
// NR weight rows, 32 pairs a step.
template <int MR, int NR>
MMGEN_BF16_TARGET MMGEN_INLINE void dot_tile_bf16(const bf16_t* x, i64 xs, const bf16_t* w, i64 ws, i64 K,
                                                  i64 head, Part* part, int r0) {
  __m512 acc[MR][NR];
  MMGEN_UNROLL_ALL
  for (int i = 0; i < MR; ++i) {
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
  }
  if (head > 0) dot_step_bf16<MR, NR>(acc, x, xs, w, ws, 0, __mmask32((1u << head) - 1u));
  i64 k = head;
  for (; k + 32 <= K; k += 32) dot_step_bf16<MR, NR>(acc, x, xs, w, ws, k, ~__mmask32(0));
  if (k < K) dot_step_bf16<MR, NR>(acc, x, xs, w, ws, k, __mmask32((1u << (K - k)) - 1u));
  MMGEN_UNROLL_ALL
  for (int i = 0; i < MR; ++i) {
    MMGEN_UNROLL_ALL
    for (int r = 0; r < NR; ++r) part[i][r0 + r] = (fv)acc[i][r];
  }
}

template <int NR>
MMGEN_BF16_TARGET MMGEN_INLINE void tokens_tile_bf16(const bf16_t* x, i64 xs, const bf16_t* w, i64 ws, i64 K,
                                                     i64 head, int mt, Part* part, int r0) {
  int i = 0;
  for (; i + kMaxMr <= mt; i += kMaxMr) dot_tile_bf16<kMaxMr, NR>(x + i * xs, xs, w, ws, K, head, part + i, r0);
  switch (mt - i) {
    case 1: dot_tile_bf16<1, NR>(x + i * xs, xs, w, ws, K, head, part + i, r0); break;
    case 2: dot_tile_bf16<2, NR>(x + i * xs, xs, w, ws, K, head, part + i, r0); break;
    case 3: dot_tile_bf16<3, NR>(x + i * xs, xs, w, ws, K, head, part + i, r0); break;
    default: break;
  }
}

MMGEN_BF16_TARGET MMGEN_INLINE void group_bf16(const LinearArgs& a, i64 head, i64 m0, int mt, i64 n0, int nr) {
  Part part[kMaxTokens];
  const bf16_t* x = static_cast<const bf16_t*>(a.x) + m0 * a.x_stride;
  const i64 xs = a.x_stride, ws = a.w_stride;
  const bf16_t* w = static_cast<const bf16_t*>(a.weight) + n0 * ws;
  int r = 0;
  if (mt > kStreamRows) {
    for (; r + kNr <= nr; r += kNr) tokens_tile_bf16<kNr>(x, xs, w + r * ws, ws, a.k, head, mt, part, r);
  }
  for (; r < nr; ++r) tokens_tile_bf16<1>(x, xs, w + r * ws, ws, a.k, head, mt, part, r);
  finish_group<bf16_t>(a, part, m0, mt, n0, nr);
}

MMGEN_BF16_TARGET void linear_bf16_native(const LinearArgs& a, i64 n0, i64 n1) {
  const i64 head = head_of(a, 2, 64);
  for (i64 m0 = 0; m0 < a.m; m0 += kMaxTokens) {
    const int mt = int(a.m - m0 < kMaxTokens ? a.m - m0 : kMaxTokens);
    for (i64 n = n0; n < n1; n += kGroup) group_bf16(a, head, m0, mt, n, int(n1 - n < kGroup ? n1 - n : kGroup));
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
  const i64 head = head_of(a, sizeof(T), W * sizeof(T));
  for (i64 m0 = 0; m0 < a.m; m0 += kMaxTokens) {
    const int mt = int(a.m - m0 < kMaxTokens ? a.m - m0 : kMaxTokens);
    for (i64 n = n0; n < n1; n += kGroup)
      group<T>(a, x32, xs, head, m0, mt, n, int(n1 - n < kGroup ? n1 - n : kGroup));
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
