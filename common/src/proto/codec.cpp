// MMGP/1 bodies: encode every struct of protocol.hpp as a msgpack map whose
// keys are the member names; decode with bounds and field-naming errors.
#include "mmgen/codec.hpp"

#include <concepts>
#include <limits>
#include <optional>
#include <type_traits>

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

// ---- bodies: one field table per message ---------------------------------------
//
// `fields(f, m)` lists a message's map entries in wire order, each with the
// default an absent key decodes to and the check a decoded value must pass.
// Three visitors walk the same table: Counter (the map's size), Writer
// (encode) and Reader (decode), so the two directions cannot drift apart.
namespace {

// Value checks on decode; `field` is the name errors use ("jobs[2].state" when nested).
using Check = void (*)(const std::string& field, const std::string& value);

void check_name_chars(const std::string& field, const std::string& v) {
  if (v.size() > 128) invalid("field '" + field + "' is longer than 128 characters");
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/' || c == ':';
    if (!ok) invalid("field '" + field + "' has a character outside [A-Za-z0-9_.:/-]");
  }
}
// Model names: short and printable; they may look like "Qwen/Qwen3-8B" or "org:name".
void model_name(const std::string& field, const std::string& v) { check_name_chars(field, v); }
void model_name_required(const std::string& field, const std::string& v) {
  if (v.empty()) invalid("field '" + field + "' must not be empty");
  check_name_chars(field, v);
}
// Service names are also metric labels and log values: lower-case words only.
void service_name(const std::string& field, const std::string& v) {
  if (v.empty()) return;
  if (v.size() > 64) invalid("field '" + field + "' is longer than 64 characters");
  for (char c : v)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      invalid("field '" + field + "' must match [a-z0-9_-]{1,64}");
}
void service_name_required(const std::string& field, const std::string& v) {
  if (v.empty()) invalid("field '" + field + "' must not be empty");
  service_name(field, v);
}
void job_id(const std::string& field, const std::string& v) {
  if (v.empty()) invalid("field '" + field + "' must not be empty");
  if (v.size() > 64) invalid("field '" + field + "' is longer than 64 characters");
}
void idempotency_key(const std::string& field, const std::string& v) {
  if (v.size() > 256) invalid("field '" + field + "' is longer than 256 characters");
}

struct Range {
  std::int64_t lo, hi;
};
constexpr Range kAny{0, 0};  // lo == hi == 0: no range check

// Counts the entries a message will have (optional ones only when present).
struct Counter {
  std::uint32_t n = 0;
  template <class T> void u64(std::string_view, const T&, std::uint64_t = 0, Range = kAny) { ++n; }
  template <class T> void i64(std::string_view, const T&, std::int64_t = 0, Range = kAny) { ++n; }
  void f64(std::string_view, const double&, double = 0) { ++n; }
  void boolean(std::string_view, const bool&) { ++n; }
  void str(std::string_view, const std::string&, Check = nullptr) { ++n; }
  void code(std::string_view, const ErrorCode&) { ++n; }
  void state(std::string_view, const JobState&) { ++n; }
  void strings(std::string_view, const std::vector<std::string>&, Check = nullptr) { ++n; }
  void values(std::string_view, const ValueMap&) { ++n; }
  void blobs(std::string_view, const std::vector<BlobMeta>&) { ++n; }
  void blob(std::string_view, const std::optional<BlobMeta>& b) { n += b ? 1 : 0; }
  template <class M> void nested(std::string_view, const std::optional<M>& m) { n += m ? 1 : 0; }
  template <class M> void list(std::string_view, const std::vector<M>&) { ++n; }
};

template <class M> void fields(auto& f, M& m);  // one overload set per message, below

template <class M> std::uint32_t count(const M& m) {
  Counter c;
  fields(c, m);
  return c.n;
}

