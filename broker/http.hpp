// /metrics, /healthz and /readyz on their own thread (cpp-httplib). The HTTP
// thread never touches the dispatcher: the loop publishes MetricsSnapshot
// copies, and requests render the latest one.
#pragma once

#include <memory>
#include <string>

#include "metrics.hpp"

namespace mmgen::broker {

class HttpServer {
 public:
  HttpServer();
  ~HttpServer();  // stops and joins
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0: any free port) and starts serving. Returns the
  // bound port. Throws std::runtime_error if it cannot bind.
  int start(const std::string& host, int port);
  void stop();

  // Thread-safe.
  void publish(MetricsSnapshot snapshot);
  void set_ready(bool ready);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mmgen::broker
