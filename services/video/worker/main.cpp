// mmgen-video: the common worker flags (README "Command-line contract").
#include <memory>

#include "mmgen/worker.hpp"
#include "video_service.hpp"

int main(int argc, char** argv) {
  return mmgen::worker::worker_main(
      argc, argv, "video",
      [](const mmgen::worker::WorkerFlags& f) {
        mmgen::video::VideoServiceOptions o;
        o.model_dir = f.model;
        o.device = f.device;
        o.dtype = f.dtype;
        o.threads = f.threads;
        return std::make_unique<mmgen::video::VideoService>(o);
      },
      MMGEN_VERSION);
}
