// mmgen::client — the client side of MMGP/1 (common/PROTOCOL.md) over one
// ZeroMQ DEALER socket. Used by the `mmgen` CLI, the integration tests and the
// broker benchmark. It only speaks the protocol: what to do with events
// (progress bars, files, exit codes) is the caller's business.
//
// Requests (submit, cancel, ...) send one message and return its `req` tag at
// once; replies and job events are read with next() / wait_*(). Events that a
// wait_*() call skips are kept in arrival order and handed out by later calls,
// so nothing is lost when several jobs or requests are in flight.
//
// Errors: a malformed message from the broker (bad protocol frame, unknown
// command, undecodable body, blob sizes that disagree with their description)
// is consumed and reported by throwing proto::ProtocolError from the receiving
// call; the socket stays usable. A message that cannot be queued for sending
// (the socket's send queue is full, typically because the broker has been
// unreachable for a while) throws SendError. Not thread-safe: use one Client
// per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

#include <zmq.hpp>

#include "mmgen/codec.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::client {

inline constexpr std::string_view kDefaultEndpoint = "tcp://127.0.0.1:5555";

struct ClientOptions {
  // Limits applied to every incoming message (RESULT blobs up to
  // max_result_bytes in total). The socket's per-frame cap follows from it.
  proto::Limits limits;
  // A context shared with other sockets (e.g. many clients in a benchmark);
  // null: the client owns a context of its own. Must outlive the client.
  zmq::context_t* context = nullptr;
};

// The decoded body of a broker -> client message.
using EventBody =
    std::variant<proto::Accepted, proto::Queued, proto::Started, proto::Progress, proto::Partial,
                 proto::Result, proto::Error, proto::Cancelled, proto::JobInfo, proto::JobList,
                 proto::WorkerList>;

struct Event {
  proto::EventCmd kind = proto::EventCmd::Accepted;  // matches the default body
  std::string job;        // the job the event is about; empty for LIST/WORKERS replies
                          // and for errors about a request rather than a job
  std::uint64_t req = 0;  // the request it answers (ACCEPTED, ERROR, JOBINFO,
                          // JOBLIST, WORKERLIST); 0 for job events
  EventBody body;
  proto::Frames blobs;    // RESULT: outputs in order; PROGRESS: the preview, if any

  template <class T>
  const T& as() const { return std::get<T>(body); }
  template <class T>
  const T* get_if() const { return std::get_if<T>(&body); }

  // RESULT, ERROR or CANCELLED: nothing more follows for this job (or request).
  bool is_terminal() const;
};

// Decodes one broker -> client message (no routing frame). Checks the
// protocol frame, the command, the body and the blob sizes against `limits`.
// Throws proto::ProtocolError (invalid_request or too_large).
Event decode_event(proto::Frames&& frames, const proto::Limits& limits = {});

class SendError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Appends one input blob to a SUBMIT: its description to s.inputs, its bytes
// to `frames` (sizes agree by construction).
void add_input(proto::Submit& s, proto::Frames& frames, std::string name, std::string mime,
               std::string_view bytes);

class Client {
 public:
  // Creates a DEALER (mmgen::zmqu::configure_dealer) and connects it. ZeroMQ
  // connects lazily: an unreachable broker shows only as missing replies.
  explicit Client(std::string endpoint, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& endpoint() const { return endpoint_; }

  // ---- requests: each sends one message and returns its req tag ----------------
  // SUBMIT: `inputs` are the blob frames described by s.inputs (throws
  // ProtocolError(invalid_request) when they disagree). s.req == 0 gets a
  // fresh tag; a non-zero s.req is sent as given.
  std::uint64_t submit(proto::Submit s, proto::Frames inputs = {});
  std::uint64_t cancel(std::string_view job);
  std::uint64_t status(std::string_view job);
  std::uint64_t attach(std::string_view job);
  std::uint64_t fetch(std::string_view job);
  std::uint64_t list(std::string_view service = {}, std::uint32_t limit = 50);
  std::uint64_t workers();

  // ---- receiving ------------------------------------------------------------
  // The next event (kept ones first); nullopt when none arrives within
  // `timeout` (0: don't wait). A signal interrupting the wait (EINTR) also
  // returns nullopt so callers can look at their interrupt flag.
  std::optional<Event> next(std::chrono::milliseconds timeout);
  // The first event (kept or new) for which `match` is true; the others are
  // kept for later. nullopt when the time runs out.
  std::optional<Event> wait_for(const std::function<bool(const Event&)>& match,
                                std::chrono::milliseconds timeout);
  // The direct reply to request `req` (ACCEPTED, ERROR, JOBINFO, JOBLIST, WORKERLIST).
  std::optional<Event> wait_reply(std::uint64_t req, std::chrono::milliseconds timeout);
  // The terminal event (RESULT, ERROR, CANCELLED) of `job`.
  std::optional<Event> wait_terminal(std::string_view job, std::chrono::milliseconds timeout);

  // ---- conveniences -----------------------------------------------------------
  // SUBMIT and wait for its ACCEPTED or ERROR.
  std::optional<Event> submit_and_wait(proto::Submit s, proto::Frames inputs,
                                       std::chrono::milliseconds timeout);
  // FETCH and wait for the answer: RESULT, CANCELLED or ERROR (the job's own
  // error, not_finished or not_found).
  std::optional<Event> fetch_and_wait(std::string_view job, std::chrono::milliseconds timeout);

  // Replaces the socket with a new one (new routing id at the broker), e.g.
  // after the broker stopped answering; follow with attach() to resubscribe.
  // Events already received and kept are not discarded.
  void reconnect();

  // For zmq::poll over many clients: when the socket is readable, or
  // has_kept() is true, next(0ms) returns an event.
  zmq::socket_t& socket() { return *socket_; }
  bool has_kept() const { return !kept_.empty(); }

 private:
  void open_socket();
  void send(proto::ClientCmd cmd, const std::string& body, proto::Frames blobs = {});
  std::optional<Event> receive(std::chrono::milliseconds timeout);
  std::uint64_t next_req() { return ++last_req_; }

  std::string endpoint_;
  ClientOptions options_;
  std::unique_ptr<zmq::context_t> own_context_;
  zmq::context_t* context_ = nullptr;
  std::unique_ptr<zmq::socket_t> socket_;
  std::deque<Event> kept_;
  std::uint64_t last_req_ = 0;
};

}  // namespace mmgen::client
