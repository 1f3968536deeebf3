// The `image` service: Qwen-Image jobs on one pipeline (one job at a time:
// a diffusion step already uses every core / the whole GPU).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mmgen/worker.hpp"

namespace mmgen::image {

struct ImageServiceOptions {
  std::filesystem::path model_dir;  // a diffusers Qwen-Image folder
  std::string device = "cpu";
  std::string dtype = "float32";
  std::uint32_t threads = 0;
};

class ImageService : public worker::Service {
 public:
  explicit ImageService(const ImageServiceOptions& opts);  // loads the pipeline; throws on a bad folder
  ~ImageService() override;
  std::string name() const override { return "image"; }
  std::vector<std::string> models() const override { return {model_name_}; }
  worker::Outcome run(worker::JobContext& ctx) override;

 private:
  struct State;
  std::unique_ptr<State> s_;
  std::string model_name_;
};

}  // namespace mmgen::image
