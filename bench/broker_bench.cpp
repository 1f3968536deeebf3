// broker_bench: what the broker costs. Echo jobs with small payloads through a
// real mmgen-broker and real mmgen-echo workers, against a direct
// DEALER<->ROUTER echo measured in the same run:
//   - round-trip latency p50/p99 (one job at a time) and the broker's overhead,
//     all paths in alternating blocks: direct, a bare relay thread (the floor
//     any middle process sets), the broker as started by default and with
//     --pin-cpu; CPU time per job of each process
//   - throughput in jobs/s with 1, 4 and 16 workers (pipelined submits)
//   - a 10 MB payload round trip, through the broker and direct
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"  // tests/integration: Process, Stack
#include "mmgen/zmq_util.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace proto = mmgen::proto;

namespace {

// CPU time (µs) a process has used so far, all threads (Linux schedstat: ns
// resolution, unlike getrusage's ticks). On two cores the round trip is
// mostly this CPU time, spread over seven threads in three processes; the
// split says where it goes. (On a loaded VM it includes steal time, so it is
// noisy too.)
double cpu_us(pid_t pid) {
  double total = 0;
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream f(t.path() / "schedstat");
    double ns = 0;
    if (f >> ns) total += ns / 1000.0;
  }
  return total;
}

double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// ---- direct baseline: a ROUTER thread that echoes every message back ---------------
class DirectEcho {
 public:
  DirectEcho() : router_(ctx_, zmq::socket_type::router) {
    mmgen::zmqu::configure_router(router_, 1ll << 30);
    router_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { loop(); });
  }
  ~DirectEcho() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void loop() {
    zmq::pollitem_t items[] = {{router_.handle(), 0, ZMQ_POLLIN, 0}};
    while (!stop_) {
      if (zmq::poll(items, 1, std::chrono::milliseconds(50)) <= 0) continue;
      while (auto m = mmgen::zmqu::recv_multipart(router_, zmq::recv_flags::dontwait))
        mmgen::zmqu::send_multipart(router_, std::move(*m), false);
    }
  }
  zmq::context_t ctx_;
  zmq::socket_t router_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The forwarding floor: a ROUTER->DEALER relay thread (own context, so its
// own I/O thread, like a broker process) between a client and the direct echo.
// It does nothing a broker must do (no journal, no events, no scheduling), so
// the round trip through it is the least any design with a middle process
// pays on this machine: two more TCP hops and three more thread wake-ups.
class Relay {
 public:
  explicit Relay(const std::string& upstream)
      : front_(ctx_, zmq::socket_type::router), back_(ctx_, zmq::socket_type::dealer) {
    mmgen::zmqu::configure_router(front_, 1ll << 30);
    mmgen::zmqu::configure_dealer(back_, 1ll << 30);
    front_.bind("tcp://127.0.0.1:*");
    back_.connect(upstream);
    endpoint_ = front_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { loop(); });
  }
  ~Relay() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void loop() {
    zmq::pollitem_t items[] = {{front_.handle(), 0, ZMQ_POLLIN, 0}, {back_.handle(), 0, ZMQ_POLLIN, 0}};
    while (!stop_) {
      if (zmq::poll(items, 2, std::chrono::milliseconds(50)) <= 0) continue;
      while (auto m = mmgen::zmqu::recv_multipart(front_, zmq::recv_flags::dontwait))
        mmgen::zmqu::send_multipart(back_, std::move(*m), false);
      while (auto m = mmgen::zmqu::recv_multipart(back_, zmq::recv_flags::dontwait))
        mmgen::zmqu::send_multipart(front_, std::move(*m), false);
    }
  }
  zmq::context_t ctx_;
  zmq::socket_t front_, back_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The baseline's client: one DEALER for the whole run, like the broker
// client's socket. Each round trip is a message shaped like a small SUBMIT.
class DirectClient {
 public:
  explicit DirectClient(const std::string& ep) : s_(ctx_, zmq::socket_type::dealer) {
    mmgen::zmqu::configure_dealer(s_, 1ll << 30);
    s_.connect(ep);
  }
  void round_trips(int n, const std::string& payload, std::vector<double>* out) {
    for (int i = 0; i < n; ++i) {
      auto t0 = Clock::now();
      mmgen::zmqu::Frames f;
      f.push_back(mmgen::zmqu::msg("MMGC01"));
      f.push_back(mmgen::zmqu::msg("\x01"));
      f.push_back(mmgen::zmqu::msg(payload));
      mmgen::zmqu::send_multipart(s_, std::move(f), false);
      mmgen::zmqu::recv_multipart(s_);
      if (out) out->push_back(us(Clock::now() - t0));
    }
  }

 private:
  zmq::context_t ctx_;
  zmq::socket_t s_;
};

proto::Submit small_job(int i) {
  proto::Submit s;
  s.service = "echo";
  s.params = {{"text", "bench-" + std::to_string(i)}};
  return s;
}

// Submit to terminal event (ACCEPTED and STARTED arrive on the way).
void broker_round_trips(mmgen::client::Client& c, int n, std::vector<double>* out) {
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    c.submit(small_job(i));
    std::string job;
    while (true) {
      auto ev = c.next(10s);
      if (!ev) throw std::runtime_error("no event within 10 s");
      if (ev->kind == proto::EventCmd::Accepted) job = ev->job;
      if (ev->is_terminal() && ev->job == job) break;
    }
    if (out) out->push_back(us(Clock::now() - t0));
  }
}

