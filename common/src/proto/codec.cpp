// MMGP/1 bodies: encode every struct of protocol.hpp as a msgpack map whose
// keys are the member names; decode with bounds and field-naming errors.
#include "mmgen/codec.hpp"

#include "msgpack_body.hpp"

namespace mmgen::proto {

using detail::invalid;
using detail::MapReader;
using detail::MapWriter;
using Packer = msgpack::packer<msgpack::sbuffer>;

// ---- envelope ------------------------------------------------------------------
Envelope parse_envelope(Frames&& frames, std::string_view protocol, const Limits& limits) {
  if (frames.size() < 3)
    invalid("message has " + std::to_string(frames.size()) + " frames; expected at least 3");
  std::string_view proto_frame(static_cast<const char*>(frames[0].data()), frames[0].size());
  if (proto_frame != protocol)
    invalid("unknown protocol frame (expected '" + std::string(protocol) + "')");
  if (frames[1].size() != 1)
    invalid("command frame must be 1 byte, got " + std::to_string(frames[1].size()));
  if (frames[2].size() > limits.max_body_bytes)
    throw ProtocolError(ErrorCode::too_large, "body of " + std::to_string(frames[2].size()) +
                                                  " bytes exceeds the limit of " +
                                                  std::to_string(limits.max_body_bytes));
  if (frames.size() - 3 > limits.max_blobs)
    throw ProtocolError(ErrorCode::too_large, std::to_string(frames.size() - 3) +
                                                  " blob frames exceed the limit of " +
                                                  std::to_string(limits.max_blobs));
  Envelope env;
  env.command = *static_cast<const std::uint8_t*>(frames[1].data());
  env.body = std::move(frames[2]);
  env.blobs.reserve(frames.size() - 3);
  for (std::size_t i = 3; i < frames.size(); ++i) env.blobs.push_back(std::move(frames[i]));
  return env;
}

void check_blobs(const std::vector<BlobMeta>& meta, const Frames& blobs, std::uint64_t max_total) {
  if (meta.size() != blobs.size())
    invalid(std::to_string(meta.size()) + " blobs described but " + std::to_string(blobs.size()) +
            " blob frames sent");
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < meta.size(); ++i) {
    if (meta[i].size != blobs[i].size())
      invalid("blob '" + meta[i].name + "': described as " + std::to_string(meta[i].size) +
              " bytes, frame has " + std::to_string(blobs[i].size()));
    total += blobs[i].size();
  }
  if (total > max_total)
    throw ProtocolError(ErrorCode::too_large, "blobs total " + std::to_string(total) +
                                                  " bytes, over the limit of " +
                                                  std::to_string(max_total));
}

Frames make_message(std::string_view protocol, std::uint8_t command, const std::string& body,
                    Frames blobs) {
  Frames f;
  f.reserve(3 + blobs.size());
  f.emplace_back(protocol.data(), protocol.size());
  f.emplace_back(&command, 1);
  f.emplace_back(body.data(), body.size());
  for (auto& b : blobs) f.push_back(std::move(b));
  return f;
}

// ---- encode --------------------------------------------------------------------
namespace {

template <class Fn>
std::string pack(Fn&& fn) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  fn(pk);
  return {buf.data(), buf.size()};
}

void key(Packer& pk, std::string_view k) { MapWriter(pk).key(k); }

void pack_error_fields(MapWriter& w, const Error& e) {
  w.u64("req", e.req);
  w.str("job", e.job);
  w.str("code", to_string(e.code));
  w.str("message", e.message);
}

void pack_job_info(Packer& pk, const JobInfo& j) {
  pk.pack_map(j.error ? 13 : 12);
  MapWriter w(pk);
  w.u64("req", j.req);
  w.str("job", j.job);
  w.str("service", j.service);
  w.str("model", j.model);
  w.str("state", to_string(j.state));
  w.i64("priority", j.priority);
  w.u64("attempts", j.attempts);
  w.u64("position", j.position);
  w.str("waiting_for", j.waiting_for);
  w.str("worker", j.worker);
  w.f64("created_s", j.created_s);
  w.f64("updated_s", j.updated_s);
  if (j.error) {
    key(pk, "error");
    pk.pack_map(4);
    MapWriter ew(pk);
    pack_error_fields(ew, *j.error);
  }
}

}  // namespace

