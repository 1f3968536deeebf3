// Encoding and bounded decoding of MMGP/1 messages (see protocol.hpp and
// common/PROTOCOL.md). msgpack stays inside codec.cpp: this header is cheap.
//
// Every decode_* function either returns a fully validated message or throws
// ProtocolError with code invalid_request (bad shape or type, naming the
// field) or too_large (a limit was hit). No input can make it allocate more
// than the limits allow, crash or hang.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "mmgen/protocol.hpp"

namespace mmgen::proto {

using Frames = std::vector<zmq::message_t>;

// A message with its header checked; the body is still msgpack.
struct Envelope {
  std::uint8_t command = 0;
  zmq::message_t body;
  Frames blobs;

  std::string_view body_view() const {
    return {static_cast<const char*>(body.data()), body.size()};
  }
};

// Checks frame count, protocol frame, command frame size, body size, blob
// count. `frames` excludes any routing frame. Throws ProtocolError.
Envelope parse_envelope(Frames&& frames, std::string_view protocol, const Limits& limits);

// Checks that blob frames match their descriptions (count and sizes) and that
// their sum stays within max_total. Throws ProtocolError.
void check_blobs(const std::vector<BlobMeta>& meta, const Frames& blobs, std::uint64_t max_total);

// Builds a message: protocol, command, body, then the blobs (moved).
Frames make_message(std::string_view protocol, std::uint8_t command, const std::string& body,
                    Frames blobs = {});

// ---- bodies: encode ------------------------------------------------------------
std::string encode(const Submit&);
std::string encode(const JobRef&);
std::string encode(const ListReq&);
std::string encode(const WorkersReq&);
std::string encode(const Accepted&);
std::string encode(const Queued&);
std::string encode(const Started&);
std::string encode(const Progress&);
std::string encode(const Partial&);
std::string encode(const Result&);
std::string encode(const Error&);
std::string encode(const Cancelled&);
std::string encode(const JobInfo&);
std::string encode(const JobList&);
std::string encode(const WorkerList&);
std::string encode(const Ready&);
std::string encode(const JobAssign&);
std::string encode(const Heartbeat&);
std::string encode(const CancelJob&);
std::string encode(const Disconnect&);
std::string encode(const ValueMap&);  // a bare map (params, data)

// ---- bodies: decode ------------------------------------------------------------
void decode(std::string_view body, Submit& out, const Limits& limits = {});
void decode(std::string_view body, JobRef& out, const Limits& limits = {});
void decode(std::string_view body, ListReq& out, const Limits& limits = {});
void decode(std::string_view body, WorkersReq& out, const Limits& limits = {});
void decode(std::string_view body, Accepted& out, const Limits& limits = {});
void decode(std::string_view body, Queued& out, const Limits& limits = {});
void decode(std::string_view body, Started& out, const Limits& limits = {});
void decode(std::string_view body, Progress& out, const Limits& limits = {});
void decode(std::string_view body, Partial& out, const Limits& limits = {});
void decode(std::string_view body, Result& out, const Limits& limits = {});
void decode(std::string_view body, Error& out, const Limits& limits = {});
void decode(std::string_view body, Cancelled& out, const Limits& limits = {});
void decode(std::string_view body, JobInfo& out, const Limits& limits = {});
void decode(std::string_view body, JobList& out, const Limits& limits = {});
void decode(std::string_view body, WorkerList& out, const Limits& limits = {});
void decode(std::string_view body, Ready& out, const Limits& limits = {});
void decode(std::string_view body, JobAssign& out, const Limits& limits = {});
void decode(std::string_view body, Heartbeat& out, const Limits& limits = {});
void decode(std::string_view body, CancelJob& out, const Limits& limits = {});
void decode(std::string_view body, Disconnect& out, const Limits& limits = {});
void decode(std::string_view body, ValueMap& out, const Limits& limits = {});

template <class T>
T decode_as(std::string_view body, const Limits& limits = {}) {
  T out;
  decode(body, out, limits);
  return out;
}

}  // namespace mmgen::proto
