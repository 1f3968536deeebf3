// The one error type of the loading layer. Every problem with a checkpoint
// folder (bad JSON, a hostile safetensors header, a missing or misshapen
// tensor, an unsupported architecture) becomes a LoadError whose message names
// the file and, where there is one, the tensor or config key.
#pragma once

#include <string>
#include <string_view>

#include "mmgen/protocol.hpp"

namespace mmgen::io {

enum class LoadErrorKind {
  io,           // cannot open / stat / map the file
  bad_json,     // JSON syntax error (config.json, index, safetensors header)
  bad_header,   // a safetensors header that parses but breaks the format's rules
  truncated,    // the file is shorter than its header says
  missing,      // a tensor the model needs is not in the checkpoint
  unexpected,   // the checkpoint has tensors the model does not use
  wrong_shape,  // a tensor's shape differs from the model's
  wrong_dtype,  // a tensor's dtype cannot serve the model (e.g. I64 for a weight)
  bad_config,   // config.json lacks a key, has a wrong type or an invalid value
  unsupported,  // valid, but not something this build runs (architecture, dtype, rope type)
};

std::string_view to_string(LoadErrorKind k);

// Derives from ProtocolError so a service that loads inside a job reports it
// like any other bad input: unsupported things map to `unsupported`, the rest
// to `invalid_request` (the files are the caller's input).
class LoadError : public proto::ProtocolError {
 public:
  LoadError(LoadErrorKind kind, const std::string& message)
      : proto::ProtocolError(kind == LoadErrorKind::unsupported ? proto::ErrorCode::unsupported
                                                                : proto::ErrorCode::invalid_request,
                             message),
        kind_(kind) {}
  LoadErrorKind kind() const { return kind_; }

 private:
  LoadErrorKind kind_;
};

}  // namespace mmgen::io
