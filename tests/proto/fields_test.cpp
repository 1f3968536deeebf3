// The decoders against bodies written by hand (tests/proto/mp.hpp), field by
// field: the wire names and types of common/PROTOCOL.md decode to the right
// struct; absent and nil fields take their defaults; unknown keys are
// ignored; a wrong type in any field is invalid_request naming that field;
// the range and name checks hold at their edges.
#include <gtest/gtest.h>

#include <functional>

#include "mmgen/codec.hpp"
#include "mp.hpp"

namespace proto_test {
namespace {

using namespace mmgen::proto;
using mmgen::Value;
using mmgen::ValueArray;
using mmgen::ValueMap;

// ---- one valid body per message, written from the spec ----------------------------

std::string blob_map(std::string name, std::string mime, std::uint64_t size) {
  return mp::map({{"name", mp::str(name)}, {"mime", mp::str(mime)}, {"size", mp::uint(size)}});
}

const std::string kJob = "j_0123456789abcdef01234567";

mp::Fields error_fields() {
  return {{"req", mp::uint(3)}, {"job", mp::str(kJob)}, {"code", mp::str("queue_full")},
          {"message", mp::str("full")}};
}

mp::Fields job_info_fields() {
  return {{"req", mp::uint(300)},
          {"job", mp::str(kJob)},
          {"service", mp::str("text")},
          {"model", mp::str("m")},
          {"state", mp::str("failed")},
          {"priority", mp::sint(2)},
          {"attempts", mp::uint(3)},
          {"position", mp::uint(70000)},
          {"waiting_for", mp::str("w")},
          {"worker", mp::str("w3")},
          {"created_s", mp::f64(1.5)},
          {"updated_s", mp::uint(2)},  // an integer where a double is expected is fine
          {"error", mp::map(error_fields())}};
}

enum class Kind { str, u64, u32, i64, f64, boolean, value_map, strings, blobs, blob, maps, map };

struct Field {
  std::string name;
  Kind kind;
};

struct Message {
  std::string name;
  mp::Fields valid;
  std::vector<Field> fields;
  std::function<void(std::string_view)> decode;
};

template <class T>
std::function<void(std::string_view)> decoder() {
  return [](std::string_view body) { (void)decode_as<T>(body); };
}

std::vector<Message> messages() {
  const std::string params = mp::map({{"a", mp::uint(1)}});
  const std::string blobs = mp::array({blob_map("in", "image/png", 3)});
  return {
      {"Submit",
       {{"req", mp::uint(1)}, {"service", mp::str("echo")}, {"model", mp::str("m")},
        {"params", params}, {"inputs", blobs}, {"priority", mp::uint(9)},
        {"timeout_ms", mp::uint(100)}, {"key", mp::str("k")}},
       {{"req", Kind::u64}, {"service", Kind::str}, {"model", Kind::str},
        {"params", Kind::value_map}, {"inputs", Kind::blobs}, {"priority", Kind::i64},
        {"timeout_ms", Kind::u64}, {"key", Kind::str}},
       decoder<Submit>()},
      {"JobRef", {{"req", mp::uint(1)}, {"job", mp::str(kJob)}},
       {{"req", Kind::u64}, {"job", Kind::str}}, decoder<JobRef>()},
      {"ListReq", {{"req", mp::uint(1)}, {"service", mp::str("echo")}, {"limit", mp::uint(5)}},
       {{"req", Kind::u64}, {"service", Kind::str}, {"limit", Kind::u32}}, decoder<ListReq>()},
      {"WorkersReq", {{"req", mp::uint(1)}}, {{"req", Kind::u64}}, decoder<WorkersReq>()},
      {"Accepted", {{"req", mp::uint(1)}, {"job", mp::str(kJob)}, {"existing", mp::boolean(true)}},
       {{"req", Kind::u64}, {"job", Kind::str}, {"existing", Kind::boolean}}, decoder<Accepted>()},
      {"Queued", {{"job", mp::str(kJob)}, {"position", mp::uint(1)}, {"waiting_for", mp::str("")}},
       {{"job", Kind::str}, {"position", Kind::u32}, {"waiting_for", Kind::str}}, decoder<Queued>()},
      {"Started", {{"job", mp::str(kJob)}, {"worker", mp::str("w1")}, {"attempt", mp::uint(2)}},
       {{"job", Kind::str}, {"worker", Kind::str}, {"attempt", Kind::u32}}, decoder<Started>()},
      {"Progress",
       {{"job", mp::str(kJob)}, {"step", mp::uint(1)}, {"total", mp::uint(2)},
        {"eta_s", mp::f64(0.5)}, {"message", mp::str("m")},
        {"preview", blob_map("p", "image/png", 1)}},
       {{"job", Kind::str}, {"step", Kind::u32}, {"total", Kind::u32}, {"eta_s", Kind::f64},
        {"message", Kind::str}, {"preview", Kind::blob}},
       decoder<Progress>()},
      {"Partial", {{"job", mp::str(kJob)}, {"seq", mp::uint(1)}, {"data", params}},
       {{"job", Kind::str}, {"seq", Kind::u64}, {"data", Kind::value_map}}, decoder<Partial>()},
      {"Result",
       {{"job", mp::str(kJob)}, {"outputs", blobs}, {"data", params}, {"metrics", params}},
       {{"job", Kind::str}, {"outputs", Kind::blobs}, {"data", Kind::value_map},
        {"metrics", Kind::value_map}},
       decoder<Result>()},
      {"Error", error_fields(),
       {{"req", Kind::u64}, {"job", Kind::str}, {"code", Kind::str}, {"message", Kind::str}},
       decoder<Error>()},
      {"Cancelled", {{"job", mp::str(kJob)}}, {{"job", Kind::str}}, decoder<Cancelled>()},
      {"JobInfo", job_info_fields(),
       {{"req", Kind::u64}, {"job", Kind::str}, {"service", Kind::str}, {"model", Kind::str},
        {"state", Kind::str}, {"priority", Kind::i64}, {"attempts", Kind::u32},
        {"position", Kind::u32}, {"waiting_for", Kind::str}, {"worker", Kind::str},
        {"created_s", Kind::f64}, {"updated_s", Kind::f64}, {"error", Kind::map}},
       decoder<JobInfo>()},
      {"JobList", {{"req", mp::uint(1)}, {"jobs", mp::array({mp::map(job_info_fields())})}},
       {{"req", Kind::u64}, {"jobs", Kind::maps}}, decoder<JobList>()},
      {"WorkerList",
       {{"req", mp::uint(1)},
        {"services", mp::array({mp::map({{"service", mp::str("echo")},
                                         {"workers", mp::uint(1)},
                                         {"models", mp::array({mp::str("m")})},
                                         {"capacity", mp::uint(2)},
                                         {"load", mp::uint(1)},
                                         {"queued", mp::uint(0)}})})}},
       {{"req", Kind::u64}, {"services", Kind::maps}}, decoder<WorkerList>()},
      {"Ready",
       {{"service", mp::str("text")}, {"models", mp::array({mp::str("a"), mp::str("b")})},
        {"capacity", mp::uint(4)}, {"device", mp::str("cpu")}, {"version", mp::str("1")},
        {"name", mp::str("h:1")}},
       {{"service", Kind::str}, {"models", Kind::strings}, {"capacity", Kind::u32},
        {"device", Kind::str}, {"version", Kind::str}, {"name", Kind::str}},
       decoder<Ready>()},
      {"JobAssign",
       {{"job", mp::str(kJob)}, {"service", mp::str("echo")}, {"model", mp::str("")},
        {"params", params}, {"inputs", blobs}, {"attempt", mp::uint(1)},
        {"timeout_ms", mp::uint(5)}},
       {{"job", Kind::str}, {"service", Kind::str}, {"model", Kind::str},
        {"params", Kind::value_map}, {"inputs", Kind::blobs}, {"attempt", Kind::u32},
        {"timeout_ms", Kind::u64}},
       decoder<JobAssign>()},
      {"CancelJob", {{"job", mp::str(kJob)}}, {{"job", Kind::str}}, decoder<CancelJob>()},
      {"Disconnect", {{"reason", mp::str("bye")}}, {{"reason", Kind::str}}, decoder<Disconnect>()},
  };
}

// Values of the wrong type for a field of `kind`. Each must be refused.
std::vector<std::string> wrong_values(Kind kind) {
  switch (kind) {
    case Kind::str: return {mp::uint(7), mp::bin("x"), mp::array({}), mp::boolean(true)};
    case Kind::u64:
      return {mp::str("1"), mp::sint(-1), mp::f64(1.0), mp::boolean(true), mp::map({})};
    case Kind::u32:
      return {mp::str("1"), mp::sint(-1), mp::f64(1.0), mp::uint(1ULL << 32)};
    case Kind::i64:
      return {mp::str("1"), mp::f64(1.5), mp::uint(1ULL << 63), mp::boolean(false)};
    case Kind::f64: return {mp::str("1.0"), mp::boolean(true), mp::array({})};
    case Kind::boolean: return {mp::uint(1), mp::str("true")};
    case Kind::value_map: return {mp::array({}), mp::str("x"), mp::uint(1)};
    case Kind::strings: return {mp::str("a"), mp::array({mp::uint(1)}), mp::map({})};
    case Kind::blobs:
      return {mp::str("x"), mp::map({}), mp::array({mp::uint(1)}),
              mp::array({mp::map({{"name", mp::uint(1)}})}),
              mp::array({mp::map({{"mime", mp::array({})}})}),
              mp::array({mp::map({{"size", mp::sint(-1)}})})};
    case Kind::blob:
      return {mp::array({}), mp::str("x"), mp::map({{"size", mp::str("1")}}),
              mp::map({{"name", mp::boolean(true)}})};
    case Kind::maps: return {mp::map({}), mp::str("x"), mp::array({mp::uint(1)})};
    case Kind::map:
      return {mp::array({}), mp::str("x"), mp::map({{"code", mp::uint(1)}}),
              mp::map({{"req", mp::str("1")}})};
  }
  return {};
}

mp::Fields valid_fields(const std::string& name) {
  for (auto& m : messages())
    if (m.name == name) return m.valid;
  ADD_FAILURE() << "no message " << name;
  return {};
}

ProtocolError refusal(const std::function<void(std::string_view)>& decode, const std::string& body) {
  try {
    decode(body);
  } catch (const ProtocolError& e) {
    return e;
  }
  return ProtocolError(ErrorCode::internal, "<accepted>");
}

TEST(Fields, HandWrittenBodiesDecode) {
  for (const auto& m : messages())
    EXPECT_NO_THROW(m.decode(mp::map(m.valid))) << m.name;
}

TEST(Fields, EveryWrongTypeIsInvalidRequestNamingTheField) {
  int cases = 0;
  for (const auto& m : messages()) {
    for (const auto& f : m.fields) {
      for (const auto& bad : wrong_values(f.kind)) {
        const ProtocolError e = refusal(m.decode, mp::map(mp::with(m.valid, f.name, bad)));
        EXPECT_EQ(e.code(), ErrorCode::invalid_request) << m.name << "." << f.name << ": " << e.what();
        EXPECT_NE(std::string(e.what()).find(f.name), std::string::npos)
            << m.name << "." << f.name << ": message does not name the field: " << e.what();
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 150);
}

TEST(Fields, WrongTypeInsideAListNamesTheElement) {
  const auto e = refusal(decoder<Submit>(),
                         mp::map({{"service", mp::str("echo")},
                                  {"inputs", mp::array({blob_map("a", "x", 1),
                                                        mp::map({{"size", mp::str("9")}})})}}));
  EXPECT_STREQ(e.what(), "field 'inputs[1].size': expected a non-negative integer");
  const auto j = refusal(decoder<JobList>(),
                         mp::map({{"jobs", mp::array({mp::map({{"error", mp::map({{"message", mp::uint(1)}})}})})}}));
  EXPECT_STREQ(j.what(), "field 'jobs[0].error.message': expected a string");
}

TEST(Fields, ValidBodiesDecodeToTheSpecifiedValues) {
  auto s = decode_as<Submit>(mp::map(valid_fields("Submit")));
  EXPECT_EQ(s.req, 1u);
  EXPECT_EQ(s.service, "echo");
  EXPECT_EQ(s.model, "m");
  EXPECT_EQ(s.params, (ValueMap{{"a", 1}}));
  ASSERT_EQ(s.inputs.size(), 1u);
  EXPECT_EQ(s.inputs[0], (BlobMeta{"in", "image/png", 3}));
  EXPECT_EQ(s.priority, 9);
  EXPECT_EQ(s.timeout_ms, 100u);
  EXPECT_EQ(s.key, "k");

  auto j = decode_as<JobInfo>(mp::map(job_info_fields()));
  EXPECT_EQ(j.state, JobState::failed);
  EXPECT_EQ(j.priority, 2);
  EXPECT_EQ(j.position, 70000u);
  EXPECT_EQ(j.created_s, 1.5);
  EXPECT_EQ(j.updated_s, 2.0);
  ASSERT_TRUE(j.error.has_value());
  EXPECT_EQ(j.error->code, ErrorCode::queue_full);
  EXPECT_EQ(j.error->job, kJob);

  auto w = decode_as<WorkerList>(mp::map(valid_fields("WorkerList")));
  ASSERT_EQ(w.services.size(), 1u);
  EXPECT_EQ(w.services[0], (ServiceInfo{"echo", 1, {"m"}, 2, 1, 0}));
}

TEST(Fields, IntegersOfEveryWidthAndFloat32) {
  for (std::uint64_t v : {0ULL, 127ULL, 128ULL, 255ULL, 256ULL, 65535ULL, 65536ULL, 0xffffffffULL,
                          0x100000000ULL, ~0ULL}) {
    EXPECT_EQ(decode_as<WorkersReq>(mp::map({{"req", mp::uint(v)}})).req, v);
    // The same value written in a wider encoding than needed is still fine.
    EXPECT_EQ(decode_as<WorkersReq>(mp::map({{"req", mp::byte(0xcf) + mp::be(v, 8)}})).req, v);
  }
  for (std::int64_t p : {0, 9})
    EXPECT_EQ(decode_as<Submit>(mp::map({{"service", mp::str("e")},
                                          {"priority", mp::byte(0xd3) + mp::be(std::uint64_t(p), 8)}}))
                  .priority,
              p);
  auto pr = decode_as<Progress>(mp::map({{"job", mp::str("j")}, {"eta_s", mp::f32(2.5f)}}));
  EXPECT_EQ(pr.eta_s, 2.5);
  pr = decode_as<Progress>(mp::map({{"job", mp::str("j")}, {"eta_s", mp::sint(-3)}}));
  EXPECT_EQ(pr.eta_s, -3.0);
}

TEST(Fields, AbsentFieldsTakeTheirDefaults) {
  const Submit s = decode_as<Submit>(mp::map({{"service", mp::str("echo")}}));
  EXPECT_EQ(s, (Submit{0, "echo", "", {}, {}, kDefaultPriority, 0, ""}));
  EXPECT_EQ(decode_as<ListReq>(mp::map({})), (ListReq{0, "", 50}));
  EXPECT_EQ(decode_as<WorkersReq>(mp::map({})), WorkersReq{});
  EXPECT_EQ(decode_as<Accepted>(mp::map({{"job", mp::str("j")}})), (Accepted{0, "j", false}));
  EXPECT_EQ(decode_as<Queued>(mp::map({{"job", mp::str("j")}})), (Queued{"j", 0, ""}));
  EXPECT_EQ(decode_as<Started>(mp::map({{"job", mp::str("j")}})), (Started{"j", "", 1}));
  const Progress p = decode_as<Progress>(mp::map({{"job", mp::str("j")}}));
  EXPECT_EQ(p, (Progress{"j", 0, 0, -1, "", std::nullopt}));
  EXPECT_EQ(decode_as<Partial>(mp::map({{"job", mp::str("j")}})), (Partial{"j", 0, {}}));
  EXPECT_EQ(decode_as<Result>(mp::map({{"job", mp::str("j")}})), (Result{"j", {}, {}, {}}));
  EXPECT_EQ(decode_as<Error>(mp::map({})), (Error{0, "", ErrorCode::internal, ""}));
  EXPECT_EQ(decode_as<JobInfo>(mp::map({})), JobInfo{});
  EXPECT_EQ(decode_as<JobList>(mp::map({})), JobList{});
  EXPECT_EQ(decode_as<WorkerList>(mp::map({{"services", mp::array({mp::map({})})}})),
            (WorkerList{0, {ServiceInfo{}}}));
  EXPECT_EQ(decode_as<Ready>(mp::map({{"service", mp::str("echo")}})),
            (Ready{"echo", {}, 1, "", "", ""}));
  EXPECT_EQ(decode_as<JobAssign>(mp::map({{"job", mp::str("j")}})),
            (JobAssign{"j", "", "", {}, {}, 1, 0}));
  EXPECT_EQ(decode_as<Heartbeat>(mp::map({})), Heartbeat{});
  EXPECT_EQ(decode_as<Disconnect>(mp::map({})), Disconnect{});
  // A blob description without a mime type is octet-stream; without a size, empty.
  const Submit b = decode_as<Submit>(
      mp::map({{"service", mp::str("e")}, {"inputs", mp::array({mp::map({{"name", mp::str("x")}})})}}));
  EXPECT_EQ(b.inputs.at(0), (BlobMeta{"x", "application/octet-stream", 0}));
}

TEST(Fields, NilMeansAbsent) {
  const Submit s = decode_as<Submit>(mp::map({{"service", mp::str("echo")},
                                               {"model", mp::nil()},
                                               {"params", mp::nil()},
                                               {"inputs", mp::nil()},
                                               {"priority", mp::nil()},
                                               {"key", mp::nil()}}));
  EXPECT_EQ(s, (Submit{0, "echo", "", {}, {}, kDefaultPriority, 0, ""}));
  const Progress p = decode_as<Progress>(mp::map({{"job", mp::str("j")}, {"preview", mp::nil()}}));
  EXPECT_FALSE(p.preview.has_value());
  const JobInfo j = decode_as<JobInfo>(mp::map({{"error", mp::nil()}}));
  EXPECT_FALSE(j.error.has_value());
  // Inside a value map nil is a value, kept as null.
  const Submit v = decode_as<Submit>(
      mp::map({{"service", mp::str("e")}, {"params", mp::map({{"x", mp::nil()}})}}));
  ASSERT_TRUE(v.params.contains("x"));
  EXPECT_TRUE(v.params.at("x").is_null());
}

TEST(Fields, UnknownKeysAreIgnored) {
  const std::string extra = mp::map({{"deep", mp::array({mp::map({{"x", mp::bin("y")}}), mp::f64(1)})}});
  for (const auto& m : messages()) {
    auto fields = m.valid;
    fields.insert(fields.begin(), {"zz_future_field", extra});
    fields.emplace_back("another", mp::uint(1));
    EXPECT_NO_THROW(m.decode(mp::map(fields))) << m.name;
  }
}

TEST(Fields, RepeatedKeyFirstOneCounts) {
  const Submit s = decode_as<Submit>(mp::map(
      {{"service", mp::str("first")}, {"service", mp::str("second")},
       {"params", mp::map({{"k", mp::uint(1)}, {"k", mp::uint(2)}})}}));
  EXPECT_EQ(s.service, "first");
  EXPECT_EQ(s.params.at("k").as_int(), 1);
}

TEST(Fields, UnknownErrorCodeIsInternalButUnknownStateIsRefused) {
  EXPECT_EQ(decode_as<Error>(mp::map({{"code", mp::str("from_the_future")}})).code, ErrorCode::internal);
  const auto e = refusal(decoder<JobInfo>(), mp::map({{"state", mp::str("paused")}}));
  EXPECT_EQ(e.code(), ErrorCode::invalid_request);
  EXPECT_STREQ(e.what(), "field 'state': unknown state 'paused'");
}

// ---- range and name checks ----------------------------------------------------------

void expect_invalid(const std::function<void(std::string_view)>& decode, const mp::Fields& f,
                    const std::string& fragment) {
  const auto e = refusal(decode, mp::map(f));
  EXPECT_EQ(e.code(), ErrorCode::invalid_request) << e.what();
  EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
}

TEST(Checks, SubmitServiceModelPriorityKey) {
  const mp::Fields ok{{"service", mp::str("echo")}};
  const auto d = decoder<Submit>();
  expect_invalid(d, {}, "'service' must not be empty");
  expect_invalid(d, {{"service", mp::str("")}}, "'service' must not be empty");
  // Service names are metric labels and log values: [a-z0-9_-]{1,64}.
  for (const char* bad : {"has space", "caf\xc3\xa9", "Echo", "a.b", "a/b", "a:b"})
    expect_invalid(d, {{"service", mp::str(bad)}}, "'service' must match [a-z0-9_-]{1,64}");
  expect_invalid(d, {{"service", mp::str(std::string(65, 'a'))}}, "'service' is longer than 64");
  EXPECT_NO_THROW(d(mp::map({{"service", mp::str(std::string(64, 'a'))}})));
  EXPECT_NO_THROW(d(mp::map({{"service", mp::str("az09_-")}})));
  // Model names may look like "Qwen/Qwen3-8B" or "org:name": [A-Za-z0-9_.:/-]{0,128}.
  EXPECT_EQ(decode_as<Submit>(mp::map(mp::with(ok, "model", mp::str("Qwen/Qwen3-8B:v1.0_x")))).model,
            "Qwen/Qwen3-8B:v1.0_x");
  expect_invalid(d, mp::with(ok, "model", mp::str("a b")), "'model' has a character outside");
  expect_invalid(d, mp::with(ok, "model", mp::str(std::string(129, 'm'))), "'model' is longer than 128");
  EXPECT_NO_THROW(d(mp::map(mp::with(ok, "model", mp::str(std::string(128, 'm'))))));
  expect_invalid(d, mp::with(ok, "priority", mp::sint(-1)), "'priority' must be in [0, 9], got -1");
  expect_invalid(d, mp::with(ok, "priority", mp::uint(10)), "'priority' must be in [0, 9], got 10");
  EXPECT_EQ(decode_as<Submit>(mp::map(mp::with(ok, "priority", mp::uint(0)))).priority, 0);
  EXPECT_EQ(decode_as<Submit>(mp::map(mp::with(ok, "priority", mp::uint(9)))).priority, 9);
  expect_invalid(d, mp::with(ok, "key", mp::str(std::string(257, 'k'))), "'key' is longer than 256");
  EXPECT_NO_THROW(d(mp::map(mp::with(ok, "key", mp::str(std::string(256, 'k'))))));
}

TEST(Checks, JobIdsMustBePresentAndShort) {
  for (const auto& d : {decoder<JobRef>(), decoder<Accepted>(), decoder<Queued>(),
                        decoder<Started>(), decoder<Progress>(), decoder<Partial>(),
                        decoder<Result>(), decoder<Cancelled>(), decoder<JobAssign>(),
                        decoder<CancelJob>()}) {
    expect_invalid(d, {}, "'job' must not be empty");
    expect_invalid(d, {{"job", mp::str(std::string(65, 'j'))}}, "'job' is longer than 64");
    EXPECT_NO_THROW(d(mp::map({{"job", mp::str(std::string(64, 'j'))}})));
  }
  // An ERROR may be about a request rather than a job.
  EXPECT_NO_THROW(decode_as<Error>(mp::map({{"job", mp::str("")}})));
}

TEST(Checks, ListLimitAndService) {
  const auto d = decoder<ListReq>();
  expect_invalid(d, {{"limit", mp::uint(0)}}, "'limit' must be in [1, 10000]");
  expect_invalid(d, {{"limit", mp::uint(10001)}}, "'limit' must be in [1, 10000]");
  EXPECT_EQ(decode_as<ListReq>(mp::map({{"limit", mp::uint(1)}})).limit, 1u);
  EXPECT_EQ(decode_as<ListReq>(mp::map({{"limit", mp::uint(10000)}})).limit, 10000u);
  expect_invalid(d, {{"service", mp::str("no/space ok?")}}, "'service' must match [a-z0-9_-]{1,64}");
  EXPECT_EQ(decode_as<ListReq>(mp::map({{"service", mp::str("")}})).service, "");  // empty: all
}

TEST(Checks, ReadyServiceModelsCapacity) {
  const auto d = decoder<Ready>();
  const mp::Fields ok{{"service", mp::str("text")}};
  expect_invalid(d, {}, "'service' must not be empty");
  expect_invalid(d, {{"service", mp::str("Text")}}, "'service' must match [a-z0-9_-]{1,64}");
  EXPECT_NO_THROW(d(mp::map(mp::with(ok, "models", mp::array({mp::str("Qwen/Qwen3-0.6B")})))));
  expect_invalid(d, mp::with(ok, "models", mp::array({mp::str("ok"), mp::str("")})),
                 "'models' must not be empty");
  expect_invalid(d, mp::with(ok, "models", mp::array({mp::str("b a d")})), "'models' has a character");
  expect_invalid(d, mp::with(ok, "capacity", mp::uint(0)), "'capacity' must be in [1, 1024]");
  expect_invalid(d, mp::with(ok, "capacity", mp::uint(1025)), "'capacity' must be in [1, 1024]");
  EXPECT_EQ(decode_as<Ready>(mp::map(mp::with(ok, "capacity", mp::uint(1024)))).capacity, 1024u);
}

}  // namespace
}  // namespace proto_test
