// The `video` service: Wan jobs on one pipeline (one job at a time by
// default: a diffusion step already uses every core / the whole GPU).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mmgen/media/video.hpp"
#include "mmgen/worker.hpp"

namespace mmgen::video {

class WanPipeline;

struct VideoServiceOptions {
  std::filesystem::path model_dir;  // a diffusers Wan folder
  std::string device = "cpu";
  std::string dtype = "float32";
  std::uint32_t threads = 0;
};

// What a job that leaves a setting out gets: the published settings of the
// model family the folder holds (Wan2.2 repository wan/configs/*.py and its
// generate.py size defaults; Wan 2.1 folders get diffusers' WanPipeline
// defaults). flow_shift is not here: the folder's scheduler_config.json has it.
struct ModelDefaults {
  std::string family;  // "wan2.2-ti2v-5b", "wan2.2-t2v-a14b", "wan2.2-i2v-a14b", "wan2.1"
  std::int64_t frames = 81;
  std::int64_t width = 832;
  std::int64_t height = 480;
  std::int64_t steps = 50;
  double cfg = 5.0;                 // transformer (high-noise expert)
  std::optional<double> cfg2;       // transformer_2 (low-noise expert), two-expert folders
  media::Rational fps{16, 1};
};
ModelDefaults model_defaults(const WanPipeline& pipeline);

class VideoService : public worker::Service {
 public:
  explicit VideoService(const VideoServiceOptions& opts);  // loads the pipeline; throws on a bad folder
  ~VideoService() override;
  std::string name() const override { return "video"; }
  std::vector<std::string> models() const override { return {model_name_}; }
  worker::Outcome run(worker::JobContext& ctx) override;

  const ModelDefaults& defaults() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
  std::string model_name_;
};

}  // namespace mmgen::video
