// Command-line parsing for `mmgen`: verbs, their flags, and global flags that
// may appear anywhere. Parsing is pure (no files are read, nothing is sent);
// flags that name services' parameters land in Command::params under the
// names documented in clients/README.md.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/protocol.hpp"
#include "mmgen/value.hpp"

namespace mmgen::cli {

enum class Verb { text, image, edit, video, echo, status, wait, fetch, cancel, jobs, workers };

std::string_view to_string(Verb v);
std::optional<Verb> verb_from_string(std::string_view s);
// text, image, edit, video, echo: verbs that SUBMIT a job.
bool submits_job(Verb v);
// The service a submitting verb sends its job to.
std::string_view service_of(Verb v);

// A bad command line; the message says what is wrong (exit code 2).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using GetEnv = std::function<std::optional<std::string>(std::string_view)>;

// A file sent as an input blob; `role` is the blob name the service reads.
struct InputFile {
  std::string role;
  std::string path;
  bool operator==(const InputFile&) const = default;
};

inline constexpr std::string_view kBrokerEnv = "MMGEN_BROKER";

struct Command {
  std::optional<Verb> verb;  // empty only with --help or --version
  bool help = false;
  bool version = false;

  // ---- global flags -----------------------------------------------------------
  std::string broker;  // --broker, else $MMGEN_BROKER, else tcp://127.0.0.1:5555
  bool json = false;
  bool detach = false;
  bool cancel_on_interrupt = false;
  int priority = proto::kDefaultPriority;
  std::optional<double> timeout_s;
  std::string key;

  // ---- submitting verbs -------------------------------------------------------
  std::string model;
  ValueMap params;
  std::vector<InputFile> inputs;
  std::string chat_file;  // --chat / --messages: read into params["messages"] when submitting
  std::string tools_file;  // --tools: its JSON text becomes params["tools"] when submitting

  // ---- local outputs --------------------------------------------------------------
  std::string output;        // -o
  std::string previews_dir;  // --previews
  std::string frames_dir;    // --save-frames

  // ---- job verbs (status, wait, fetch, cancel) --------------------------------------
  std::string job;

  // ---- jobs -------------------------------------------------------------------
  std::string list_service;
  std::uint32_t list_limit = 50;
};

// `args` excludes the program name. Throws UsageError.
Command parse_args(const std::vector<std::string>& args, const GetEnv& getenv);

}  // namespace mmgen::cli
