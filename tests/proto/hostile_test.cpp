// Hostile bodies: whatever arrives, every decoder answers with ProtocolError
// (invalid_request or too_large), never another exception, a crash or a big
// allocation. Sizes declared in headers are checked before anything is
// reserved for them; the no-large-allocation property is checked twice: by the
// replaced operator new (alloc_guard) and, for msgpack-c's malloc-based zone,
// in a forked child whose address space is capped a little above what it uses.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>

#include "alloc_guard.hpp"
#include "mmgen/codec.hpp"
#include "mp.hpp"
#include "samples.hpp"

namespace proto_test {
namespace {

using Decode = std::function<void(std::string_view, const Limits&)>;

template <class T>
Decode dec() {
  return [](std::string_view body, const Limits& l) { (void)decode_as<T>(body, l); };
}

const std::vector<std::pair<std::string, Decode>>& all_decoders() {
  static const std::vector<std::pair<std::string, Decode>> list = {
      {"Submit", dec<Submit>()},         {"JobRef", dec<JobRef>()},
      {"ListReq", dec<ListReq>()},       {"WorkersReq", dec<WorkersReq>()},
      {"Accepted", dec<Accepted>()},     {"Queued", dec<Queued>()},
      {"Started", dec<Started>()},       {"Progress", dec<Progress>()},
      {"Partial", dec<Partial>()},       {"Result", dec<Result>()},
      {"Error", dec<Error>()},           {"Cancelled", dec<Cancelled>()},
      {"JobInfo", dec<JobInfo>()},       {"JobList", dec<JobList>()},
      {"WorkerList", dec<WorkerList>()}, {"Ready", dec<Ready>()},
      {"JobAssign", dec<JobAssign>()},   {"Heartbeat", dec<Heartbeat>()},
      {"CancelJob", dec<CancelJob>()},   {"Disconnect", dec<Disconnect>()},
      {"ValueMap", dec<ValueMap>()},
  };
  return list;
}

// What a decode did: "ok", "<code>: <message>", or "other exception: ...".
std::string outcome(const Decode& d, std::string_view body, const Limits& limits = {}) {
  try {
    d(body, limits);
    return "ok";
  } catch (const ProtocolError& e) {
    return std::string(to_string(e.code())) + ": " + e.what();
  } catch (const std::exception& e) {
    return std::string("other exception: ") + e.what();
  }
}

bool starts_with(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

// Every decoder must refuse `body` with `code`, and the message must contain `fragment`.
void expect_all_refuse(const std::string& body, ErrorCode code, std::string_view fragment,
                       const Limits& limits = {}) {
  for (const auto& [name, d] : all_decoders()) {
    const std::string got = outcome(d, body, limits);
    EXPECT_TRUE(starts_with(got, std::string(to_string(code)) + ": ")) << name << " -> " << got;
    EXPECT_NE(got.find(fragment), std::string::npos) << name << " -> " << got;
  }
}

// ---- the bodies ----------------------------------------------------------------------

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

struct Hostile {
  std::string name;
  std::string body;
  ErrorCode code;
  std::string fragment;
};

// Headers that declare far more than the body holds.
std::vector<Hostile> huge_headers() {
  const std::string svc = mp::str("service") + mp::str("echo");
  return {
      {"array of 4G elements", mp::map_header(2) + svc + mp::str("params") + "\xdd\xff\xff\xff\xff",
       ErrorCode::too_large, "array of 4294967295 elements exceeds the limit of 65536"},
      {"map of 4G pairs", mp::map_header(2) + svc + mp::str("params") + "\xdf\xff\xff\xff\xff",
       ErrorCode::too_large, "map of 4294967295 elements exceeds the limit of 65536"},
      {"body map of 4G pairs", std::string("\xdf\xff\xff\xff\xff"), ErrorCode::too_large,
       "map of 4294967295 elements"},
      {"str of 4 GB", mp::map_header(2) + svc + mp::str("model") + "\xdb\xff\xff\xff\xff" + "abc",
       ErrorCode::invalid_request, "truncated body"},
      {"bin of 4 GB", mp::map_header(2) + svc + mp::str("params") + mp::map_header(1) + mp::str("b") +
                          "\xc6\xff\xff\xff\xff" + "abc",
       ErrorCode::invalid_request, "truncated body"},
      {"key of 4 GB", std::string("\x81\xdb\xff\xff\xff\xff") + "k", ErrorCode::invalid_request,
       "truncated body"},
      {"array at the limit, no elements", mp::map_header(1) + mp::str("a") + mp::array_header(65536),
       ErrorCode::invalid_request, "truncated body"},
      {"array one over the limit", mp::map_header(1) + mp::str("a") + mp::array_header(65537),
       ErrorCode::too_large, "array of 65537 elements exceeds the limit of 65536"},
      // 16 nested map16 headers of 65535 pairs each, cut short: 80 bytes that
      // made msgpack-c reserve ~48 MiB before the walk was added.
      {"nested map16 headers", repeat(std::string("\xde\xff\xff") + mp::str("a"), 16),
       ErrorCode::invalid_request, "truncated body"},
      {"nested array16 headers", mp::map_header(1) + mp::str("a") + repeat("\xdc\xff\xff", 15),
       ErrorCode::invalid_request, "truncated body"},
  };
}

TEST(Hostile, HugeHeadersAreRefusedBeforeAnythingIsReserved) {
  AllocGuard guard(16u << 20);
  for (const auto& h : huge_headers()) {
    SCOPED_TRACE(h.name);
    expect_all_refuse(h.body, h.code, h.fragment);
  }
  EXPECT_EQ(guard.refused(), 0u) << "an allocation over 16 MiB was attempted";
  EXPECT_LT(guard.largest(), 1u << 20);
}

// The child's address space is capped at what it maps now plus `headroom`, so
// any large malloc (msgpack-c's zone uses malloc, not operator new) fails
// there; a failed allocation would surface as "body too large to decode"
// instead of the expected message. Returns the child's report ("" if all good).
std::string run_capped(std::size_t headroom, const std::function<std::string()>& body) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    close(fds[0]);
    unsigned long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    const rlim_t cap = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) + headroom;
    rlimit rl{cap, cap};
    std::string report = pages == 0 ? "cannot read /proc/self/statm"
                         : setrlimit(RLIMIT_AS, &rl) != 0 ? "setrlimit failed"
                                                          : body();
    if (write(fds[1], report.data(), report.size()) < 0) _exit(3);
    _exit(0);
  }
  close(fds[1]);
  std::string report;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) report.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "child died (status " + std::to_string(status) + "): " + report;
  return report;
}

