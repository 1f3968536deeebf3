#include "mmgen/media/quantize.hpp"

#include <string>

#include "mmgen/protocol.hpp"

namespace mmgen::media {
namespace {

void check_sizes(std::size_t in, std::size_t out) {
  if (in != out)
    throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                               "quantize: " + std::to_string(in) + " values into " +
                                   std::to_string(out) + " bytes");
}

}  // namespace

void quantize_signed(std::span<const float> in, std::span<std::uint8_t> out) {
  check_sizes(in.size(), out.size());
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = quantize_signed(in[i]);
}

void quantize_unit(std::span<const float> in, std::span<std::uint8_t> out) {
  check_sizes(in.size(), out.size());
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = quantize_unit(in[i]);
}

void planar_signed_to_rgb(const float* r, const float* g, const float* b, std::size_t pixels,
                          std::uint8_t* rgb) {
  for (std::size_t i = 0; i < pixels; ++i, rgb += 3) {
    rgb[0] = quantize_signed(r[i]);
    rgb[1] = quantize_signed(g[i]);
    rgb[2] = quantize_signed(b[i]);
  }
}

}  // namespace mmgen::media
