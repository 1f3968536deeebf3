// Decoding of broker -> client messages into client::Event.
#include <cstdio>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "mmgen/client.hpp"

namespace mmgen::client {

namespace {

using proto::EventCmd;

// Decodes the body as T and lifts what every event exposes: the job id and
// the request id where T has them, and the blobs T describes (only RESULT
// and PROGRESS carry any; other messages must come without).
template <class T>
void take(Event& ev, const proto::Envelope& env, const proto::Limits& limits,
          std::vector<proto::BlobMeta>& described) {
  auto b = proto::decode_as<T>(env.body_view(), limits);
  if constexpr (requires { b.job; }) ev.job = b.job;
  if constexpr (requires { b.req; }) ev.req = b.req;
  if constexpr (std::is_same_v<T, proto::Result>) described = b.outputs;
  if constexpr (std::is_same_v<T, proto::Progress>) {
    if (b.preview) described.push_back(*b.preview);
  }
  ev.body = std::move(b);
}

}  // namespace

bool Event::is_terminal() const {
  return kind == EventCmd::Result || kind == EventCmd::Error || kind == EventCmd::Cancelled;
}

Event decode_event(proto::Frames&& frames, const proto::Limits& limits) {
  proto::Envelope env = proto::parse_envelope(std::move(frames), proto::kClientProtocol, limits);
  Event ev;
  ev.kind = static_cast<EventCmd>(env.command);
  // Only RESULT and PROGRESS carry blobs; any other message must have none.
  std::vector<proto::BlobMeta> described;
  switch (ev.kind) {
    case EventCmd::Accepted: take<proto::Accepted>(ev, env, limits, described); break;
    case EventCmd::Queued: take<proto::Queued>(ev, env, limits, described); break;
    case EventCmd::Started: take<proto::Started>(ev, env, limits, described); break;
    case EventCmd::Progress: take<proto::Progress>(ev, env, limits, described); break;
    case EventCmd::Partial: take<proto::Partial>(ev, env, limits, described); break;
    case EventCmd::Result: take<proto::Result>(ev, env, limits, described); break;
    case EventCmd::Error: take<proto::Error>(ev, env, limits, described); break;
    case EventCmd::Cancelled: take<proto::Cancelled>(ev, env, limits, described); break;
    case EventCmd::JobInfo: take<proto::JobInfo>(ev, env, limits, described); break;
    case EventCmd::JobList: take<proto::JobList>(ev, env, limits, described); break;
    case EventCmd::WorkerList: take<proto::WorkerList>(ev, env, limits, described); break;
    default: {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(env.command));
      throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                                 std::string("unknown broker command ") + hex);
    }
  }
  proto::check_blobs(described, env.blobs, limits.max_result_bytes);
  ev.blobs = std::move(env.blobs);
  return ev;
}

}  // namespace mmgen::client
