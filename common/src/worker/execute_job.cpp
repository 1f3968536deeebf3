// One job on a compute thread: handler -> RESULT, or exception -> ERROR.
// Nothing a handler does can take the worker down.
#include <optional>
#include <string>

#include "compute_pool.hpp"
#include "mmgen/log.hpp"

namespace mmgen::worker::detail {
namespace {

std::uint8_t cmd(proto::WorkerCmd c) { return static_cast<std::uint8_t>(c); }

// Hands the string's buffer to ZeroMQ without copying it (results can be
// hundreds of MB of video).
zmq::message_t adopt(std::string&& s) {
  auto* owned = new std::string(std::move(s));
  return zmq::message_t(
      owned->data(), owned->size(),
      [](void*, void* hint) { delete static_cast<std::string*>(hint); }, owned);
}

proto::Frames build_result(const std::string& job_id, Outcome&& out, const proto::Limits& limits,
                           std::int64_t run_ms) {
  if (out.outputs.size() > limits.max_blobs) {
    throw proto::ProtocolError(proto::ErrorCode::too_large,
                               "result has " + std::to_string(out.outputs.size()) +
                                   " outputs, more than the limit of " +
                                   std::to_string(limits.max_blobs));
  }
  std::uint64_t total = 0;
  for (const auto& o : out.outputs) total += o.data.size();
  if (total > limits.max_result_bytes) {
    throw proto::ProtocolError(proto::ErrorCode::too_large,
                               "result of " + std::to_string(total) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(limits.max_result_bytes) + " bytes");
  }
  proto::Result r;
  r.job = job_id;
  r.data = std::move(out.data);
  r.metrics = std::move(out.metrics);
  if (!r.metrics.contains("run_ms")) r.metrics["run_ms"] = run_ms;
  r.outputs.reserve(out.outputs.size());
  for (const auto& o : out.outputs) r.outputs.push_back({o.name, o.mime, o.data.size()});
  std::string body = proto::encode(r);
  if (body.size() > limits.max_body_bytes) {
    throw proto::ProtocolError(proto::ErrorCode::too_large,
                               "result body of " + std::to_string(body.size()) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(limits.max_body_bytes) + " bytes");
  }
  proto::Frames blobs;
  blobs.reserve(out.outputs.size());
  for (auto& o : out.outputs) blobs.push_back(adopt(std::move(o.data)));
  return proto::make_message(proto::kWorkerProtocol, cmd(proto::WorkerCmd::Result), body,
                             std::move(blobs));
}

proto::Error stopped_error(const JobState& job, StopReason reason) {
  proto::Error e;
  e.job = job.assign.job;
  if (reason == StopReason::timeout) {
    e.code = proto::ErrorCode::timeout;
    e.message = "job exceeded its timeout of " + std::to_string(job.assign.timeout_ms) + " ms";
  } else {
    e.code = proto::ErrorCode::cancelled;
    e.message = "job cancelled";
  }
  return e;
}

}  // namespace

void execute_job(Service& service, const std::shared_ptr<JobState>& job) {
  const std::string& id = job->assign.job;
  job->started_ms.store(steady_ms());
  // job_received (I/O thread) already says a job is here; how long it waited
  // for a thread goes on the job_done/job_failed line.
  log::debug("job_started", {{"job", id}, {"attempt", job->assign.attempt},
                             {"model", job->assign.model}});

  std::optional<proto::Frames> result;
  std::optional<proto::Error> error;
  if (StopReason r = job->stop_reason(); r != StopReason::none) {
    error = stopped_error(*job, r);  // cancelled while it waited for a thread
  } else {
    try {
      JobContext ctx(job);
      Outcome out = service.run(ctx);
      result = build_result(id, std::move(out), *job->limits, ctx.elapsed_ms());
    } catch (const Cancelled&) {
      StopReason r = job->stop_reason();
      error = stopped_error(*job, r == StopReason::none ? StopReason::cancelled : r);
    } catch (const proto::ProtocolError& e) {
      error = proto::Error{0, id, e.code(), e.what()};
    } catch (const std::exception& e) {
      error = proto::Error{0, id, proto::ErrorCode::internal, e.what()};
    } catch (...) {
      error = proto::Error{0, id, proto::ErrorCode::internal, "unknown exception"};
    }
  }

  const std::int64_t started = job->started_ms.load();
  const std::int64_t elapsed = steady_ms() - started;
  const std::int64_t waited = started - job->received_ms;
  // The answer is queued (and usually sent from this thread) first, the log
  // line after it, so its write(2) does not delay the RESULT.
  if (error) {
    // A what() can be arbitrarily long (a dump, a tensor print); the body
    // must stay far below the broker's body limit.
    constexpr std::size_t kMaxMessage = 4096;
    if (error->message.size() > kMaxMessage) {
      error->message.resize(kMaxMessage);
      error->message += "...";
    }
    auto frames = proto::make_message(proto::kWorkerProtocol, cmd(proto::WorkerCmd::Error),
                                      proto::encode(*error));
    job->outbox->push({job, std::move(frames), true});
    log::info("job_failed", {{"job", id}, {"code", proto::to_string(error->code)},
                             {"message", error->message}, {"elapsed_ms", elapsed},
                             {"waited_ms", waited}});
  } else {
    job->outbox->push({job, std::move(*result), true});
    log::info("job_done", {{"job", id}, {"elapsed_ms", elapsed}, {"waited_ms", waited}});
  }
}

}  // namespace mmgen::worker::detail
