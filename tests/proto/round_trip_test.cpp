// Every MMGP/1 message survives the whole path a real message takes:
// encode -> make_message -> parse_envelope -> (check_blobs) -> decode, and
// comes out equal, with a non-default value in every field. The encoders'
// key sets are checked against the field tables of common/PROTOCOL.md.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "mmgen/codec.hpp"
#include "samples.hpp"

namespace proto_test {
namespace {

Frames blob_frames(const std::vector<BlobMeta>& meta) {
  Frames out;
  for (std::size_t i = 0; i < meta.size(); ++i) {
    const std::string bytes(meta[i].size, static_cast<char>('a' + i));
    out.emplace_back(bytes.data(), bytes.size());
  }
  return out;
}

std::uint8_t byte(ClientCmd c) { return static_cast<std::uint8_t>(c); }
std::uint8_t byte(EventCmd c) { return static_cast<std::uint8_t>(c); }
std::uint8_t byte(WorkerCmd c) { return static_cast<std::uint8_t>(c); }

// The full path; `blobs` travel as frames 3.. and are checked against `meta`.
template <class T>
T through_the_wire(const T& m, std::string_view protocol, std::uint8_t cmd,
                   const std::vector<BlobMeta>& meta = {}) {
  Frames frames = make_message(protocol, cmd, encode(m), blob_frames(meta));
  EXPECT_EQ(frames.size(), 3 + meta.size());
  Envelope env = parse_envelope(std::move(frames), protocol, Limits{});
  EXPECT_EQ(env.command, cmd);
  EXPECT_EQ(env.blobs.size(), meta.size());
  check_blobs(meta, env.blobs, Limits{}.max_result_bytes);
  for (std::size_t i = 0; i < meta.size(); ++i)
    EXPECT_EQ(std::string(static_cast<const char*>(env.blobs[i].data()), env.blobs[i].size()),
              std::string(meta[i].size, static_cast<char>('a' + i)));
  return decode_as<T>(env.body_view());
}

// The keys an encoder writes, read back generically (as a Value map, so a u64
// field must hold a value that fits an int64 here).
template <class T>
std::set<std::string> keys_of(const T& m) {
  std::set<std::string> out;
  for (const auto& [k, v] : decode_as<ValueMap>(encode(m))) out.insert(k);
  return out;
}

using Keys = std::set<std::string>;

TEST(RoundTrip, Submit) {
  const Submit s = sample_submit();
  EXPECT_EQ(through_the_wire(s, kClientProtocol, byte(ClientCmd::Submit), s.inputs), s);
  Submit small_req = s;
  small_req.req = 1;
  EXPECT_EQ(keys_of(small_req),
            (Keys{"req", "service", "model", "params", "inputs", "priority", "timeout_ms", "key"}));
}

TEST(RoundTrip, SubmitWithDefaultsStaysDefault) {
  Submit s;
  s.service = "echo";
  EXPECT_EQ(through_the_wire(s, kClientProtocol, byte(ClientCmd::Submit)), s);
}

TEST(RoundTrip, JobRefForEveryCommandThatCarriesIt) {
  const JobRef r = sample_job_ref();
  for (ClientCmd c : {ClientCmd::Cancel, ClientCmd::Status, ClientCmd::Attach, ClientCmd::Fetch})
    EXPECT_EQ(through_the_wire(r, kClientProtocol, byte(c)), r) << to_string(c);
  EXPECT_EQ(keys_of(r), (Keys{"req", "job"}));
}

TEST(RoundTrip, ListAndWorkersRequests) {
  EXPECT_EQ(through_the_wire(sample_list(), kClientProtocol, byte(ClientCmd::List)), sample_list());
  EXPECT_EQ(keys_of(sample_list()), (Keys{"req", "service", "limit"}));
  EXPECT_EQ(through_the_wire(sample_workers(), kClientProtocol, byte(ClientCmd::Workers)),
            sample_workers());
  EXPECT_EQ(keys_of(sample_workers()), (Keys{"req"}));
}

TEST(RoundTrip, AcceptedQueuedStarted) {
  EXPECT_EQ(through_the_wire(sample_accepted(), kClientProtocol, byte(EventCmd::Accepted)),
            sample_accepted());
  EXPECT_EQ(keys_of(sample_accepted()), (Keys{"req", "job", "existing"}));
  EXPECT_EQ(through_the_wire(sample_queued(), kClientProtocol, byte(EventCmd::Queued)),
            sample_queued());
  EXPECT_EQ(keys_of(sample_queued()), (Keys{"job", "position", "waiting_for"}));
  EXPECT_EQ(through_the_wire(sample_started(), kClientProtocol, byte(EventCmd::Started)),
            sample_started());
  EXPECT_EQ(keys_of(sample_started()), (Keys{"job", "worker", "attempt"}));
}

TEST(RoundTrip, ProgressWithAndWithoutPreview) {
  const Progress plain = sample_progress(false);
  EXPECT_EQ(through_the_wire(plain, kClientProtocol, byte(EventCmd::Progress)), plain);
  EXPECT_EQ(through_the_wire(plain, kWorkerProtocol, byte(WorkerCmd::Progress)), plain);
  EXPECT_EQ(keys_of(plain), (Keys{"job", "step", "total", "eta_s", "message"}));

  const Progress with = sample_progress(true);
  EXPECT_EQ(through_the_wire(with, kClientProtocol, byte(EventCmd::Progress), {*with.preview}), with);
  EXPECT_EQ(through_the_wire(with, kWorkerProtocol, byte(WorkerCmd::Progress), {*with.preview}), with);
  EXPECT_EQ(keys_of(with), (Keys{"job", "step", "total", "eta_s", "message", "preview"}));
}

TEST(RoundTrip, PartialResultErrorCancelled) {
  for (std::string_view protocol : {kClientProtocol, kWorkerProtocol}) {
    const bool w = protocol == kWorkerProtocol;
    EXPECT_EQ(through_the_wire(sample_partial(), protocol,
                               w ? byte(WorkerCmd::Partial) : byte(EventCmd::Partial)),
              sample_partial());
    const Result r = sample_result();
    EXPECT_EQ(through_the_wire(r, protocol, w ? byte(WorkerCmd::Result) : byte(EventCmd::Result),
                               r.outputs),
              r);
    EXPECT_EQ(through_the_wire(sample_error(), protocol,
                               w ? byte(WorkerCmd::Error) : byte(EventCmd::Error)),
              sample_error());
  }
  EXPECT_EQ(through_the_wire(sample_cancelled(), kClientProtocol, byte(EventCmd::Cancelled)),
            sample_cancelled());
  EXPECT_EQ(keys_of(sample_partial()), (Keys{"job", "seq", "data"}));
  EXPECT_EQ(keys_of(sample_result()), (Keys{"job", "outputs", "data", "metrics"}));
  EXPECT_EQ(keys_of(sample_error()), (Keys{"req", "job", "code", "message"}));
  EXPECT_EQ(keys_of(sample_cancelled()), (Keys{"job"}));
}

TEST(RoundTrip, ErrorCarriesEveryCode) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::not_finished); ++c) {
    const Error e = sample_error(static_cast<ErrorCode>(c));
    EXPECT_EQ(through_the_wire(e, kClientProtocol, byte(EventCmd::Error)), e) << c;
  }
}

