// run_cli: parse, dispatch to a verb, map failures to exit codes.
#include "cli/run_cli.hpp"

#include <zmq.hpp>

#include "cli/help.hpp"
#include "cli/verbs.hpp"
#include "mmgen/client.hpp"

namespace mmgen::cli {

namespace {

int dispatch(const Command& cmd, CliIo& io) {
  switch (*cmd.verb) {
    case Verb::text:
    case Verb::image:
    case Verb::edit:
    case Verb::video:
    case Verb::echo: return run_submit(cmd, io);
    case Verb::status: return run_status(cmd, io);
    case Verb::wait: return run_wait(cmd, io);
    case Verb::fetch: return run_fetch(cmd, io);
    case Verb::cancel: return run_cancel(cmd, io);
    case Verb::jobs: return run_jobs(cmd, io);
    case Verb::workers: return run_workers(cmd, io);
  }
  return kExitUsage;
}

}  // namespace

int run_cli(const std::vector<std::string>& args, CliIo& io) {
  Command cmd;
  try {
    cmd = parse_args(args, io.getenv);
  } catch (const UsageError& e) {
    io.err << "mmgen: " << e.what() << "\n(see `mmgen --help`)\n" << std::flush;
    return kExitUsage;
  }
  if (cmd.version) {
    io.out << version_text() << std::flush;
    return kExitOk;
  }
  if (cmd.help) {
    io.out << (cmd.verb ? verb_help(*cmd.verb) : main_help()) << std::flush;
    return kExitOk;
  }
  try {
    return dispatch(cmd, io);
  } catch (const UsageError& e) {
    io.err << "mmgen: " << e.what() << '\n' << std::flush;
    return kExitUsage;
  } catch (const zmq::error_t& e) {
    io.err << "mmgen: cannot use the broker at " << cmd.broker << ": " << e.what() << '\n' << std::flush;
    return kExitBroker;
  } catch (const client::SendError& e) {
    io.err << "mmgen: " << e.what() << '\n' << std::flush;
    return kExitBroker;
  } catch (const proto::ProtocolError& e) {
    io.err << "mmgen: protocol error: " << e.what() << '\n' << std::flush;
    return kExitBroker;
  } catch (const std::exception& e) {
    io.err << "mmgen: " << e.what() << '\n' << std::flush;
    return kExitJobFailed;
  }
}

}  // namespace mmgen::cli
