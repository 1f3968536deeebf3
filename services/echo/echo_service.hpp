// The echo service: returns its input. Params (all optional):
//   text       string   echoed in data["text"]; split across the partials
//   sleep_ms   0..3600000  sleeps first, in slices of <= 50 ms, with PROGRESS
//                       at every 10% and a cancellation check in every slice
//   partials   0..10000 streams that many PARTIAL{index, text} before the
//                       result; their texts concatenate to `text`
//   fail       bool     fail with ERROR{internal, "echo asked to fail"} ...
//   fail_code  string   ... or with this error code (implies fail)
// The result: data["echo"] = the params map, data["text"] = text, and every
// input blob back as an output blob with the same name and MIME type.
#pragma once

#include "mmgen/worker.hpp"

namespace mmgen::echo {

class EchoService final : public worker::Service {
 public:
  std::string name() const override { return "echo"; }
  worker::Outcome run(worker::JobContext& ctx) override;  // thread-safe: no state
};

}  // namespace mmgen::echo
