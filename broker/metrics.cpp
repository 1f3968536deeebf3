#include "metrics.hpp"

#include <cstdio>

namespace mmgen::broker {
namespace {

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// Label values are service names from workers; escape them as the format demands.
std::string label(const std::string& v) {
  std::string s;
  for (char c : v) {
    if (c == '\\' || c == '"') s += '\\';
    if (c == '\n') {
      s += "\\n";
      continue;
    }
    s += c;
  }
  return s;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void sample(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += num(v);
  out += '\n';
}

template <class F>
void per_service(std::string& out, const MetricsSnapshot& m, const char* name, const char* type,
                 const char* help, F value) {
  header(out, name, type, help);
  for (const auto& s : m.services)
    sample(out, name, "service=\"" + label(s.service) + "\"", double(value(s)));
}

}  // namespace

std::string render_prometheus(const MetricsSnapshot& m) {
  std::string out;
  out.reserve(4096);

  header(out, "mmgen_jobs", "gauge", "Jobs in the broker's memory by service and live state.");
  for (const auto& s : m.services) {
    const std::string svc = "service=\"" + label(s.service) + "\"";
    sample(out, "mmgen_jobs", svc + ",state=\"queued\"", double(s.queued));
    sample(out, "mmgen_jobs", svc + ",state=\"running\"", double(s.running));
  }
  header(out, "mmgen_jobs_finished_total", "counter",
         "Jobs that reached a final state since the broker started.");
  for (const auto& s : m.services) {
    const std::string svc = "service=\"" + label(s.service) + "\"";
    sample(out, "mmgen_jobs_finished_total", svc + ",state=\"succeeded\"", double(s.succeeded));
    sample(out, "mmgen_jobs_finished_total", svc + ",state=\"failed\"", double(s.failed));
    sample(out, "mmgen_jobs_finished_total", svc + ",state=\"cancelled\"", double(s.cancelled));
  }
  per_service(out, m, "mmgen_queue_depth", "gauge", "Jobs waiting for a worker.",
              [](const ServiceMetrics& s) { return s.queued; });
  per_service(out, m, "mmgen_workers_alive", "gauge", "Registered workers that are alive.",
              [](const ServiceMetrics& s) { return s.workers_alive; });
  per_service(out, m, "mmgen_worker_capacity", "gauge", "Sum of alive workers' capacities.",
              [](const ServiceMetrics& s) { return s.capacity; });
  per_service(out, m, "mmgen_jobs_submitted_total", "counter", "Jobs accepted.",
              [](const ServiceMetrics& s) { return s.submitted; });
  per_service(out, m, "mmgen_jobs_rejected_total", "counter", "SUBMITs refused with queue_full.",
              [](const ServiceMetrics& s) { return s.rejected; });
  per_service(out, m, "mmgen_jobs_requeued_total", "counter",
              "Jobs put back in the queue after their worker was lost or left.",
              [](const ServiceMetrics& s) { return s.requeued; });

  const char* h = "mmgen_dispatch_latency_seconds";
  header(out, h, "histogram", "Time from queued to started.");
  for (const auto& s : m.services) {
    const std::string svc = "service=\"" + label(s.service) + "\"";
    const Histogram& hist = s.dispatch_latency;
    for (std::size_t i = 0; i < Histogram::kBounds.size(); ++i)
      sample(out, std::string(h) + "_bucket", svc + ",le=\"" + num(Histogram::kBounds[i]) + "\"",
             double(hist.counts[i]));
    sample(out, std::string(h) + "_bucket", svc + ",le=\"+Inf\"", double(hist.count));
    sample(out, std::string(h) + "_sum", svc, hist.sum);
    sample(out, std::string(h) + "_count", svc, double(hist.count));
  }

  auto scalar = [&](const char* name, const char* type, const char* help, double v) {
    header(out, name, type, help);
    sample(out, name, "", v);
  };
  scalar("mmgen_workers_lost_total", "counter", "Workers declared dead.", double(m.workers_lost));
  scalar("mmgen_worker_messages_dropped_total", "counter",
         "Worker messages about jobs not leased to that worker, or from unknown workers.",
         double(m.worker_messages_dropped));
  scalar("mmgen_client_messages_total", "counter", "Messages received from clients.",
         double(m.client_messages));
  scalar("mmgen_worker_messages_total", "counter", "Messages received from workers.",
         double(m.worker_messages));
  scalar("mmgen_malformed_messages_total", "counter", "Messages rejected as malformed.",
         double(m.malformed_messages));
  scalar("mmgen_send_failures_total", "counter",
         "Messages that could not be sent (peer gone or its queue full).",
         double(m.send_failures));
  scalar("mmgen_uptime_seconds", "gauge", "Seconds since the broker started.", m.uptime_s);
  return out;
}

}  // namespace mmgen::broker
