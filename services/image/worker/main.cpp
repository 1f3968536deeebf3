// mmgen-image: the common worker flags (README "Command-line contract").
#include <memory>
#include <stdexcept>

#include "image_service.hpp"
#include "mmgen/worker.hpp"

int main(int argc, char** argv) {
  return mmgen::worker::worker_main(
      argc, argv, "image",
      [](const mmgen::worker::WorkerFlags& f) {
        // A denoising step already uses every core (or the whole GPU), and
        // per-job settings such as VAE tiling live on the one pipeline.
        if (f.capacity != 1) throw std::invalid_argument("mmgen-image runs one job at a time: --capacity must be 1");
        mmgen::image::ImageServiceOptions o;
        o.model_dir = f.model;
        o.device = f.device;
        o.dtype = f.dtype;
        o.threads = f.threads;
        return std::make_unique<mmgen::image::ImageService>(o);
      },
      MMGEN_VERSION);
}
