// Helpers shared by the diffusion benchmarks (image_bench, video_bench): each
// measurement runs in a child process so its peak memory is its own, and the
// children report one JSON line of figures and write their pixels as raw
// float32 files for the parity check.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace mmgen::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

inline double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// CPU seconds of the whole process (every thread): less disturbed than wall
// time when other work shares the cores (spin-waiting threads still count).
inline double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// A "VmHWM:" / "VmRSS:" line of /proc/self/status, in MB.
inline double proc_status_mb(const std::string& key) {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  }
  return 0.0;
}
inline double vm_hwm_mb() { return proc_status_mb("VmHWM:"); }

// A fresh folder /tmp/mmgen-<name>-XXXXXX for the run's checkpoint; empty
// (and the reason on stderr) when it cannot be made.
inline fs::path make_temp_dir(const std::string& name) {
  std::string tmpl = "/tmp/mmgen-" + name + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    return {};
  }
  return tmpl;
}

inline std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run: " + cmd);
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0) throw std::runtime_error("child failed (" + std::to_string(rc) + "): " + cmd);
  return out;
}

// The last line of a child's output that starts with '{' (its JSON figures).
inline std::string json_line(const std::string& out) {
  std::istringstream lines(out);
  std::string last;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line[0] == '{') last = line;
  }
  if (last.empty()) throw std::runtime_error("child printed no figures:\n" + out);
  return last;
}

// A number field of a flat JSON object ("key": 1.5); NaN when absent.
inline double json_num(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  const auto at = line.find(k);
  if (at == std::string::npos) return std::nan("");
  return std::strtod(line.c_str() + at + k.size(), nullptr);
}

inline void save_raw(const at::Tensor& t, const std::string& path) {
  if (path.empty()) return;
  const at::Tensor f = t.to(at::kFloat).contiguous();
  std::ofstream(path, std::ios::binary)
      .write(static_cast<const char*>(f.data_ptr()), static_cast<std::streamsize>(f.numel() * 4));
}

inline std::vector<float> load_raw(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return {};
  std::vector<float> v(static_cast<std::size_t>(f.tellg()) / 4);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

inline double max_abs_diff(const std::string& a, const std::string& b) {
  const auto x = load_raw(a), y = load_raw(b);
  if (x.empty() || x.size() != y.size()) return std::nan("");
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, double(std::fabs(x[i] - y[i])));
  return m;
}

inline std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A child's JSON figures, read by key.
struct Figures {
  std::string line;
  double get(const char* k) const { return json_num(line, k); }
};

// Flag values in argv order: `value()` is the next argument, or exit 2 with
// "<flag> needs a value".
struct ArgCursor {
  int argc;
  char** argv;
  int i = 0;
  bool next() { return ++i < argc; }
  std::string flag() const { return argv[i]; }
  std::string value() {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", argv[i]);
      std::exit(2);
    }
    return argv[++i];
  }
};

// Runs a child mode (`run` returns the exit status; an unknown mode is 2, a
// failure prints "<bench> child: ..." and is 1).
template <class Run>
int run_child(const char* bench, const std::string& mode, Run&& run) {
  try {
    const int rc = run();
    if (rc == 2) std::fprintf(stderr, "unknown child mode %s\n", mode.c_str());
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s child: %s\n", bench, e.what());
    return 1;
  }
}

// What the parent needs to start its children: a fresh folder, this binary,
// the Python reference script and the flags both sides share.
struct Parent {
  fs::path dir;
  std::string self, script, common;
};
inline Parent make_parent(const std::string& name, const std::string& python, const std::string& script,
                          int threads) {
  Parent p;
  p.dir = make_temp_dir(name);
  if (p.dir.empty()) return p;
  p.self = fs::read_symlink("/proc/self/exe").string();
  p.script = "'" + python + "' '" + script + "'";
  p.common = " --dir '" + p.dir.string() + "' --threads " + std::to_string(threads);
  return p;
}

}  // namespace mmgen::bench