std::string encode(const Submit& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(8);
    MapWriter w(pk);
    w.u64("req", m.req);
    w.str("service", m.service);
    w.str("model", m.model);
    key(pk, "params");
    detail::pack_value_map(pk, m.params);
    key(pk, "inputs");
    detail::pack_blobs(pk, m.inputs);
    w.i64("priority", m.priority);
    w.u64("timeout_ms", m.timeout_ms);
    w.str("key", m.key);
  });
}

std::string encode(const JobRef& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(2);
    MapWriter w(pk);
    w.u64("req", m.req);
    w.str("job", m.job);
  });
}

std::string encode(const ListReq& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(3);
    MapWriter w(pk);
    w.u64("req", m.req);
    w.str("service", m.service);
    w.u64("limit", m.limit);
  });
}

std::string encode(const WorkersReq& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(1);
    MapWriter(pk).u64("req", m.req);
  });
}

std::string encode(const Accepted& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(3);
    MapWriter w(pk);
    w.u64("req", m.req);
    w.str("job", m.job);
    w.boolean("existing", m.existing);
  });
}

std::string encode(const Queued& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(3);
    MapWriter w(pk);
    w.str("job", m.job);
    w.u64("position", m.position);
    w.str("waiting_for", m.waiting_for);
  });
}

std::string encode(const Started& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(3);
    MapWriter w(pk);
    w.str("job", m.job);
    w.str("worker", m.worker);
    w.u64("attempt", m.attempt);
  });
}

std::string encode(const Progress& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(m.preview ? 6 : 5);
    MapWriter w(pk);
    w.str("job", m.job);
    w.u64("step", m.step);
    w.u64("total", m.total);
    w.f64("eta_s", m.eta_s);
    w.str("message", m.message);
    if (m.preview) {
      key(pk, "preview");
      detail::pack_blob(pk, *m.preview);
    }
  });
}

std::string encode(const Partial& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(3);
    MapWriter w(pk);
    w.str("job", m.job);
    w.u64("seq", m.seq);
    key(pk, "data");
    detail::pack_value_map(pk, m.data);
  });
}

std::string encode(const Result& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(4);
    MapWriter w(pk);
    w.str("job", m.job);
    key(pk, "outputs");
    detail::pack_blobs(pk, m.outputs);
    key(pk, "data");
    detail::pack_value_map(pk, m.data);
    key(pk, "metrics");
    detail::pack_value_map(pk, m.metrics);
  });
}

std::string encode(const Error& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(4);
    MapWriter w(pk);
    pack_error_fields(w, m);
  });
}

std::string encode(const Cancelled& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(1);
    MapWriter(pk).str("job", m.job);
  });
}

std::string encode(const JobInfo& m) {
  return pack([&](Packer& pk) { pack_job_info(pk, m); });
}

std::string encode(const JobList& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(2);
    MapWriter(pk).u64("req", m.req);
    key(pk, "jobs");
    pk.pack_array(static_cast<std::uint32_t>(m.jobs.size()));
    for (const auto& j : m.jobs) pack_job_info(pk, j);
  });
}

std::string encode(const WorkerList& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(2);
    MapWriter(pk).u64("req", m.req);
    key(pk, "services");
    pk.pack_array(static_cast<std::uint32_t>(m.services.size()));
    for (const auto& s : m.services) {
      pk.pack_map(6);
      MapWriter w(pk);
      w.str("service", s.service);
      w.u64("workers", s.workers);
      key(pk, "models");
      detail::pack_strings(pk, s.models);
      w.u64("capacity", s.capacity);
      w.u64("load", s.load);
      w.u64("queued", s.queued);
    }
  });
}

std::string encode(const Ready& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(6);
    MapWriter w(pk);
    w.str("service", m.service);
    key(pk, "models");
    detail::pack_strings(pk, m.models);
    w.u64("capacity", m.capacity);
    w.str("device", m.device);
    w.str("version", m.version);
    w.str("name", m.name);
  });
}

