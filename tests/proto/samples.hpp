// Messages with a non-default value in every field, shared by the round-trip
// and truncation tests.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "mmgen/protocol.hpp"

namespace proto_test {

using namespace mmgen::proto;
using mmgen::Value;
using mmgen::ValueArray;
using mmgen::ValueMap;

// Every Value kind, negative integers of every msgpack width, doubles that
// need all 17 digits, binary with NUL and 0xff, nesting arrays <-> maps.
// `big` adds a binary over 64 KiB (msgpack bin32); the truncation tests, which
// decode every prefix, leave it out.
inline ValueMap rich_map(bool big = true) {
  ValueMap inner{{"deeper", ValueArray{-1, -100, -1000, -100000, std::int64_t{-5'000'000'000}}},
                 {"bytes", Value::Binary{std::string("\0\x01\xff", 3)}}};
  return ValueMap{
      {"null", nullptr},
      {"yes", true},
      {"no", false},
      {"small", 7},
      {"u8", 200},
      {"u16", 60000},
      {"u32", std::int64_t{4'000'000'000}},
      {"u64", std::int64_t{1} << 40},
      {"max", std::numeric_limits<std::int64_t>::max()},
      {"min", std::numeric_limits<std::int64_t>::min()},
      {"neg", -7},
      {"tenth", 0.1},
      {"third", 1.0 / 3.0},
      {"tiny", -2.5e-300},
      {"huge", 1e300},
      {"zero", 0.0},
      {"text", "h\xc3\xa9llo \"quoted\" \\ \n tab\t"},
      {"empty", ""},
      {"long", std::string(300, 'x')},
      {"bin", Value::Binary{std::string(big ? 70000 : 300, '\x7f')}},
      {"arr", ValueArray{1, "two", ValueArray{3.5, ValueMap{{"k", Value::Binary{std::string(1, '\0')}}}},
                         ValueMap{}}},
      {"map", ValueMap{{"nested", inner}, {"", "empty key"}}},
  };
}

inline BlobMeta blob(std::string name, std::string mime, std::uint64_t size) {
  return BlobMeta{std::move(name), std::move(mime), size};
}

inline Submit sample_submit() {
  Submit s;
  s.req = 0xfedcba9876543210ULL;
  s.service = "image";
  s.model = "Qwen/Qwen-Image:v1.0_b-2";
  s.params = rich_map();
  s.inputs = {blob("image", "image/png", 5), blob("mask", "", 0), blob("extra", "application/x-raw", 3)};
  s.priority = 9;
  s.timeout_ms = 86'400'000;
  s.key = "idem-\xe2\x9c\x93-42";
  return s;
}

inline JobRef sample_job_ref() { return JobRef{77, "j_0123456789abcdef01234567"}; }
inline ListReq sample_list() { return ListReq{78, "video", 7}; }
inline WorkersReq sample_workers() { return WorkersReq{79}; }
inline Accepted sample_accepted() { return Accepted{80, "j_00000000000100000000abcd", true}; }
inline Queued sample_queued() { return Queued{"j_q", 12, "no worker advertises model 'x'"}; }
inline Started sample_started() { return Started{"j_s", "w17", 3}; }

inline Progress sample_progress(bool with_preview) {
  Progress p{"j_p", 4, 50, 12.25, "denoising \xe2\x80\xa6", std::nullopt};
  if (with_preview) p.preview = blob("preview", "image/jpeg", 4);
  return p;
}

inline Partial sample_partial() { return Partial{"j_t", 123456789012ULL, rich_map()}; }

inline Result sample_result() {
  Result r;
  r.job = "j_r";
  r.outputs = {blob("video", "video/mp4", 6), blob("poster", "image/png", 2)};
  r.data = rich_map();
  r.metrics = ValueMap{{"run_ms", 1234}, {"tokens_per_s", 87.5}};
  return r;
}

inline Error sample_error(ErrorCode c = ErrorCode::worker_lost) {
  return Error{81, "j_e", c, "worker lost 3 times: \"w3\" gone"};
}

inline Cancelled sample_cancelled() { return Cancelled{"j_c"}; }

inline JobInfo sample_job_info(bool with_error, JobState state = JobState::failed) {
  JobInfo j;
  j.req = 82;
  j.job = "j_i";
  j.service = "text";
  j.model = "Qwen3-0.6B";
  j.state = state;
  j.priority = 1;
  j.attempts = 2;
  j.position = 33;
  j.waiting_for = "no worker of service 'text' is connected";
  j.worker = "w9";
  j.created_s = 1'700'000'000.125;
  j.updated_s = 1'700'000'001.5;
  if (with_error) j.error = Error{0, "j_i", ErrorCode::timeout, "deadline passed"};
  return j;
}

inline JobList sample_job_list() {
  return JobList{83, {sample_job_info(true), sample_job_info(false, JobState::running),
                      sample_job_info(false, JobState::succeeded)}};
}

inline WorkerList sample_worker_list() {
  return WorkerList{84,
                    {ServiceInfo{"echo", 2, {}, 8, 3, 0},
                     ServiceInfo{"text", 1, {"Qwen3-0.6B", "Qwen2.5-0.5B"}, 16, 15, 400}}};
}

inline Ready sample_ready() {
  return Ready{"text", {"Qwen3-0.6B", "Qwen2.5-0.5B-Instruct"}, 32, "cuda:1", "0.1.0+abc", "gpu-7:4242"};
}

inline JobAssign sample_job_assign() {
  JobAssign a;
  a.job = "j_a";
  a.service = "image";
  a.model = "edit-2511";
  a.params = rich_map();
  a.inputs = {blob("image", "image/png", 3), blob("ref", "image/webp", 1)};
  a.attempt = 3;
  a.timeout_ms = 29'999;
  return a;
}

inline CancelJob sample_cancel_job() { return CancelJob{"j_x"}; }
inline Disconnect sample_disconnect() { return Disconnect{"unknown worker: reconnect and send READY"}; }

}  // namespace proto_test
