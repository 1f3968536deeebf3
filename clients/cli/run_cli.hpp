// The whole `mmgen` command as a library function: main.cpp only wires the
// process (argv, std streams, isatty, SIGINT) into CliIo, and tests call
// run_cli() in-process with string streams and a fake broker.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/args.hpp"

namespace mmgen::cli {

// Exit codes (also in `mmgen --help` and clients/README.md).
enum ExitCode : int {
  kExitOk = 0,           // the job succeeded (or the request was answered)
  kExitJobFailed = 1,    // the job failed (ERROR from the service or broker), or its outputs could not be written
  kExitUsage = 2,        // bad command line or unreadable input file
  kExitBroker = 3,       // broker unreachable, or a protocol failure
  kExitCancelled = 4,    // the job was cancelled
  kExitTimeout = 5,      // the job timed out (or `wait --timeout` ran out)
  kExitInterrupted = 130 // Ctrl-C: the job was left running
};

struct Timing {
  // How long to wait for the broker's first answer before calling it unreachable.
  std::chrono::milliseconds connect_timeout{5000};
  // While waiting for a job: after this much silence, ask the broker for the job's STATUS.
  std::chrono::milliseconds silence_probe{3000};
  // A probe unanswered this long: open a new connection and ATTACH again.
  std::chrono::milliseconds probe_timeout{3000};
  // Longest single wait on the socket, i.e. how soon an interrupt is noticed.
  std::chrono::milliseconds poll_slice{100};
  // For a submitted job with --timeout: how long past it the CLI still waits
  // for the broker to report the timeout before giving up itself.
  std::chrono::milliseconds timeout_grace{5000};
};

struct CliIo {
  CliIo(std::ostream& out_stream, std::ostream& err_stream) : out(out_stream), err(err_stream) {}

  std::ostream& out;  // the job's product: text, written paths, --json lines
  std::ostream& err;  // progress, notes, errors
  bool stdin_tty = false;
  bool stdout_tty = false;
  bool stderr_tty = false;
  int term_width = 80;
  // Reads the answer to "cancel job J? [y/N]"; nullopt on EOF or interrupt.
  std::function<std::optional<std::string>()> read_line;
  // True once for each Ctrl-C since the last call.
  std::function<bool()> take_interrupt;
  GetEnv getenv;
  Timing timing;
};

// `args` excludes the program name. Never throws; returns an exit code.
int run_cli(const std::vector<std::string>& args, CliIo& io);

}  // namespace mmgen::cli