std::string encode(const JobAssign& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(7);
    MapWriter w(pk);
    w.str("job", m.job);
    w.str("service", m.service);
    w.str("model", m.model);
    key(pk, "params");
    detail::pack_value_map(pk, m.params);
    key(pk, "inputs");
    detail::pack_blobs(pk, m.inputs);
    w.u64("attempt", m.attempt);
    w.u64("timeout_ms", m.timeout_ms);
  });
}

std::string encode(const Heartbeat&) {
  return pack([&](Packer& pk) { pk.pack_map(0); });
}

std::string encode(const CancelJob& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(1);
    MapWriter(pk).str("job", m.job);
  });
}

std::string encode(const Disconnect& m) {
  return pack([&](Packer& pk) {
    pk.pack_map(1);
    MapWriter(pk).str("reason", m.reason);
  });
}

std::string encode(const ValueMap& m) {
  return pack([&](Packer& pk) { detail::pack_value_map(pk, m); });
}

// ---- decode --------------------------------------------------------------------
namespace {

// Model names: short and printable; they may look like "Qwen/Qwen3-8B" or "org:name".
void check_name(const std::string& field, const std::string& v, bool allow_empty) {
  if (v.empty()) {
    if (allow_empty) return;
    invalid("field '" + field + "' must not be empty");
  }
  if (v.size() > 128) invalid("field '" + field + "' is longer than 128 characters");
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/' || c == ':';
    if (!ok) invalid("field '" + field + "' has a character outside [A-Za-z0-9_.:/-]");
  }
}

// Service names are also metric labels and log values: lower-case words only.
void check_service(const std::string& field, const std::string& v, bool allow_empty) {
  if (v.empty()) {
    if (allow_empty) return;
    invalid("field '" + field + "' must not be empty");
  }
  if (v.size() > 64) invalid("field '" + field + "' is longer than 64 characters");
  for (char c : v)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      invalid("field '" + field + "' must match [a-z0-9_-]{1,64}");
}

void check_job(const std::string& job) {
  if (job.empty()) invalid("field 'job' must not be empty");
  if (job.size() > 64) invalid("field 'job' is longer than 64 characters");
}

std::uint32_t u32(const MapReader& r, std::string_view k, std::uint32_t def = 0) {
  auto v = r.u64(k, def);
  if (v > UINT32_MAX) invalid("field '" + r.field(k) + "' out of range");
  return static_cast<std::uint32_t>(v);
}

Error read_error(const MapReader& r) {
  Error e;
  e.req = r.u64("req");
  e.job = r.str("job");
  e.code = error_code_from_string(r.str("code", "internal"));
  e.message = r.str("message");
  return e;
}

JobInfo read_job_info(const MapReader& r) {
  JobInfo j;
  j.req = r.u64("req");
  j.job = r.str("job");
  j.service = r.str("service");
  j.model = r.str("model");
  auto st = r.str("state", "queued");
  auto s = job_state_from_string(st);
  if (!s) invalid("field '" + r.field("state") + "': unknown state '" + st + "'");
  j.state = *s;
  j.priority = static_cast<int>(r.i64("priority", kDefaultPriority));
  j.attempts = u32(r, "attempts");
  j.position = u32(r, "position");
  j.waiting_for = r.str("waiting_for");
  j.worker = r.str("worker");
  j.created_s = r.f64("created_s");
  j.updated_s = r.f64("updated_s");
  if (auto e = r.map("error")) j.error = read_error(*e);
  return j;
}

template <class Fn>
void with_body(std::string_view body, const Limits& limits, Fn&& fn) {
  auto oh = detail::unpack_map(body, limits);
  MapReader r(oh.get(), "");
  fn(r);
}

}  // namespace

void decode(std::string_view body, Submit& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.req = r.u64("req");
    out.service = r.str("service");
    check_service("service", out.service, false);
    out.model = r.str("model");
    check_name("model", out.model, true);
    out.params = r.value_map("params");
    out.inputs = r.blobs("inputs");
    auto p = r.i64("priority", kDefaultPriority);
    if (p < kMinPriority || p > kMaxPriority)
      invalid("field 'priority' must be in [0, 9], got " + std::to_string(p));
    out.priority = static_cast<int>(p);
    out.timeout_ms = r.u64("timeout_ms");
    out.key = r.str("key");
    if (out.key.size() > 256) invalid("field 'key' is longer than 256 characters");
  });
}

