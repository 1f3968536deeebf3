// mmgen-broker: parse options, start /metrics, open the journal and bind the
// sockets (Loop), say ready, serve until SIGTERM/SIGINT.
#include <pthread.h>
#include <sched.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include <zmq.hpp>

#include "http.hpp"
#include "loop.hpp"
#include "mmgen/log.hpp"
#include "options.hpp"

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int) { g_stop.store(true); }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the poll returns EINTR and the loop sees the flag
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

// --pin-cpu: the loop thread and libzmq's I/O thread hand every message to
// each other through an eventfd; on different CPUs each hand-off wakes an idle
// CPU (an IPI, costly in a VM), on one CPU it is a plain context switch. On
// the 2-vCPU dev VM this took 20-35 µs off a job's round trip at p50, at no
// cost in throughput (the loop is one thread anyway). The HTTP thread stays
// free. Off by default: pinned, the loop cannot move off a CPU that other
// work saturates.
void pin_loop_thread(int cpu, zmq::context_t& ctx) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || !CPU_ISSET(cpu, &allowed))
    throw std::runtime_error("--pin-cpu " + std::to_string(cpu) + ": this process may not run on that CPU");
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof one, &one); rc != 0)
    throw std::runtime_error("--pin-cpu " + std::to_string(cpu) + ": " + std::strerror(rc));
  ctx.set(zmq::ctxopt::thread_affinity_cpu_add, cpu);  // before the first socket starts the I/O thread
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mmgen;
  using namespace mmgen::broker;
  log::set_component("broker");

  ParsedOptions parsed = parse_options(argc, argv, [](const char* name) { return std::getenv(name); });
  if (parsed.help) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  if (!parsed.error.empty()) {
    std::fprintf(stderr, "mmgen-broker: %s\n\n%s", parsed.error.c_str(), usage().c_str());
    return 2;
  }
  const Options& o = parsed.options;
  install_signal_handlers();

  try {
    HttpServer http;
    if (o.http_port != 0) http.start(o.http_host, o.http_port);

    LoopConfig cfg;
    cfg.clients_endpoint = o.clients;
    cfg.workers_endpoint = o.workers;
    cfg.data_dir = o.data;
    cfg.max_input_bytes = o.max_input_bytes;
    cfg.max_result_bytes = o.max_result_bytes;
    cfg.result_ttl_s = double(o.result_ttl_s);
    cfg.dispatcher.services = o.services;
    cfg.dispatcher.heartbeat_ms = o.heartbeat_ms;
    cfg.dispatcher.liveness = o.liveness;
    cfg.dispatcher.max_attempts = o.max_attempts;
    cfg.dispatcher.queue_limit = o.queue_limit;
    cfg.dispatcher.final_jobs_in_memory = o.jobs_in_memory;
    cfg.publish_metrics = [&http](MetricsSnapshot m) { http.publish(std::move(m)); };

    zmq::context_t ctx(1);
    if (o.pin_cpu >= 0) pin_loop_thread(o.pin_cpu, ctx);
    {
      Loop loop(std::move(cfg), ctx);
      http.set_ready(true);
      log::info("ready", {{"clients", loop.clients_endpoint()},
                          {"workers", loop.workers_endpoint()},
                          {"http", o.http_port ? o.http_host + ":" + std::to_string(o.http_port) : "off"},
                          {"data", o.data.string()}});
      loop.run(g_stop);
      http.set_ready(false);
    }  // sockets close (LINGER 0) before the context
    http.stop();
  } catch (const std::exception& e) {
    log::error("fatal", {{"error", e.what()}});
    return 1;
  }
  log::info("exit");
  return 0;
}
