// linear_small_m on the CPU: the op against the float64 reference and against
// at::linear over odd shapes per dtype (with and without bias, strided x and
// weight rows, 3-D x), every runnable ISA build of its loops driven directly,
// batch invariance up to 16 rows, and the errors for bad arguments.
#include <ATen/TensorOperators.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cpu/linear_loops.hpp"
#include "kernel_test_util.hpp"
#include "linear_plan.hpp"
#include "linear_ref.hpp"
#include "mmgen/ops.hpp"

namespace {

using namespace mmgen::testing;
namespace cpu = mmgen::kernels::cpu;
namespace plan = mmgen::kernels::plan;

const at::ScalarType kDtypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return a.numel() ? (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() : 0.0;
}

std::string shape_name(const LinearShape& s, bool bias) {
  return "m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
         (bias ? " bias" : "");
}

TEST(LinearSmallMCpu, MatchesReferenceAndAtLinearOverOddShapes) {
  std::uint64_t seed = 1;
  for (auto dt : kDtypes) {
    double worst_ref = 0, worst_aten = 0;
    for (const LinearShape& s : odd_linear_shapes()) {
      for (bool with_bias : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " " + shape_name(s, with_bias));
        const at::Tensor x = randn({s.m, s.k}, dt, seed++);
        const at::Tensor w = randn({s.n, s.k}, dt, seed++);
        std::optional<at::Tensor> b;
        if (with_bias) b = randn({s.n}, dt, seed++);
        const at::Tensor out = mmgen::ops::linear_small_m(x, w, b);
        ASSERT_EQ(out.sizes(), (std::vector<std::int64_t>{s.m, s.n}));
        ASSERT_EQ(out.scalar_type(), dt);
        const at::Tensor ref = ref_linear(x, w, b);
        const at::Tensor aten = at::linear(x, w, b);
        const Tolerance tol = linear_tolerance(dt, s.k);
        EXPECT_TRUE(all_close(out, ref, tol));
        // at::linear rounds once from its own float32 sums: the same bound
        // around the float64 value, so twice it between the two.
        EXPECT_TRUE(all_close(out, aten, {2 * tol.atol, 2 * tol.rtol}));
        worst_ref = std::max(worst_ref, max_abs(out, ref));
        worst_aten = std::max(worst_aten, max_abs(out, aten));
      }
    }
    std::printf("[ measure ] linear_small_m %s: max |out - float64 ref| %.3g, max |out - at::linear| %.3g\n",
                dtype_name(dt), worst_ref, worst_aten);
  }
}

TEST(LinearSmallMCpu, StridedRowsAndLeadingDims) {
  std::uint64_t seed = 500;
  for (auto dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    // x rows inside a wider buffer (a qkv-style slice); weight rows too.
    const at::Tensor xbuf = randn({5, 90}, dt, seed++), wbuf = randn({23, 80}, dt, seed++);
    const at::Tensor x = xbuf.narrow(1, 7, 67), w = wbuf.narrow(1, 3, 67);
    const at::Tensor b = randn({23}, dt, seed++);
    EXPECT_TRUE(all_close(mmgen::ops::linear_small_m(x, w, b), ref_linear(x, w, b), linear_tolerance(dt, 67)));
    // [B, S, K] -> [B, S, N]; a transposed (non-contiguous) x is copied.
    const at::Tensor x3 = randn({2, 3, 40}, dt, seed++), w3 = randn({11, 40}, dt, seed++);
    const at::Tensor out3 = mmgen::ops::linear_small_m(x3, w3);
    ASSERT_EQ(out3.sizes(), (std::vector<std::int64_t>{2, 3, 11}));
    EXPECT_TRUE(all_close(out3, ref_linear(x3, w3, std::nullopt), linear_tolerance(dt, 40)));
    const at::Tensor xt = randn({40, 4}, dt, seed++).t();
    EXPECT_TRUE(all_close(mmgen::ops::linear_small_m(xt, w3), ref_linear(xt, w3, std::nullopt),
                          linear_tolerance(dt, 40)));
    // Empty: no rows, no features, no reduction (bias only).
    EXPECT_EQ(mmgen::ops::linear_small_m(randn({0, 8}, dt, 1), randn({3, 8}, dt, 2)).sizes(),
              (std::vector<std::int64_t>{0, 3}));
    const at::Tensor b0 = randn({3}, dt, seed++);
    const at::Tensor k0 = mmgen::ops::linear_small_m(at::zeros({2, 0}, at::TensorOptions().dtype(dt)),
                                                     at::zeros({3, 0}, at::TensorOptions().dtype(dt)), b0);
    EXPECT_TRUE(bit_equal(k0, b0.unsqueeze(0).expand({2, 3}).contiguous()));
  }
}

// Every ISA build of the loops this CPU can run.
std::vector<const cpu::LinearLoops*> runnable_tables() {
  std::vector<const cpu::LinearLoops*> tables = {&cpu::linear_loops_baseline()};
#if defined(__x86_64__)
  if (cpu_runs_avx2_build()) tables.push_back(&cpu::linear_loops_avx2());
  if (cpu_runs_avx512_build()) tables.push_back(&cpu::linear_loops_avx512());
#endif
  return tables;
}