#if defined(__SANITIZE_ADDRESS__)
#define MMGEN_NO_RLIMIT_AS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MMGEN_NO_RLIMIT_AS 1
#endif
#endif

TEST(Hostile, HugeHeadersUnderACappedAddressSpace) {
#ifdef MMGEN_NO_RLIMIT_AS
  GTEST_SKIP() << "RLIMIT_AS cannot be used under AddressSanitizer";
#endif
  const std::string report = run_capped(16u << 20, [] {
    std::string problems;
    for (const auto& h : huge_headers())
      for (const auto& [name, d] : all_decoders()) {
        const std::string got = outcome(d, h.body);
        if (!starts_with(got, std::string(to_string(h.code)) + ": ") ||
            got.find(h.fragment) == std::string::npos)
          problems += h.name + " / " + name + " -> " + got + "\n";
      }
    return problems;
  });
  EXPECT_EQ(report, "");
}

TEST(Hostile, TheCapIsRealAChildThatAllocatesTooMuchIsCaught) {
#ifdef MMGEN_NO_RLIMIT_AS
  GTEST_SKIP() << "RLIMIT_AS cannot be used under AddressSanitizer";
#endif
  // Guards the guard: under the same cap a 64 MiB allocation must fail.
  const std::string report = run_capped(16u << 20, [] {
    try {
      std::vector<char> big(64u << 20, 'x');
      return std::string("allocated 64 MiB under a 16 MiB cap: ") + big[12345];
    } catch (const std::bad_alloc&) {
      return std::string();
    }
  });
  EXPECT_EQ(report, "");
}

// ---- truncation -----------------------------------------------------------------------

template <class T>
void expect_every_prefix_refused(const std::string& name, const T& message) {
  const std::string body = encode(message);
  ASSERT_NO_THROW((void)decode_as<T>(body)) << name;
  for (std::size_t n = 0; n < body.size(); ++n) {
    const std::string got = outcome(dec<T>(), std::string_view(body.data(), n));
    ASSERT_TRUE(starts_with(got, "invalid_request: ") || starts_with(got, "too_large: "))
        << name << " cut to " << n << " of " << body.size() << " bytes -> " << got;
  }
}

