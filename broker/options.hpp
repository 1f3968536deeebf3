// mmgen-broker's command line: each flag also comes from an environment
// variable MMGEN_BROKER_<NAME> (e.g. --queue-limit <- MMGEN_BROKER_QUEUE_LIMIT);
// a flag wins over the environment, which wins over the default.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace mmgen::broker {

struct Options {
  std::string clients = "tcp://127.0.0.1:5555";
  std::string workers = "tcp://127.0.0.1:5556";
  std::string http_host = "0.0.0.0";  // --http [HOST:]PORT
  int http_port = 5557;               // 0: no HTTP endpoint
  std::filesystem::path data = "./data/broker";
  std::vector<std::string> services{"echo"};
  std::int64_t heartbeat_ms = 1000;
  std::uint32_t liveness = 3;
  std::uint32_t max_attempts = 3;
  std::uint32_t queue_limit = 1000;
  std::int64_t result_ttl_s = 24 * 3600;
  std::uint64_t max_input_bytes = 64ull << 20;
  std::uint64_t max_result_bytes = 256ull << 20;
  std::uint32_t jobs_in_memory = 10000;  // final jobs kept in memory; older ones from the journal
  int pin_cpu = -1;  // >= 0: the loop and its ZeroMQ I/O thread run on this CPU only
};

struct ParsedOptions {
  Options options;
  bool help = false;
  std::string error;  // non-empty: print it with the usage and exit 2
};

// getenv is injected so tests control the environment.
ParsedOptions parse_options(int argc, const char* const* argv,
                            const std::function<const char*(const char*)>& getenv);
std::string usage();

}  // namespace mmgen::broker
