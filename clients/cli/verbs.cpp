// The verbs: build a request, wait (boundedly) for the broker's answer, show it.
#include "cli/verbs.hpp"

#include <cstdio>
#include <ctime>
#include <functional>

#include "cli/json_events.hpp"
#include "cli/outputs.hpp"
#include "cli/submit.hpp"
#include "cli/view.hpp"
#include "cli/wait.hpp"
#include "mmgen/client.hpp"

namespace mmgen::cli {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using proto::EventCmd;

std::string seconds_text(milliseconds ms) {
  char buf[32];
  if (ms.count() % 1000 == 0) {
    std::snprintf(buf, sizeof buf, "%lld s", static_cast<long long>(ms.count() / 1000));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  }
  return buf;
}

std::string utc_time(double unix_s) {
  if (unix_s <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

struct Reply {
  std::optional<client::Event> event;
  int rc = kExitOk;  // meaningful when !event
};

// The broker's first answer (matched by `match`) within connect_timeout:
// ZeroMQ connects lazily, so a missing answer is how an unreachable broker shows.
Reply await_reply(client::Client& c, CliIo& io, View& view,
                  const std::function<bool(const client::Event&)>& match) {
  const auto deadline = Clock::now() + io.timing.connect_timeout;
  for (;;) {
    if (io.take_interrupt && io.take_interrupt()) {
      view.note("interrupted while waiting for the broker");
      return {std::nullopt, kExitInterrupted};
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      view.note("broker at " + c.endpoint() + " did not answer within " +
                seconds_text(io.timing.connect_timeout));
      return {std::nullopt, kExitBroker};
    }
    auto slice = std::min(io.timing.poll_slice, std::chrono::duration_cast<milliseconds>(deadline - now));
    try {
      if (auto ev = c.wait_for(match, std::max(slice, milliseconds(0)))) return {std::move(ev), kExitOk};
    } catch (const proto::ProtocolError& e) {
      view.note(std::string("protocol error from the broker at ") + c.endpoint() + ": " + e.what());
      return {std::nullopt, kExitBroker};
    }
  }
}

auto reply_to(std::uint64_t req) {
  return [req](const client::Event& ev) { return ev.req == req; };
}

// An ERROR answering a request: shown, mapped to an exit code.
int request_failed(const client::Event& ev, CliIo& io, View& view, bool json) {
  const auto& e = ev.as<proto::Error>();
  if (json) {
    io.out << event_json(ev) << '\n' << std::flush;
  }
  std::string what = std::string(proto::to_string(e.code)) + (e.message.empty() ? "" : ": " + e.message);
  if (e.code == proto::ErrorCode::not_found) what = "no job " + ev.job + " at the broker";
  if (e.code == proto::ErrorCode::not_finished) {
    what = "job " + ev.job + " has not finished; wait for it with: mmgen wait " + ev.job;
  }
  view.note("error: " + what);
  return exit_code_for(e.code);
}

std::optional<Clock::time_point> deadline_after(std::optional<double> seconds, milliseconds grace) {
  if (!seconds) return std::nullopt;
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*seconds)) + grace;
}

void print_jobinfo(std::ostream& out, const proto::JobInfo& info) {
  auto row = [&](const char* k, const std::string& v) { out << k << std::string(10 - std::string(k).size(), ' ') << v << '\n'; };
  row("job", info.job);
  row("service", info.service);
  if (!info.model.empty()) row("model", info.model);
  std::string state(proto::to_string(info.state));
  if (info.state == proto::JobState::queued) {
    state += " (position " + std::to_string(info.position) +
             (info.waiting_for.empty() ? "" : ", waiting for " + info.waiting_for) + ")";
  } else if (info.state == proto::JobState::running && !info.worker.empty()) {
    state += " on " + info.worker;
  }
  row("state", state);
  if (info.error) {
    row("error", std::string(proto::to_string(info.error->code)) +
                     (info.error->message.empty() ? "" : ": " + info.error->message));
  }
  row("priority", std::to_string(info.priority));
  row("attempts", std::to_string(info.attempts));
  row("created", utc_time(info.created_s));
  row("updated", utc_time(info.updated_s));
}

std::string pad_right(std::string s, std::size_t w) {
  if (s.size() < w) s.append(w - s.size(), ' ');
  return s;
}

}  // namespace

