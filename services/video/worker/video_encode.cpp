// MP4 (and PNG frame) encoding of the generated frames (video_encode.hpp).
#include "video_encode.hpp"

#include <cstdio>

#include "mmgen/media/image.hpp"
#include "mmgen/media/quantize.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::video {

std::string frame_blob_name(std::int64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "frame-%05lld.png", static_cast<long long>(index));
  return buf;
}

EncodedVideo encode_video(std::span<const float> frames, std::int64_t count, int height, int width,
                          const media::VideoEncodeOptions& opts, bool png_frames) {
  using proto::ErrorCode;
  using proto::ProtocolError;
  if (count < 1 || height < 1 || width < 1) {
    throw ProtocolError(ErrorCode::invalid_request, "cannot encode an empty video (" + std::to_string(count) +
                                                        " frames of " + std::to_string(width) + "x" +
                                                        std::to_string(height) + ")");
  }
  const std::size_t frame_values = std::size_t(height) * std::size_t(width) * 3;
  if (frames.size() != frame_values * std::size_t(count)) {
    throw ProtocolError(ErrorCode::invalid_request, "frame buffer holds " + std::to_string(frames.size()) +
                                                        " values, expected " + std::to_string(count) + " x " +
                                                        std::to_string(frame_values));
  }
  EncodedVideo out;
  // The writer checks the size (even width / height) and options before any
  // frame is converted; frames go to it one at a time so only one 8-bit
  // frame is held here.
  media::VideoEncodeOptions o = opts;
  o.frames_dir.clear();  // PNGs travel as blobs, not files on the worker's disk
  media::Mp4BlobWriter writer(width, height, o);
  std::vector<std::uint8_t> rgb(frame_values);
  for (std::int64_t f = 0; f < count; ++f) {
    media::quantize_unit(frames.subspan(std::size_t(f) * frame_values, frame_values), rgb);
    writer.write_rgb(std::span<const std::uint8_t>(rgb));
    if (png_frames) {
      const auto png = media::encode_png(media::ImageView(rgb.data(), width, height, 3), o.png_compression);
      out.frames.emplace_back(reinterpret_cast<const char*>(png.data()), png.size());
    }
  }
  const std::vector<std::uint8_t> mp4 = writer.finish();
  out.mp4.assign(reinterpret_cast<const char*>(mp4.data()), mp4.size());
  return out;
}

}  // namespace mmgen::video
