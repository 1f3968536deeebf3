// mmgen-echo: the common worker flags, no model. See echo_service.hpp.
#include <memory>

#include "echo_service.hpp"

int main(int argc, char** argv) {
  return mmgen::worker::worker_main(
      argc, argv, "echo",
      [](const mmgen::worker::WorkerFlags&) { return std::make_unique<mmgen::echo::EchoService>(); },
      MMGEN_VERSION);
}
