#include "mmgen/zmq_util.hpp"

namespace mmgen::zmqu {

void configure_router(zmq::socket_t& s, std::int64_t max_frame_bytes) {
  s.set(zmq::sockopt::router_mandatory, 1);  // unroutable sends fail instead of vanishing
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, max_frame_bytes);
  s.set(zmq::sockopt::sndhwm, 10000);
  s.set(zmq::sockopt::rcvhwm, 10000);
}

void configure_dealer(zmq::socket_t& s, std::int64_t max_frame_bytes) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, max_frame_bytes);
  s.set(zmq::sockopt::reconnect_ivl, 100);
  s.set(zmq::sockopt::reconnect_ivl_max, 1000);
  s.set(zmq::sockopt::sndhwm, 10000);
  s.set(zmq::sockopt::rcvhwm, 10000);
}

std::optional<Frames> recv_multipart(zmq::socket_t& s, zmq::recv_flags flags) {
  Frames frames;
  try {
    while (true) {
      zmq::message_t m;
      auto r = s.recv(m, frames.empty() ? flags : zmq::recv_flags::none);
      if (!r) {
        if (frames.empty()) return std::nullopt;
        continue;  // the rest of a multipart message is already there
      }
      bool more = m.more();
      frames.push_back(std::move(m));
      if (!more) break;
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR && frames.empty()) return std::nullopt;
    throw;
  }
  return frames;
}

bool send_multipart(zmq::socket_t& s, Frames&& frames, bool dontwait) {
  const auto base = dontwait ? zmq::send_flags::dontwait : zmq::send_flags::none;
  try {
    for (std::size_t i = 0; i < frames.size(); ++i) {
      auto flags = i + 1 < frames.size() ? (base | zmq::send_flags::sndmore) : base;
      if (!s.send(frames[i], flags)) return false;  // EAGAIN: HWM reached
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH || e.num() == EAGAIN) return false;
    throw;
  }
  return true;
}

bool looks_like_endpoint(std::string_view ep) {
  auto p = ep.find("://");
  return p != std::string_view::npos && p > 0 && p + 3 < ep.size();
}

}  // namespace mmgen::zmqu