int run_submit(const Command& cmd, CliIo& io) {
  SubmitPlan plan = build_submit(cmd);
  client::Client c(cmd.broker);
  View view(io, cmd.json);
  view.set_stream_text(plan.submit.service == "text");
  const std::uint64_t req = c.submit(std::move(plan.submit), std::move(plan.inputs));

  Reply r = await_reply(c, io, view, reply_to(req));
  if (!r.event) {
    if (r.rc == kExitInterrupted) {
      view.note("the job may have been accepted; see `mmgen jobs`");
    }
    return r.rc;
  }
  if (r.event->kind == EventCmd::Error) return request_failed(*r.event, io, view, cmd.json);
  if (r.event->kind != EventCmd::Accepted) {
    view.note("unexpected answer to SUBMIT: " + std::string(proto::to_string(r.event->kind)));
    return kExitBroker;
  }
  const auto& accepted = r.event->as<proto::Accepted>();
  if (cmd.detach) {
    if (cmd.json) {
      io.out << JsonObject().str("job", accepted.job).str("event", "accepted").done() << '\n' << std::flush;
    } else {
      io.out << accepted.job << '\n' << std::flush;
    }
    return kExitOk;
  }
  view.accepted(accepted);

  WaitSpec spec;
  spec.job = accepted.job;
  spec.outputs = OutputPlan{accepted.job, cmd.output, cmd.frames_dir};
  spec.previews_dir = cmd.previews_dir;
  // The broker enforces --timeout; the grace covers a broker that cannot say so.
  spec.deadline = deadline_after(cmd.timeout_s, io.timing.timeout_grace);
  spec.ask_on_interrupt = io.stdin_tty && !cmd.json && !cmd.detach;
  spec.cancel_on_interrupt = cmd.cancel_on_interrupt;
  return wait_for_job(c, io, view, spec);
}

int run_wait(const Command& cmd, CliIo& io) {
  client::Client c(cmd.broker);
  View view(io, cmd.json);
  const std::uint64_t req = c.attach(cmd.job);
  Reply r = await_reply(c, io, view, reply_to(req));
  if (!r.event) return r.rc;
  if (r.event->kind == EventCmd::Error) return request_failed(*r.event, io, view, cmd.json);
  if (r.event->kind != EventCmd::JobInfo) {
    view.note("unexpected answer to ATTACH: " + std::string(proto::to_string(r.event->kind)));
    return kExitBroker;
  }
  const auto& info = r.event->as<proto::JobInfo>();
  view.set_stream_text(info.service == "text");
  if (!proto::is_final(info.state)) view.replay(info);

  WaitSpec spec;
  spec.job = cmd.job;
  spec.outputs = OutputPlan{cmd.job, cmd.output, cmd.frames_dir};
  spec.previews_dir = cmd.previews_dir;
  spec.deadline = deadline_after(cmd.timeout_s, milliseconds(0));
  spec.ask_on_interrupt = io.stdin_tty && !cmd.json;
  spec.cancel_on_interrupt = cmd.cancel_on_interrupt;
  return wait_for_job(c, io, view, spec);
}

int run_status(const Command& cmd, CliIo& io) {
  client::Client c(cmd.broker);
  View view(io, cmd.json);
  Reply r = await_reply(c, io, view, reply_to(c.status(cmd.job)));
  if (!r.event) return r.rc;
  if (r.event->kind == EventCmd::Error) return request_failed(*r.event, io, view, cmd.json);
  const auto* info = r.event->get_if<proto::JobInfo>();
  if (!info) {
    view.note("unexpected answer to STATUS: " + std::string(proto::to_string(r.event->kind)));
    return kExitBroker;
  }
  if (cmd.json) {
    io.out << jobinfo_json(*info) << '\n';
  } else {
    print_jobinfo(io.out, *info);
  }
  io.out << std::flush;
  return kExitOk;
}

int run_cancel(const Command& cmd, CliIo& io) {
  client::Client c(cmd.broker);
  View view(io, cmd.json);
  Reply r = await_reply(c, io, view, reply_to(c.cancel(cmd.job)));
  if (!r.event) return r.rc;
  if (r.event->kind == EventCmd::Error) return request_failed(*r.event, io, view, cmd.json);
  const auto* info = r.event->get_if<proto::JobInfo>();
  if (!info) {
    view.note("unexpected answer to CANCEL: " + std::string(proto::to_string(r.event->kind)));
    return kExitBroker;
  }
  if (cmd.json) {
    io.out << jobinfo_json(*info) << '\n' << std::flush;
  } else if (info->state == proto::JobState::cancelled) {
    io.out << "job " << info->job << " cancelled\n" << std::flush;
  } else if (proto::is_final(info->state)) {
    io.out << "job " << info->job << " had already finished (" << proto::to_string(info->state) << ")\n"
           << std::flush;
  } else {
    io.out << "job " << info->job << ": cancel requested (it was " << proto::to_string(info->state)
           << ")\n" << std::flush;
  }
  return kExitOk;
}

