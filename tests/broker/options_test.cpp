// mmgen-broker's flags: defaults, environment, flag over environment, errors.
#include <gtest/gtest.h>

#include <map>

#include "options.hpp"

namespace mmgen::broker::testing {
namespace {

ParsedOptions parse(std::vector<const char*> args, std::map<std::string, std::string> env = {}) {
  args.insert(args.begin(), "mmgen-broker");
  return parse_options(int(args.size()), args.data(), [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(BrokerOptions, Defaults) {
  auto p = parse({});
  ASSERT_EQ(p.error, "");
  const Options& o = p.options;
  EXPECT_EQ(o.clients, "tcp://127.0.0.1:5555");
  EXPECT_EQ(o.workers, "tcp://127.0.0.1:5556");
  EXPECT_EQ(o.http_port, 5557);
  EXPECT_EQ(o.data, "./data/broker");
  EXPECT_EQ(o.services, (std::vector<std::string>{"echo"}));
  EXPECT_EQ(o.heartbeat_ms, 1000);
  EXPECT_EQ(o.liveness, 3u);
  EXPECT_EQ(o.max_attempts, 3u);
  EXPECT_EQ(o.queue_limit, 1000u);
  EXPECT_EQ(o.result_ttl_s, 86400);
  EXPECT_EQ(o.max_input_bytes, 64ull << 20);
  EXPECT_EQ(o.max_result_bytes, 256ull << 20);
  EXPECT_EQ(o.pin_cpu, -1) << "not pinned unless asked";
}

TEST(BrokerOptions, FlagsEnvironmentAndPrecedence) {
  auto p = parse({"--clients", "tcp://0.0.0.0:6000", "--http=127.0.0.1:9100", "--services",
                  "echo, audio", "--queue-limit", "5"},
                 {{"MMGEN_BROKER_CLIENTS", "tcp://10.0.0.1:1"},
                  {"MMGEN_BROKER_DATA", "/srv/broker"},
                  {"MMGEN_BROKER_HEARTBEAT_MS", "250"}});
  ASSERT_EQ(p.error, "");
  EXPECT_EQ(p.options.clients, "tcp://0.0.0.0:6000") << "the flag wins";
  EXPECT_EQ(p.options.data, "/srv/broker");
  EXPECT_EQ(p.options.heartbeat_ms, 250);
  EXPECT_EQ(p.options.http_host, "127.0.0.1");
  EXPECT_EQ(p.options.http_port, 9100);
  EXPECT_EQ(p.options.services, (std::vector<std::string>{"echo", "audio"}));
  EXPECT_EQ(p.options.queue_limit, 5u);
  EXPECT_EQ(parse({"--http", "0"}).options.http_port, 0) << "0 disables HTTP";
  EXPECT_EQ(parse({"--pin-cpu", "1"}).options.pin_cpu, 1);
  EXPECT_EQ(parse({}, {{"MMGEN_BROKER_PIN_CPU", "0"}}).options.pin_cpu, 0);
}

TEST(BrokerOptions, BadInputIsAnError) {
  EXPECT_NE(parse({"--bogus"}).error, "");
  EXPECT_NE(parse({"--queue-limit"}).error, "");
  EXPECT_NE(parse({"--queue-limit", "many"}).error, "");
  EXPECT_NE(parse({"--liveness", "0"}).error, "");
  EXPECT_NE(parse({"--http", "99999"}).error, "");
  EXPECT_NE(parse({"--workers", "localhost"}).error, "");
  EXPECT_NE(parse({"--pin-cpu", "-1"}).error, "");
  EXPECT_NE(parse({"--pin-cpu", "99999"}).error, "");
  auto env = parse({}, {{"MMGEN_BROKER_MAX_ATTEMPTS", "x"}});
  EXPECT_NE(env.error.find("MMGEN_BROKER_MAX_ATTEMPTS"), std::string::npos) << env.error;
}

TEST(BrokerOptions, Help) {
  auto p = parse({"--help"});
  EXPECT_TRUE(p.help);
  const std::string u = usage();
  for (const char* f : {"--clients", "--workers", "--http", "--data", "--services", "--heartbeat-ms",
                        "--liveness", "--max-attempts", "--queue-limit", "--result-ttl-s",
                        "--max-input-bytes", "--max-result-bytes", "--pin-cpu", "MMGEN_BROKER_DATA"})
    EXPECT_NE(u.find(f), std::string::npos) << f;
}

}  // namespace
}  // namespace mmgen::broker::testing
