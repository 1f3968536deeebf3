// Portable SIMD for the CPU loops, written with GCC/Clang vector extensions.
//
// `fv` is one native float32 vector of the ISA the translation unit is built
// for: 16 lanes with AVX-512, 8 with AVX2, 4 otherwise; the same loop source
// is compiled once per ISA (loops_impl.cpp) and picked at run time. The
// conversions from/to bfloat16 and float16 round to nearest even exactly like
// common/scalar.hpp; where the ISA has an instruction for a step (F16C
// vcvtph2ps/vcvtps2ph, AVX-512 vpmovdw, AVX2 vpackusdw) it is used, because
// the compiler's generic lowering of those steps falls back to per-lane code.
//
// Included only by loops_impl.cpp, inside its anonymous namespace (so every
// function here has internal linkage in each ISA build); that file includes
// <cstdint>, <cstring>, <immintrin.h> (x86) and common/scalar.hpp first.
#pragma once

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define MMGEN_W 16
#elif defined(__AVX2__)
#define MMGEN_W 8
#else
#define MMGEN_W 4
#endif

#define MMGEN_INLINE inline __attribute__((always_inline))
// Fully unrolls a loop with a small constant trip count, so that arrays of
// vectors indexed by its counter live in registers (-O2 alone keeps them on
// the stack).
#define MMGEN_UNROLL_ALL _Pragma("GCC unroll 16")

constexpr int W = MMGEN_W;  // lanes per vector
typedef float fv __attribute__((vector_size(4 * MMGEN_W)));
typedef std::int32_t iv __attribute__((vector_size(4 * MMGEN_W)));
typedef std::uint32_t uv __attribute__((vector_size(4 * MMGEN_W)));
typedef std::uint16_t hv __attribute__((vector_size(2 * MMGEN_W)));
typedef float fv4 __attribute__((vector_size(16)));
typedef float fv8 __attribute__((vector_size(32)));

MMGEN_INLINE fv splat(float v) { return fv{} + v; }
MMGEN_INLINE iv iota() {
  iv r;
  for (int i = 0; i < W; ++i) r[i] = i;
  return r;
}

// ---- bit-level conversions -----------------------------------------------------
MMGEN_INLINE uv widen16(hv h) {  // zero-extends each lane (one vpmovzxwd; GCC splits the generic form)
#if MMGEN_W == 16
  return (uv)_mm512_cvtepu16_epi32((__m256i)h);
#elif MMGEN_W == 8
  return (uv)_mm256_cvtepu16_epi32((__m128i)h);
#else
  return __builtin_convertvector(h, uv);
#endif
}
MMGEN_INLINE fv bf16_bits_to_f32(hv h) { return (fv)(widen16(h) << 16); }

// float32 -> bfloat16 bits, widened to 32-bit lanes (round to nearest even, NaN -> 0x7fc0).
MMGEN_INLINE uv f32_to_bf16_wide(fv v) {
  const uv u = (uv)v;
  const uv rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7fffffffu) > 0x7f800000u ? uv{} + 0x7fc0u : rounded;
}

MMGEN_INLINE hv narrow16(uv w) {  // lanes hold values <= 0xffff
#if MMGEN_W == 16
  return (hv)_mm512_cvtepi32_epi16((__m512i)w);
#elif MMGEN_W == 8
  const __m256i p = _mm256_packus_epi32((__m256i)w, (__m256i)w);  // per 128-bit half
  return (hv)_mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08));
#else
  return __builtin_convertvector(w, hv);
#endif
}

MMGEN_INLINE fv f16_bits_to_f32(hv h) {
#if MMGEN_W == 16
  return (fv)_mm512_cvtph_ps((__m256i)h);
#elif MMGEN_W == 8 && defined(__F16C__)
  return (fv)_mm256_cvtph_ps((__m128i)h);
#else
  const uv w = widen16(h);
  const uv sign = (w & 0x8000u) << 16;
  const uv em = w & 0x7fffu;
  const uv mag = (uv)((fv)(em << 13) * 0x1p112f);
  const uv special = (em << 13) | 0x7f800000u;
  return (fv)((em >= 0x7c00u ? special : mag) | sign);
#endif
}