// One broker + one echo worker (capacity 64), and what its round trips cost.
struct BrokerPath {
  explicit BrokerPath(std::vector<std::string> broker_args) : stack(options(std::move(broker_args))) {
    stack.start_broker();
    stack.start_echo({"--capacity", "64"});
    stack.wait_workers("echo", 1, 30s);
    client = stack.client();
  }
  static mmgen::itest::StackOptions options(std::vector<std::string> broker_args) {
    mmgen::itest::StackOptions so;
    so.heartbeat_ms = 1000;
    so.broker_args = std::move(broker_args);
    return so;
  }
  // n round trips; with `self`, their latencies and each process's CPU are kept.
  void measure(int n, const pid_t* self) {
    if (!self) return broker_round_trips(*client, n, nullptr);
    const double s0 = cpu_us(*self), b0 = cpu_us(stack.broker().pid()), w0 = cpu_us(stack.echo(0).pid());
    broker_round_trips(*client, n, &lat);
    cpu_client += cpu_us(*self) - s0;
    cpu_broker += cpu_us(stack.broker().pid()) - b0;
    cpu_worker += cpu_us(stack.echo(0).pid()) - w0;
  }
  void report(const char* name, double d50, double d99, double n) const {
    const double p50 = percentile(lat, .5), p99 = percentile(lat, .99);
    std::printf("%-38s %10.1f %10.1f %10.1f   (client %.1f, broker %.1f, echo worker %.1f)\n", name, p50, p99,
                (cpu_client + cpu_broker + cpu_worker) / n, cpu_client / n, cpu_broker / n, cpu_worker / n);
    std::printf("%-38s %10.1f %10.1f\n", "  broker adds", p50 - d50, p99 - d99);
  }

  mmgen::itest::Stack stack;
  std::unique_ptr<mmgen::client::Client> client;
  std::vector<double> lat;
  double cpu_client = 0, cpu_broker = 0, cpu_worker = 0;
};

double broker_throughput(mmgen::client::Client& c, int jobs, int window) {
  int submitted = 0, done = 0;
  auto t0 = Clock::now();
  while (done < jobs) {
    while (submitted < jobs && submitted - done < window) c.submit(small_job(submitted++));
    auto ev = c.next(10s);
    if (!ev) throw std::runtime_error("throughput run stalled");
    if (ev->kind == proto::EventCmd::Error) throw std::runtime_error(ev->as<proto::Error>().message);
    if (ev->is_terminal()) ++done;
  }
  return jobs / std::chrono::duration<double>(Clock::now() - t0).count();
}

