// Turns a parsed submitting Command into the SUBMIT message: reads the input
// files (blobs with a MIME type guessed from the extension) and the --chat file.
#pragma once

#include "cli/args.hpp"
#include "mmgen/codec.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::cli {

struct SubmitPlan {
  proto::Submit submit;
  proto::Frames inputs;
};

// Throws UsageError for an unreadable file, a bad chat file, or an -o path
// whose directory does not exist (checked now, before any compute is spent).
SubmitPlan build_submit(const Command& cmd);

// A --chat file: a JSON array of {"role": .., "content": ..} objects, or an
// object whose "messages" is such an array. Throws UsageError.
ValueArray read_chat_messages(const std::string& path);

}  // namespace mmgen::cli
