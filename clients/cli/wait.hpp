// Waiting for one job's end: shows its events, saves previews and outputs,
// survives a dropped connection (STATUS probe after silence; no answer ->
// new socket + ATTACH) and handles Ctrl-C (ask, cancel or leave it running).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "cli/outputs.hpp"
#include "cli/run_cli.hpp"
#include "cli/view.hpp"
#include "mmgen/client.hpp"

namespace mmgen::cli {

struct WaitSpec {
  std::string job;
  OutputPlan outputs;        // where a RESULT's blobs go
  std::string previews_dir;  // where PROGRESS previews go; empty: not saved
  // Give up waiting at this time (exit 5, the job keeps running); none: wait on.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  bool ask_on_interrupt = false;     // Ctrl-C asks "cancel job J? [y/N]"
  bool cancel_on_interrupt = false;  // Ctrl-C cancels without asking
};

// Exit code for an ERROR's code: timeout 5, cancelled 4, others 1.
int exit_code_for(proto::ErrorCode code);

// Returns the CLI's exit code. Never throws.
int wait_for_job(client::Client& client, CliIo& io, View& view, const WaitSpec& spec);

}  // namespace mmgen::cli
