// The --json output: one compact JSON object per line. Every job event has
// "job" and "event" (accepted, queued, started, progress, partial, result,
// error, cancelled); the rest of each object is documented in clients/README.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/client.hpp"
#include "mmgen/value.hpp"

namespace mmgen::cli {

// Builds a JSON object with keys in insertion order.
class JsonObject {
 public:
  JsonObject& str(std::string_view key, std::string_view value);
  JsonObject& num(std::string_view key, std::int64_t value);
  JsonObject& real(std::string_view key, double value);
  JsonObject& boolean(std::string_view key, bool value);
  JsonObject& value(std::string_view key, const Value& v);
  JsonObject& strings(std::string_view key, const std::vector<std::string>& values);
  JsonObject& raw(std::string_view key, std::string_view json);
  std::string done() const { return body_ + "}"; }

 private:
  void key(std::string_view k);
  std::string body_ = "{";
};

std::string accepted_json(const proto::Accepted& a);
// A job event. `paths`: for RESULT the files written (its "outputs"); for
// PROGRESS the saved preview, if any ("preview").
std::string event_json(const client::Event& ev, const std::vector<std::string>& paths = {});
// The replayed state of an attached job as the event it stands for: queued ->
// "queued", running -> "started"; nothing for a final state (its terminal
// event follows).
std::optional<std::string> replay_json(const proto::JobInfo& info);
// `status`, `cancel`, `jobs`: {"event":"jobinfo","job":..,"service":..,"state":..,...}
std::string jobinfo_json(const proto::JobInfo& info);
// `workers`: {"event":"service","service":..,"workers":..,...}
std::string service_json(const proto::ServiceInfo& s);

}  // namespace mmgen::cli
