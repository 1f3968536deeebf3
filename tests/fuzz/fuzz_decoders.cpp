// libFuzzer target for everything in mmgen_proto that reads network bytes.
//
// Input layout (make_corpus.py writes the seeds in it):
//   byte 0   flags: bit 0 = worker protocol ("MMGW01") instead of client,
//            bit 1 = tight limits (so limit paths are reached by short inputs),
//            bit 2 = envelope mode
//   body mode (bit 2 clear): the rest is one body, fed to every decoder.
//   envelope mode: the rest is split into frames at each 0xC1 byte (a byte
//            msgpack never uses, so bodies need no escaping); the frames go
//            through parse_envelope, frame 2 through every decoder, and each
//            decoded blob list through check_blobs against the blob frames.
//
// Oracles (each failure aborts with a message, so libFuzzer saves the input):
//   - decoders and parse_envelope throw nothing but ProtocolError;
//   - a decoded message survives its own encoding: decode(encode(m)) == m
//     (NaN-aware) and encode(decode(encode(m))) == encode(m);
//   - Value::to_json of every decoded map is valid JSON and valid UTF-8
//     (the project's strict reader, mmgen/json_reader.hpp, tested on its own
//     in tests/text/model/config_test.cpp), whatever bytes the strings held;
//   - the Params getters answer with a value or ProtocolError.
// Crashes, leaks, UB and allocations over -malloc_limit_mb are the sanitizers'.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/codec.hpp"
#include "mmgen/json_reader.hpp"
#include "mmgen/value.hpp"