MMGEN_INLINE hv f32_to_f16_bits(fv v) {
#if MMGEN_W == 16
  return (hv)_mm512_cvtps_ph((__m512)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif MMGEN_W == 8 && defined(__F16C__)
  return (hv)_mm256_cvtps_ph((__m256)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  uv u = (uv)v;
  const uv sign = u & 0x80000000u;
  u ^= sign;
  const uv big = u > 0x7f800000u ? uv{} + 0x7e00u : uv{} + 0x7c00u;
  const std::uint32_t magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  const fv magic = (fv)(uv{} + magic_bits);
  const uv sub = (uv)((fv)u + magic) - magic_bits;
  const uv norm = (u + (std::uint32_t(15 - 127) << 23) + 0xfffu + ((u >> 13) & 1u)) >> 13;
  const uv o = u >= (143u << 23) ? big : (u < (113u << 23) ? sub : norm);
  return __builtin_convertvector(o | (sign >> 16), hv);
#endif
}

// ---- loads: W elements of T -> float32 -------------------------------------------
MMGEN_INLINE fv load(const float* p) {
  fv v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
MMGEN_INLINE fv load(const bf16_t* p) {
  hv h;
  std::memcpy(&h, p, sizeof h);
  return bf16_bits_to_f32(h);
}
MMGEN_INLINE fv load(const f16_t* p) {
  hv h;
  std::memcpy(&h, p, sizeof h);
  return f16_bits_to_f32(h);
}

// ---- stores: float32 -> W elements of T (round to nearest even) ---------------------
MMGEN_INLINE void store(float* p, fv v) { std::memcpy(p, &v, sizeof v); }
MMGEN_INLINE void store(bf16_t* p, fv v) {
  const hv h = narrow16(f32_to_bf16_wide(v));
  std::memcpy(p, &h, sizeof h);
}
MMGEN_INLINE void store(f16_t* p, fv v) {
  const hv h = f32_to_f16_bits(v);
  std::memcpy(p, &h, sizeof h);
}

// Two vectors -> 2W consecutive elements of T. For bfloat16 one pack and one
// full-width store instead of two narrowing stores (vpmovdw to memory is slow
// on some cores, e.g. AMD Zen 4).
template <class T> MMGEN_INLINE void store2(T* p, fv a, fv b) {
  store(p, a);
  store(p + W, b);
}
MMGEN_INLINE void store2(bf16_t* p, fv a, fv b) {
#if MMGEN_W == 16
  // vpackusdw interleaves a's and b's 64-bit groups per 128-bit lane; vpermq restores the order.
  const __m512i packed = _mm512_packus_epi32((__m512i)f32_to_bf16_wide(a), (__m512i)f32_to_bf16_wide(b));
  const __m512i ordered = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), packed);
  std::memcpy(p, &ordered, sizeof ordered);
#elif MMGEN_W == 8
  const __m256i packed = _mm256_packus_epi32((__m256i)f32_to_bf16_wide(a), (__m256i)f32_to_bf16_wide(b));
  const __m256i ordered = _mm256_permute4x64_epi64(packed, 0xD8);
  std::memcpy(p, &ordered, sizeof ordered);
#else
  store(p, a);
  store(p + W, b);
#endif
}

// Round a float32 value to T's precision and back (T = float: no-op). Used
// where the reference rounds an intermediate to the model dtype.
MMGEN_INLINE fv round_to(fv v, const float*) { return v; }
MMGEN_INLINE fv round_to(fv v, const bf16_t*) { return (fv)(f32_to_bf16_wide(v) << 16); }
MMGEN_INLINE fv round_to(fv v, const f16_t*) { return f16_bits_to_f32(f32_to_f16_bits(v)); }
template <class T> MMGEN_INLINE fv round_to(fv v) { return round_to(v, static_cast<const T*>(nullptr)); }

// Partial vectors for row tails: missing lanes read as 0 and are not written.
template <class T> MMGEN_INLINE fv load_n(const T* p, int n) {
  if (n == W) return load(p);
  T tmp[W] = {};
  std::memcpy(tmp, p, sizeof(T) * n);
  return load(tmp);
}
template <class T> MMGEN_INLINE void store_n(T* p, fv v, int n) {
  if (n == W) return store(p, v);
  T tmp[W];
  store(tmp, v);
  std::memcpy(p, tmp, sizeof(T) * n);
}
MMGEN_INLINE fv lanes_below(int n) { return iota() < n ? splat(1.0f) : splat(0.0f); }

// Calls f(j, n) for consecutive chunks [j, j + n) of [0, count), n <= W.
template <class F> MMGEN_INLINE void for_chunks(std::int64_t count, F&& f) {
  std::int64_t j = 0;
  for (; j + W <= count; j += W) f(j, W);
  if (j < count) f(j, int(count - j));
}

// ---- reductions, shuffles, math ----------------------------------------------------
MMGEN_INLINE float hsum(fv v) {
#if MMGEN_W == 16
  const fv8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const fv4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
#elif MMGEN_W == 8
  const fv4 b = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
#else
  const fv4 b = v;
#endif
  return (b[0] + b[2]) + (b[1] + b[3]);
}

// Swaps the lanes of each pair: (x0, x1, x2, x3, ...) -> (x1, x0, x3, x2, ...).
MMGEN_INLINE fv swap_pairs(fv x) {
#if MMGEN_W == 16
  return __builtin_shufflevector(x, x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
#elif MMGEN_W == 8
  return __builtin_shufflevector(x, x, 1, 0, 3, 2, 5, 4, 7, 6);
#else
  return __builtin_shufflevector(x, x, 1, 0, 3, 2);
#endif
}

// Repeats each lane of the low half: (x0, x1, ...) -> (x0, x0, x1, x1, ...).
MMGEN_INLINE fv dup_pairs(fv x) {
#if MMGEN_W == 16
  return __builtin_shufflevector(x, x, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
#elif MMGEN_W == 8
  return __builtin_shufflevector(x, x, 0, 0, 1, 1, 2, 2, 3, 3);
#else
  return __builtin_shufflevector(x, x, 0, 0, 1, 1);
#endif
}
// Flips the sign of the even lanes: (x0, x1, x2, ...) -> (-x0, x1, -x2, ...).
MMGEN_INLINE fv negate_even(fv x) { return (fv)((uv)x ^ ((~(uv)iota() & 1u) << 31)); }

// 1/x to ~1 ulp. AVX-512: 14-bit estimate + one Newton step, because a zmm
// division has a throughput of one per ~16 cycles on Intel cores.
MMGEN_INLINE fv vrcp(fv x) {
#if MMGEN_W == 16
  const fv r = (fv)_mm512_rcp14_ps((__m512)x);
  return r * (2.0f - x * r);
#else
  return 1.0f / x;
#endif
}

MMGEN_INLINE fv vmax(fv a, fv b) { return a > b ? a : b; }
MMGEN_INLINE fv vmin(fv a, fv b) { return a < b ? a : b; }

// exp(x) in float32, relative error ~2 ulp over the clamped range (Cephes
// polynomial after reduction by ln 2); vectorises, unlike std::exp.
MMGEN_INLINE fv vexp(fv x) {
  x = vmin(vmax(x, splat(-87.0f)), splat(88.3f));
  const fv n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
  fv r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  fv p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  return (fv)((iv)p + (__builtin_convertvector(n, iv) << 23));
}

// ---- shared by the loop files ------------------------------------------------------

// Each file's table is named after its ISA: MMGEN_CAT(loops_, MMGEN_CPU_ISA).
#define MMGEN_CAT2(a, b) a##b
#define MMGEN_CAT(a, b) MMGEN_CAT2(a, b)
#define MMGEN_STR2(a) #a
#define MMGEN_STR(a) MMGEN_STR2(a)

using i64 = std::int64_t;

// Calls f with a null pointer of the storage type for d.
template <class F> MMGEN_INLINE void with_type(DType d, F&& f) {
  switch (d) {
    case DType::f32: f(static_cast<float*>(nullptr)); break;
    case DType::bf16: f(static_cast<bf16_t*>(nullptr)); break;
    case DType::f16: f(static_cast<f16_t*>(nullptr)); break;
  }
}
template <class P> using elem_t = std::remove_cv_t<std::remove_pointer_t<P>>;
