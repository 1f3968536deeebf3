// Decoding of broker -> client messages into client::Event.
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "mmgen/client.hpp"

namespace mmgen::client {

namespace {

using proto::EventCmd;

template <class T>
T body_as(const proto::Envelope& env, const proto::Limits& limits) {
  return proto::decode_as<T>(env.body_view(), limits);
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
    case EventCmd::Accepted: {
      auto b = body_as<proto::Accepted>(env, limits);
      ev.job = b.job;
      ev.req = b.req;
      ev.body = std::move(b);
      break;
    }
    case EventCmd::Queued: {
      auto b = body_as<proto::Queued>(env, limits);
      ev.job = b.job;
      ev.body = std::move(b);
      break;
    }
    case EventCmd::Started: {
      auto b = body_as<proto::Started>(env, limits);
      ev.job = b.job;
      ev.body = std::move(b);
      break;
    }
    case EventCmd::Progress: {
      auto b = body_as<proto::Progress>(env, limits);
      ev.job = b.job;
      if (b.preview) described.push_back(*b.preview);
      ev.body = std::move(b);
      break;
    }
    case EventCmd::Partial: {
      auto b = body_as<proto::Partial>(env, limits);
      ev.job = b.job;
      ev.body = std::move(b);
      break;
    }
    case EventCmd::Result: {
      auto b = body_as<proto::Result>(env, limits);
      ev.job = b.job;
      described = b.outputs;
      ev.body = std::move(b);
      break;
    }
    case EventCmd::Error: {
      auto b = body_as<proto::Error>(env, limits);
      ev.job = b.job;
      ev.req = b.req;
      ev.body = std::move(b);
      break;
    }
    case EventCmd::Cancelled: {
      auto b = body_as<proto::Cancelled>(env, limits);
      ev.job = b.job;
      ev.body = std::move(b);
      break;
    }
    case EventCmd::JobInfo: {
      auto b = body_as<proto::JobInfo>(env, limits);
      ev.job = b.job;
      ev.req = b.req;
      ev.body = std::move(b);
      break;
    }
    case EventCmd::JobList: {
      auto b = body_as<proto::JobList>(env, limits);
      ev.req = b.req;
      ev.body = std::move(b);
      break;
    }
    case EventCmd::WorkerList: {
      auto b = body_as<proto::WorkerList>(env, limits);
      ev.req = b.req;
      ev.body = std::move(b);
      break;
    }
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
