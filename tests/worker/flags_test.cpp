// The command line every worker shares: env default, flag override, typed
// errors for bad values, and a service's own flags.
#include <cstdlib>

#include <gtest/gtest.h>

#include "mmgen/worker.hpp"

namespace mmgen::worker_test {
namespace {

using worker::ExtraFlag;
using worker::FlagError;
using worker::parse_worker_flags;
using worker::WorkerFlags;

// Sets or clears MMGEN_WORKER_BROKER for one test and restores it after.
class BrokerEnv {
 public:
  explicit BrokerEnv(const char* value) {
    if (const char* old = std::getenv(kName)) old_ = old;
    if (value) {
      ::setenv(kName, value, 1);
    } else {
      ::unsetenv(kName);
    }
  }
  ~BrokerEnv() {
    if (old_) {
      ::setenv(kName, old_->c_str(), 1);
    } else {
      ::unsetenv(kName);
    }
  }

 private:
  static constexpr const char* kName = "MMGEN_WORKER_BROKER";
  std::optional<std::string> old_;
};

WorkerFlags parse(std::vector<const char*> args, const std::vector<ExtraFlag>& extra = {},
                  WorkerFlags defaults = {}) {
  args.insert(args.begin(), "mmgen-test");
  return parse_worker_flags(static_cast<int>(args.size()), args.data(), "test", extra, defaults);
}

TEST(WorkerFlags, DefaultsWithoutEnvironment) {
  BrokerEnv env(nullptr);
  const auto f = parse({});
  EXPECT_EQ(f.broker, "tcp://127.0.0.1:5556");
  EXPECT_EQ(f.device, "cpu");
  EXPECT_EQ(f.dtype, "float32");
  EXPECT_EQ(f.capacity, 1u);
  EXPECT_EQ(f.threads, 0u);
  EXPECT_EQ(f.heartbeat_ms, 1000);
  EXPECT_EQ(f.grace_ms, 10000);
  EXPECT_TRUE(f.model.empty());
  EXPECT_FALSE(f.help);
}

TEST(WorkerFlags, EnvironmentGivesTheBrokerAndAFlagOverridesIt) {
  BrokerEnv env("tcp://broker.example:7000");
  EXPECT_EQ(parse({}).broker, "tcp://broker.example:7000");
  EXPECT_EQ(parse({"--broker", "tcp://10.0.0.2:5556"}).broker, "tcp://10.0.0.2:5556");
  EXPECT_EQ(parse({"--broker=ipc:///tmp/b.sock"}).broker, "ipc:///tmp/b.sock");
}

TEST(WorkerFlags, ABadEnvironmentValueIsAnError) {
  BrokerEnv env("not an endpoint");
  EXPECT_THROW(parse({}), FlagError);
}

TEST(WorkerFlags, EveryCommonFlagIsParsed) {
  BrokerEnv env(nullptr);
  const auto f = parse({"--model", "/models/qwen", "--device=cuda:1", "--dtype", "bfloat16",
                        "--threads", "8", "--capacity=4", "--heartbeat-ms", "250", "--grace-ms",
                        "0"});
  EXPECT_EQ(f.model, "/models/qwen");
  EXPECT_EQ(f.device, "cuda:1");
  EXPECT_EQ(f.dtype, "bfloat16");
  EXPECT_EQ(f.threads, 8u);
  EXPECT_EQ(f.capacity, 4u);
  EXPECT_EQ(f.heartbeat_ms, 250);
  EXPECT_EQ(f.grace_ms, 0);

  const auto o = f.options("1.2.3");
  EXPECT_EQ(o.capacity, 4u);
  EXPECT_EQ(o.device, "cuda:1");
  EXPECT_EQ(o.version, "1.2.3");
  EXPECT_EQ(o.heartbeat_ms, 250);
  EXPECT_EQ(o.grace_ms, 0);
  EXPECT_TRUE(o.handle_signals);
}

TEST(WorkerFlags, BadValuesAreErrorsThatNameTheFlag) {
  BrokerEnv env(nullptr);
  const std::vector<std::vector<const char*>> bad = {
      {"--capacity", "0"},      {"--capacity", "many"}, {"--capacity", "2x"},
      {"--device", "gpu"},      {"--device", "cuda:"},  {"--dtype", "int8"},
      {"--threads", "-1"},      {"--broker", "5556"},   {"--heartbeat-ms", "1"},
      {"--model"},              {"--bogus"},            {"positional"},
      {"--model="},             {"--"},
  };
  for (const auto& args : bad) {
    std::string joined;
    for (const char* a : args) joined += std::string(a) + " ";
    try {
      parse(args);
      ADD_FAILURE() << "accepted: " << joined;
    } catch (const FlagError& e) {
      const std::string what = e.what();
      if (std::string_view(args[0]).starts_with("--") && std::string_view(args[0]).size() > 2) {
        std::string name(args[0]);
        name = name.substr(0, name.find('='));
        EXPECT_NE(what.find(name), std::string::npos) << what;
      }
    }
  }
}

TEST(WorkerFlags, ServiceFlagsAreTyped) {
  BrokerEnv env(nullptr);
  std::string prompt = "none";
  std::int64_t steps = 10;
  double scale = 1.0;
  bool fast = false, slow = true;
  const std::vector<ExtraFlag> extra = {
      {"prompt", "text", &prompt},
      {"steps", "steps", &steps, 1, 100},
      {"scale", "scale", &scale},
      {"fast", "go fast", &fast},
      {"slow", "go slow", &slow},
  };
  parse({"--prompt", "a cat", "--steps=20", "--scale", "2.5", "--fast", "--slow=false"}, extra);
  EXPECT_EQ(prompt, "a cat");
  EXPECT_EQ(steps, 20);
  EXPECT_DOUBLE_EQ(scale, 2.5);
  EXPECT_TRUE(fast);
  EXPECT_FALSE(slow);
  EXPECT_THROW(parse({"--steps", "101"}, extra), FlagError);
  EXPECT_THROW(parse({"--scale", "big"}, extra), FlagError);
  EXPECT_THROW(parse({"--fast=maybe"}, extra), FlagError);
}

TEST(WorkerFlags, ServiceDefaultsAndHelp) {
  BrokerEnv env(nullptr);
  WorkerFlags d;
  d.capacity = 16;
  EXPECT_EQ(parse({}, {}, d).capacity, 16u);
  EXPECT_TRUE(parse({"--help"}).help);
  EXPECT_TRUE(parse({"-h"}).help);

  std::int64_t steps = 0;
  const auto usage = worker::worker_usage("test", {{"steps", "denoising steps", &steps}}, d);
  for (const char* s : {"mmgen-test", "--broker", "MMGEN_WORKER_BROKER", "--model", "--device",
                        "--dtype", "--threads", "--capacity", "--grace-ms", "--steps VALUE",
                        "denoising steps", "default 16"}) {
    EXPECT_NE(usage.find(s), std::string::npos) << "usage lacks " << s << ":\n" << usage;
  }
}

}  // namespace
// Not a flag, but the same kind of unit: the input lookup every service uses.
TEST(WorkerInputs, FindInputByNameAndRefuseTwoOfOneName) {
  std::vector<mmgen::worker::Input> in;
  in.push_back({"image", "image/png", zmq::message_t(std::string_view("png"))});
  in.push_back({"mask", "image/png", zmq::message_t(std::string_view("m"))});
  EXPECT_EQ(mmgen::worker::find_input(in, "absent"), nullptr);
  const auto* mask = mmgen::worker::find_input(in, "mask");
  ASSERT_NE(mask, nullptr);
  EXPECT_EQ(mask->bytes(), "m");
  EXPECT_EQ(mask->octets().size(), 1u);
  EXPECT_EQ(mask->octets()[0], std::uint8_t('m'));
  in.push_back({"mask", "image/png", zmq::message_t(std::string_view("again"))});
  try {
    mmgen::worker::find_input(in, "mask");
    ADD_FAILURE() << "two inputs named 'mask' were accepted";
  } catch (const mmgen::proto::ProtocolError& e) {
    EXPECT_EQ(e.code(), mmgen::proto::ErrorCode::invalid_request);
    EXPECT_NE(std::string(e.what()).find("more than one input blob named 'mask'"), std::string::npos) << e.what();
  }
}

}  // namespace mmgen::worker_test
