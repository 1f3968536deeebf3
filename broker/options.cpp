#include "options.hpp"

#include <sched.h>

#include <charconv>
#include <limits>
#include <stdexcept>
#include <string_view>

namespace mmgen::broker {
namespace {

struct BadValue : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class T>
T parse_number(std::string_view name, std::string_view v, T lo, T hi) {
  T out{};
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size() || out < lo || out > hi)
    throw BadValue(std::string(name) + ": expected an integer in " + std::to_string(lo) + ".." +
                   std::to_string(hi) + ", got '" + std::string(v) + "'");
  return out;
}

void parse_http(Options& o, std::string_view v) {
  std::string_view port = v;
  if (auto colon = v.rfind(':'); colon != std::string_view::npos) {
    o.http_host = std::string(v.substr(0, colon));
    port = v.substr(colon + 1);
    if (o.http_host.empty()) throw BadValue("--http: empty host in '" + std::string(v) + "'");
  }
  o.http_port = parse_number<int>("--http", port, 0, 65535);
}

void parse_endpoint(std::string& out, std::string_view name, std::string_view v) {
  if (v.find("://") == std::string_view::npos)
    throw BadValue(std::string(name) + ": expected an endpoint like tcp://127.0.0.1:5555, got '" +
                   std::string(v) + "'");
  out = std::string(v);
}

std::vector<std::string> parse_list(std::string_view v) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= v.size()) {
    std::size_t comma = v.find(',', start);
    if (comma == std::string_view::npos) comma = v.size();
    std::string_view item = v.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    start = comma + 1;
  }
  return out;
}

// One table: flag, env suffix, setter. Every flag takes a value.
struct Flag {
  const char* flag;
  const char* env;
  const char* help;
  std::function<void(Options&, std::string_view)> set;
};

const std::vector<Flag>& flags() {
  static const std::vector<Flag> table = {
      {"--clients", "CLIENTS", "EP      client endpoint to bind (default tcp://127.0.0.1:5555)",
       [](Options& o, std::string_view v) { parse_endpoint(o.clients, "--clients", v); }},
      {"--workers", "WORKERS", "EP      worker endpoint to bind (default tcp://127.0.0.1:5556)",
       [](Options& o, std::string_view v) { parse_endpoint(o.workers, "--workers", v); }},
      {"--http", "HTTP", "[HOST:]PORT  /metrics /healthz /readyz (default 0.0.0.0:5557; 0 disables)",
       [](Options& o, std::string_view v) { parse_http(o, v); }},
      {"--data", "DATA", "DIR        journal and blobs (default ./data/broker)",
       [](Options& o, std::string_view v) {
         if (v.empty()) throw BadValue("--data: empty path");
         o.data = std::string(v);
       }},
      {"--services", "SERVICES", "LIST   services known before any worker registers (default echo)",
       [](Options& o, std::string_view v) { o.services = parse_list(v); }},
      {"--heartbeat-ms", "HEARTBEAT_MS", "N  heartbeat interval (default 1000)",
       [](Options& o, std::string_view v) {
         o.heartbeat_ms = parse_number<std::int64_t>("--heartbeat-ms", v, 10, 3'600'000);
       }},
      {"--liveness", "LIVENESS", "N      silent intervals before a worker is dead (default 3)",
       [](Options& o, std::string_view v) {
         o.liveness = parse_number<std::uint32_t>("--liveness", v, 1, 1000);
       }},
      {"--max-attempts", "MAX_ATTEMPTS", "N  worker losses before worker_lost (default 3)",
       [](Options& o, std::string_view v) {
         o.max_attempts = parse_number<std::uint32_t>("--max-attempts", v, 1, 1000);
       }},
      {"--queue-limit", "QUEUE_LIMIT", "N   queued jobs per service (default 1000)",
       [](Options& o, std::string_view v) {
         o.queue_limit = parse_number<std::uint32_t>("--queue-limit", v, 1, 10'000'000);
       }},
      {"--result-ttl-s", "RESULT_TTL_S", "N  keep finished jobs and results this long (default 86400)",
       [](Options& o, std::string_view v) {
         o.result_ttl_s = parse_number<std::int64_t>("--result-ttl-s", v, 1, 10ll * 365 * 86400);
       }},
      {"--max-input-bytes", "MAX_INPUT_BYTES", "N  input blobs per SUBMIT (default 67108864)",
       [](Options& o, std::string_view v) {
         o.max_input_bytes = parse_number<std::uint64_t>("--max-input-bytes", v, 0, 1ull << 34);
       }},
      {"--max-result-bytes", "MAX_RESULT_BYTES", "N  output blobs per RESULT (default 268435456)",
       [](Options& o, std::string_view v) {
         o.max_result_bytes = parse_number<std::uint64_t>("--max-result-bytes", v, 0, 1ull << 34);
       }},
      {"--jobs-in-memory", "JOBS_IN_MEMORY", "N  finished jobs kept in memory (default 10000)",
       [](Options& o, std::string_view v) {
         o.jobs_in_memory = parse_number<std::uint32_t>("--jobs-in-memory", v, 0, 10'000'000);
       }},
      {"--pin-cpu", "PIN_CPU", "N      run the loop and its ZeroMQ I/O thread on CPU N only (default: not pinned)",
       [](Options& o, std::string_view v) { o.pin_cpu = parse_number<int>("--pin-cpu", v, 0, CPU_SETSIZE - 1); }},
  };
  return table;
}

}  // namespace

std::string usage() {
  std::string s =
      "usage: mmgen-broker [options]\n"
      "The mmgen job broker: clients submit on one ZeroMQ endpoint, workers serve on another.\n\n";
  for (const auto& f : flags()) {
    s += "  ";
    s += f.flag;
    s += ' ';
    s += f.help;
    s += "\n      env MMGEN_BROKER_";
    s += f.env;
    s += '\n';
  }
  s += "  --help           this text\n";
  return s;
}

ParsedOptions parse_options(int argc, const char* const* argv,
                            const std::function<const char*(const char*)>& getenv) {
  ParsedOptions out;
  try {
    for (const auto& f : flags()) {
      const std::string env = std::string("MMGEN_BROKER_") + f.env;
      if (const char* v = getenv(env.c_str()); v && *v) {
        try {
          f.set(out.options, v);
        } catch (const BadValue& e) {
          throw BadValue(env + ": " + e.what());
        }
      }
    }
    for (int i = 1; i < argc; ++i) {
      std::string_view arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        out.help = true;
        return out;
      }
      std::string_view value;
      bool inline_value = false;
      if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        inline_value = true;
      }
      const Flag* flag = nullptr;
      for (const auto& f : flags())
        if (arg == f.flag) flag = &f;
      if (!flag) throw BadValue("unknown option '" + std::string(arg) + "'");
      if (!inline_value) {
        if (i + 1 >= argc) throw BadValue(std::string(arg) + ": missing value");
        value = argv[++i];
      }
      flag->set(out.options, value);
    }
  } catch (const BadValue& e) {
    out.error = e.what();
  }
  return out;
}

}  // namespace mmgen::broker
