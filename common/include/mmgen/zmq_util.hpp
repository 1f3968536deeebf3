// ZeroMQ helpers that encode the pitfalls of libzmq 4.3 / cppzmq 4.9 once:
// ROUTER_MANDATORY (no silent drops), LINGER 0, MAXMSGSIZE, and multipart I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

namespace mmgen::zmqu {

using Frames = std::vector<zmq::message_t>;

// ROUTER: mandatory routing, linger 0, per-frame size cap, bounded HWM.
void configure_router(zmq::socket_t& s, std::int64_t max_frame_bytes);
// DEALER: linger 0, per-frame size cap, reconnect interval.
void configure_dealer(zmq::socket_t& s, std::int64_t max_frame_bytes);

// Receives all parts of one message; nullopt if none is ready (non-blocking)
// or the wait times out.
std::optional<Frames> recv_multipart(zmq::socket_t& s, zmq::recv_flags flags = zmq::recv_flags::none);
// Sends all frames; returns false if the peer is unroutable or the send would
// block (ROUTER_MANDATORY / HWM) — the caller decides what that means.
bool send_multipart(zmq::socket_t& s, Frames&& frames, bool dontwait = true);

inline zmq::message_t msg(std::string_view s) { return zmq::message_t(s.data(), s.size()); }
inline std::string str(const zmq::message_t& m) {
  return {static_cast<const char*>(m.data()), m.size()};
}

// Parses "tcp://host:port" etc.; only checks the shape "scheme://rest".
bool looks_like_endpoint(std::string_view ep);

}  // namespace mmgen::zmqu
