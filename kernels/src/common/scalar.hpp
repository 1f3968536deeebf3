// Scalar storage types and exact float32 <-> bfloat16/float16 conversions.
//
// Torch-free and CUDA-free on purpose: the CPU loops, the CUDA-on-CPU emulator
// and its tests all use these, and they must agree bit for bit with
// c10::BFloat16 / c10::Half (round to nearest even, NaN stays NaN).
#pragma once

#include <bit>
#include <cstdint>

namespace mmgen::kernels {

// Element types an op can see. The values are stable: they cross the
// C-style launcher API.
enum class DType : int { f32 = 0, bf16 = 1, f16 = 2 };

inline constexpr int dtype_size(DType d) { return d == DType::f32 ? 4 : 2; }

// 16-bit storage, no arithmetic: code converts to float32, computes, converts back.
struct bf16_t { std::uint16_t bits; };
struct f16_t { std::uint16_t bits; };

inline float bf16_to_f32(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t(h) << 16); }

inline std::uint16_t f32_to_bf16(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN (as c10 does)
  u += 0x7fffu + ((u >> 16) & 1u);                     // round to nearest even
  return std::uint16_t(u >> 16);
}

inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t em = h & 0x7fffu;
  // Exponent rebias by multiplication handles normals and subnormals alike.
  float mag = std::bit_cast<float>(em << 13) * 0x1p112f;
  if (em >= 0x7c00u) mag = std::bit_cast<float>((em << 13) | 0x7f800000u);  // Inf/NaN
  return std::bit_cast<float>(std::bit_cast<std::uint32_t>(mag) | sign);
}

inline std::uint16_t f32_to_f16(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = u & 0x80000000u;
  u ^= sign;
  std::uint32_t o;
  if (u >= (143u << 23)) {                     // >= 65536: overflow, Inf or NaN
    o = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (u < (113u << 23)) {               // result is subnormal or zero:
    // let the FPU's round-to-nearest-even do the shift by adding a magic value
    const float denorm_magic = std::bit_cast<float>(((127u - 15u) + (23u - 10u) + 1u) << 23);
    o = std::bit_cast<std::uint32_t>(std::bit_cast<float>(u) + denorm_magic) -
        std::bit_cast<std::uint32_t>(denorm_magic);
  } else {
    const std::uint32_t mant_odd = (u >> 13) & 1u;
    u += (std::uint32_t(15 - 127) << 23) + 0xfffu;  // rebias, half-way rounding
    u += mant_odd;                                   // ties to even
    o = u >> 13;
  }
  return std::uint16_t(o | (sign >> 16));
}

inline float to_f32(float v) { return v; }
inline float to_f32(bf16_t v) { return bf16_to_f32(v.bits); }
inline float to_f32(f16_t v) { return f16_to_f32(v.bits); }

template <class T> T from_f32(float v);
template <> inline float from_f32<float>(float v) { return v; }
template <> inline bf16_t from_f32<bf16_t>(float v) { return {f32_to_bf16(v)}; }
template <> inline f16_t from_f32<f16_t>(float v) { return {f32_to_f16(v)}; }

}  // namespace mmgen::kernels
