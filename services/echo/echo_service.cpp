#include "echo_service.hpp"

#include <algorithm>
#include <chrono>

namespace mmgen::echo {
namespace {

constexpr std::int64_t kMaxSleepMs = 3'600'000;
constexpr std::int64_t kMaxPartials = 10'000;
constexpr std::int64_t kSliceMs = 50;
constexpr std::uint32_t kProgressSteps = 10;

bool utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Byte offset of the i-th of n boundaries, moved back so it never splits a
// UTF-8 sequence.
std::size_t boundary(const std::string& s, std::size_t i, std::size_t n) {
  std::size_t b = s.size() * i / n;
  while (b > 0 && b < s.size() && utf8_continuation(s[b])) --b;
  return b;
}

proto::ErrorCode failure_code(const std::string& name) {
  if (name.empty()) return proto::ErrorCode::internal;
  const proto::ErrorCode code = proto::error_code_from_string(name);
  if (proto::to_string(code) != name) {
    throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                               "fail_code: '" + name + "' is not an error code");
  }
  return code;
}

void sleep_with_progress(worker::JobContext& ctx, std::int64_t sleep_ms) {
  using namespace std::chrono;
  const auto start = steady_clock::now();
  ctx.progress(0, kProgressSteps, "sleeping");
  for (std::uint32_t step = 1; step <= kProgressSteps; ++step) {
    const auto step_end = start + milliseconds(sleep_ms * step / kProgressSteps);
    for (auto now = steady_clock::now(); now < step_end; now = steady_clock::now()) {
      const auto left = duration_cast<milliseconds>(step_end - now) + milliseconds(1);
      if (!ctx.sleep_for(std::min(left, milliseconds(kSliceMs)))) ctx.check_cancelled();
    }
    ctx.check_cancelled();
    ctx.progress(step, kProgressSteps, "sleeping");
  }
}

}  // namespace

worker::Outcome EchoService::run(worker::JobContext& ctx) {
  // Every param is checked before any work, so a bad one fails at once.
  const Params& p = ctx.params();
  const std::int64_t sleep_ms = p.get_int("sleep_ms", 0, 0, kMaxSleepMs);
  const std::int64_t partials = p.get_int("partials", 0, 0, kMaxPartials);
  const std::string fail_code = p.get_string("fail_code", "");
  const bool fail = p.get_bool("fail", false) || !fail_code.empty();
  const proto::ErrorCode code = failure_code(fail_code);
  const bool has_text = p.has("text");
  const std::string text = p.get_string("text", "");

  if (sleep_ms > 0) sleep_with_progress(ctx, sleep_ms);

  const auto n = static_cast<std::size_t>(partials);
  for (std::size_t i = 0; i < n; ++i) {
    ctx.check_cancelled();
    const std::size_t from = boundary(text, i, n);
    const std::size_t to = boundary(text, i + 1, n);
    ctx.partial(ValueMap{{"index", Value(i)}, {"text", Value(text.substr(from, to - from))}});
  }

  if (fail) throw proto::ProtocolError(code, "echo asked to fail");

  worker::Outcome out;
  out.data["echo"] = Value(p.map());
  if (has_text) out.data["text"] = Value(text);
  std::uint64_t input_bytes = 0;
  for (const auto& in : ctx.inputs()) {
    out.outputs.push_back({in.name, in.mime, std::string(in.bytes())});
    input_bytes += in.data.size();
  }
  out.metrics["input_bytes"] = Value(input_bytes);
  out.metrics["slept_ms"] = Value(sleep_ms);
  return out;
}

}  // namespace mmgen::echo
