// Video files through FFmpeg's libraries (libavformat/libavcodec/libswscale):
// an H.264 (libx264) MP4 writer that takes RGB frames one at a time, and a
// reader for MP4 (and whatever libavformat opens) back to RGB frames.
// Torch-free.
//
// Writer, as the references write (Wan: imageio-ffmpeg -> libx264 yuv420p):
// RGB24 -> yuv420p by swscale (bicubic, BT.601 limited range, as the ffmpeg
// command line does; the stream is tagged smpte170m/tv so players agree),
// libx264 with `crf` and `preset`, MP4 with `+faststart`.
//  - Memory does not grow with the frame count: each frame is converted and
//    sent to the encoder, whose lookahead is bounded; packets go to disk.
//  - The file is written as a temp file in the destination's directory and
//    renamed over the destination only by finish(): an error (or destroying an
//    unfinished writer) leaves no partial file behind.
//  - Results travel as blobs: Mp4BlobWriter encodes to a temp file and reads
//    it back. A temp file rather than a custom in-memory AVIOContext because
//    +faststart rewrites the file (moves the moov atom in front) after the
//    last packet, which needs a seekable, re-readable output; the file costs
//    one extra read of a few MB and keeps the muxer on its tested path.
// Errors (mmgen::proto::ProtocolError): invalid_request for bad parameters
// (odd size: yuv420p needs even width and height — refused, not padded, so
// the output is exactly the requested size), internal for I/O and encoder
// failures (message names the path and FFmpeg's reason), unsupported when
// this FFmpeg has no libx264.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mmgen::media {

struct Rational {
  int num = 16;
  int den = 1;
  double value() const { return double(num) / double(den); }
  bool operator==(const Rational&) const = default;
};
// "16", "24000/1001", "29.97" (decimal -> exact fraction with den 1000 reduced).
// invalid_request unless 0 < fps <= 240.
Rational parse_fps(std::string_view text);

struct VideoEncodeOptions {
  Rational fps{16, 1};
  int crf = 18;                    // 0..51, lower is better quality
  std::string preset = "medium";   // x264 preset name
  int threads = 0;                 // 0: x264 picks (about 1.5 x cores)
  // Non-empty: also write every frame as DIR/frame_00000.png ... (created if missing).
  std::filesystem::path frames_dir;
  int png_compression = 3;
};

// Streams RGB frames into an MP4 at `path`.
class Mp4Writer {
 public:
  Mp4Writer(const std::filesystem::path& path, int width, int height,
            const VideoEncodeOptions& opts = {});
  ~Mp4Writer();  // an unfinished writer removes its temp file
  Mp4Writer(const Mp4Writer&) = delete;
  Mp4Writer& operator=(const Mp4Writer&) = delete;

  // One frame: height rows of width*3 bytes (RGB), `stride` bytes apart (0 = packed).
  void write_rgb(const std::uint8_t* rgb, std::size_t stride = 0);
  void write_rgb(std::span<const std::uint8_t> rgb);  // packed; size checked
  // Flushes the encoder, writes the index (faststart) and renames into place.
  void finish();
  std::int64_t frames_written() const;
  int width() const;
  int height() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// An Mp4Writer whose result is returned as bytes (via a temp file in
// `scratch_dir`, default: the system temp directory, removed afterwards).
class Mp4BlobWriter {
 public:
  Mp4BlobWriter(int width, int height, const VideoEncodeOptions& opts = {},
                const std::filesystem::path& scratch_dir = {});
  ~Mp4BlobWriter();
  void write_rgb(const std::uint8_t* rgb, std::size_t stride = 0) { writer_->write_rgb(rgb, stride); }
  void write_rgb(std::span<const std::uint8_t> rgb) { writer_->write_rgb(rgb); }
  std::vector<std::uint8_t> finish();

 private:
  std::filesystem::path dir_;   // private folder holding the one file
  std::filesystem::path path_;
  std::unique_ptr<Mp4Writer> writer_;
};

// ---- reading -------------------------------------------------------------------
struct VideoInfo {
  int width = 0;
  int height = 0;
  Rational fps{0, 1};          // the stream's avg_frame_rate
  std::int64_t frame_count = 0;  // from the container; 0 if it does not say
  double duration_s = 0;
  std::string codec;           // e.g. "h264"
  std::string pix_fmt;         // e.g. "yuv420p"
};

struct VideoReadLimits {
  int max_width = 8192;
  int max_height = 8192;
};

// Decodes the best video stream to packed RGB24 frames, one at a time.
class VideoReader {
 public:
  explicit VideoReader(const std::filesystem::path& path, const VideoReadLimits& limits = {});
  // From bytes in memory (an uploaded blob); `name` is used in messages.
  VideoReader(std::string_view name, std::vector<std::uint8_t> bytes,
              const VideoReadLimits& limits = {});
  ~VideoReader();
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  const VideoInfo& info() const;
  // Next frame into `rgb` (resized to width*height*3); false after the last one.
  bool next_rgb(std::vector<std::uint8_t>& rgb);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct DecodedVideo {
  VideoInfo info;
  std::vector<std::vector<std::uint8_t>> frames;  // RGB24, packed
};
// Whole file; refuses (too_large) more than max_frames frames.
DecodedVideo read_video(const std::filesystem::path& path, std::int64_t max_frames = 10000);

}  // namespace mmgen::media
