// See wait.hpp.
#include "cli/wait.hpp"

#include <algorithm>
#include <cctype>

namespace mmgen::cli {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using proto::EventCmd;

bool is_yes(std::string s) {
  s.erase(std::remove_if(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }), s.end());
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s == "y" || s == "yes";
}

class Waiter {
 public:
  Waiter(client::Client& client, CliIo& io, View& view, const WaitSpec& spec)
      : client_(client), io_(io), view_(view), spec_(spec) {}

  int run() {
    const Timing& t = io_.timing;
    last_heard_ = Clock::now();
    for (;;) {
      if (io_.take_interrupt && io_.take_interrupt()) {
        if (auto rc = on_interrupt()) return *rc;
      }
      const auto now = Clock::now();
      if (spec_.deadline && now >= *spec_.deadline) {
        view_.note("gave up waiting for job " + spec_.job + "; it may still be running (mmgen wait " +
                   spec_.job + ")");
        return kExitTimeout;
      }
      keep_alive(now);

      // Sleep no longer than the next timer or the interrupt slice.
      auto next_timer = probe_sent_ ? *probe_sent_ + t.probe_timeout : last_heard_ + t.silence_probe;
      if (spec_.deadline) next_timer = std::min(next_timer, *spec_.deadline);
      auto slice = std::clamp(std::chrono::duration_cast<milliseconds>(next_timer - now),
                              milliseconds(0), t.poll_slice);
      std::optional<client::Event> ev;
      try {
        ev = client_.next(slice);
      } catch (const proto::ProtocolError& e) {
        view_.note(std::string("protocol error from the broker at ") + client_.endpoint() + ": " + e.what());
        return kExitBroker;
      }
      if (!ev) continue;
      last_heard_ = Clock::now();
      probe_sent_.reset();
      if (reconnecting_) {
        view_.note("broker at " + client_.endpoint() + " answers again");
        reconnecting_ = false;
      }
      if (auto rc = handle(*ev)) return *rc;
    }
  }

 private:
  // Silence: probe with STATUS; an unanswered probe: new socket and ATTACH.
  void keep_alive(Clock::time_point now) {
    const Timing& t = io_.timing;
    try {
      if (!probe_sent_ && now - last_heard_ >= t.silence_probe) {
        probe_sent_ = now;
        client_.status(spec_.job);
      } else if (probe_sent_ && now - *probe_sent_ >= t.probe_timeout) {
        if (!reconnecting_) {
          view_.note("broker at " + client_.endpoint() + " is not answering; reconnecting");
          reconnecting_ = true;
        }
        probe_sent_ = now;
        client_.reconnect();
        attach_req_ = client_.attach(spec_.job);
        // A cancel asked for before the drop may never have arrived.
        if (cancel_requested_) client_.cancel(spec_.job);
      }
    } catch (const client::SendError&) {
      // The send queue is full: the next round reconnects with a fresh socket.
    }
  }

