// UniPCMultistepScheduler (flow form) against diffusers: Wan 2.2 schedules
// for several step counts and flow shifts, the A14B expert boundary, full
// predictor-corrector sequences on random model outputs (published config,
// bf16 model outputs, bh1, order 3, disabled correctors, sigma_min final,
// dynamic shift, shift_terminal, a mid-schedule start) within 1e-5, add_noise.
#include <gtest/gtest.h>

#include <ATen/ops/empty.h>

#include <string>
#include <vector>

#include "fixture.hpp"
#include "mmgen/diffusion/unipc_multistep.hpp"

namespace mmgen::diffusion {
namespace {

using test::errors;
using test::fixtures;
using test::max_abs_diff;
using test::golden;

constexpr double kScheduleTol = 1e-6;
constexpr double kStepTol = 1e-5;

UniPCMultistepScheduler published(const std::string& name) {
  return UniPCMultistepScheduler::load(fixtures() / (name == "ti2v5b" ? "wan2.2-ti2v-5b" : "wan2.2-t2v-a14b") /
                                       "scheduler");
}

UniPCMultistepScheduler variant(const std::string& name) {
  return UniPCMultistepScheduler::load(fixtures() / "variants" / ("unipc_" + name));
}

void expect_schedule(const UniPCMultistepScheduler& s, const std::string& prefix) {
  const double es = max_abs_diff(s.sigmas(), golden(prefix + ".sigmas"));
  errors().note("unipc sigmas", es);
  EXPECT_LE(es, kScheduleTol) << prefix;
  const at::Tensor t = golden(prefix + ".timesteps");
  ASSERT_EQ(s.timesteps().scalar_type(), at::kLong);
  EXPECT_TRUE(test::bit_equal(s.timesteps(), t)) << prefix << ": timesteps differ";
}

TEST(UniPC, PublishedWanConfigs) {
  const UniPCMultistepScheduler s = published("ti2v5b");
  const UniPCConfig& c = s.config();
  EXPECT_EQ(c.prediction_type, "flow_prediction");
  EXPECT_TRUE(c.use_flow_sigmas);
  EXPECT_DOUBLE_EQ(c.flow_shift, 5.0);
  EXPECT_EQ(c.solver_order, 2);
  EXPECT_EQ(c.solver_type, UniPCSolverType::bh2);
  EXPECT_TRUE(c.predict_x0);
  EXPECT_TRUE(c.lower_order_final);
  EXPECT_EQ(c.final_sigmas_type, FinalSigmasType::zero);
  EXPECT_DOUBLE_EQ(published("t2va14b").config().flow_shift, 3.0);
}

TEST(UniPC, WanSchedulesForStepCountsAndShifts) {
  for (const std::string cfg : {"ti2v5b", "t2va14b"}) {
    for (const std::string shift : {"pub", "1", "3", "5", "12"}) {
      UniPCMultistepScheduler s = published(cfg);
      if (shift != "pub") s.set_flow_shift(std::stod(shift));  // per-job override
      for (std::int64_t n : {1, 2, 4, 10, 40, 50}) {
        s.set_timesteps(n);
        EXPECT_EQ(s.num_inference_steps(), n);
        expect_schedule(s, "unipc." + cfg + ".n" + std::to_string(n) + ".shift" + shift);
      }
    }
  }
}

TEST(UniPC, VariantSchedules) {
  for (const std::string name : {"bh1", "order3", "disable_corrector", "sigma_min_final", "dynamic", "terminal"}) {
    UniPCMultistepScheduler s = variant(name);
    const std::optional<double> mu = s.config().use_dynamic_shifting ? std::optional<double>(0.8) : std::nullopt;
    for (std::int64_t n : {1, 4, 10, 40}) {
      const std::string p = "unipc." + name + ".n" + std::to_string(n);
      if (name == "terminal" && n == 1) {
        // diffusers stretches 0/0 to a NaN sigma here; we refuse.
        EXPECT_TRUE(std::isnan(golden(p + ".sigmas")[0].item<float>()));
        EXPECT_THROW(s.set_timesteps(n, mu), std::invalid_argument);
        continue;
      }
      s.set_timesteps(n, mu);
      expect_schedule(s, p);
    }
  }
  UniPCMultistepScheduler custom = published("ti2v5b");
  custom.set_timesteps(schedule::linspace(1.0, 0.05, 6));  // np.linspace(1.0, 0.05, 6)
  expect_schedule(custom, "unipc.custom");
  UniPCMultistepScheduler dyn = variant("dynamic");
  EXPECT_THROW(dyn.set_timesteps(10), std::invalid_argument);  // mu required
}

TEST(UniPC, ExpertBoundaryOfA14B) {
  UniPCMultistepScheduler s = published("t2va14b");
  s.set_timesteps(40);
  for (double ratio : {0.875, 0.9}) {
    const at::Tensor expect = golden("unipc.a14b.n40.high_noise.b" + std::to_string(int(std::lround(ratio * 1000))));
    for (std::int64_t i = 0; i < 40; ++i) {
      EXPECT_EQ(s.is_high_noise(s.timesteps_vector()[static_cast<std::size_t>(i)], ratio),
                expect[i].item<std::int64_t>() != 0)
          << "ratio " << ratio << " step " << i;
    }
  }
  EXPECT_DOUBLE_EQ(s.boundary_timestep(0.875), 875.0);
}

// Runs a recorded sequence: steps from `begin` over the rest of the schedule.
void run_sequence(UniPCMultistepScheduler& s, const std::string& p, std::int64_t begin = 0) {
  const at::Tensor mos = golden(p + ".model_outputs");
  const at::Tensor outs = golden(p + ".outputs");
  s.set_begin_index(begin);
  at::Tensor x = golden(p + ".sample0");
  const std::vector<std::int64_t>& ts = s.timesteps_vector();
  ASSERT_EQ(mos.size(0), static_cast<std::int64_t>(ts.size()) - begin);
  for (std::int64_t k = 0; k < mos.size(0); ++k) {
    x = s.step(mos[k], ts[static_cast<std::size_t>(begin + k)], x);
    EXPECT_EQ(x.scalar_type(), at::kFloat);
    const double e = max_abs_diff(x, outs[k]);
    errors().note("unipc steps", e);
    EXPECT_LE(e, kStepTol) << p << " step " << k;
  }
}

TEST(UniPC, PredictorCorrectorSequencesMatchDiffusers) {
  struct Case {
    std::string fixture;
    std::string config;  // "ti2v5b" / "t2va14b" published, else a variant
    std::int64_t steps;
    double flow_shift = 0;  // 0: the config's
    std::int64_t begin = 0;
    std::optional<double> mu;
  };
  const std::optional<double> none;
  const std::vector<Case> cases = {
      {"ti2v5b", "ti2v5b", 10, 0, 0, none},
      {"ti2v5b_n50", "ti2v5b", 50, 0, 0, none},
      {"ti2v5b_bf16mo", "ti2v5b", 10, 0, 0, none},
      {"a14b_shift12", "t2va14b", 12, 12.0, 0, none},
      {"begin3", "ti2v5b", 10, 0, 3, none},
      {"bh1", "bh1", 10, 0, 0, none},
      {"order3", "order3", 10, 0, 0, none},
      {"disable_corrector", "disable_corrector", 10, 0, 0, none},
      {"sigma_min_final", "sigma_min_final", 10, 0, 0, none},
      {"terminal", "terminal", 10, 0, 0, none},
      {"dynamic", "dynamic", 10, 0, 0, 0.8},
  };
  for (const Case& c : cases) {
    UniPCMultistepScheduler s =
        c.config == "ti2v5b" || c.config == "t2va14b" ? published(c.config) : variant(c.config);
    if (c.flow_shift > 0) s.set_flow_shift(c.flow_shift);
    s.set_timesteps(c.steps, c.mu);
    run_sequence(s, "unipc.steps." + c.fixture, c.begin);
  }
}

TEST(UniPC, StateIsKeptAndResetPerJob) {
  UniPCMultistepScheduler s = published("ti2v5b");
  s.set_timesteps(10);
  run_sequence(s, "unipc.steps.ti2v5b");
  EXPECT_EQ(s.lower_order_nums(), 2);
  EXPECT_EQ(s.this_order(), 1);  // lower_order_final on the last step
  EXPECT_TRUE(s.last_sample().defined());
  ASSERT_EQ(s.model_outputs().size(), 2u);
  EXPECT_TRUE(s.model_outputs()[0].defined() && s.model_outputs()[1].defined());
  EXPECT_EQ(s.step_index().value(), 10);
  EXPECT_THROW(s.step(golden("unipc.steps.ti2v5b.sample0"), 0, golden("unipc.steps.ti2v5b.sample0")),
               std::invalid_argument);

  // A second job on the same scheduler: reset() forgets the history.
  s.reset();
  EXPECT_EQ(s.lower_order_nums(), 0);
  EXPECT_FALSE(s.last_sample().defined());
  EXPECT_FALSE(s.step_index().has_value());
  run_sequence(s, "unipc.steps.ti2v5b");
}

TEST(UniPC, AddNoiseLooksUpSigmas) {
  UniPCMultistepScheduler s = published("ti2v5b");
  s.set_timesteps(10);
  const at::Tensor ts = golden("unipc.add_noise.timesteps");
  const std::vector<std::int64_t> t = {ts[0].item<std::int64_t>(), ts[1].item<std::int64_t>()};
  const at::Tensor out = s.add_noise(golden("unipc.add_noise.original"), golden("unipc.add_noise.noise"), t);
  const double e = max_abs_diff(out, golden("unipc.add_noise.out"));
  errors().note("unipc add_noise", e);
  EXPECT_LE(e, kStepTol);
  // An unknown timestep maps to the last index, as in the reference.
  EXPECT_EQ(s.index_for_timestep(12345), 9);
}

TEST(UniPC, StepArgumentErrors) {
  UniPCMultistepScheduler s = published("ti2v5b");
  const at::Tensor x = golden("unipc.steps.ti2v5b.sample0");
  EXPECT_THROW(s.step(x, 999, x), std::invalid_argument);  // no schedule yet
  s.set_timesteps(4);
  EXPECT_THROW(s.step(x.flatten(), 999, x), std::invalid_argument);  // shape mismatch
  EXPECT_THROW(s.set_timesteps(0), std::invalid_argument);
  EXPECT_THROW(s.set_flow_shift(0.0), std::invalid_argument);
  EXPECT_THROW(s.set_begin_index(-1), std::invalid_argument);
}

}  // namespace
}  // namespace mmgen::diffusion
