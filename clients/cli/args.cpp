// Parsing of the `mmgen` command line against the tables in flags.cpp.
#include "cli/args.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

#include "cli/flags.hpp"
#include "mmgen/ids.hpp"
#include "mmgen/zmq_util.hpp"

namespace mmgen::cli {

namespace {

constexpr std::string_view kDefaultBroker = "tcp://127.0.0.1:5555";

struct VerbName {
  std::string_view name;
  Verb verb;
};
constexpr VerbName kVerbs[] = {
    {"text", Verb::text},     {"image", Verb::image},   {"edit", Verb::edit},
    {"video", Verb::video},   {"echo", Verb::echo},     {"status", Verb::status},
    {"wait", Verb::wait},     {"fetch", Verb::fetch},   {"cancel", Verb::cancel},
    {"jobs", Verb::jobs},     {"workers", Verb::workers},
};

const FlagSpec* find_flag(std::span<const FlagSpec> table, std::string_view name) {
  for (const auto& f : table) {
    if (f.name == name || (!f.alias.empty() && f.alias == name)) return &f;
  }
  return nullptr;
}

std::int64_t parse_int(std::string_view flag, std::string_view text) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    throw UsageError(std::string(flag) + " wants an integer, got '" + std::string(text) + "'");
  }
  return v;
}

double parse_double(std::string_view flag, std::string_view text) {
  std::string s(text);
  char* end = nullptr;
  double v = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) {
    throw UsageError(std::string(flag) + " wants a number, got '" + s + "'");
  }
  return v;
}

