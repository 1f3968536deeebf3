// One function per verb; each returns the exit code. They may throw
// UsageError (exit 2) or zmq/client errors (exit 3), which run_cli maps.
#pragma once

#include "cli/args.hpp"
#include "cli/run_cli.hpp"

namespace mmgen::cli {

int run_submit(const Command& cmd, CliIo& io);  // text, image, edit, video, echo
int run_wait(const Command& cmd, CliIo& io);
int run_status(const Command& cmd, CliIo& io);
int run_cancel(const Command& cmd, CliIo& io);
int run_fetch(const Command& cmd, CliIo& io);
int run_jobs(const Command& cmd, CliIo& io);
int run_workers(const Command& cmd, CliIo& io);

}  // namespace mmgen::cli
