#include "fake_broker.hpp"

#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "mmgen/ids.hpp"
#include "mmgen/zmq_util.hpp"

namespace mmgen::testing {

FakeBroker::FakeBroker() : sock_(ctx_, zmq::socket_type::router) {
  zmqu::configure_router(sock_, 64 << 20);
  sock_.bind("tcp://127.0.0.1:*");
  endpoint_ = sock_.get(zmq::sockopt::last_endpoint);
}

FakeBroker::~FakeBroker() { sock_.close(); }

std::optional<ClientMsg> FakeBroker::recv(std::chrono::milliseconds timeout, bool expect) {
  zmq::pollitem_t item{static_cast<void*>(sock_), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) {
    if (expect) ADD_FAILURE() << "fake broker: no client message within " << timeout.count() << " ms";
    return std::nullopt;
  }
  auto frames = zmqu::recv_multipart(sock_, zmq::recv_flags::dontwait);
  if (!frames || frames->size() < 4) {
    ADD_FAILURE() << "fake broker: short message";
    return std::nullopt;
  }
  ClientMsg m;
  m.peer = bytes_of((*frames)[0]);
  EXPECT_EQ(bytes_of((*frames)[1]), proto::kClientProtocol);
  EXPECT_EQ((*frames)[2].size(), 1u);
  m.cmd = static_cast<proto::ClientCmd>(*static_cast<const std::uint8_t*>((*frames)[2].data()));
  m.body = bytes_of((*frames)[3]);
  for (std::size_t i = 4; i < frames->size(); ++i) m.blobs.push_back(std::move((*frames)[i]));
  return m;
}

std::optional<ClientMsg> FakeBroker::recv_cmd(proto::ClientCmd cmd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ADD_FAILURE() << "fake broker: no " << proto::to_string(cmd) << " within " << timeout.count() << " ms";
      return std::nullopt;
    }
    auto m = recv(left, false);
    if (m && m->cmd == cmd) return m;
  }
}

bool FakeBroker::send_raw(const std::string& peer, proto::Frames frames) {
  proto::Frames all;
  all.push_back(zmqu::msg(peer));
  for (auto& f : frames) all.push_back(std::move(f));
  return zmqu::send_multipart(sock_, std::move(all));
}

bool FakeBroker::send(const std::string& peer, proto::EventCmd cmd, const std::string& body, proto::Frames blobs) {
  return send_raw(peer, proto::make_message(proto::kClientProtocol, static_cast<std::uint8_t>(cmd), body,
                                            std::move(blobs)));
}

TempDir::TempDir() {
  path_ = std::filesystem::temp_directory_path() / ("mmgen-cli-test-" + random_hex(8));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

proto::Frames frames_of(const std::vector<std::string>& blobs) {
  proto::Frames frames;
  for (const auto& b : blobs) frames.emplace_back(b.data(), b.size());
  return frames;
}

std::string bytes_of(const zmq::message_t& m) { return std::string(static_cast<const char*>(m.data()), m.size()); }

CliRun::CliRun() {
  io.getenv = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  io.take_interrupt = [this] {
    if (std::chrono::steady_clock::now() > give_up) {
      ADD_FAILURE() << "the CLI was still running when the test gave up on it";
      return true;
    }
    if (interrupt_after.empty() || interrupted) return false;
    // Both streams are written by this (the CLI's) thread only.
    if (out.str().find(interrupt_after) == std::string::npos &&
        err.str().find(interrupt_after) == std::string::npos) {
      return false;
    }
    interrupted = true;
    return true;
  };
  io.read_line = [this]() -> std::optional<std::string> {
    if (answers.empty()) return std::nullopt;
    std::string a = answers.front();
    answers.erase(answers.begin());
    return a;
  };
  // Probing is tested on its own; elsewhere it would only add stray STATUS messages.
  io.timing.silence_probe = 60s;
  io.timing.probe_timeout = 60s;
  io.timing.poll_slice = 20ms;
}

int CliRun::run(const std::vector<std::string>& args) { return cli::run_cli(args, io); }

std::vector<std::string> CliRun::out_lines() const {
  std::vector<std::string> lines;
  std::istringstream s(out.str());
  for (std::string l; std::getline(s, l);) lines.push_back(l);
  return lines;
}

}  // namespace mmgen::testing