namespace {

using namespace mmgen::proto;
using mmgen::Params;
using mmgen::ValueMap;

constexpr std::uint8_t kWorkerFlag = 1, kTightFlag = 2, kEnvelopeFlag = 4;
constexpr char kSeparator = '\xc1';

[[noreturn]] void fail(const char* where, const std::string& what) {
  std::fprintf(stderr, "fuzz_decoders: %s: %s\n", where, what.c_str());
  std::abort();
}

Limits tight_limits() {
  Limits l;
  l.max_body_bytes = 1024;
  l.max_input_bytes = 64;
  l.max_result_bytes = 64;
  l.max_blobs = 4;
  l.max_container = 8;
  l.max_depth = 6;
  return l;
}

// Strict RFC 8259, deep enough for any map the decoders accept.
bool valid_json(std::string_view text) { return mmgen::json::valid(text, mmgen::json::Dialect{1 << 12, false}); }

// What the CLI prints and what services read, for one decoded map.
void exercise(const ValueMap& m) {
  const std::string json = mmgen::to_json(m);
  if (!valid_json(json)) fail("to_json", "invalid JSON: " + json);
  const Params p(m);
  for (const auto& [k, v] : m) {
    if (!valid_json(mmgen::json_escape(k))) fail("json_escape", "invalid JSON string for a key");
    try {
      (void)p.get_int(k, 0, -1000, 1000);
    } catch (const ProtocolError&) {
    }
    try {
      (void)p.get_double(k, 0.5, 0.0, 1.0);
    } catch (const ProtocolError&) {
    }
    try {
      (void)p.get_bool(k, false);
    } catch (const ProtocolError&) {
    }
    try {
      (void)p.get_string(k, "");
    } catch (const ProtocolError&) {
    }
  }
}

void exercise(const Submit& m) { exercise(m.params); }
void exercise(const JobAssign& m) { exercise(m.params); }
void exercise(const Partial& m) { exercise(m.data); }
void exercise(const Result& m) {
  exercise(m.data);
  exercise(m.metrics);
}
template <class T>
void exercise(const T&) {}

std::vector<BlobMeta> blob_list(const Submit& m) { return m.inputs; }
std::vector<BlobMeta> blob_list(const JobAssign& m) { return m.inputs; }
std::vector<BlobMeta> blob_list(const Result& m) { return m.outputs; }
std::vector<BlobMeta> blob_list(const Progress& m) {
  return m.preview ? std::vector<BlobMeta>{*m.preview} : std::vector<BlobMeta>{};
}
template <class T>
std::vector<BlobMeta> blob_list(const T&) {
  return {};
}

// NaN != NaN, so before two decoded messages are compared every NaN becomes
// this stand-in (a NaN must come back as a NaN, as every other double must
// come back as itself, kind included: 4.0 must not return as the integer 4).
constexpr double kNanStandIn = -1.25e-301;
void denan(double& d) {
  if (std::isnan(d)) d = kNanStandIn;
}
void denan(ValueMap& m);
void denan(mmgen::Value& v) {
  if (v.is_double() && std::isnan(v.as_double()))
    v = mmgen::Value(kNanStandIn);
  else if (v.is_array())
    for (auto& e : v.as_array()) denan(e);
  else if (v.is_map())
    denan(v.as_map());
}
void denan(ValueMap& m) {
  for (auto& [k, v] : m) denan(v);
}
void denan(Submit& m) { denan(m.params); }
void denan(JobAssign& m) { denan(m.params); }
void denan(Partial& m) { denan(m.data); }
void denan(Result& m) {
  denan(m.data);
  denan(m.metrics);
}
void denan(Progress& m) { denan(m.eta_s); }
void denan(JobInfo& m) {
  denan(m.created_s);
  denan(m.updated_s);
}
void denan(JobList& m) {
  for (auto& j : m.jobs) denan(j);
}
template <class T>
void denan(T&) {}

// Decodes `body` as T; when that works, checks the oracles on the result and
// (with an envelope) its blob list against the blob frames.
template <class T>
void try_decode(const char* name, std::string_view body, const Limits& limits, const Frames* blobs) {
  T m;
  try {
    decode(body, m, limits);
  } catch (const ProtocolError&) {
    return;
  } catch (const std::exception& e) {
    fail(name, std::string("decode threw a non-ProtocolError: ") + e.what());
  }
  exercise(m);
  const std::string once = encode(m);
  T again;
  try {
    decode(once, again);  // default limits: tight ones may refuse what they let through
  } catch (const std::exception& e) {
    fail(name, std::string("its own encoding does not decode: ") + e.what());
  }
  if (encode(again) != once) fail(name, "encode(decode(encode(m))) != encode(m)");
  denan(m);
  denan(again);
  if (!(again == m)) fail(name, "decode(encode(m)) != m");
  if (blobs) {
    try {
      check_blobs(blob_list(m), *blobs, limits.max_result_bytes);
    } catch (const ProtocolError&) {
    }
  }
}

void decode_all(std::string_view body, const Limits& limits, const Frames* blobs) {
  try_decode<Submit>("Submit", body, limits, blobs);
  try_decode<JobRef>("JobRef", body, limits, blobs);
  try_decode<ListReq>("ListReq", body, limits, blobs);
  try_decode<WorkersReq>("WorkersReq", body, limits, blobs);
  try_decode<Accepted>("Accepted", body, limits, blobs);
  try_decode<Queued>("Queued", body, limits, blobs);
  try_decode<Started>("Started", body, limits, blobs);
  try_decode<Progress>("Progress", body, limits, blobs);
  try_decode<Partial>("Partial", body, limits, blobs);
  try_decode<Result>("Result", body, limits, blobs);
  try_decode<Error>("Error", body, limits, blobs);
  try_decode<Cancelled>("Cancelled", body, limits, blobs);
  try_decode<JobInfo>("JobInfo", body, limits, blobs);
  try_decode<JobList>("JobList", body, limits, blobs);
  try_decode<WorkerList>("WorkerList", body, limits, blobs);
  try_decode<Ready>("Ready", body, limits, blobs);
  try_decode<JobAssign>("JobAssign", body, limits, blobs);
  try_decode<Heartbeat>("Heartbeat", body, limits, blobs);
  try_decode<CancelJob>("CancelJob", body, limits, blobs);
  try_decode<Disconnect>("Disconnect", body, limits, blobs);
  try_decode<ValueMap>("ValueMap", body, limits, blobs);
}

void envelope_mode(std::string_view rest, std::string_view protocol, const Limits& limits) {
  Frames frames;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= rest.size(); ++i) {
    if (i == rest.size() || rest[i] == kSeparator) {
      frames.emplace_back(rest.data() + start, i - start);
      start = i + 1;
    }
  }
  Envelope env;
  try {
    env = parse_envelope(std::move(frames), protocol, limits);
  } catch (const ProtocolError&) {
    return;
  } catch (const std::exception& e) {
    fail("parse_envelope", std::string("threw a non-ProtocolError: ") + e.what());
  }
  decode_all(env.body_view(), limits, &env.blobs);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string_view protocol = (flags & kWorkerFlag) ? kWorkerProtocol : kClientProtocol;
  const Limits limits = (flags & kTightFlag) ? tight_limits() : Limits{};
  if (flags & kEnvelopeFlag)
    envelope_mode(rest, protocol, limits);
  else
    decode_all(rest, limits, nullptr);
  return 0;
}
