// Scheduler configs and arguments a user can get wrong: every one is a typed
// error (io::LoadError for scheduler_config.json, std::invalid_argument for
// call arguments) whose message names the key or the problem; settings this
// port does not implement are refused rather than computed differently.
#include <gtest/gtest.h>

#include <string>

#include "fixture.hpp"
#include "mmgen/diffusion/flow_match_euler.hpp"
#include "mmgen/diffusion/schedule_math.hpp"
#include "mmgen/diffusion/unipc_multistep.hpp"
#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/json.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::diffusion {
namespace {

io::HfConfig json(const std::string& text) { return io::HfConfig(io::parse_json(text, "test.json"), "test.json"); }

// Expects a LoadError of `kind` whose message contains `needle`.
template <class F>
void expect_load_error(F&& f, io::LoadErrorKind kind, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << needle;
  } catch (const io::LoadError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

const std::string kWan = R"({"_class_name": "UniPCMultistepScheduler", "prediction_type": "flow_prediction",
                              "use_flow_sigmas": true, "flow_shift": 5.0)";

UniPCConfig unipc(const std::string& extra) { return UniPCConfig::from_json(json(kWan + extra + "}")); }
FlowMatchEulerConfig fm(const std::string& body) { return FlowMatchEulerConfig::from_json(json(body)); }

TEST(SchedulerConfig, FlowMatchDefaultsMirrorTheReferenceConstructor) {
  const FlowMatchEulerConfig c = fm("{}");
  EXPECT_EQ(c.num_train_timesteps, 1000);
  EXPECT_DOUBLE_EQ(c.shift, 1.0);
  EXPECT_FALSE(c.use_dynamic_shifting);
  EXPECT_DOUBLE_EQ(c.max_shift, 1.15);
  EXPECT_EQ(c.max_image_seq_len, 4096);
  EXPECT_FALSE(c.shift_terminal.has_value());
  // Unknown keys are ignored, as diffusers ignores them.
  EXPECT_NO_THROW(fm(R"({"some_future_key": 3})"));
}

TEST(SchedulerConfig, FlowMatchRejectsWhatItDoesNotImplement) {
  using K = io::LoadErrorKind;
  expect_load_error([] { fm(R"({"use_beta_sigmas": true})"); }, K::unsupported, "use_beta_sigmas");
  expect_load_error([] { fm(R"({"use_karras_sigmas": true, "use_exponential_sigmas": true})"); }, K::bad_config,
                    "only one of");
  expect_load_error([] { fm(R"({"time_shift_type": "quadratic"})"); }, K::bad_config, "time_shift_type");
  expect_load_error([] { fm(R"({"shift": "three"})"); }, K::bad_config, "'shift' must be a number");
  expect_load_error([] { fm(R"({"shift": 0})"); }, K::bad_config, "'shift'");
  expect_load_error([] { fm(R"({"num_train_timesteps": 0})"); }, K::bad_config, "num_train_timesteps");
  expect_load_error([] { fm(R"({"shift_terminal": 1.0})"); }, K::bad_config, "shift_terminal");
  expect_load_error([] { fm(R"({"_class_name": "UniPCMultistepScheduler"})"); }, K::unsupported, "_class_name");
  expect_load_error(
      [] { fm(R"({"use_dynamic_shifting": true, "base_image_seq_len": 256, "max_image_seq_len": 256})"); },
      K::bad_config, "max_image_seq_len");
  expect_load_error([] { FlowMatchEulerConfig::load(test::fixtures() / "no-such-folder"); }, K::io, "no-such-folder");
}

TEST(SchedulerConfig, UniPCRejectsWhatItDoesNotImplement) {
  using K = io::LoadErrorKind;
  EXPECT_NO_THROW(unipc(""));
  EXPECT_EQ(unipc(R"(, "solver_type": "midpoint")").solver_type, UniPCSolverType::bh2);  // as the reference
  expect_load_error([] { unipc(R"(, "use_flow_sigmas": false)"); }, K::unsupported, "use_flow_sigmas");
  expect_load_error([] { unipc(R"(, "prediction_type": "epsilon")"); }, K::unsupported, "prediction_type");
  expect_load_error([] { unipc(R"(, "predict_x0": false)"); }, K::unsupported, "predict_x0");
  expect_load_error([] { unipc(R"(, "thresholding": true)"); }, K::unsupported, "thresholding");
  expect_load_error([] { unipc(R"(, "use_karras_sigmas": true)"); }, K::unsupported, "use_karras_sigmas");
  expect_load_error([] { unipc(R"(, "use_exponential_sigmas": true)"); }, K::unsupported, "use_exponential_sigmas");
  expect_load_error([] { unipc(R"(, "use_beta_sigmas": true)"); }, K::unsupported, "use_beta_sigmas");
  expect_load_error([] { unipc(R"(, "solver_type": "dpmsolver")"); }, K::unsupported, "solver_type");
  expect_load_error([] { unipc(R"(, "solver_p": {"_class_name": "DDIMScheduler"})"); }, K::unsupported, "solver_p");
  expect_load_error([] { unipc(R"(, "final_sigmas_type": "one")"); }, K::bad_config, "final_sigmas_type");
  expect_load_error([] { unipc(R"(, "timestep_spacing": "cosine")"); }, K::bad_config, "timestep_spacing");
  expect_load_error([] { unipc(R"(, "beta_schedule": "sigmoid")"); }, K::unsupported, "beta_schedule");
  expect_load_error([] { unipc(R"(, "solver_order": 0)"); }, K::bad_config, "solver_order");
  expect_load_error([] { unipc(R"(, "flow_shift": -1)"); }, K::bad_config, "flow_shift");
  expect_load_error([] { unipc(R"(, "time_shift_type": "cosine")"); }, K::bad_config, "time_shift_type");
  expect_load_error([] { unipc(R"(, "disable_corrector": "none")"); }, K::bad_config, "disable_corrector");
  expect_load_error(
      [] { UniPCConfig::from_json(json(R"({"use_flow_sigmas": false, "shift_terminal": 0.1})")); }, K::bad_config,
      "shift_terminal");
  expect_load_error(
      [] { UniPCConfig::from_json(json(R"({"_class_name": "FlowMatchEulerDiscreteScheduler"})")); },
      K::unsupported, "_class_name");
  // A struct built in code is validated too.
  UniPCConfig c = unipc("");
  c.solver_order = 0;
  EXPECT_THROW(UniPCMultistepScheduler{c}, io::LoadError);
}

TEST(SchedulerArguments, FlowMatchCallErrors) {
  FlowMatchEulerDiscreteScheduler dynamic(fm(R"({"use_dynamic_shifting": true})"));
  EXPECT_THROW(dynamic.set_timesteps(10), std::invalid_argument);  // mu missing
  FlowMatchEulerDiscreteScheduler s(fm("{}"));
  EXPECT_THROW(s.set_timesteps(0), std::invalid_argument);
  EXPECT_THROW(s.apply_strength(0.5), std::invalid_argument);  // no schedule yet
  const std::vector<double> sig = {1.0, 0.5};
  EXPECT_THROW(s.set_timesteps(3, &sig, std::nullopt), std::invalid_argument);  // length mismatch
  s.set_timesteps(10);
  EXPECT_THROW(s.apply_strength(1.5), std::invalid_argument);
  EXPECT_THROW(s.apply_strength(0.0), std::invalid_argument);  // leaves no step
  EXPECT_THROW(s.set_shift(-2.0), std::invalid_argument);
  EXPECT_THROW(s.config().mu_for(0), std::invalid_argument);
}

TEST(ScheduleMath, LinspaceFollowsNumpy) {
  const std::vector<double> a = schedule::linspace(1.0, 0.1, 10);
  ASSERT_EQ(a.size(), 10u);
  EXPECT_EQ(a.front(), 1.0);
  EXPECT_EQ(a.back(), 0.1);  // the endpoint is set, not accumulated
  EXPECT_EQ(a[3], 3.0 * ((0.1 - 1.0) / 9.0) + 1.0);
  EXPECT_EQ(schedule::linspace(2.0, 5.0, 1), std::vector<double>{2.0});
  EXPECT_TRUE(schedule::linspace(2.0, 5.0, 0).empty());
  EXPECT_THROW(schedule::calculate_shift(10, 256, 256, 0.5, 1.0), std::invalid_argument);
  // Qwen-Image: mu at the base length is base_shift.
  EXPECT_DOUBLE_EQ(schedule::calculate_shift(256, 256, 8192, 0.5, 0.9), 0.5);
}

}  // namespace
}  // namespace mmgen::diffusion
