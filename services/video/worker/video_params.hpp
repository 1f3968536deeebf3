// Job params and input blobs of the `video` service -> a VideoJob.
// Keys (clients/README.md, clients/cli/flags.cpp kVideo): prompt,
// negative_prompt, frames, width, height, steps, cfg, cfg2, flow_shift, fps,
// seed, previews, preview_every, save_frames, crf, preset, format; blob
// `image` (the first frame: image-to-video).
//
// Torch-free on purpose: the parsing is tested without a model. Generation
// settings a job leaves out stay unset here and take the loaded model's
// published defaults in the service (VideoService::run), so one worker binary
// serves TI2V-5B and the A14B models with their own defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/media/image.hpp"
#include "mmgen/media/video.hpp"
#include "mmgen/value.hpp"
#include "mmgen/worker.hpp"

namespace mmgen::video {

// The x264 presets, fastest first (x264 --help).
extern const std::vector<std::string_view> kX264Presets;

// Frames a RESULT can carry as PNGs next to the MP4 (proto::Limits::max_blobs
// counts every output blob).
std::int64_t max_saved_frames();

struct VideoJob {
  std::string prompt;
  // nullopt: the service uses the official default (kWanDefaultNegativePrompt,
  // wan_pipeline.hpp); an explicit "" is diffusers' default (no negative text).
  std::optional<std::string> negative_prompt;
  std::optional<media::Image> image;  // RGB first frame (image-to-video)

  // Unset: the model's default.
  std::optional<std::int64_t> frames;  // 4n + 1
  std::optional<std::int64_t> width;
  std::optional<std::int64_t> height;
  std::optional<std::int64_t> steps;
  std::optional<double> cfg;         // guidance scale (high-noise expert)
  std::optional<double> cfg2;        // low-noise expert's scale (A14B)
  std::optional<double> flow_shift;  // overrides scheduler_config.json's shift
  std::optional<media::Rational> fps;

  std::uint64_t seed = 0;
  bool seed_given = false;  // otherwise a random seed, reported in the result
  std::int64_t max_sequence_length = 512;

  // Output.
  std::int64_t preview_every = 0;  // 0: no previews
  bool save_frames = false;        // also every frame as a PNG blob
  int crf = 18;
  std::string preset = "medium";
  std::string format = "mp4";
};

// Throws ProtocolError(invalid_request) naming the bad key or blob.
VideoJob parse_video_job(const Params& params, const std::vector<worker::Input>& inputs);

}  // namespace mmgen::video
