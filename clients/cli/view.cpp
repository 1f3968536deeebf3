// See view.hpp.
#include "cli/view.hpp"

#include <cstdio>

#include "cli/json_events.hpp"

namespace mmgen::cli {

using proto::EventCmd;

namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// "tokens=32 tokens_per_s=45.1" from the scalar metrics.
std::string metrics_text(const ValueMap& m) {
  std::string out;
  for (const auto& [k, v] : m) {
    if (v.is_map() || v.is_array() || v.is_binary() || v.is_null()) continue;
    std::string text;
    if (v.is_string()) {
      text = v.as_string();
    } else if (v.is_double()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", v.as_double());  // people read these
      text = buf;
    } else {
      text = v.to_json();
    }
    out += (out.empty() ? "" : " ") + k + "=" + text;
  }
  return out;
}

}  // namespace

void View::status(const std::string& line) {
  io_.err << "\r\033[K" << line << std::flush;
  status_shown_ = true;
}

void View::clear_status() {
  if (!status_shown_) return;
  io_.err << "\r\033[K" << std::flush;
  status_shown_ = false;
}

void View::plain(const std::string& job, const std::string& what) {
  io_.err << "job " << job << ' ' << what << '\n' << std::flush;
}

void View::note(std::string_view line) {
  clear_status();
  io_.err << line << '\n' << std::flush;
}

void View::accepted(const proto::Accepted& a) {
  if (json_) {
    io_.out << accepted_json(a) << '\n' << std::flush;
    return;
  }
  const std::string what = a.existing ? "accepted (existing job for this --key)" : "accepted";
  if (bar_) {
    status("job " + a.job + " " + what);
  } else {
    plain(a.job, what);
  }
}

void View::replay(const proto::JobInfo& info) {
  if (json_) {
    if (auto line = replay_json(info)) io_.out << *line << '\n' << std::flush;
    return;
  }
  std::string what = "is " + std::string(proto::to_string(info.state));
  if (info.state == proto::JobState::queued) {
    what += " (position " + std::to_string(info.position) +
            (info.waiting_for.empty() ? "" : ", waiting for " + info.waiting_for) + ")";
  } else if (info.state == proto::JobState::running && !info.worker.empty()) {
    what += " on " + info.worker;
  }
  if (bar_) {
    status("job " + info.job + " " + what);
  } else {
    plain(info.job, what);
  }
}

void View::event(const client::Event& ev, const std::vector<std::string>& paths) {
  if (json_) {
    io_.out << event_json(ev, paths) << '\n' << std::flush;
    return;
  }
  switch (ev.kind) {
    case EventCmd::Queued: {
      const auto& q = ev.as<proto::Queued>();
      std::string what = "queued (position " + std::to_string(q.position) +
                         (q.waiting_for.empty() ? "" : ", waiting for " + q.waiting_for) + ")";
      if (bar_ && !streamed_) status("job " + ev.job + " " + what);
      if (!bar_) plain(ev.job, what);
      break;
    }
    case EventCmd::Started: {
      const auto& s = ev.as<proto::Started>();
      std::string what = "started on " + s.worker +
                         (s.attempt > 1 ? " (attempt " + std::to_string(s.attempt) + ")" : "");
      rate_.reset();
      if (bar_ && !streamed_) status("job " + ev.job + " " + what);
      if (!bar_) plain(ev.job, what);
      break;
    }
    case EventCmd::Progress: {
      const auto& p = ev.as<proto::Progress>();
      rate_.observe(p.step, steady_ms());
      if (bar_) {
        if (!streamed_) status(progress_bar(p, rate_.rate(), io_.term_width - 1));
      } else {
        plain(ev.job, progress_line(p, rate_.rate()) + (paths.empty() ? "" : " preview " + paths.front()));
      }
      break;
    }
    case EventCmd::Partial: {
      if (!stream_text_) break;
      const auto& data = ev.as<proto::Partial>().data;
      auto it = data.find("text");
      if (it == data.end() || !it->second.is_string() || it->second.as_string().empty()) break;
      const std::string& delta = it->second.as_string();
      clear_status();
      io_.out << delta << std::flush;
      streamed_ = true;
      last_char_ = delta.back();
      break;
    }
    case EventCmd::Result: human_result(ev, paths); break;
    case EventCmd::Error: {
      const auto& e = ev.as<proto::Error>();
      if (streamed_ && last_char_ != '\n') io_.out << '\n' << std::flush;
      note("job " + ev.job + " failed: " + std::string(proto::to_string(e.code)) +
           (e.message.empty() ? "" : ": " + e.message));
      break;
    }
    case EventCmd::Cancelled:
      if (streamed_ && last_char_ != '\n') io_.out << '\n' << std::flush;
      note("job " + ev.job + " cancelled");
      break;
    default: break;
  }
}

void View::human_result(const client::Event& ev, const std::vector<std::string>& paths) {
  const auto& r = ev.as<proto::Result>();
  clear_status();
  bool text_printed = false;
  if (auto it = r.data.find("text"); it != r.data.end() && it->second.is_string()) {
    if (streamed_) {
      if (last_char_ != '\n') io_.out << '\n';
    } else {
      const std::string& text = it->second.as_string();
      io_.out << text << (text.empty() || text.back() != '\n' ? "\n" : "");
    }
    text_printed = true;
  } else if (streamed_ && last_char_ != '\n') {
    io_.out << '\n';
  }
  for (const auto& p : paths) {
    if (text_printed) {
      io_.err << "wrote " << p << '\n';
    } else {
      io_.out << p << '\n';
    }
  }
  io_.out << std::flush;
  const std::string m = metrics_text(r.metrics);
  plain(ev.job, "succeeded" + (m.empty() ? "" : " (" + m + ")"));
}

}  // namespace mmgen::cli
