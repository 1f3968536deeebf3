// How a waiting job looks: --json lines on stdout, or for people a progress
// bar on a terminal (stderr) or plain lines when stderr is not a terminal.
// stdout carries the job's product only: streamed or final text, else the
// paths written; everything else goes to stderr.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "cli/progress.hpp"
#include "cli/run_cli.hpp"
#include "mmgen/client.hpp"

namespace mmgen::cli {

class View {
 public:
  View(CliIo& io, bool json) : io_(io), json_(json), bar_(io.stderr_tty && !json) {}

  // Text jobs stream PARTIAL data["text"] to stdout as it comes.
  void set_stream_text(bool on) { stream_text_ = on; }

  void accepted(const proto::Accepted& a);
  // The current state of a job we attached to (queued or running).
  void replay(const proto::JobInfo& info);
  // A job event; `paths` as for event_json (written outputs / saved preview).
  void event(const client::Event& ev, const std::vector<std::string>& paths = {});
  // A line for people on stderr (also in --json mode, where stdout stays JSON only).
  void note(std::string_view line);
  // Removes the transient bar line, e.g. before asking a question.
  void clear_status();

 private:
  void status(const std::string& line);
  void plain(const std::string& job, const std::string& what);
  void human_result(const client::Event& ev, const std::vector<std::string>& paths);

  CliIo& io_;
  bool json_;
  bool bar_;
  bool stream_text_ = false;
  bool streamed_ = false;     // some text went to stdout already
  char last_char_ = '\n';     // of the streamed text
  bool status_shown_ = false;
  RateMeter rate_;
};

}  // namespace mmgen::cli