double broker_big_roundtrip_ms(mmgen::client::Client& c, const std::string& blob) {
  auto s = small_job(0);
  proto::Frames frames;
  mmgen::client::add_input(s, frames, "payload", "application/octet-stream", blob);
  auto t0 = Clock::now();
  c.submit(s, std::move(frames));
  std::string job;
  while (true) {
    auto ev = c.next(60s);
    if (!ev) throw std::runtime_error("10 MB job: no event within 60 s");
    if (ev->kind == proto::EventCmd::Accepted) job = ev->job;
    if (ev->is_terminal() && ev->job == job) {
      if (ev->kind != proto::EventCmd::Result || ev->blobs.size() != 1 || ev->blobs[0].size() != blob.size())
        throw std::runtime_error("10 MB job did not come back intact");
      break;
    }
  }
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double direct_big_roundtrip_ms(const std::string& ep, const std::string& blob) {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  mmgen::zmqu::configure_dealer(s, 1ll << 30);
  s.connect(ep);
  auto t0 = Clock::now();
  mmgen::zmqu::Frames f;
  f.push_back(mmgen::zmqu::msg("MMGC01"));
  f.push_back(mmgen::zmqu::msg("\x01"));
  f.push_back(mmgen::zmqu::msg("\x80"));
  f.push_back(mmgen::zmqu::msg(blob));
  mmgen::zmqu::send_multipart(s, std::move(f), false);
  mmgen::zmqu::recv_multipart(s);
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  // --latency-only: just the round-trip table (quick to repeat while tuning).
  const bool latency_only = argc > 1 && std::string(argv[1]) == "--latency-only";
  constexpr int kLatencyJobs = 2000;
  constexpr int kThroughputJobs = 20000;
  std::printf("broker_bench: echo jobs through mmgen-broker + mmgen-echo vs a direct DEALER<->ROUTER echo\n");
  std::printf("machine: %u hardware threads\n\n", std::thread::hardware_concurrency());

  DirectEcho direct;
  DirectClient direct_client(direct.endpoint());
  Relay relay(direct.endpoint());
  DirectClient relay_client(relay.endpoint());
  const std::string small_body(48, 'x');

  // The broker as it starts by default, and with --pin-cpu (its loop and
  // ZeroMQ I/O thread on one CPU, the last one this process may use).
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  sched_getaffinity(0, sizeof allowed, &allowed);
  int last_cpu = 0;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &allowed)) last_cpu = i;
  BrokerPath plain({}), pinned({"--pin-cpu", std::to_string(last_cpu)});
  auto& stack = plain.stack;
  auto& c = plain.client;

  // All paths in alternating blocks, after a warm-up each, so a change in
  // the machine's load (it is shared) affects them alike.
  // CPU: the direct echo and the relay run in this process; the broker paths
  // add the broker and worker processes.
  constexpr int kBlocks = 10;
  std::vector<double> d_lat, r_lat;
  double d_cpu = 0, r_cpu = 0;
  const pid_t self = ::getpid();
  direct_client.round_trips(50, small_body, nullptr);
  relay_client.round_trips(50, small_body, nullptr);
  plain.measure(50, nullptr);
  pinned.measure(50, nullptr);
  for (int b = 0; b < kBlocks; ++b) {
    double s0 = cpu_us(self);
    direct_client.round_trips(kLatencyJobs / kBlocks, small_body, &d_lat);
    double s1 = cpu_us(self);
    relay_client.round_trips(kLatencyJobs / kBlocks, small_body, &r_lat);
    d_cpu += s1 - s0;
    r_cpu += cpu_us(self) - s1;
    plain.measure(kLatencyJobs / kBlocks, &self);
    pinned.measure(kLatencyJobs / kBlocks, &self);
  }

  const double n = kLatencyJobs;
  const double d50 = percentile(d_lat, .5), d99 = percentile(d_lat, .99);
  std::printf("%-38s %10s %10s %10s\n", "round trip (1 job at a time)", "p50 us", "p99 us", "CPU us");
  std::printf("%-38s %10.1f %10.1f %10.1f\n", "direct DEALER<->ROUTER", d50, d99, d_cpu / n);
  std::printf("%-38s %10.1f %10.1f %10.1f\n", "via a bare relay (no broker logic)", percentile(r_lat, .5),
              percentile(r_lat, .99), r_cpu / n);
  plain.report("broker + echo worker", d50, d99, n);
  pinned.report("broker --pin-cpu + echo worker", d50, d99, n);
  std::printf("(target: the broker adds <= 150 us at p50; any middle process adds %.1f us here: the relay)\n\n",
              percentile(r_lat, .5) - d50);
  if (latency_only) return 0;

  std::printf("%-34s %12s\n", "throughput (pipelined, 20k jobs)", "jobs/s");
  double t1 = broker_throughput(*c, kThroughputJobs, 512);
  std::printf("%-34s %12.0f\n", "1 worker (capacity 64)", t1);
  for (int i = 0; i < 3; ++i) stack.start_echo({"--capacity", "16"});
  stack.wait_workers("echo", 4, 30s);
  double t4 = broker_throughput(*c, kThroughputJobs, 512);
  std::printf("%-34s %12.0f\n", "4 workers", t4);
  for (int i = 0; i < 12; ++i) stack.start_echo({"--capacity", "4"});
  stack.wait_workers("echo", 16, 30s);
  double t16 = broker_throughput(*c, kThroughputJobs, 512);
  std::printf("%-34s %12.0f   (target >= 10000)\n\n", "16 workers", t16);

  const std::string big(10u << 20, 'b');
  double db = direct_big_roundtrip_ms(direct.endpoint(), big);
  double bb = broker_big_roundtrip_ms(*c, big);
  std::printf("%-34s %12s\n", "10 MB payload round trip", "ms");
  std::printf("%-34s %12.1f\n", "direct", db);
  std::printf("%-34s %12.1f   (ratio %.1fx)\n", "through broker (journal + blob store)", bb, bb / db);
  std::printf("\nbroker peak RSS: %ld KiB\n", stack.broker().peak_rss_kib());
  return 0;
}