class Writer {
 public:
  explicit Writer(Packer& pk) : pk_(pk), w_(pk) {}
  template <class T> void u64(std::string_view k, const T& v, std::uint64_t = 0, Range = kAny) { w_.u64(k, v); }
  template <class T> void i64(std::string_view k, const T& v, std::int64_t = 0, Range = kAny) { w_.i64(k, v); }
  void f64(std::string_view k, const double& v, double = 0) { w_.f64(k, v); }
  void boolean(std::string_view k, const bool& v) { w_.boolean(k, v); }
  void str(std::string_view k, const std::string& v, Check = nullptr) { w_.str(k, v); }
  void code(std::string_view k, const ErrorCode& v) { w_.str(k, to_string(v)); }
  void state(std::string_view k, const JobState& v) { w_.str(k, to_string(v)); }
  void strings(std::string_view k, const std::vector<std::string>& v, Check = nullptr) {
    w_.key(k);
    detail::pack_strings(pk_, v);
  }
  void values(std::string_view k, const ValueMap& v) {
    w_.key(k);
    detail::pack_value_map(pk_, v);
  }
  void blobs(std::string_view k, const std::vector<BlobMeta>& v) {
    w_.key(k);
    detail::pack_blobs(pk_, v);
  }
  void blob(std::string_view k, const std::optional<BlobMeta>& b) {
    if (!b) return;
    w_.key(k);
    detail::pack_blob(pk_, *b);
  }
  template <class M> void nested(std::string_view k, const std::optional<M>& m) {
    if (!m) return;
    w_.key(k);
    write(*m);
  }
  template <class M> void list(std::string_view k, const std::vector<M>& v) {
    w_.key(k);
    pk_.pack_array(static_cast<std::uint32_t>(v.size()));
    for (const auto& m : v) write(m);
  }
  template <class M> void write(const M& m) {
    pk_.pack_map(count(m));
    fields(*this, m);
  }

 private:
  Packer& pk_;
  MapWriter w_;
};

class Reader {
 public:
  explicit Reader(const MapReader& r) : r_(r) {}
  template <class T> void u64(std::string_view k, T& v, std::uint64_t def = 0, Range range = kAny) {
    const std::uint64_t x = r_.u64(k, def);
    if (x > std::numeric_limits<T>::max()) invalid("field '" + r_.field(k) + "' out of range");
    if (range.lo != range.hi && (x < std::uint64_t(range.lo) || x > std::uint64_t(range.hi)))
      out_of(k, range, std::to_string(x));
    v = static_cast<T>(x);
  }
  template <class T> void i64(std::string_view k, T& v, std::int64_t def = 0, Range range = kAny) {
    const std::int64_t x = r_.i64(k, def);
    if (range.lo != range.hi && (x < range.lo || x > range.hi)) out_of(k, range, std::to_string(x));
    if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max())
      invalid("field '" + r_.field(k) + "' out of range");
    v = static_cast<T>(x);
  }
  void f64(std::string_view k, double& v, double def = 0) { v = r_.f64(k, def); }
  void boolean(std::string_view k, bool& v) { v = r_.boolean(k); }
  void str(std::string_view k, std::string& v, Check check = nullptr) {
    v = r_.str(k);
    if (check) check(r_.field(k), v);
  }
  void code(std::string_view k, ErrorCode& v) { v = error_code_from_string(r_.str(k, "internal")); }
  void state(std::string_view k, JobState& v) {
    const std::string s = r_.str(k, "queued");
    auto st = job_state_from_string(s);
    if (!st) invalid("field '" + r_.field(k) + "': unknown state '" + s + "'");
    v = *st;
  }
  void strings(std::string_view k, std::vector<std::string>& v, Check each = nullptr) {
    v = r_.strings(k);
    if (each)
      for (const auto& s : v) each(r_.field(k), s);
  }
  void values(std::string_view k, ValueMap& v) { v = r_.value_map(k); }
  void blobs(std::string_view k, std::vector<BlobMeta>& v) { v = r_.blobs(k); }
  void blob(std::string_view k, std::optional<BlobMeta>& b) {
    b.reset();
    if (auto m = r_.map(k)) b = detail::to_blob(*m);
  }
  template <class M> void nested(std::string_view k, std::optional<M>& m) {
    m.reset();
    if (auto r = r_.map(k)) m = read<M>(*r);
  }
  template <class M> void list(std::string_view k, std::vector<M>& v) {
    v.clear();
    for (const auto& r : r_.maps(k)) v.push_back(read<M>(r));
  }
  template <class M> static M read(const MapReader& r) {
    M m;
    Reader rd(r);
    fields(rd, m);
    return m;
  }

 private:
  [[noreturn]] void out_of(std::string_view k, Range range, const std::string& got) const {
    invalid("field '" + r_.field(k) + "' must be in [" + std::to_string(range.lo) + ", " +
            std::to_string(range.hi) + "], got " + got);
  }
  const MapReader& r_;
};

