// See help.hpp.
#include "cli/help.hpp"

#include <algorithm>

#include "cli/flags.hpp"

#ifndef MMGEN_VERSION
#define MMGEN_VERSION "unknown"
#endif

namespace mmgen::cli {

namespace {

constexpr Verb kAllVerbs[] = {Verb::text,  Verb::image,  Verb::edit,   Verb::video,
                              Verb::echo,  Verb::status, Verb::wait,   Verb::fetch,
                              Verb::cancel, Verb::jobs,  Verb::workers};

std::string flag_rows(std::span<const FlagSpec> flags, bool show_params) {
  std::vector<std::pair<std::string, std::string>> rows;
  std::size_t width = 0;
  for (const auto& f : flags) {
    std::string left = "  " + std::string(f.name);
    if (!f.alias.empty()) left += ", " + std::string(f.alias);
    if (!f.metavar.empty()) left += " " + std::string(f.metavar);
    std::string right(f.help);
    const bool is_param = f.kind == FlagKind::Int || f.kind == FlagKind::NonNegInt ||
                          f.kind == FlagKind::PosInt || f.kind == FlagKind::Double ||
                          f.kind == FlagKind::String || f.kind == FlagKind::StringList ||
                          f.kind == FlagKind::SetTrue || f.kind == FlagKind::SetFalse ||
                          f.kind == FlagKind::Chat;
    if (show_params && is_param) right += " [param " + std::string(f.param) + "]";
    if (show_params && (f.kind == FlagKind::Input || f.kind == FlagKind::InputList))
      right += " [input blob \"" + std::string(f.param) + "\"]";
    width = std::max(width, left.size());
    rows.emplace_back(std::move(left), std::move(right));
  }
  std::string out;
  for (auto& [l, r] : rows) out += l + std::string(width + 2 - l.size(), ' ') + r + "\n";
  return out;
}

constexpr const char* kExitCodes =
    "exit codes:\n"
    "  0    success (the job succeeded, or the request was answered)\n"
    "  1    the job failed (ERROR from the service or broker; also not_found, not_finished,\n"
    "       or outputs that could not be written)\n"
    "  2    usage error (bad flags, unreadable input file)\n"
    "  3    broker unreachable (no answer within 5 s) or protocol failure\n"
    "  4    the job was cancelled\n"
    "  5    the job timed out (--timeout), or `wait --timeout` ran out\n"
    "  130  interrupted (Ctrl-C); the job was left running\n";

constexpr const char* kInterrupt =
    "Ctrl-C while waiting: on a terminal (stdin a tty, no --json or --detach) mmgen asks\n"
    "\"cancel job J? [y/N]\": y cancels it and exits 4 once it is cancelled; anything else\n"
    "leaves it running and exits 130. Otherwise it never asks: the job is left running\n"
    "(exit 130) unless --cancel-on-interrupt is given. Re-attach with `mmgen wait ID`.\n";

}  // namespace

std::string version_text() { return std::string("mmgen ") + MMGEN_VERSION + "\n"; }

std::string main_help() {
  std::string out =
      "mmgen - run generation jobs on an mmgen broker\n\n"
      "usage: mmgen [GLOBAL FLAGS] VERB [ARGS] [FLAGS]\n\n"
      "verbs:\n";
  std::size_t width = 0;
  for (Verb v : kAllVerbs) {
    width = std::max(width, to_string(v).size() + 1 + verb_positionals(v).size());
  }
  for (Verb v : kAllVerbs) {
    std::string left = std::string(to_string(v)) + " " + std::string(verb_positionals(v));
    out += "  " + left + std::string(width + 2 - left.size(), ' ') + std::string(verb_summary(v)) + "\n";
  }
  out += "\nglobal flags (anywhere on the line):\n" + flag_rows(global_flags(), false);
  out += "\n`mmgen VERB --help` lists a verb's flags.\n\n";
  out += kExitCodes;
  out += "\n";
  out += kInterrupt;
  return out;
}

std::string verb_help(Verb v) {
  std::string out = "usage: mmgen " + std::string(to_string(v));
  if (!verb_positionals(v).empty()) out += " " + std::string(verb_positionals(v));
  out += " [FLAGS]\n\n" + std::string(verb_summary(v)) + "\n";
  if (submits_job(v)) out += "service: " + std::string(service_of(v)) + "\n";
  auto flags = verb_flags(v);
  if (!flags.empty()) out += "\nflags:\n" + flag_rows(flags, submits_job(v));
  out += "\nglobal flags:\n" + flag_rows(global_flags(), false);
  out += "\n";
  out += kExitCodes;
  return out;
}

}  // namespace mmgen::cli