int run_fetch(const Command& cmd, CliIo& io) {
  client::Client c(cmd.broker);
  View view(io, cmd.json);
  const std::uint64_t req = c.fetch(cmd.job);
  const std::string job = cmd.job;
  Reply r = await_reply(c, io, view, [req, job](const client::Event& ev) {
    if (ev.kind == EventCmd::Error) return ev.req == req || (ev.req == 0 && ev.job == job);
    return (ev.kind == EventCmd::Result || ev.kind == EventCmd::Cancelled) && ev.job == job;
  });
  if (!r.event) return r.rc;
  switch (r.event->kind) {
    case EventCmd::Result: {
      std::vector<std::string> paths;
      try {
        paths = write_result(OutputPlan{job, cmd.output, cmd.frames_dir}, r.event->as<proto::Result>(),
                             r.event->blobs);
      } catch (const std::exception& e) {
        view.note(std::string("cannot save the outputs of job ") + job + ": " + e.what());
        return kExitJobFailed;
      }
      view.event(*r.event, paths);
      return kExitOk;
    }
    case EventCmd::Cancelled: view.event(*r.event); return kExitCancelled;
    case EventCmd::Error: {
      const auto code = r.event->as<proto::Error>().code;
      if (code == proto::ErrorCode::not_found || code == proto::ErrorCode::not_finished) {
        return request_failed(*r.event, io, view, cmd.json);
      }
      view.event(*r.event);  // the job's own failure
      return exit_code_for(code);
    }
    default: return kExitBroker;
  }
}

int run_jobs(const Command& cmd, CliIo& io) {
  client::Client c(cmd.broker);
  View view(io, cmd.json);
  Reply r = await_reply(c, io, view, reply_to(c.list(cmd.list_service, cmd.list_limit)));
  if (!r.event) return r.rc;
  if (r.event->kind == EventCmd::Error) return request_failed(*r.event, io, view, cmd.json);
  const auto* list = r.event->get_if<proto::JobList>();
  if (!list) {
    view.note("unexpected answer to LIST: " + std::string(proto::to_string(r.event->kind)));
    return kExitBroker;
  }
  if (cmd.json) {
    for (const auto& j : list->jobs) io.out << jobinfo_json(j) << '\n';
  } else if (list->jobs.empty()) {
    io.err << "no jobs\n";
  } else {
    io.out << pad_right("JOB", 28) << pad_right("SERVICE", 9) << pad_right("STATE", 11) << pad_right("PRI", 5)
           << "CREATED (UTC)\n";
    for (const auto& j : list->jobs) {
      io.out << pad_right(j.job, 28) << pad_right(j.service, 9)
             << pad_right(std::string(proto::to_string(j.state)), 11) << pad_right(std::to_string(j.priority), 5)
             << utc_time(j.created_s) << '\n';
    }
  }
  io.out << std::flush;
  return kExitOk;
}

int run_workers(const Command& cmd, CliIo& io) {
  client::Client c(cmd.broker);
  View view(io, cmd.json);
  Reply r = await_reply(c, io, view, reply_to(c.workers()));
  if (!r.event) return r.rc;
  if (r.event->kind == EventCmd::Error) return request_failed(*r.event, io, view, cmd.json);
  const auto* list = r.event->get_if<proto::WorkerList>();
  if (!list) {
    view.note("unexpected answer to WORKERS: " + std::string(proto::to_string(r.event->kind)));
    return kExitBroker;
  }
  if (cmd.json) {
    for (const auto& s : list->services) io.out << service_json(s) << '\n';
  } else if (list->services.empty()) {
    io.err << "no workers have registered\n";
  } else {
    io.out << pad_right("SERVICE", 10) << pad_right("WORKERS", 9) << pad_right("CAPACITY", 10)
           << pad_right("LOAD", 6) << pad_right("QUEUED", 8) << "MODELS\n";
    for (const auto& s : list->services) {
      std::string models;
      for (const auto& m : s.models) models += (models.empty() ? "" : ",") + m;
      io.out << pad_right(s.service, 10) << pad_right(std::to_string(s.workers), 9)
             << pad_right(std::to_string(s.capacity), 10) << pad_right(std::to_string(s.load), 6)
             << pad_right(std::to_string(s.queued), 8) << (models.empty() ? "-" : models) << '\n';
    }
  }
  io.out << std::flush;
  return kExitOk;
}

}  // namespace mmgen::cli
