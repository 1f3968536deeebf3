// Frames around the body: make_message's layout, parse_envelope's checks of
// frame count, protocol, command and body size and blob count, and
// check_blobs' agreement of blob descriptions with blob frames.
#include <gtest/gtest.h>

#include "mmgen/codec.hpp"
#include "samples.hpp"

namespace proto_test {
namespace {

zmq::message_t frame(std::string_view s) { return zmq::message_t(s.data(), s.size()); }
std::string text(const zmq::message_t& m) { return {static_cast<const char*>(m.data()), m.size()}; }

Frames frames_of(std::initializer_list<std::string_view> parts) {
  Frames out;
  for (auto p : parts) out.push_back(frame(p));
  return out;
}

// "code: message" of a parse_envelope failure, or "ok".
std::string parse_outcome(Frames frames, std::string_view protocol = kClientProtocol,
                          const Limits& limits = {}) {
  try {
    parse_envelope(std::move(frames), protocol, limits);
    return "ok";
  } catch (const ProtocolError& e) {
    return std::string(to_string(e.code())) + ": " + e.what();
  }
}

std::string blobs_outcome(const std::vector<BlobMeta>& meta, const Frames& blobs, std::uint64_t max) {
  try {
    check_blobs(meta, blobs, max);
    return "ok";
  } catch (const ProtocolError& e) {
    return std::string(to_string(e.code())) + ": " + e.what();
  }
}

const std::string kCmd(1, '\x01');

TEST(Envelope, MakeMessageLaysOutProtocolCommandBodyBlobs) {
  Frames blobs;
  blobs.push_back(frame("first"));
  blobs.push_back(frame(""));
  Frames f = make_message(kWorkerProtocol, 0x26, "BODY", std::move(blobs));
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(text(f[0]), "MMGW01");
  EXPECT_EQ(text(f[1]), std::string(1, '\x26'));
  EXPECT_EQ(text(f[2]), "BODY");
  EXPECT_EQ(text(f[3]), "first");
  EXPECT_EQ(text(f[4]), "");
}

TEST(Envelope, ParseHandsOutCommandBodyAndBlobsWithoutCopying) {
  const std::string body(1000, 'b');  // big enough that ZeroMQ keeps it out of line
  const std::string blob(5000, 'x');
  Frames f = frames_of({kClientProtocol, "\x01", body, blob});
  const void* body_bytes = f[2].data();
  const void* blob_bytes = f[3].data();
  Envelope env = parse_envelope(std::move(f), kClientProtocol, Limits{});
  EXPECT_EQ(env.command, 0x01);
  EXPECT_EQ(env.body_view(), body);
  ASSERT_EQ(env.blobs.size(), 1u);
  EXPECT_EQ(text(env.blobs[0]), blob);
  EXPECT_EQ(env.body.data(), body_bytes);
  EXPECT_EQ(env.blobs[0].data(), blob_bytes);
}

TEST(Envelope, FewerThanThreeFrames) {
  EXPECT_EQ(parse_outcome({}), "invalid_request: message has 0 frames; expected at least 3");
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol})),
            "invalid_request: message has 1 frames; expected at least 3");
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol, kCmd})),
            "invalid_request: message has 2 frames; expected at least 3");
}

TEST(Envelope, WrongProtocolFrame) {
  for (std::string_view bad : {std::string_view("MMGW01"), std::string_view(""), std::string_view("MMGC02"),
                               std::string_view("MMGC01\0", 7), std::string_view("mmgc01"),
                               std::string_view("MMGC0")}) {
    EXPECT_EQ(parse_outcome(frames_of({bad, kCmd, "\x80"})),
              "invalid_request: unknown protocol frame (expected 'MMGC01')")
        << bad;
  }
  // Each socket speaks exactly one protocol.
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol, kCmd, "\x80"}), kWorkerProtocol),
            "invalid_request: unknown protocol frame (expected 'MMGW01')");
  EXPECT_EQ(parse_outcome(frames_of({kWorkerProtocol, kCmd, "\x80"}), kWorkerProtocol), "ok");
}

