// The command line every worker binary shares (README "Command-line
// contract"), plus each service's own flags, and a ready-made main().
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "mmgen/log.hpp"
#include "mmgen/worker.hpp"
#include "mmgen/zmq_util.hpp"

namespace mmgen::worker {
namespace {

std::int64_t parse_int(std::string_view flag, std::string_view v, std::int64_t lo, std::int64_t hi) {
  std::int64_t out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size()) {
    throw FlagError("--" + std::string(flag) + ": '" + std::string(v) + "' is not an integer");
  }
  if (out < lo || out > hi) {
    throw FlagError("--" + std::string(flag) + ": " + std::string(v) + " is outside " +
                    std::to_string(lo) + ".." + std::to_string(hi));
  }
  return out;
}

double parse_double(std::string_view flag, std::string_view v) {
  const std::string s(v);
  char* end = nullptr;
  const double out = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) {
    throw FlagError("--" + std::string(flag) + ": '" + s + "' is not a number");
  }
  return out;
}

bool parse_bool(std::string_view flag, std::string_view v) {
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  throw FlagError("--" + std::string(flag) + ": '" + std::string(v) + "' is not true or false");
}

void check_endpoint(std::string_view what, const std::string& ep) {
  if (!zmqu::looks_like_endpoint(ep)) {
    throw FlagError(std::string(what) + ": '" + ep + "' is not an endpoint like tcp://host:port");
  }
}

void check_device(const std::string& d) {
  if (d == "cpu" || d == "cuda") return;
  if (d.starts_with("cuda:") && d.size() > 5 &&
      d.find_first_not_of("0123456789", 5) == std::string::npos && d.size() <= 8) {
    return;
  }
  throw FlagError("--device: '" + d + "' is not cpu, cuda or cuda:N");
}

void check_dtype(const std::string& t) {
  if (t == "float32" || t == "bfloat16" || t == "float16") return;
  throw FlagError("--dtype: '" + t + "' is not float32, bfloat16 or float16");
}

bool is_bool_flag(const ExtraFlag& f) { return std::holds_alternative<bool*>(f.target); }

}  // namespace

WorkerOptions WorkerFlags::options(std::string version) const {
  WorkerOptions o;
  o.broker = broker;
  o.capacity = capacity;
  o.device = device;
  o.version = std::move(version);
  o.heartbeat_ms = heartbeat_ms;
  o.grace_ms = grace_ms;
  return o;
}

WorkerFlags parse_worker_flags(int argc, const char* const* argv, std::string_view service,
                               const std::vector<ExtraFlag>& extra, WorkerFlags defaults) {
  (void)service;  // named in errors by the caller; kept for symmetry with worker_usage
  WorkerFlags f = std::move(defaults);
  if (const char* env = std::getenv("MMGEN_WORKER_BROKER"); env != nullptr && *env != '\0') {
    f.broker = env;
    check_endpoint("MMGEN_WORKER_BROKER", f.broker);
  }
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      f.help = true;
      continue;
    }
    if (!arg.starts_with("--") || arg.size() == 2) {
      throw FlagError("unexpected argument '" + std::string(arg) + "'");
    }
    std::string_view name = arg.substr(2);
    std::optional<std::string_view> inline_value;
    if (const auto eq = name.find('='); eq != std::string_view::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value) return std::string(*inline_value);
      if (i + 1 >= argc) throw FlagError("--" + std::string(name) + " needs a value");
      return argv[++i];
    };

    if (name == "broker") {
      f.broker = value();
      check_endpoint("--broker", f.broker);
    } else if (name == "model") {
      f.model = value();
      if (f.model.empty()) throw FlagError("--model: empty path");
    } else if (name == "device") {
      f.device = value();
      check_device(f.device);
    } else if (name == "dtype") {
      f.dtype = value();
      check_dtype(f.dtype);
    } else if (name == "threads") {
      f.threads = static_cast<std::uint32_t>(parse_int(name, value(), 0, 1024));
    } else if (name == "capacity") {
      f.capacity = static_cast<std::uint32_t>(parse_int(name, value(), 1, 1024));
    } else if (name == "heartbeat-ms") {
      f.heartbeat_ms = static_cast<int>(parse_int(name, value(), 10, 600000));
    } else if (name == "grace-ms") {
      f.grace_ms = static_cast<int>(parse_int(name, value(), 0, 3600000));
    } else {
      const ExtraFlag* x = nullptr;
      for (const auto& e : extra) {
        if (e.name == name) x = &e;
      }
      if (x == nullptr) throw FlagError("unknown flag --" + std::string(name));
      if (auto* b = std::get_if<bool*>(&x->target)) {
        **b = inline_value ? parse_bool(name, *inline_value) : true;
      } else if (auto* s = std::get_if<std::string*>(&x->target)) {
        **s = value();
      } else if (auto* n = std::get_if<std::int64_t*>(&x->target)) {
        **n = parse_int(name, value(), x->min, x->max);
      } else if (auto* d = std::get_if<double*>(&x->target)) {
        **d = parse_double(name, value());
      }
    }
  }
  return f;
}

std::string worker_usage(std::string_view service, const std::vector<ExtraFlag>& extra,
                         const WorkerFlags& d) {
  std::ostringstream o;
  o << "usage: mmgen-" << service << " [flags]\n\n"
    << "Connects to an mmgen broker and serves '" << service
    << "' jobs until SIGTERM or SIGINT.\n\n"
    << "  --broker EP        broker's worker endpoint (env MMGEN_WORKER_BROKER; default "
    << d.broker << ")\n"
    << "  --model DIR        model directory\n"
    << "  --device DEV       cpu | cuda | cuda:N (default " << d.device << ")\n"
    << "  --dtype T          float32 | bfloat16 | float16 (default " << d.dtype << ")\n"
    << "  --threads N        compute threads, 0 = the library's default (default " << d.threads
    << ")\n"
    << "  --capacity N       jobs run at once (default " << d.capacity << ")\n"
    << "  --heartbeat-ms N   heartbeat interval (default " << d.heartbeat_ms << ")\n"
    << "  --grace-ms N       on SIGTERM, time running jobs get to finish (default " << d.grace_ms
    << ")\n"
    << "  -h, --help         show this help\n";
  if (!extra.empty()) {
    o << "\n" << service << " flags:\n";
    for (const auto& e : extra) {
      std::string head = "--" + e.name + (is_bool_flag(e) ? "" : " VALUE");
      if (head.size() < 17) head.resize(17, ' ');
      o << "  " << head << "  " << e.help << "\n";
    }
  }
  o << "\nExit status: 0 after a clean stop, 1 if the service cannot start, 2 on a usage error.\n";
  return o.str();
}

int worker_main(int argc, const char* const* argv, std::string_view service,
                const ServiceFactory& make, std::string version,
                const std::vector<ExtraFlag>& extra, WorkerFlags defaults) {
  log::set_component(service);
  WorkerFlags flags;
  try {
    flags = parse_worker_flags(argc, argv, service, extra, defaults);
  } catch (const FlagError& e) {
    std::cerr << "mmgen-" << service << ": " << e.what() << " (see --help)\n";
    return 2;
  }
  if (flags.help) {
    std::cout << worker_usage(service, extra, defaults);
    return 0;
  }
  try {
    std::unique_ptr<Service> svc = make(flags);
    Worker worker(*svc, flags.options(std::move(version)));
    worker.run();
  } catch (const std::exception& e) {
    log::error("worker_exit", {{"error", e.what()}});
    return 1;
  }
  return 0;
}

}  // namespace mmgen::worker
