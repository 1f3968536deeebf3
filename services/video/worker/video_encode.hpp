// Float frames -> the job's output blobs: an H.264 MP4 (libx264, yuv420p,
// +faststart, the job's fps / crf / preset) and optionally one PNG per frame.
//
// The 8-bit frames are those diffusers' export_to_video writes (and the
// official Wan save_video, which clamps and maps [-1, 1] to [0, 1] first):
// x in [0, 1] clamped, uint8(x * 255) truncated (media::quantize_unit). The
// MP4 and the PNGs are made from the same bytes.
//
// Torch-free: frames arrive as a packed float32 [F, H, W, 3] buffer, so the
// encoding is tested without a model.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mmgen/media/video.hpp"

namespace mmgen::video {

struct EncodedVideo {
  std::string mp4;                  // the whole file
  std::vector<std::string> frames;  // PNG per frame when asked for, else empty
};

// frames: F * height * width * 3 float32 values, [F, H, W, 3] row-major, in
// [0, 1] (clamped). Throws ProtocolError: invalid_request for a size yuv420p
// cannot hold (odd width or height) or a buffer of the wrong length, internal
// for an encoder or I/O failure (the scratch file is removed: nothing partial
// is left behind), unsupported when FFmpeg lacks libx264.
EncodedVideo encode_video(std::span<const float> frames, std::int64_t count, int height, int width,
                          const media::VideoEncodeOptions& opts, bool png_frames);

// "frame-00001.png" ...: the names the CLI's --save-frames expects (1-based).
std::string frame_blob_name(std::int64_t index);

}  // namespace mmgen::video
