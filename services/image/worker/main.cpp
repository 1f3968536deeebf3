// mmgen-image: the common worker flags (README "Command-line contract").
#include <memory>

#include "image_service.hpp"
#include "mmgen/worker.hpp"

int main(int argc, char** argv) {
  return mmgen::worker::worker_main(
      argc, argv, "image",
      [](const mmgen::worker::WorkerFlags& f) {
        mmgen::image::ImageServiceOptions o;
        o.model_dir = f.model;
        o.device = f.device;
        o.dtype = f.dtype;
        o.threads = f.threads;
        return std::make_unique<mmgen::image::ImageService>(o);
      },
      MMGEN_VERSION);
}
