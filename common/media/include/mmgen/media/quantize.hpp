// Float -> 8-bit frame quantisation exactly as the references do it, so the
// bytes handed to the encoder equal theirs.
//
// Wan (official save_video and diffusers' export_to_video): clamp to [-1, 1],
// map (x + 1) / 2, multiply by 255, truncate to uint8 (torch .type(uint8) /
// numpy .astype(uint8)). diffusers computes x / 2 + 0.5 then clamps to [0, 1];
// in float32 both orders give the same value (scaling by 2 is exact, so both
// round x + 1 once). NaN, which the references leave to the platform, maps to 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace mmgen::media {

// x in [-1, 1] (clamped): uint8((x + 1) / 2 * 255) with float32 arithmetic.
inline std::uint8_t quantize_signed(float x) {
  if (!(x == x)) return 0;  // NaN
  x = x < -1.f ? -1.f : (x > 1.f ? 1.f : x);
  const float unit = (x + 1.f) / 2.f;
  return static_cast<std::uint8_t>(unit * 255.f);
}
// x in [0, 1] (clamped): uint8(x * 255) — diffusers' numpy frames.
inline std::uint8_t quantize_unit(float x) {
  if (!(x == x)) return 0;
  x = x < 0.f ? 0.f : (x > 1.f ? 1.f : x);
  return static_cast<std::uint8_t>(x * 255.f);
}

// Element-wise over equal-length spans (invalid_request if lengths differ).
void quantize_signed(std::span<const float> in, std::span<std::uint8_t> out);
void quantize_unit(std::span<const float> in, std::span<std::uint8_t> out);

// Planar [3][pixels] (one frame of a [C, F, H, W] tensor: pass its three
// channel planes) -> interleaved RGB, values in [-1, 1].
void planar_signed_to_rgb(const float* r, const float* g, const float* b, std::size_t pixels,
                          std::uint8_t* rgb_out);

}  // namespace mmgen::media
