// Job params -> VideoJob (video_params.hpp).
#include "video_params.hpp"

#include <algorithm>
#include <random>
#include <string>

#include "mmgen/protocol.hpp"

namespace mmgen::video {

const std::vector<std::string_view> kX264Presets = {"ultrafast", "superfast", "veryfast", "faster", "fast",
                                                    "medium",    "slow",      "slower",   "veryslow", "placebo"};

std::int64_t max_saved_frames() { return static_cast<std::int64_t>(proto::Limits{}.max_blobs) - 1; }

namespace {

[[noreturn]] void bad(const std::string& msg) { throw proto::ProtocolError(proto::ErrorCode::invalid_request, msg); }

template <class T, class Get>
std::optional<T> optional_param(const Params& p, std::string_view key, Get get) {
  if (!p.has(key) || p.map().find(key)->second.is_null()) return std::nullopt;
  return get();
}

// fps: an integer (the CLI's --fps), a decimal number or a string such as
// "24000/1001" / "29.97"; (0, 240].
std::optional<media::Rational> parse_fps_param(const Params& p) {
  auto it = p.map().find("fps");
  if (it == p.map().end() || it->second.is_null()) return std::nullopt;
  const Value& v = it->second;
  std::string text;
  if (v.is_string()) {
    text = v.as_string();
  } else if (v.is_int()) {
    text = std::to_string(v.as_int());
  } else if (v.is_double()) {
    // Up to 6 decimals, which parse_fps takes exactly (23.976, 29.97).
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v.as_double());
    text = buf;
  } else {
    bad("param 'fps': expected a number or a string like \"24000/1001\", got " + v.to_json());
  }
  try {
    return media::parse_fps(text);
  } catch (const proto::ProtocolError& e) {
    bad("param 'fps': " + std::string(e.what()));
  }
}

}  // namespace

VideoJob parse_video_job(const Params& p, const std::vector<worker::Input>& inputs) {
  VideoJob job;
  job.prompt = p.get_string("prompt", "");
  if (job.prompt.empty()) bad("param 'prompt' is required");
  if (p.has("negative_prompt")) job.negative_prompt = p.get_string("negative_prompt", "");

  job.frames = optional_param<std::int64_t>(p, "frames", [&] { return p.get_int("frames", 0, 1, 4097); });
  if (job.frames && (*job.frames - 1) % 4 != 0) {
    const std::int64_t lo = (*job.frames - 1) / 4 * 4 + 1;
    bad("param 'frames': must be 4n + 1 (1, 5, 9, ..., 81, ...), got " + std::to_string(*job.frames) +
        "; the nearest are " + std::to_string(lo) + " and " + std::to_string(lo + 4));
  }
  job.width = optional_param<std::int64_t>(p, "width", [&] { return p.get_int("width", 0, 16, 8192); });
  job.height = optional_param<std::int64_t>(p, "height", [&] { return p.get_int("height", 0, 16, 8192); });
  job.steps = optional_param<std::int64_t>(p, "steps", [&] { return p.get_int("steps", 0, 1, 1000); });
  job.cfg = optional_param<double>(p, "cfg", [&] { return p.get_double("cfg", 0, 0.0, 100.0); });
  job.cfg2 = optional_param<double>(p, "cfg2", [&] { return p.get_double("cfg2", 0, 0.0, 100.0); });
  job.flow_shift =
      optional_param<double>(p, "flow_shift", [&] { return p.get_double("flow_shift", 0, 1e-3, 1000.0); });
  job.fps = parse_fps_param(p);
  job.max_sequence_length = p.get_int("max_sequence_length", job.max_sequence_length, 1, 512);

  job.seed_given = p.has("seed") && !p.map().find("seed")->second.is_null();
  if (job.seed_given) {
    job.seed = static_cast<std::uint64_t>(p.get_int("seed", 0, 0, INT64_MAX));
  } else {
    job.seed = std::random_device{}() & 0x7fffffffu;  // reported back in the result
  }

  const bool previews = p.get_bool("previews", false);
  job.preview_every = p.get_int("preview_every", previews ? 1 : 0, 0, 1000);
  if (previews && job.preview_every == 0) job.preview_every = 1;

  job.save_frames = p.get_bool("save_frames", false);
  if (job.save_frames && job.frames && *job.frames > max_saved_frames()) {
    bad("param 'save_frames': a result carries at most " + std::to_string(max_saved_frames()) +
        " PNG frames next to the video, and frames is " + std::to_string(*job.frames));
  }
  job.crf = static_cast<int>(p.get_int("crf", job.crf, 0, 51));
  job.preset = p.get_string("preset", job.preset);
  if (std::find(kX264Presets.begin(), kX264Presets.end(), job.preset) == kX264Presets.end()) {
    std::string names;
    for (auto n : kX264Presets) names += (names.empty() ? "" : ", ") + std::string(n);
    bad("param 'preset': '" + job.preset + "' is not an x264 preset (" + names + ")");
  }
  job.format = p.get_string("format", job.format);
  if (job.format != "mp4") bad("param 'format': only \"mp4\" (H.264) is written, got '" + job.format + "'");

  media::DecodeOptions opts;
  opts.alpha = media::AlphaMode::drop;  // PIL convert("RGB"), as diffusers' Wan examples load the image
  if (const auto* image = worker::find_input(inputs, "image")) {
    job.image = media::decode_image("image", image->octets(), opts);
  }
  for (const auto& in : inputs) {
    if (in.name != "image") bad("unknown input blob '" + in.name + "' (expected image)");
  }
  return job;
}

}  // namespace mmgen::video