TEST(Envelope, CommandFrameMustBeOneByte) {
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol, "", "\x80"})),
            "invalid_request: command frame must be 1 byte, got 0");
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol, "\x01\x01", "\x80"})),
            "invalid_request: command frame must be 1 byte, got 2");
  // Any single byte passes the envelope; the command's meaning is the caller's.
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol, "\xff", "\x80"})), "ok");
}

TEST(Envelope, BodyOverTheLimitIsTooLarge) {
  Limits l;
  l.max_body_bytes = 10;
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol, kCmd, std::string(10, 'x')}), kClientProtocol, l), "ok");
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol, kCmd, std::string(11, 'x')}), kClientProtocol, l),
            "too_large: body of 11 bytes exceeds the limit of 10");
  const std::string big((4u << 20) + 1, 'x');
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol, kCmd, big})),
            "too_large: body of 4194305 bytes exceeds the limit of 4194304");
}

TEST(Envelope, TooManyBlobFrames) {
  auto with_blobs = [](std::size_t n) {
    Frames f = frames_of({kClientProtocol, kCmd, "\x80"});
    for (std::size_t i = 0; i < n; ++i) f.push_back(frame("b"));
    return f;
  };
  const std::size_t max = Limits{}.max_blobs;
  EXPECT_EQ(parse_outcome(with_blobs(max)), "ok");
  EXPECT_EQ(parse_outcome(with_blobs(max + 1)), "too_large: " + std::to_string(max + 1) +
                                                    " blob frames exceed the limit of " + std::to_string(max));
  Limits l;
  l.max_blobs = 0;
  EXPECT_EQ(parse_outcome(with_blobs(1), kClientProtocol, l),
            "too_large: 1 blob frames exceed the limit of 0");
}

TEST(Envelope, ChecksRunInOrderProtocolCommandBodyBlobs) {
  Limits l;
  l.max_body_bytes = 1;
  l.max_blobs = 0;
  // All four wrong: the protocol frame is reported.
  EXPECT_EQ(parse_outcome(frames_of({"XX", "\x01\x02", "long", "blob"}), kClientProtocol, l),
            "invalid_request: unknown protocol frame (expected 'MMGC01')");
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol, "\x01\x02", "long", "blob"}), kClientProtocol, l),
            "invalid_request: command frame must be 1 byte, got 2");
  EXPECT_EQ(parse_outcome(frames_of({kClientProtocol, kCmd, "long", "blob"}), kClientProtocol, l),
            "too_large: body of 4 bytes exceeds the limit of 1");
}

TEST(CheckBlobs, CountsMustAgree) {
  Frames one;
  one.push_back(frame("abc"));
  EXPECT_EQ(blobs_outcome({}, one, 100), "invalid_request: 0 blobs described but 1 blob frames sent");
  EXPECT_EQ(blobs_outcome({blob("a", "x", 3), blob("b", "x", 0)}, one, 100),
            "invalid_request: 2 blobs described but 1 blob frames sent");
  EXPECT_EQ(blobs_outcome({blob("a", "x", 3)}, one, 100), "ok");
}

TEST(CheckBlobs, SizesMustAgree) {
  Frames f;
  f.push_back(frame("abc"));
  f.push_back(frame("de"));
  EXPECT_EQ(blobs_outcome({blob("a", "x", 3), blob("second", "x", 3)}, f, 100),
            "invalid_request: blob 'second': described as 3 bytes, frame has 2");
  EXPECT_EQ(blobs_outcome({blob("a", "x", 0xffffffffffULL), blob("b", "x", 2)}, f, 100),
            "invalid_request: blob 'a': described as 1099511627775 bytes, frame has 3");
}

TEST(CheckBlobs, TotalOverTheLimitIsTooLarge) {
  Frames f;
  f.push_back(frame("abc"));
  f.push_back(frame("de"));
  const std::vector<BlobMeta> meta{blob("a", "x", 3), blob("b", "x", 2)};
  EXPECT_EQ(blobs_outcome(meta, f, 5), "ok");
  EXPECT_EQ(blobs_outcome(meta, f, 4), "too_large: blobs total 5 bytes, over the limit of 4");
}

}  // namespace
}  // namespace proto_test