TEST(RoundTrip, JobInfoInEveryState) {
  for (int s = 0; s <= static_cast<int>(JobState::cancelled); ++s) {
    const JobInfo j = sample_job_info(s == static_cast<int>(JobState::failed), static_cast<JobState>(s));
    EXPECT_EQ(through_the_wire(j, kClientProtocol, byte(EventCmd::JobInfo)), j) << s;
  }
  EXPECT_EQ(keys_of(sample_job_info(true)),
            (Keys{"req", "job", "service", "model", "state", "priority", "attempts", "position",
                  "waiting_for", "worker", "created_s", "updated_s", "error"}));
  EXPECT_EQ(keys_of(sample_job_info(false)).count("error"), 0u);
}

TEST(RoundTrip, JobListAndWorkerList) {
  EXPECT_EQ(through_the_wire(sample_job_list(), kClientProtocol, byte(EventCmd::JobList)),
            sample_job_list());
  EXPECT_EQ(through_the_wire(JobList{5, {}}, kClientProtocol, byte(EventCmd::JobList)), (JobList{5, {}}));
  EXPECT_EQ(keys_of(sample_job_list()), (Keys{"req", "jobs"}));
  EXPECT_EQ(through_the_wire(sample_worker_list(), kClientProtocol, byte(EventCmd::WorkerList)),
            sample_worker_list());
  EXPECT_EQ(keys_of(sample_worker_list()), (Keys{"req", "services"}));
  const auto services = decode_as<ValueMap>(encode(sample_worker_list())).at("services").as_array();
  Keys service_keys;
  for (const auto& [k, v] : services.at(0).as_map()) service_keys.insert(k);
  EXPECT_EQ(service_keys, (Keys{"service", "workers", "models", "capacity", "load", "queued"}));
}

