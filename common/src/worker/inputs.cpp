#include "mmgen/worker.hpp"

namespace mmgen::worker {

const Input* find_input(const std::vector<Input>& inputs, std::string_view name) {
  const Input* found = nullptr;
  for (const auto& in : inputs) {
    if (in.name != name) continue;
    if (found)
      throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                                 "more than one input blob named '" + std::string(name) + "'");
    found = &in;
  }
  return found;
}

}  // namespace mmgen::worker