void decode(std::string_view body, JobRef& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.req = r.u64("req");
    out.job = r.str("job");
    check_job(out.job);
  });
}

void decode(std::string_view body, ListReq& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.req = r.u64("req");
    out.service = r.str("service");
    check_service("service", out.service, true);
    out.limit = u32(r, "limit", 50);
    if (out.limit == 0 || out.limit > 10000) invalid("field 'limit' must be in [1, 10000]");
  });
}

void decode(std::string_view body, WorkersReq& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) { out.req = r.u64("req"); });
}

void decode(std::string_view body, Accepted& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.req = r.u64("req");
    out.job = r.str("job");
    check_job(out.job);
    out.existing = r.boolean("existing");
  });
}

void decode(std::string_view body, Queued& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.job = r.str("job");
    check_job(out.job);
    out.position = u32(r, "position");
    out.waiting_for = r.str("waiting_for");
  });
}

void decode(std::string_view body, Started& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.job = r.str("job");
    check_job(out.job);
    out.worker = r.str("worker");
    out.attempt = u32(r, "attempt", 1);
  });
}

void decode(std::string_view body, Progress& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.job = r.str("job");
    check_job(out.job);
    out.step = u32(r, "step");
    out.total = u32(r, "total");
    out.eta_s = r.f64("eta_s", -1);
    out.message = r.str("message");
    if (auto p = r.map("preview")) out.preview = detail::to_blob(*p);
  });
}

void decode(std::string_view body, Partial& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.job = r.str("job");
    check_job(out.job);
    out.seq = r.u64("seq");
    out.data = r.value_map("data");
  });
}

void decode(std::string_view body, Result& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.job = r.str("job");
    check_job(out.job);
    out.outputs = r.blobs("outputs");
    out.data = r.value_map("data");
    out.metrics = r.value_map("metrics");
  });
}

void decode(std::string_view body, Error& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) { out = read_error(r); });
}

void decode(std::string_view body, Cancelled& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.job = r.str("job");
    check_job(out.job);
  });
}

void decode(std::string_view body, JobInfo& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) { out = read_job_info(r); });
}

void decode(std::string_view body, JobList& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.req = r.u64("req");
    out.jobs.clear();
    for (const auto& j : r.maps("jobs")) out.jobs.push_back(read_job_info(j));
  });
}

void decode(std::string_view body, WorkerList& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.req = r.u64("req");
    out.services.clear();
    for (const auto& s : r.maps("services")) {
      ServiceInfo si;
      si.service = s.str("service");
      si.workers = u32(s, "workers");
      si.models = s.strings("models");
      si.capacity = u32(s, "capacity");
      si.load = u32(s, "load");
      si.queued = u32(s, "queued");
      out.services.push_back(std::move(si));
    }
  });
}

void decode(std::string_view body, Ready& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.service = r.str("service");
    check_service("service", out.service, false);
    out.models = r.strings("models");
    for (const auto& m : out.models) check_name("models", m, false);
    out.capacity = u32(r, "capacity", 1);
    if (out.capacity < 1 || out.capacity > 1024) invalid("field 'capacity' must be in [1, 1024]");
    out.device = r.str("device");
    out.version = r.str("version");
    out.name = r.str("name");
  });
}

void decode(std::string_view body, JobAssign& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.job = r.str("job");
    check_job(out.job);
    out.service = r.str("service");
    out.model = r.str("model");
    out.params = r.value_map("params");
    out.inputs = r.blobs("inputs");
    out.attempt = u32(r, "attempt", 1);
    out.timeout_ms = r.u64("timeout_ms");
  });
}

void decode(std::string_view body, Heartbeat&, const Limits& limits) {
  with_body(body, limits, [](const MapReader&) {});
}

void decode(std::string_view body, CancelJob& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) {
    out.job = r.str("job");
    check_job(out.job);
  });
}

void decode(std::string_view body, Disconnect& out, const Limits& limits) {
  with_body(body, limits, [&](const MapReader& r) { out.reason = r.str("reason"); });
}

void decode(std::string_view body, ValueMap& out, const Limits& limits) {
  auto oh = detail::unpack_map(body, limits);
  out = std::move(detail::to_value(oh.get(), "").as_map());
}

}  // namespace mmgen::proto