TEST(RoundTrip, WorkerMessages) {
  EXPECT_EQ(through_the_wire(sample_ready(), kWorkerProtocol, byte(WorkerCmd::Ready)), sample_ready());
  EXPECT_EQ(keys_of(sample_ready()),
            (Keys{"service", "models", "capacity", "device", "version", "name"}));
  const JobAssign a = sample_job_assign();
  EXPECT_EQ(through_the_wire(a, kWorkerProtocol, byte(WorkerCmd::Job), a.inputs), a);
  EXPECT_EQ(keys_of(a),
            (Keys{"job", "service", "model", "params", "inputs", "attempt", "timeout_ms"}));
  EXPECT_EQ(through_the_wire(Heartbeat{}, kWorkerProtocol, byte(WorkerCmd::Heartbeat)), Heartbeat{});
  EXPECT_EQ(keys_of(Heartbeat{}), Keys{});
  EXPECT_EQ(through_the_wire(sample_cancel_job(), kWorkerProtocol, byte(WorkerCmd::Cancel)),
            sample_cancel_job());
  EXPECT_EQ(keys_of(sample_cancel_job()), (Keys{"job"}));
  EXPECT_EQ(through_the_wire(sample_disconnect(), kWorkerProtocol, byte(WorkerCmd::Disconnect)),
            sample_disconnect());
  EXPECT_EQ(keys_of(sample_disconnect()), (Keys{"reason"}));
}

TEST(RoundTrip, BlobMetaKeys) {
  Submit s = sample_submit();
  s.req = 1;
  const auto inputs = decode_as<ValueMap>(encode(s)).at("inputs").as_array();
  Keys blob_keys;
  for (const auto& [k, v] : inputs.at(0).as_map()) blob_keys.insert(k);
  EXPECT_EQ(blob_keys, (Keys{"name", "mime", "size"}));
}

TEST(RoundTrip, BareValueMapKeepsEveryKindExactly) {
  const ValueMap m = rich_map();
  const ValueMap back = decode_as<ValueMap>(encode(m));
  EXPECT_EQ(back, m);
  // Kinds survive, not only values: an integer stays an integer, a whole
  // double stays a double, binary stays binary.
  EXPECT_TRUE(back.at("zero").is_double());
  EXPECT_TRUE(back.at("huge").is_double());
  EXPECT_TRUE(back.at("small").is_int());
  EXPECT_TRUE(back.at("bin").is_binary());
  EXPECT_EQ(back.at("min").as_int(), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(back.at("third").as_double(), 1.0 / 3.0);
  EXPECT_EQ(decode_as<ValueMap>(encode(ValueMap{})), ValueMap{});
}

TEST(RoundTrip, WholeDoublesStayDoubles) {
  // msgpack-c's own pack_double would write these as integers (and hit an
  // undefined cast at 2^64); the codec writes every double as float64.
  const double two64 = 18446744073709551616.0;
  const ValueMap m{{"four", 4.0}, {"negzero", -0.0}, {"e18", 1e18}, {"two64", two64}, {"neg", -3.0}};
  const ValueMap back = decode_as<ValueMap>(encode(m));
  EXPECT_EQ(back, m);
  for (const auto& [k, v] : back) EXPECT_TRUE(v.is_double()) << k;
  EXPECT_TRUE(std::signbit(back.at("negzero").as_double()));
  // Fields of type double go out as float64 too.
  Progress p = sample_progress(false);
  p.eta_s = 2.0;
  const ValueMap fields = decode_as<ValueMap>(encode(p));
  EXPECT_TRUE(fields.at("eta_s").is_double());
  EXPECT_EQ(decode_as<Progress>(encode(p)), p);
}

TEST(RoundTrip, BlobsMayBeEmptyFrames) {
  Submit s;
  s.service = "echo";
  s.inputs = {blob("a", "text/plain", 0), blob("b", "text/plain", 0)};
  EXPECT_EQ(through_the_wire(s, kClientProtocol, byte(ClientCmd::Submit), s.inputs), s);
}

}  // namespace
}  // namespace proto_test