TEST(Hostile, EveryTruncationOfEveryMessageIsRefused) {
  Submit s = sample_submit();
  s.params = rich_map(false);
  Partial p = sample_partial();
  p.data = rich_map(false);
  Result r = sample_result();
  r.data = rich_map(false);
  JobAssign a = sample_job_assign();
  a.params = rich_map(false);
  expect_every_prefix_refused("Submit", s);
  expect_every_prefix_refused("JobRef", sample_job_ref());
  expect_every_prefix_refused("ListReq", sample_list());
  expect_every_prefix_refused("WorkersReq", sample_workers());
  expect_every_prefix_refused("Accepted", sample_accepted());
  expect_every_prefix_refused("Queued", sample_queued());
  expect_every_prefix_refused("Started", sample_started());
  expect_every_prefix_refused("Progress", sample_progress(true));
  expect_every_prefix_refused("Partial", p);
  expect_every_prefix_refused("Result", r);
  expect_every_prefix_refused("Error", sample_error());
  expect_every_prefix_refused("Cancelled", sample_cancelled());
  expect_every_prefix_refused("JobInfo", sample_job_info(true));
  expect_every_prefix_refused("JobList", sample_job_list());
  expect_every_prefix_refused("WorkerList", sample_worker_list());
  expect_every_prefix_refused("Ready", sample_ready());
  expect_every_prefix_refused("JobAssign", a);
  expect_every_prefix_refused("Heartbeat", Heartbeat{});
  expect_every_prefix_refused("CancelJob", sample_cancel_job());
  expect_every_prefix_refused("Disconnect", sample_disconnect());
  expect_every_prefix_refused("ValueMap", rich_map(false));
}

// ---- nesting ------------------------------------------------------------------------------

// {"a": [[[ ... nil ... ]]]} with `arrays` nested arrays: arrays + 1 containers.
std::string nested(int arrays) {
  return mp::map_header(1) + mp::str("a") + std::string(static_cast<std::size_t>(arrays), '\x91') + mp::nil();
}

TEST(Hostile, NestingIsBoundedCountingTheBodyMap) {
  // Depth 16 = the body map and 15 containers inside it.
  EXPECT_EQ(outcome(dec<ValueMap>(), nested(15)), "ok");
  EXPECT_EQ(outcome(dec<ValueMap>(), nested(16)), "too_large: nesting deeper than the limit of 16");
  Limits shallow;
  shallow.max_depth = 2;
  EXPECT_EQ(outcome(dec<ValueMap>(), nested(1), shallow), "ok");
  EXPECT_EQ(outcome(dec<ValueMap>(), nested(2), shallow), "too_large: nesting deeper than the limit of 2");
}

TEST(Hostile, AbsurdNestingIsRefusedForEveryDecoder) {
  AllocGuard guard(16u << 20);
  expect_all_refuse(nested(100000), ErrorCode::too_large, "nesting deeper than the limit of 16");
  // Nested maps, each with one key.
  expect_all_refuse(repeat(mp::map_header(1) + mp::str("k"), 50000) + mp::nil(), ErrorCode::too_large,
                    "nesting deeper");
  EXPECT_EQ(guard.refused(), 0u);
}

// ---- size limits --------------------------------------------------------------------------

TEST(Hostile, OversizeBodyIsTooLarge) {
  Limits small;
  small.max_body_bytes = 1024;
  // A valid map of exactly 1024 bytes, and one of 1025.
  const std::string head = mp::map_header(1) + mp::str("a");
  const auto body_of = [&](std::size_t total) {  // one string value filling the rest
    const bool str32 = total - head.size() > 0xffff + 3;
    const std::size_t payload = total - head.size() - (str32 ? 5 : 3);
    return head + (str32 ? mp::byte(0xdb) + mp::be(payload, 4) : mp::byte(0xda) + mp::be(payload, 2)) +
           std::string(payload, 'x');
  };
  ASSERT_EQ(body_of(1024).size(), 1024u);
  EXPECT_EQ(outcome(dec<ValueMap>(), body_of(1024), small), "ok");
  EXPECT_EQ(outcome(dec<ValueMap>(), body_of(1025), small),
            "too_large: body of 1025 bytes exceeds the limit of 1024");
  expect_all_refuse(body_of(1025), ErrorCode::too_large, "exceeds the limit of 1024", small);
  // With the default limit, 4 MiB + 1.
  const std::string big = body_of((4u << 20) + 1);
  expect_all_refuse(big, ErrorCode::too_large, "body of 4194305 bytes exceeds the limit of 4194304");
}

TEST(Hostile, ContainerLimitIsConfigurable) {
  Limits small;
  small.max_container = 3;
  const std::string three = mp::map({{"a", mp::array({mp::nil(), mp::nil(), mp::nil()})}});
  const std::string four = mp::map({{"a", mp::array({mp::nil(), mp::nil(), mp::nil(), mp::nil()})}});
  EXPECT_EQ(outcome(dec<ValueMap>(), three, small), "ok");
  EXPECT_EQ(outcome(dec<ValueMap>(), four, small),
            "too_large: array of 4 elements exceeds the limit of 3");
  const std::string four_keys =
      mp::map({{"a", mp::nil()}, {"b", mp::nil()}, {"c", mp::nil()}, {"d", mp::nil()}});
  EXPECT_EQ(outcome(dec<ValueMap>(), four_keys, small),
            "too_large: map of 4 elements exceeds the limit of 3");
}

