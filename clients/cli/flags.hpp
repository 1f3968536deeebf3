// The flag tables: one row per flag, shared by the parser (args.cpp) and the
// help text (help.cpp) so the two cannot drift apart.
#pragma once

#include <span>
#include <string_view>

#include "cli/args.hpp"

namespace mmgen::cli {

enum class FlagKind {
  // Global flags.
  Broker, Json, Detach, CancelOnInterrupt, Priority, Timeout, Key, Help, Version,
  // Job parameters: the value goes to params[param].
  Int,         // any integer
  NonNegInt,   // >= 0
  PosInt,      // >= 1
  Double,      // finite number
  String,
  StringList,  // repeatable; params[param] is an array of strings
  SetTrue,     // no value; params[param] = true
  SetFalse,    // no value; params[param] = false
  // Local or envelope settings.
  Model,       // Submit.model
  Input,       // a file sent as the input blob named `param`
  InputList,   // repeatable: each file one more input blob named `param`, in order
  Chat,        // a JSON chat file -> params["messages"]
  Tools,       // a JSON file of function definitions -> params["tools"] (its text, key order kept)
  Output,      // -o
  Previews,    // --previews DIR (also params["previews"] = true)
  SaveFrames,  // --save-frames DIR (also params["save_frames"] = true)
  ListService, // jobs --service
  ListLimit,   // jobs --limit
};

struct FlagSpec {
  std::string_view name;     // "--max-tokens" or "-o"
  std::string_view alias;    // a second spelling ("--output"), or empty
  FlagKind kind;
  std::string_view param;    // params key or input blob name, where it applies
  std::string_view metavar;  // shown in help; empty: the flag takes no value
  std::string_view help;
};

bool takes_value(FlagKind k);

std::span<const FlagSpec> global_flags();
std::span<const FlagSpec> verb_flags(Verb v);
// e.g. "PROMPT", "IMAGE... PROMPT", "ID".
std::string_view verb_positionals(Verb v);
std::string_view verb_summary(Verb v);

}  // namespace mmgen::cli
