#include "http.hpp"

#include <httplib.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace mmgen::broker {

struct HttpServer::Impl {
  httplib::Server server;
  std::thread thread;
  std::mutex mu;
  MetricsSnapshot snapshot;  // guarded by mu
  std::atomic<bool> ready{false};
};

HttpServer::HttpServer() : impl_(std::make_unique<Impl>()) {
  Impl& I = *impl_;
  // Two threads are plenty for scrapes and probes; the default pool is larger.
  I.server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  I.server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  I.server.Get("/readyz", [&I](const httplib::Request&, httplib::Response& res) {
    const bool ready = I.ready.load();
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "not ready\n", "text/plain");
  });
  I.server.Get("/metrics", [&I](const httplib::Request&, httplib::Response& res) {
    MetricsSnapshot copy;
    {
      std::lock_guard lock(I.mu);
      copy = I.snapshot;
    }
    res.set_content(render_prometheus(copy), "text/plain; version=0.0.4");
  });
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::start(const std::string& host, int port) {
  Impl& I = *impl_;
  int bound = port;
  if (port == 0)
    bound = I.server.bind_to_any_port(host);
  else if (!I.server.bind_to_port(host, port))
    bound = -1;
  if (bound <= 0)
    throw std::runtime_error("http: cannot listen on " + host + ":" + std::to_string(port));
  I.thread = std::thread([&I] { I.server.listen_after_bind(); });
  return bound;
}

void HttpServer::stop() {
  Impl& I = *impl_;
  if (I.thread.joinable()) {
    I.server.stop();
    I.thread.join();
  }
}

void HttpServer::publish(MetricsSnapshot snapshot) {
  std::lock_guard lock(impl_->mu);
  impl_->snapshot = std::move(snapshot);
}

void HttpServer::set_ready(bool ready) { impl_->ready.store(ready); }

}  // namespace mmgen::broker