// The tables. `m` is const when encoding, so every line works both ways.
template <class M> requires std::same_as<std::remove_const_t<M>, Submit>
void fields(auto& f, M& m) {
  f.u64("req", m.req);
  f.str("service", m.service, service_name_required);
  f.str("model", m.model, model_name);
  f.values("params", m.params);
  f.blobs("inputs", m.inputs);
  f.i64("priority", m.priority, kDefaultPriority, Range{kMinPriority, kMaxPriority});
  f.u64("timeout_ms", m.timeout_ms);
  f.str("key", m.key, idempotency_key);
}
template <class M> requires std::same_as<std::remove_const_t<M>, JobRef>
void fields(auto& f, M& m) {
  f.u64("req", m.req);
  f.str("job", m.job, job_id);
}
template <class M> requires std::same_as<std::remove_const_t<M>, ListReq>
void fields(auto& f, M& m) {
  f.u64("req", m.req);
  f.str("service", m.service, service_name);
  f.u64("limit", m.limit, 50, Range{1, 10000});
}
template <class M> requires std::same_as<std::remove_const_t<M>, WorkersReq>
void fields(auto& f, M& m) {
  f.u64("req", m.req);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Accepted>
void fields(auto& f, M& m) {
  f.u64("req", m.req);
  f.str("job", m.job, job_id);
  f.boolean("existing", m.existing);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Queued>
void fields(auto& f, M& m) {
  f.str("job", m.job, job_id);
  f.u64("position", m.position);
  f.str("waiting_for", m.waiting_for);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Started>
void fields(auto& f, M& m) {
  f.str("job", m.job, job_id);
  f.str("worker", m.worker);
  f.u64("attempt", m.attempt, 1);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Progress>
void fields(auto& f, M& m) {
  f.str("job", m.job, job_id);
  f.u64("step", m.step);
  f.u64("total", m.total);
  f.f64("eta_s", m.eta_s, -1);
  f.str("message", m.message);
  f.blob("preview", m.preview);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Partial>
void fields(auto& f, M& m) {
  f.str("job", m.job, job_id);
  f.u64("seq", m.seq);
  f.values("data", m.data);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Result>
void fields(auto& f, M& m) {
  f.str("job", m.job, job_id);
  f.blobs("outputs", m.outputs);
  f.values("data", m.data);
  f.values("metrics", m.metrics);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Error>
void fields(auto& f, M& m) {
  f.u64("req", m.req);
  f.str("job", m.job);  // empty when the error is about a request, not a job
  f.code("code", m.code);
  f.str("message", m.message);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Cancelled>
void fields(auto& f, M& m) {
  f.str("job", m.job, job_id);
}
template <class M> requires std::same_as<std::remove_const_t<M>, JobInfo>
void fields(auto& f, M& m) {
  f.u64("req", m.req);
  f.str("job", m.job);
  f.str("service", m.service);
  f.str("model", m.model);
  f.state("state", m.state);
  f.i64("priority", m.priority, kDefaultPriority);
  f.u64("attempts", m.attempts);
  f.u64("position", m.position);
  f.str("waiting_for", m.waiting_for);
  f.str("worker", m.worker);
  f.f64("created_s", m.created_s);
  f.f64("updated_s", m.updated_s);
  f.nested("error", m.error);
}
template <class M> requires std::same_as<std::remove_const_t<M>, JobList>
void fields(auto& f, M& m) {
  f.u64("req", m.req);
  f.list("jobs", m.jobs);
}
template <class M> requires std::same_as<std::remove_const_t<M>, ServiceInfo>
void fields(auto& f, M& m) {
  f.str("service", m.service);
  f.u64("workers", m.workers);
  f.strings("models", m.models);
  f.u64("capacity", m.capacity);
  f.u64("load", m.load);
  f.u64("queued", m.queued);
}
template <class M> requires std::same_as<std::remove_const_t<M>, WorkerList>
void fields(auto& f, M& m) {
  f.u64("req", m.req);
  f.list("services", m.services);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Ready>
void fields(auto& f, M& m) {
  f.str("service", m.service, service_name_required);
  f.strings("models", m.models, model_name_required);
  f.u64("capacity", m.capacity, 1, Range{1, 1024});
  f.str("device", m.device);
  f.str("version", m.version);
  f.str("name", m.name);
}
template <class M> requires std::same_as<std::remove_const_t<M>, JobAssign>
void fields(auto& f, M& m) {
  f.str("job", m.job, job_id);
  f.str("service", m.service);
  f.str("model", m.model);
  f.values("params", m.params);
  f.blobs("inputs", m.inputs);
  f.u64("attempt", m.attempt, 1);
  f.u64("timeout_ms", m.timeout_ms);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Heartbeat>
void fields(auto&, M&) {}
template <class M> requires std::same_as<std::remove_const_t<M>, CancelJob>
void fields(auto& f, M& m) {
  f.str("job", m.job, job_id);
}
template <class M> requires std::same_as<std::remove_const_t<M>, Disconnect>
void fields(auto& f, M& m) {
  f.str("reason", m.reason);
}

template <class M> std::string encode_fields(const M& m) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  Writer(pk).write(m);
  return {buf.data(), buf.size()};
}

template <class M> void decode_fields(std::string_view body, M& out, const Limits& limits) {
  auto oh = detail::unpack_map(body, limits);
  out = Reader::read<M>(MapReader(oh.get(), ""));
}

}  // namespace

#define MMGEN_CODEC_MESSAGE(T)                                                                 \
  std::string encode(const T& m) { return encode_fields(m); }                                  \
  void decode(std::string_view body, T& out, const Limits& limits) { decode_fields(body, out, limits); }
MMGEN_CODEC_MESSAGE(Submit)
MMGEN_CODEC_MESSAGE(JobRef)
MMGEN_CODEC_MESSAGE(ListReq)
MMGEN_CODEC_MESSAGE(WorkersReq)
MMGEN_CODEC_MESSAGE(Accepted)
MMGEN_CODEC_MESSAGE(Queued)
MMGEN_CODEC_MESSAGE(Started)
MMGEN_CODEC_MESSAGE(Progress)
MMGEN_CODEC_MESSAGE(Partial)
MMGEN_CODEC_MESSAGE(Result)
MMGEN_CODEC_MESSAGE(Error)
MMGEN_CODEC_MESSAGE(Cancelled)
MMGEN_CODEC_MESSAGE(JobInfo)
MMGEN_CODEC_MESSAGE(JobList)
MMGEN_CODEC_MESSAGE(WorkerList)
MMGEN_CODEC_MESSAGE(Ready)
MMGEN_CODEC_MESSAGE(JobAssign)
MMGEN_CODEC_MESSAGE(Heartbeat)
MMGEN_CODEC_MESSAGE(CancelJob)
MMGEN_CODEC_MESSAGE(Disconnect)
#undef MMGEN_CODEC_MESSAGE

// A bare map (params, data): no table, any keys.
std::string encode(const ValueMap& m) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  detail::pack_value_map(pk, m);
  return {buf.data(), buf.size()};
}

void decode(std::string_view body, ValueMap& out, const Limits& limits) {
  auto oh = detail::unpack_map(body, limits);
  out = std::move(detail::to_value(oh.get(), "").as_map());
}

}  // namespace mmgen::proto