  std::optional<int> handle(const client::Event& ev) {
    if (ev.job != spec_.job) {
      // An error about one of our requests rather than the job: the broker
      // did not understand us.
      if (ev.kind == EventCmd::Error && ev.job.empty() && ev.req != 0) {
        const auto& e = ev.as<proto::Error>();
        view_.note("broker refused a request: " + std::string(proto::to_string(e.code)) + ": " + e.message);
        return kExitBroker;
      }
      return std::nullopt;
    }
    switch (ev.kind) {
      case EventCmd::JobInfo: {
        // A probe's answer. If the job has ended and its terminal event did
        // not reach us (another client attached meanwhile), ATTACH replays
        // it. The answer to an ATTACH is followed by that replay anyway.
        const auto& info = ev.as<proto::JobInfo>();
        if (proto::is_final(info.state) && !final_attach_sent_ && ev.req != attach_req_) {
          final_attach_sent_ = true;
          try {
            attach_req_ = client_.attach(spec_.job);
          } catch (const client::SendError&) {
          }
        }
        return std::nullopt;
      }
      case EventCmd::Accepted: return std::nullopt;
      case EventCmd::Queued:
      case EventCmd::Started:
      case EventCmd::Partial: view_.event(ev); return std::nullopt;
      case EventCmd::Progress: view_.event(ev, save_preview(ev)); return std::nullopt;
      case EventCmd::Result: {
        std::vector<std::string> paths;
        try {
          paths = write_result(spec_.outputs, ev.as<proto::Result>(), ev.blobs);
        } catch (const std::exception& e) {
          view_.note(std::string("job ") + spec_.job + " succeeded but its outputs could not be saved: " +
                     e.what() + " (fetch them again with: mmgen fetch " + spec_.job + " -o PATH)");
          return kExitJobFailed;
        }
        view_.event(ev, paths);
        return kExitOk;
      }
      case EventCmd::Error: {
        const auto& e = ev.as<proto::Error>();
        if (e.code == proto::ErrorCode::not_found) {
          view_.note("no job " + spec_.job + " at the broker " + client_.endpoint());
          return kExitJobFailed;
        }
        view_.event(ev);
        return exit_code_for(e.code);
      }
      case EventCmd::Cancelled: view_.event(ev); return kExitCancelled;
      default: return std::nullopt;
    }
  }

  std::vector<std::string> save_preview(const client::Event& ev) {
    const auto& p = ev.as<proto::Progress>();
    if (spec_.previews_dir.empty() || !p.preview || ev.blobs.empty() || previews_failed_) return {};
    try {
      ensure_directory(spec_.previews_dir);
      const auto path = preview_path(spec_.previews_dir, spec_.job, p.step, *p.preview);
      write_file_atomic(path, std::string_view(static_cast<const char*>(ev.blobs[0].data()), ev.blobs[0].size()));
      return {path};
    } catch (const std::exception& e) {
      // Previews are a courtesy: say so once and go on with the job.
      previews_failed_ = true;
      view_.note(std::string("previews not saved: ") + e.what());
      return {};
    }
  }

  std::optional<int> on_interrupt() {
    if (cancel_requested_) return leave();  // a second Ctrl-C while cancelling
    bool cancel = spec_.cancel_on_interrupt;
    if (!cancel && spec_.ask_on_interrupt && io_.read_line) {
      view_.clear_status();
      io_.err << "\ncancel job " << spec_.job << "? [y/N] " << std::flush;
      auto answer = io_.read_line();
      cancel = answer && is_yes(*answer);
    }
    if (!cancel) return leave();
    view_.note("cancelling job " + spec_.job + " ...");
    cancel_requested_ = true;
    try {
      client_.cancel(spec_.job);
    } catch (const client::SendError& e) {
      view_.note(e.what());
      return leave();
    }
    return std::nullopt;
  }

  int leave() {
    view_.note("job " + spec_.job + " left running; re-attach with: mmgen wait " + spec_.job);
    return kExitInterrupted;
  }

  client::Client& client_;
  CliIo& io_;
  View& view_;
  const WaitSpec& spec_;
  Clock::time_point last_heard_;
  std::optional<Clock::time_point> probe_sent_;
  bool reconnecting_ = false;
  bool final_attach_sent_ = false;
  std::uint64_t attach_req_ = 0;  // our latest ATTACH
  bool cancel_requested_ = false;
  bool previews_failed_ = false;
};

}  // namespace

int exit_code_for(proto::ErrorCode code) {
  switch (code) {
    case proto::ErrorCode::timeout: return kExitTimeout;
    case proto::ErrorCode::cancelled: return kExitCancelled;
    default: return kExitJobFailed;
  }
}

int wait_for_job(client::Client& client, CliIo& io, View& view, const WaitSpec& spec) {
  try {
    return Waiter(client, io, view, spec).run();
  } catch (const std::exception& e) {
    view.note(std::string("error: ") + e.what());
    return kExitBroker;
  }
}

}  // namespace mmgen::cli
