// The ZeroMQ helpers: socket options that encode the known pitfalls
// (LINGER 0, MAXMSGSIZE, ROUTER_MANDATORY), multipart send/receive, and what
// MAXMSGSIZE does to an oversize frame on a real TCP connection.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "mmgen/zmq_util.hpp"

namespace proto_test {
namespace {

using namespace std::chrono_literals;
using mmgen::zmqu::Frames;

Frames frames_of(std::initializer_list<std::string_view> parts) {
  Frames out;
  for (auto p : parts) out.push_back(mmgen::zmqu::msg(p));
  return out;
}

// Polls `s` for a message until `deadline`; nullopt if none came.
std::optional<Frames> recv_within(zmq::socket_t& s, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 50ms);
    if (auto m = mmgen::zmqu::recv_multipart(s, zmq::recv_flags::dontwait)) return m;
  }
  return std::nullopt;
}

TEST(ZmqUtil, RouterAndDealerOptions) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  mmgen::zmqu::configure_router(router, 12345);
  mmgen::zmqu::configure_dealer(dealer, 678);
  EXPECT_EQ(router.get(zmq::sockopt::linger), 0);
  EXPECT_EQ(router.get(zmq::sockopt::maxmsgsize), 12345);
  EXPECT_EQ(router.get(zmq::sockopt::sndhwm), 10000);
  EXPECT_EQ(router.get(zmq::sockopt::rcvhwm), 10000);
  EXPECT_EQ(dealer.get(zmq::sockopt::linger), 0);
  EXPECT_EQ(dealer.get(zmq::sockopt::maxmsgsize), 678);
  EXPECT_EQ(dealer.get(zmq::sockopt::reconnect_ivl), 100);
  EXPECT_EQ(dealer.get(zmq::sockopt::reconnect_ivl_max), 1000);
  // No fixed routing identity: ZeroMQ assigns one per connection.
  EXPECT_EQ(dealer.get(zmq::sockopt::routing_id), "");
}

TEST(ZmqUtil, MultipartRoundTripAndEmptyReceive) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  mmgen::zmqu::configure_router(router, 1 << 20);
  mmgen::zmqu::configure_dealer(dealer, 1 << 20);
  router.bind("inproc://zmq-util-rt");
  dealer.connect("inproc://zmq-util-rt");

  EXPECT_FALSE(mmgen::zmqu::recv_multipart(router, zmq::recv_flags::dontwait).has_value());
  ASSERT_TRUE(mmgen::zmqu::send_multipart(dealer, frames_of({"MMGC01", "\x01", "body", ""})));
  auto got = recv_within(router, 5s);
  ASSERT_TRUE(got.has_value()) << "the router received nothing within 5 s";
  ASSERT_EQ(got->size(), 5u);  // routing id + the four frames
  EXPECT_EQ(mmgen::zmqu::str((*got)[1]), "MMGC01");
  EXPECT_EQ(mmgen::zmqu::str((*got)[3]), "body");
  EXPECT_EQ(mmgen::zmqu::str((*got)[4]), "");

  // Reply through the routing id the router was given.
  Frames reply;
  reply.push_back(std::move((*got)[0]));
  reply.push_back(mmgen::zmqu::msg("answer"));
  ASSERT_TRUE(mmgen::zmqu::send_multipart(router, std::move(reply)));
  auto back = recv_within(dealer, 5s);
  ASSERT_TRUE(back.has_value()) << "the dealer received nothing within 5 s";
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ(mmgen::zmqu::str((*back)[0]), "answer");
}

TEST(ZmqUtil, RouterMandatoryRefusesUnknownPeers) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  mmgen::zmqu::configure_router(router, 1 << 20);
  router.bind("inproc://zmq-util-mandatory");
  // Without ROUTER_MANDATORY this send would "succeed" and vanish.
  EXPECT_FALSE(mmgen::zmqu::send_multipart(router, frames_of({"no-such-peer", "MMGW01", "\x23", "\x80"})));
}

// Events of a socket monitor: the first frame holds (uint16 event, uint32 value).
std::optional<std::uint16_t> next_event(zmq::socket_t& mon, std::chrono::milliseconds limit) {
  auto m = recv_within(mon, limit);
  if (!m || m->empty() || (*m)[0].size() < 2) return std::nullopt;
  std::uint16_t ev;
  std::memcpy(&ev, (*m)[0].data(), 2);
  return ev;
}

TEST(ZmqUtil, OversizeFrameOverTcpDropsTheConnectionNotTheReceiver) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  mmgen::zmqu::configure_router(router, 1024);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  ASSERT_EQ(zmq_socket_monitor(router.handle(), "inproc://zmq-util-mon",
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED),
            0);
  zmq::socket_t mon(ctx, zmq::socket_type::pair);
  mon.connect("inproc://zmq-util-mon");

  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  mmgen::zmqu::configure_dealer(dealer, 1 << 20);
  dealer.connect(endpoint);
  ASSERT_TRUE(mmgen::zmqu::send_multipart(dealer, frames_of({"MMGC01", "\x07", std::string(1024, 'a')})));
  auto first = recv_within(router, 5s);
  ASSERT_TRUE(first.has_value()) << "a frame of exactly the limit did not arrive within 5 s";
  EXPECT_EQ((*first)[3].size(), 1024u);
  ASSERT_EQ(next_event(mon, 5s), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);

  // One byte over: libzmq refuses it before allocating and drops the connection.
  ASSERT_TRUE(mmgen::zmqu::send_multipart(dealer, frames_of({"MMGC01", "\x07", std::string(1025, 'b')})));
  ASSERT_EQ(next_event(mon, 5s), ZMQ_EVENT_DISCONNECTED) << "no disconnect within 5 s";
  EXPECT_FALSE(mmgen::zmqu::recv_multipart(router, zmq::recv_flags::dontwait).has_value());
  zmq_socket_monitor(router.handle(), nullptr, 0);
}

TEST(ZmqUtil, EndpointShape) {
  EXPECT_TRUE(mmgen::zmqu::looks_like_endpoint("tcp://127.0.0.1:5555"));
  EXPECT_TRUE(mmgen::zmqu::looks_like_endpoint("ipc:///tmp/x"));
  EXPECT_TRUE(mmgen::zmqu::looks_like_endpoint("inproc://a"));
  EXPECT_FALSE(mmgen::zmqu::looks_like_endpoint("127.0.0.1:5555"));
  EXPECT_FALSE(mmgen::zmqu::looks_like_endpoint("tcp://"));
  EXPECT_FALSE(mmgen::zmqu::looks_like_endpoint("://x"));
  EXPECT_FALSE(mmgen::zmqu::looks_like_endpoint(""));
}

}  // namespace
}  // namespace proto_test