// Looks like an option (so not a positional): "-x", "--xyz". "-" alone and
// negative numbers are positionals.
bool looks_like_flag(std::string_view a) {
  if (a.size() < 2 || a[0] != '-') return false;
  if (a[1] == '-') return true;
  return !(std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.');
}

class Parser {
 public:
  Parser(const std::vector<std::string>& args, const GetEnv& getenv) : args_(args), getenv_(getenv) {}

  Command run() {
    for (i_ = 0; i_ < args_.size(); ++i_) {
      const std::string& a = args_[i_];
      if (a == "--") {
        for (++i_; i_ < args_.size(); ++i_) positional(args_[i_]);
        break;
      }
      if (looks_like_flag(a)) {
        flag(a);
      } else {
        positional(a);
      }
    }
    if (cmd_.help || cmd_.version) return std::move(cmd_);
    if (!cmd_.verb) throw UsageError("no verb given (try `mmgen --help`)");
    finish();
    return std::move(cmd_);
  }

 private:
  void positional(const std::string& a) {
    if (!cmd_.verb) {
      auto v = verb_from_string(a);
      if (!v) throw UsageError("unknown verb '" + a + "' (try `mmgen --help`)");
      cmd_.verb = *v;
      return;
    }
    positionals_.push_back(a);
  }

  void flag(const std::string& a) {
    std::string name = a;
    std::optional<std::string> inline_value;
    if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      name = a.substr(0, eq);
      inline_value = a.substr(eq + 1);
    }
    const FlagSpec* spec = find_flag(global_flags(), name);
    if (!spec && cmd_.verb) spec = find_flag(verb_flags(*cmd_.verb), name);
    if (!spec) {
      if (!cmd_.verb) {
        for (const auto& vn : kVerbs) {
          if (find_flag(verb_flags(vn.verb), name)) {
            throw UsageError(name + " must come after the verb");
          }
        }
        throw UsageError("unknown flag " + name);
      }
      throw UsageError("unknown flag " + name + " for `" + std::string(to_string(*cmd_.verb)) + "`");
    }
    std::string value;
    if (takes_value(spec->kind)) {
      if (inline_value) {
        value = *inline_value;
      } else if (i_ + 1 < args_.size()) {
        value = args_[++i_];
      } else {
        throw UsageError(name + " needs a value (" + std::string(spec->metavar) + ")");
      }
    } else if (inline_value) {
      throw UsageError(name + " takes no value");
    }
    apply(*spec, name, value);
  }

  void apply(const FlagSpec& f, const std::string& name, const std::string& value) {
    const std::string param(f.param);
    switch (f.kind) {
      case FlagKind::Broker: broker_ = value; break;
      case FlagKind::Json: cmd_.json = true; break;
      case FlagKind::Detach: cmd_.detach = true; break;
      case FlagKind::CancelOnInterrupt: cmd_.cancel_on_interrupt = true; break;
      case FlagKind::Help: cmd_.help = true; break;
      case FlagKind::Version: cmd_.version = true; break;
      case FlagKind::Key:
        if (value.empty()) throw UsageError("--key must not be empty");
        cmd_.key = value;
        break;
      case FlagKind::Priority: {
        auto p = parse_int(name, value);
        if (p < proto::kMinPriority || p > proto::kMaxPriority) {
          throw UsageError("--priority must be between 0 and 9, got " + value);
        }
        cmd_.priority = static_cast<int>(p);
        break;
      }
      case FlagKind::Timeout: {
        double t = parse_double(name, value);
        // An upper bound keeps the conversion to milliseconds exact and sane (a year).
        if (t <= 0 || t > 365.0 * 24 * 3600) throw UsageError("--timeout must be > 0 seconds, got " + value);
        cmd_.timeout_s = t;
        break;
      }
      case FlagKind::Int: cmd_.params[param] = parse_int(name, value); break;
      case FlagKind::NonNegInt: {
        auto v = parse_int(name, value);
        if (v < 0) throw UsageError(name + " must be >= 0, got " + value);
        cmd_.params[param] = v;
        break;
      }
      case FlagKind::PosInt: {
        auto v = parse_int(name, value);
        if (v < 1) throw UsageError(name + " must be >= 1, got " + value);
        cmd_.params[param] = v;
        break;
      }
      case FlagKind::Double: cmd_.params[param] = parse_double(name, value); break;
      case FlagKind::String: cmd_.params[param] = value; break;
      case FlagKind::StringList: {
        auto it = cmd_.params.find(param);
        if (it == cmd_.params.end()) it = cmd_.params.emplace(param, ValueArray{}).first;
        it->second.as_array().push_back(Value(value));
        break;
      }
      case FlagKind::SetTrue: cmd_.params[param] = true; break;
      case FlagKind::SetFalse: cmd_.params[param] = false; break;
      case FlagKind::Model:
        if (value.empty()) throw UsageError("--model must not be empty");
        cmd_.model = value;
        break;
      case FlagKind::Input:
        if (value.empty()) throw UsageError(name + " needs a file name");
        // A repeated flag replaces the earlier file, like every other flag.
        std::erase_if(cmd_.inputs, [&](const InputFile& in) { return in.role == f.param; });
        cmd_.inputs.push_back(InputFile{param, value});
        break;
      case FlagKind::InputList:
        if (value.empty()) throw UsageError(name + " needs a file name");
        cmd_.inputs.push_back(InputFile{param, value});  // every one kept, in order
        break;
      case FlagKind::Chat:
        if (value.empty()) throw UsageError(name + " needs a file name");
        cmd_.chat_file = value;
        break;
      case FlagKind::Tools:
        if (value.empty()) throw UsageError(name + " needs a file name");
        cmd_.tools_file = value;
        break;
      case FlagKind::Output:
        if (value.empty()) throw UsageError("-o needs a path");
        cmd_.output = value;
        break;
      case FlagKind::Previews:
        if (value.empty()) throw UsageError("--previews needs a directory");
        cmd_.previews_dir = value;
        if (!param.empty()) cmd_.params[param] = true;
        break;
      case FlagKind::SaveFrames:
        if (value.empty()) throw UsageError("--save-frames needs a directory");
        cmd_.frames_dir = value;
        if (!param.empty()) cmd_.params[param] = true;
        break;
      case FlagKind::ListService: cmd_.list_service = value; break;
      case FlagKind::ListLimit: {
        auto v = parse_int(name, value);
        if (v < 1 || v > 100000) throw UsageError("--limit must be between 1 and 100000, got " + value);
        cmd_.list_limit = static_cast<std::uint32_t>(v);
        break;
      }
    }
  }

  void expect_positionals(std::size_t lo, std::size_t hi) {
    const auto n = positionals_.size();
    if (n >= lo && n <= hi) return;
    const std::string verb(to_string(*cmd_.verb));
    const std::string want(verb_positionals(*cmd_.verb));
    if (n < lo) throw UsageError("`" + verb + "` needs " + want);
    throw UsageError("`" + verb + "` takes " + (want.empty() ? "no arguments" : want) +
                     "; unexpected '" + positionals_[hi] + "'");
  }

  void finish() {
    if (broker_) {
      cmd_.broker = *broker_;
    } else if (auto env = getenv_ ? getenv_(kBrokerEnv) : std::nullopt; env && !env->empty()) {
      cmd_.broker = *env;
    } else {
      cmd_.broker = kDefaultBroker;
    }
    if (!zmqu::looks_like_endpoint(cmd_.broker)) {
      throw UsageError("not a ZeroMQ endpoint: '" + cmd_.broker + "' (e.g. tcp://127.0.0.1:5555)");
    }

    const Verb v = *cmd_.verb;
    switch (v) {
      case Verb::text:
        expect_positionals(0, 1);
        if (positionals_.empty() && cmd_.chat_file.empty()) {
          throw UsageError("`text` needs a PROMPT or --chat FILE");
        }
        if (!positionals_.empty()) cmd_.params["prompt"] = positionals_[0];
        break;
      case Verb::image:
      case Verb::video:
        expect_positionals(1, 1);
        cmd_.params["prompt"] = positionals_[0];
        break;
      case Verb::edit: {
        expect_positionals(2, 4);
        cmd_.params["prompt"] = positionals_.back();
        // The images come first, in order; each is a blob named "image".
        std::vector<InputFile> images;
        for (std::size_t k = 0; k + 1 < positionals_.size(); ++k) {
          images.push_back(InputFile{"image", positionals_[k]});
        }
        cmd_.inputs.insert(cmd_.inputs.begin(), images.begin(), images.end());
        break;
      }
      case Verb::echo: {
        if (positionals_.empty()) throw UsageError("`echo` needs TEXT");
        std::string text;
        for (const auto& p : positionals_) text += (text.empty() ? "" : " ") + p;
        cmd_.params["text"] = text;
        break;
      }
      case Verb::status:
      case Verb::wait:
      case Verb::fetch:
      case Verb::cancel:
        expect_positionals(1, 1);
        if (!is_job_id(positionals_[0])) {
          throw UsageError("not a job id: '" + positionals_[0] + "' (ids look like j_0123456789abcdef01234567)");
        }
        cmd_.job = positionals_[0];
        break;
      case Verb::jobs:
      case Verb::workers:
        expect_positionals(0, 0);
        break;
    }
  }

  const std::vector<std::string>& args_;
  const GetEnv& getenv_;
  std::size_t i_ = 0;
  Command cmd_;
  std::optional<std::string> broker_;
  std::vector<std::string> positionals_;
};

}  // namespace

std::string_view to_string(Verb v) {
  for (const auto& vn : kVerbs) {
    if (vn.verb == v) return vn.name;
  }
  return "?";
}

std::optional<Verb> verb_from_string(std::string_view s) {
  for (const auto& vn : kVerbs) {
    if (vn.name == s) return vn.verb;
  }
  return std::nullopt;
}

bool submits_job(Verb v) {
  return v == Verb::text || v == Verb::image || v == Verb::edit || v == Verb::video ||
         v == Verb::echo;
}

std::string_view service_of(Verb v) {
  switch (v) {
    case Verb::text: return "text";
    case Verb::image: case Verb::edit: return "image";
    case Verb::video: return "video";
    case Verb::echo: return "echo";
    default: return "";
  }
}

Command parse_args(const std::vector<std::string>& args, const GetEnv& getenv) {
  return Parser(args, getenv).run();
}

}  // namespace mmgen::cli
