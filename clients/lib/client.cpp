// Client: one DEALER socket speaking MMGP/1 to the broker's client endpoint.
#include "mmgen/client.hpp"

#include <algorithm>
#include <cerrno>
#include <utility>

#include "mmgen/zmq_util.hpp"

namespace mmgen::client {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

milliseconds remaining(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return std::max(left, milliseconds(0));
}

}  // namespace

void add_input(proto::Submit& s, proto::Frames& frames, std::string name, std::string mime,
               std::string_view bytes) {
  s.inputs.push_back(proto::BlobMeta{std::move(name), std::move(mime), bytes.size()});
  frames.emplace_back(bytes.data(), bytes.size());
}

Client::Client(std::string endpoint, ClientOptions options)
    : endpoint_(std::move(endpoint)), options_(options) {
  if (options_.context) {
    context_ = options_.context;
  } else {
    own_context_ = std::make_unique<zmq::context_t>(1);
    context_ = own_context_.get();
  }
  open_socket();
}

Client::~Client() {
  // LINGER 0 (configure_dealer) keeps closing from blocking on unsent messages.
  socket_.reset();
}

void Client::open_socket() {
  auto s = std::make_unique<zmq::socket_t>(*context_, zmq::socket_type::dealer);
  // One frame may hold a whole result blob.
  auto max_frame = static_cast<std::int64_t>(
      std::max(options_.limits.max_result_bytes, options_.limits.max_body_bytes));
  zmqu::configure_dealer(*s, max_frame);
  s->connect(endpoint_);
  socket_ = std::move(s);
}

void Client::reconnect() {
  socket_.reset();
  open_socket();
}

void Client::send(proto::ClientCmd cmd, const std::string& body, proto::Frames blobs) {
  auto frames = proto::make_message(proto::kClientProtocol, static_cast<std::uint8_t>(cmd), body,
                                    std::move(blobs));
  if (!zmqu::send_multipart(*socket_, std::move(frames), /*dontwait=*/true)) {
    throw SendError("cannot queue " + std::string(proto::to_string(cmd)) + " for the broker at " +
                    endpoint_ + " (send queue full; is the broker reachable?)");
  }
}

std::uint64_t Client::submit(proto::Submit s, proto::Frames inputs) {
  proto::check_blobs(s.inputs, inputs, options_.limits.max_input_bytes);
  if (s.req == 0) s.req = next_req();
  send(proto::ClientCmd::Submit, proto::encode(s), std::move(inputs));
  return s.req;
}

std::uint64_t Client::cancel(std::string_view job) {
  proto::JobRef r{next_req(), std::string(job)};
  send(proto::ClientCmd::Cancel, proto::encode(r));
  return r.req;
}

std::uint64_t Client::status(std::string_view job) {
  proto::JobRef r{next_req(), std::string(job)};
  send(proto::ClientCmd::Status, proto::encode(r));
  return r.req;
}

std::uint64_t Client::attach(std::string_view job) {
  proto::JobRef r{next_req(), std::string(job)};
  send(proto::ClientCmd::Attach, proto::encode(r));
  return r.req;
}

std::uint64_t Client::fetch(std::string_view job) {
  proto::JobRef r{next_req(), std::string(job)};
  send(proto::ClientCmd::Fetch, proto::encode(r));
  return r.req;
}

std::uint64_t Client::list(std::string_view service, std::uint32_t limit) {
  proto::ListReq r{next_req(), std::string(service), limit};
  send(proto::ClientCmd::List, proto::encode(r));
  return r.req;
}

std::uint64_t Client::workers() {
  proto::WorkersReq r{next_req()};
  send(proto::ClientCmd::Workers, proto::encode(r));
  return r.req;
}

std::optional<Event> Client::receive(milliseconds timeout) {
  zmq::pollitem_t item{static_cast<void*>(*socket_), 0, ZMQ_POLLIN, 0};
  try {
    if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return std::nullopt;  // a signal: let the caller look at its flags
    throw;
  }
  auto frames = zmqu::recv_multipart(*socket_, zmq::recv_flags::dontwait);
  if (!frames) return std::nullopt;
  return decode_event(std::move(*frames), options_.limits);
}

std::optional<Event> Client::next(milliseconds timeout) {
  if (!kept_.empty()) {
    Event ev = std::move(kept_.front());
    kept_.pop_front();
    return ev;
  }
  return receive(timeout);
}

std::optional<Event> Client::wait_for(const std::function<bool(const Event&)>& match,
                                      milliseconds timeout) {
  for (auto it = kept_.begin(); it != kept_.end(); ++it) {
    if (match(*it)) {
      Event ev = std::move(*it);
      kept_.erase(it);
      return ev;
    }
  }
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto ev = receive(remaining(deadline));
    if (ev) {
      if (match(*ev)) return ev;
      kept_.push_back(std::move(*ev));
    } else if (Clock::now() >= deadline) {
      return std::nullopt;
    }
  }
}

std::optional<Event> Client::wait_reply(std::uint64_t req, milliseconds timeout) {
  return wait_for([req](const Event& ev) { return ev.req == req; }, timeout);
}

std::optional<Event> Client::wait_terminal(std::string_view job, milliseconds timeout) {
  return wait_for([job](const Event& ev) { return ev.is_terminal() && ev.job == job; }, timeout);
}

std::optional<Event> Client::submit_and_wait(proto::Submit s, proto::Frames inputs,
                                             milliseconds timeout) {
  const std::uint64_t req = submit(std::move(s), std::move(inputs));
  return wait_reply(req, timeout);
}

std::optional<Event> Client::fetch_and_wait(std::string_view job, milliseconds timeout) {
  const std::uint64_t req = fetch(job);
  // RESULT and CANCELLED name the job; an ERROR answering the FETCH carries its req.
  return wait_for(
      [req, job](const Event& ev) {
        if (ev.kind == proto::EventCmd::Error) return ev.req == req || (ev.req == 0 && ev.job == job);
        return (ev.kind == proto::EventCmd::Result || ev.kind == proto::EventCmd::Cancelled) &&
               ev.job == job;
      },
      timeout);
}

}  // namespace mmgen::client
