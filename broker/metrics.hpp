// A point-in-time copy of the broker's numbers. The loop builds one from the
// dispatcher and hands it to the HTTP thread, which only ever reads copies.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace mmgen::broker {

// Cumulative histogram in Prometheus' manner: counts[i] = observations <= bounds[i].
struct Histogram {
  static constexpr std::array<double, 12> kBounds{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
                                                  0.1,    0.5,    1,     5,     30,   300};
  std::array<std::uint64_t, kBounds.size()> counts{};
  std::uint64_t count = 0;
  double sum = 0;

  void observe(double v) {
    for (std::size_t i = 0; i < kBounds.size(); ++i)
      if (v <= kBounds[i]) ++counts[i];
    ++count;
    sum += v;
  }
};

struct ServiceMetrics {
  std::string service;
  std::uint64_t queued = 0;   // gauge
  std::uint64_t running = 0;  // gauge
  std::uint64_t workers_alive = 0;
  std::uint64_t capacity = 0;  // sum of alive workers' capacities
  // Counters since the broker started.
  std::uint64_t submitted = 0;
  std::uint64_t rejected = 0;  // queue_full
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t requeued = 0;
  Histogram dispatch_latency;  // seconds from queued to started
};

struct MetricsSnapshot {
  std::vector<ServiceMetrics> services;
  std::uint64_t workers_lost = 0;          // declared dead
  std::uint64_t worker_messages_dropped = 0;  // not leased / unknown worker
  // Filled by the loop.
  std::uint64_t client_messages = 0;
  std::uint64_t worker_messages = 0;
  std::uint64_t malformed_messages = 0;
  std::uint64_t send_failures = 0;
  double uptime_s = 0;
};

// Prometheus text exposition format 0.0.4.
std::string render_prometheus(const MetricsSnapshot& m);

}  // namespace mmgen::broker
