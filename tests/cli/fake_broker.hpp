// Test doubles for the CLI and client tests: a scripted broker (a real ROUTER
// on an ephemeral loopback port, driven by the test) and a temporary folder.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "cli/run_cli.hpp"
#include "mmgen/codec.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::testing {

using namespace std::chrono_literals;

// One message from a client as the broker sees it.
struct ClientMsg {
  std::string peer;  // routing id
  proto::ClientCmd cmd{};
  std::string body;
  proto::Frames blobs;

  template <class T>
  T as() const { return proto::decode_as<T>(body); }
};

class FakeBroker {
 public:
  FakeBroker();
  ~FakeBroker();

  // The bound endpoint, e.g. tcp://127.0.0.1:41234.
  const std::string& endpoint() const { return endpoint_; }

  // The next client message within `timeout`; nullopt (and a test failure
  // when `expect` is true) if none arrives.
  std::optional<ClientMsg> recv(std::chrono::milliseconds timeout = 5s, bool expect = true);
  // The next message with command `cmd`, skipping others; nullopt on timeout.
  std::optional<ClientMsg> recv_cmd(proto::ClientCmd cmd, std::chrono::milliseconds timeout = 5s);

  // Sends an event; false if the peer is gone (ROUTER_MANDATORY).
  bool send(const std::string& peer, proto::EventCmd cmd, const std::string& body, proto::Frames blobs = {});
  template <class T>
  bool reply(const std::string& peer, proto::EventCmd cmd, const T& body, proto::Frames blobs = {}) {
    return send(peer, cmd, proto::encode(body), std::move(blobs));
  }
  // Sends arbitrary frames after the routing id.
  bool send_raw(const std::string& peer, proto::Frames frames);

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
  std::string endpoint_;
};

// A folder under the system temp dir, removed with its contents at the end.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

std::string read_all(const std::string& path);
void write_all(const std::string& path, const std::string& bytes);
proto::Frames frames_of(const std::vector<std::string>& blobs);
std::string bytes_of(const zmq::message_t& m);

// run_cli with string streams, no terminal, and test-sized timings. The
// interrupt callback (called on the CLI's thread) reports a Ctrl-C once the
// CLI has written `interrupt_after` to stdout or stderr, so the interrupt
// lands at a known point of the CLI's progress; it also fires when the test
// has run for `give_up`, so a broken script ends the CLI (exit 130) instead
// of hanging the test.
struct CliRun {
  std::ostringstream out, err;
  cli::CliIo io{out, err};
  std::string interrupt_after;
  bool interrupted = false;
  std::vector<std::string> answers;  // replies to the y/N question, in order
  std::chrono::steady_clock::time_point give_up = std::chrono::steady_clock::now() + 30s;

  CliRun();
  int run(const std::vector<std::string>& args);
  std::vector<std::string> out_lines() const;
};

// A well-formed job id for tests.
inline constexpr const char* kJob = "j_0190a1b2c3d4e5f601234567";

}  // namespace mmgen::testing
