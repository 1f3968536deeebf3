// Private to the loop's files: the message being handled.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "loop.hpp"

namespace mmgen::broker {

// The message being handled; actions that say "the frames in hand" use it.
struct Loop::Incoming {
  std::string routing;
  std::uint64_t req = 0;
  zmq::message_t body;
  std::vector<zmq::message_t> blobs;
  std::string inputs_of;     // the job whose stored inputs `blobs` are
  std::string inline_inputs;  // their small blobs, packed, for the job's row
  bool blobs_taken = false;  // moved on to a JOB or a relay
  bool body_taken = false;
  // A RESULT whose body (`body`) and outputs (`outputs_packed`) are still to
  // be journaled: with the job's final status in one statement when the
  // dispatcher records it as succeeded, else on their own (store_pending_result).
  std::string result_of;
  std::string outputs_packed;
};

inline std::string_view view(const zmq::message_t& m) {
  return {static_cast<const char*>(m.data()), m.size()};
}

}  // namespace mmgen::broker