TEST(LinearSmallMCpu, EveryRunnableIsaBuild) {
  const std::vector<const cpu::LinearLoops*> tables = runnable_tables();
  RecordProperty("isa_builds_tested", int(tables.size()));
  std::uint64_t seed = 900;
  for (const cpu::LinearLoops* L : tables) {
    for (auto dt : kDtypes) {
      for (const LinearShape& s : odd_linear_shapes()) {
        SCOPED_TRACE(std::string(L->isa) + " " + dtype_name(dt) + " " + shape_name(s, true));
        const at::Tensor x = randn({s.m, s.k}, dt, seed++), w = randn({s.n, s.k}, dt, seed++);
        const at::Tensor b = randn({s.n}, dt, seed++);
        auto p = plan::linear(x, w, b);
        std::vector<float> x32(std::size_t(s.m * s.k));
        L->widen(p.args, x32.data());
        // Two uneven ranges of output features, as two threads would get them.
        const std::int64_t split = s.n / 3;
        L->linear(p.args, x32.data(), s.k, 0, split);
        L->linear(p.args, x32.data(), s.k, split, s.n);
        EXPECT_TRUE(all_close(p.out, ref_linear(x, w, b), linear_tolerance(dt, s.k)));
      }
    }
  }
}

// Decode batches stay batch-invariant: up to 16 rows, a row's output is the
// same bits whatever the other rows, the row count (streamed or register-tiled
// blocking), or where the output features are split between threads.
TEST(LinearSmallMCpu, RowsDoNotDependOnTheBatch) {
  const std::vector<const cpu::LinearLoops*> tables = runnable_tables();
  // Groups of 16 weight rows with a short last one; K with and without vector
  // tails; weights aligned, and misaligned with rows a multiple of 64 bytes.
  const struct {
    LinearShape s;
    bool misaligned;
  } cases[] = {{{16, 37, 129}, false}, {{16, 70, 768}, false}, {{16, 21, 40}, false},
               {{16, 37, 768}, true},  {{16, 21, 32}, true},   {{16, 5, 16}, true}};
  std::uint64_t seed = 1300;
  auto run = [](const cpu::LinearLoops* L, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                std::int64_t split) {
    auto p = plan::linear(x, w, b);
    std::vector<float> x32(std::size_t(p.args.m * p.args.k));
    L->widen(p.args, x32.data());
    L->linear(p.args, x32.data(), p.args.k, 0, split);
    L->linear(p.args, x32.data(), p.args.k, split, p.args.n);
    return p.out;
  };
  for (const cpu::LinearLoops* L : tables) {
    for (auto dt : kDtypes) {
      for (const auto& [s, misaligned] : cases) {
        SCOPED_TRACE(std::string(L->isa) + " " + dtype_name(dt) + " " + shape_name(s, true) +
                     (misaligned ? " misaligned" : ""));
        const at::Tensor x = randn({s.m, s.k}, dt, seed++);
        // Weight rows 3 elements past an aligned address (as in a safetensors
        // mmap): the loops start with a partial vector up to the alignment.
        const at::Tensor w = misaligned ? randn({s.n * s.k + 8}, dt, seed++).narrow(0, 3, s.n * s.k).view({s.n, s.k})
                                        : randn({s.n, s.k}, dt, seed++);
        const at::Tensor b = randn({s.n}, dt, seed++);
        const at::Tensor all = run(L, x, w, b, s.n);
        EXPECT_TRUE(all_close(all, ref_linear(x, w, b), linear_tolerance(dt, s.k)));
        for (std::int64_t m : {1, 2, 3, 4, 5, 7, 8, 13}) {
          for (std::int64_t first : {std::int64_t(0), s.m - m}) {
            SCOPED_TRACE("rows " + std::to_string(first) + " + " + std::to_string(m));
            EXPECT_TRUE(bit_equal(run(L, x.narrow(0, first, m), w, b, s.n / 3), all.narrow(0, first, m)));
          }
        }
      }
    }
  }
  // The op (thread pool, the ISA chosen at run time): one row alone against the same row in 16.
  for (auto dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const at::Tensor x = randn({16, 768}, dt, seed++), w = randn({300, 768}, dt, seed++);
    const at::Tensor all = mmgen::ops::linear_small_m(x, w);
    for (std::int64_t i : {0, 5, 15})
      EXPECT_TRUE(bit_equal(mmgen::ops::linear_small_m(x.narrow(0, i, 1), w), all.narrow(0, i, 1)));
  }
}

template <class F> std::string error_of(F&& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

TEST(LinearSmallMCpu, RejectsBadArguments) {
  const at::Tensor x = randn({2, 8}, at::kFloat, 1), w = randn({3, 8}, at::kFloat, 2);
  auto expect = [](const std::string& msg, const std::string& part) {
    EXPECT_NE(msg.find("linear_small_m"), std::string::npos) << msg;
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
  };
  expect(error_of([&] { mmgen::ops::linear_small_m(x, randn({3, 7}, at::kFloat, 3)); }), "weight must have shape");
  expect(error_of([&] { mmgen::ops::linear_small_m(x, w.to(at::kBFloat16)); }), "weight must have x's dtype");
  expect(error_of([&] { mmgen::ops::linear_small_m(x, w, randn({4}, at::kFloat, 4)); }), "bias must have shape");
  expect(error_of([&] { mmgen::ops::linear_small_m(x, w, randn({3}, at::kHalf, 5)); }), "bias must have x's dtype");
  expect(error_of([&] { mmgen::ops::linear_small_m(x.to(at::kInt), w.to(at::kInt)); }),
         "must be float32, bfloat16 or float16");
  expect(error_of([&] { mmgen::ops::linear_small_m(randn({8}, at::kFloat, 6).sum(), w); }),
         "at least one dimension");
}

}  // namespace