// ---- malformed shapes ---------------------------------------------------------------------

TEST(Hostile, ExtTypesAreInvalid) {
  const std::vector<std::string> exts = {
      "\xd4\x01\x00",       "\xd5\x01\x00\x00",           std::string("\xd6\x01") + std::string(4, 0),
      std::string("\xd7\x01") + std::string(8, 0), std::string("\xd8\x01") + std::string(16, 0),
      std::string("\xc7\x02\x01\x00\x00", 5),     std::string("\xc8\x00\x01\x01\x00", 5),
      std::string("\xc9\x00\x00\x00\x00\x01", 6),
  };
  for (const auto& e : exts) {
    SCOPED_TRACE(static_cast<int>(static_cast<unsigned char>(e[0])));
    expect_all_refuse(mp::map_header(1) + mp::str("params") + mp::map_header(1) + mp::str("x") + e,
                      ErrorCode::invalid_request, "ext types are not supported");
    expect_all_refuse(mp::map_header(1) + e + mp::nil(), ErrorCode::invalid_request,
                      "ext types are not supported");  // as a key
  }
}

TEST(Hostile, ReservedByteIsInvalid) {
  expect_all_refuse(mp::map_header(1) + mp::str("a") + "\xc1", ErrorCode::invalid_request,
                    "reserved type byte 0xc1");
}

TEST(Hostile, NonStringKeysAreInvalid) {
  for (const std::string& key : {mp::uint(1), mp::sint(-1), mp::nil(), mp::bin("k"), mp::boolean(true),
                                 mp::array({}), mp::map({}), mp::f64(1.0)}) {
    expect_all_refuse(mp::map_header(1) + key + mp::str("v"), ErrorCode::invalid_request,
                      "map keys must be strings");
    // Nested in a value map.
    const std::string nested_body = mp::map({{"service", mp::str("e")},
                                             {"params", mp::map_header(1) + key + mp::uint(1)}});
    EXPECT_EQ(outcome(dec<Submit>(), nested_body), "invalid_request: 'params': map keys must be strings");
  }
}

TEST(Hostile, UnsignedBeyondInt64IsRefusedInAValue) {
  const auto body = [](std::uint64_t v) {
    return mp::map({{"service", mp::str("e")}, {"params", mp::map({{"x", mp::uint(v)}})}});
  };
  EXPECT_EQ(outcome(dec<Submit>(), body(std::uint64_t(INT64_MAX))), "ok");
  EXPECT_EQ(outcome(dec<Submit>(), body(std::uint64_t(INT64_MAX) + 1)),
            "invalid_request: 'params.x': integer out of range");
  EXPECT_EQ(outcome(dec<ValueMap>(), mp::map({{"x", mp::array({mp::uint(~0ULL)})}})),
            "invalid_request: 'x[0]': integer out of range");
  // A u64 field takes the whole range.
  EXPECT_EQ(decode_as<WorkersReq>(mp::map({{"req", mp::uint(~0ULL)}})).req, ~0ULL);
}

TEST(Hostile, TrailingBytesEmptyAndNonMapBodies) {
  const std::string valid = encode(sample_job_ref());
  expect_all_refuse(valid + mp::nil(), ErrorCode::invalid_request, "trailing bytes after the body map");
  expect_all_refuse(valid + valid, ErrorCode::invalid_request, "trailing bytes after the body map");
  expect_all_refuse("", ErrorCode::invalid_request, "empty body");
  for (const std::string& body : {mp::array({}), mp::array({mp::map({})}), mp::str("map"), mp::uint(5),
                                  mp::nil(), mp::f64(0), mp::bin("x"), mp::boolean(false)})
    expect_all_refuse(body, ErrorCode::invalid_request, "body is not a msgpack map");
}

TEST(Hostile, GarbageNeverEscapesAsAnotherException) {
  // A deterministic spray of small byte strings, each decoded by everyone.
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 3000; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::string body(static_cast<std::size_t>(1 + x % 24), '\0');
    for (auto& c : body) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      c = static_cast<char>(x);
    }
    if (i % 2 == 0) body[0] = static_cast<char>(0x80 | (x % 4));  // often a small map
    for (const auto& [name, d] : all_decoders()) {
      const std::string got = outcome(d, body);
      ASSERT_FALSE(starts_with(got, "other exception")) << name << " -> " << got;
    }
  }
}

}  // namespace
}  // namespace proto_test
