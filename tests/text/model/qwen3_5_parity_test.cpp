// Parity of the hybrid Qwen port (Qwen3.5 dense, Qwen3.5-MoE, Qwen3-Next) with
// transformers on the tiny checkpoints of tests/fixtures/text/qwen3_5_*,
// qwen3_next (made by scripts/fixtures/make_qwen3_5_fixtures.py), float32:
//   - logits at every prompt position (72 tokens: the chunked delta rule
//     crosses a 64-token chunk boundary) within 1e-4;
//   - the 32-token greedy continuation through the hybrid cache (decode =
//     recurrent step) identical, each step's logits within 1e-4;
//   - prefill split into chunks (50 + 22, and 30 + 40 + 2) and token-by-token
//     feeding equal to the one-shot prefill within the logits tolerance 1e-4
//     (a split changes float32 summation order the way a different kernel
//     does; the fixtures' own float32-vs-float64 noise is up to 3e-5);
//   - two sequences in one batch (a decode next to a prefill chunk, separate
//     state slots) each equal to the reference;
//   - the paged KV layout equal to the contiguous one;
//   - Qwen3.5's interleaved M-RoPE with three distinct position rows: last
//     hidden state within 1e-4;
//   - bfloat16: the prompt argmax and the teacher-forced greedy tokens agree
//     with transformers' bfloat16 run on >= 95% of positions;
//   - loading: MoE experts in the fused layout, mtp.* weights ignored, typed
//     errors for missing / unexpected tensors;
//   - the delta rule: chunked form equal to the step-by-step recurrence within
//     1e-5 (outputs and final state), whatever the chunk size.
#include <ATen/core/Tensor.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/protocol.hpp"
#include "mmgen/text/gated_deltanet.hpp"
#include "mmgen/text/qwen3_5_model.hpp"

namespace fs = std::filesystem;
using mmgen::io::Checkpoint;
using mmgen::io::LoadOptions;
using mmgen::text::AttentionMetadata;
using mmgen::text::HybridCache;
using mmgen::text::Qwen3_5ForCausalLM;
using mmgen::text::SequenceSlice;

namespace {

const fs::path kFixtures = MMGEN_TEXT_FIXTURES;
constexpr int kGreedy = 32;
constexpr double kTol = 1e-4;
constexpr double kChunkTol = 1e-5;

c10::Device test_device() {
  const char* d = std::getenv("MMGEN_TEST_DEVICE");
  return d && std::string(d) == "cuda" ? c10::Device(c10::DeviceType::CUDA, 0) : c10::Device(c10::DeviceType::CPU);
}

LoadOptions opts() { return LoadOptions{at::kFloat, test_device()}; }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU).to(at::kFloat) - b.to(at::kCPU).to(at::kFloat)).abs().max().item<double>();
}

at::TensorOptions long_opts() { return at::TensorOptions().dtype(at::kLong); }

// Runs `ids` (new tokens of one sequence, positions from `context`) in slot `slot`.
at::Tensor run(const Qwen3_5ForCausalLM& m, HybridCache& cache, const at::Tensor& ids, std::int64_t context,
               std::int64_t slot = 0) {
  const std::int64_t n = ids.size(0);
  AttentionMetadata meta;
  meta.seqs.push_back(SequenceSlice{0, n, context, slot});
  return m.logits(m.forward(ids, at::arange(context, context + n, long_opts()), meta, cache)).to(at::kFloat);
}

class HybridParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = kFixtures / GetParam();
    ref_ = std::make_unique<Checkpoint>(Checkpoint::open(dir_ / "reference.safetensors"));
    ids_ = ref_->tensor("prompt_ids").clone();
  }
  fs::path dir_;
  std::unique_ptr<Checkpoint> ref_;
  at::Tensor ids_;
};

TEST_P(HybridParity, Float32LogitsAndGreedyMatchTransformers) {
  const Qwen3_5ForCausalLM m = Qwen3_5ForCausalLM::load(dir_, opts());
  const std::int64_t T = ids_.size(0);
  HybridCache cache = m.model.make_cache(1, T + kGreedy);
  const at::Tensor logits = run(m, cache, ids_, 0);
  const double dp = max_abs_diff(logits, ref_->tensor("logits"));
  EXPECT_LE(dp, kTol) << GetParam() << " prompt logits";


  const at::Tensor ref_greedy = ref_->tensor("greedy");
  at::Tensor last = logits[T - 1];
  std::vector<at::Tensor> rows;
  std::vector<std::int64_t> tokens;
  for (int step = 0; step < kGreedy; ++step) {
    rows.push_back(last);
    const std::int64_t next = last.argmax().item<std::int64_t>();
    tokens.push_back(next);
    if (step + 1 < kGreedy) last = run(m, cache, at::tensor({next}, long_opts()), T + step)[0];
  }
  std::vector<std::int64_t> expected(ref_greedy.data_ptr<std::int64_t>(), ref_greedy.data_ptr<std::int64_t>() + kGreedy);
  EXPECT_EQ(tokens, expected) << GetParam() << " greedy continuation";
  const double dd = max_abs_diff(at::stack(rows), ref_->tensor("decode_logits"));
  EXPECT_LE(dd, kTol) << GetParam() << " decode logits";
  std::cout << "[parity] " << GetParam() << ": prompt logits max|d| = " << dp << ", decode logits max|d| = " << dd
            << "\n";
}

TEST_P(HybridParity, ChunkedPrefillEqualsOneShot) {
  const Qwen3_5ForCausalLM m = Qwen3_5ForCausalLM::load(dir_, opts());
  const std::int64_t T = ids_.size(0);
  HybridCache one = m.model.make_cache(1, T);
  const at::Tensor full = run(m, one, ids_, 0);

  for (const std::vector<std::int64_t>& split : {std::vector<std::int64_t>{50, 22}, {30, 40, 2}}) {
    HybridCache cache = m.model.make_cache(1, T);
    std::vector<at::Tensor> parts;
    std::int64_t done = 0;
    for (std::int64_t n : split) {
      parts.push_back(run(m, cache, ids_.narrow(0, done, n), done));
      done += n;
    }
    const double d = max_abs_diff(at::cat(parts, 0), full);
    EXPECT_LE(d, kTol) << GetParam() << " split of " << split.size();
    std::cout << "[chunked] " << GetParam() << " split " << split[0] << "+...: max|d| vs one-shot = " << d << "\n";
  }

  // Token by token: the first token takes the chunked path with one token, the rest the recurrent step.
  HybridCache cache = m.model.make_cache(1, T);
  std::vector<at::Tensor> rows;
  for (std::int64_t t = 0; t < T; ++t) rows.push_back(run(m, cache, ids_.narrow(0, t, 1), t));
  const double d = max_abs_diff(at::cat(rows, 0), full);
  EXPECT_LE(d, kTol) << GetParam() << " token by token";
  std::cout << "[stepwise] " << GetParam() << ": max|d| vs one-shot = " << d << "\n";
}

TEST_P(HybridParity, MixedBatchKeepsStatesApart) {
  // Sequence A (slot 1) prefills the whole prompt while B (slot 0) prefills its
  // first 40 tokens; then A decodes its first greedy token beside B's second chunk.
  const Qwen3_5ForCausalLM m = Qwen3_5ForCausalLM::load(dir_, opts());
  const std::int64_t T = ids_.size(0), nb = 40;
  const at::Tensor ref_logits = ref_->tensor("logits");
  HybridCache cache = m.model.make_cache(2, T + 4);
  AttentionMetadata meta;
  meta.seqs = {SequenceSlice{0, T, 0, 1}, SequenceSlice{T, nb, 0, 0}};
  at::Tensor ids = at::cat({ids_, ids_.narrow(0, 0, nb)});
  at::Tensor pos = at::cat({at::arange(T, long_opts()), at::arange(nb, long_opts())});
  at::Tensor l1 = m.logits(m.forward(ids, pos, meta, cache)).to(at::kFloat);
  EXPECT_LE(max_abs_diff(l1.narrow(0, 0, T), ref_logits), kTol) << GetParam();
  EXPECT_LE(max_abs_diff(l1.narrow(0, T, nb), ref_logits.narrow(0, 0, nb)), kTol) << GetParam();

  const std::int64_t g0 = ref_->tensor("greedy")[0].item<std::int64_t>();
  meta.seqs = {SequenceSlice{0, T - nb, nb, 0}, SequenceSlice{T - nb, 1, T, 1}};
  ids = at::cat({ids_.narrow(0, nb, T - nb), at::tensor({g0}, long_opts())});
  pos = at::cat({at::arange(nb, T, long_opts()), at::tensor({T}, long_opts())});
  at::Tensor l2 = m.logits(m.forward(ids, pos, meta, cache)).to(at::kFloat);
  EXPECT_LE(max_abs_diff(l2.narrow(0, 0, T - nb), ref_logits.narrow(0, nb, T - nb)), kTol) << GetParam();
  EXPECT_LE(max_abs_diff(l2[T - nb], ref_->tensor("decode_logits")[1]), kTol) << GetParam() << " batched decode";
}

TEST_P(HybridParity, PagedKvMatchesReference) {
  const Qwen3_5ForCausalLM m = Qwen3_5ForCausalLM::load(dir_, opts());
  const std::int64_t T = ids_.size(0), bs = 16;
  HybridCache cache = m.model.make_paged_cache(/*num_blocks=*/12, bs, /*state_slots=*/3);
  const std::vector<std::int32_t> table = {7, 2, 9, 0, 5, 11};  // 96 tokens, scattered
  auto step = [&](const at::Tensor& ids, std::int64_t context) {
    std::vector<SequenceSlice> seqs = {SequenceSlice{0, ids.size(0), context, /*state slot=*/2}};
    AttentionMetadata meta = AttentionMetadata::build_paged(seqs, {table}, bs, test_device());
    return m.logits(m.forward(ids, at::arange(context, context + ids.size(0), long_opts()), meta, cache))
        .to(at::kFloat);
  };
  const at::Tensor a = step(ids_.narrow(0, 0, 50), 0);
  const at::Tensor b = step(ids_.narrow(0, 50, T - 50), 50);
  EXPECT_LE(max_abs_diff(at::cat({a, b}), ref_->tensor("logits")), kTol) << GetParam();
  const std::int64_t g0 = ref_->tensor("greedy")[0].item<std::int64_t>();
  const at::Tensor d = step(at::tensor({g0}, long_opts()), T);
  EXPECT_LE(max_abs_diff(d[0], ref_->tensor("decode_logits")[1]), kTol) << GetParam() << " paged decode";
}

TEST_P(HybridParity, BFloat16AgreesWithTransformersBFloat16) {
  const Qwen3_5ForCausalLM m = Qwen3_5ForCausalLM::load(dir_, LoadOptions{at::kBFloat16, test_device()});
  const std::int64_t T = ids_.size(0);
  HybridCache cache = m.model.make_cache(1, T + kGreedy);
  const at::Tensor logits = run(m, cache, ids_, 0);
  const double prompt_agree =
      (logits.argmax(-1).to(at::kCPU) == ref_->tensor("prompt_argmax_bf16")).to(at::kFloat).mean().item<double>();
  // Teacher-forced: feed transformers' bfloat16 tokens, compare each argmax.
  const at::Tensor ref_tokens = ref_->tensor("greedy_bf16");
  std::int64_t same = logits[T - 1].argmax().item<std::int64_t>() == ref_tokens[0].item<std::int64_t>();
  for (int step = 1; step < kGreedy; ++step) {
    const at::Tensor l = run(m, cache, ref_tokens.narrow(0, step - 1, 1).clone(), T + step - 1)[0];
    same += l.argmax().item<std::int64_t>() == ref_tokens[step].item<std::int64_t>();
  }
  const double decode_agree = double(same) / kGreedy;
  EXPECT_GE(prompt_agree, 0.95) << GetParam();
  EXPECT_GE(decode_agree, 0.95) << GetParam();
  std::cout << "[bf16] " << GetParam() << ": prompt argmax agreement " << prompt_agree << ", greedy " << same << "/"
            << kGreedy << "\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HybridParity, ::testing::Values("qwen3_5_dense", "qwen3_5_moe", "qwen3_next"));

TEST(HybridMRope, ThreeRowPositionsMatchTransformers) {
  for (const char* name : {"qwen3_5_dense", "qwen3_5_moe"}) {
    const Checkpoint ref = Checkpoint::open(kFixtures / name / "reference.safetensors");
    const Qwen3_5ForCausalLM m = Qwen3_5ForCausalLM::load(kFixtures / name, opts());
    const at::Tensor ids = ref.tensor("prompt_ids").clone(), pos = ref.tensor("mrope_positions").clone();
    const std::int64_t T = ids.size(0);
    HybridCache cache = m.model.make_cache(1, T);
    const at::Tensor h = m.forward(ids, pos, AttentionMetadata::single(T, 0), cache);
    const double d = max_abs_diff(h, ref.tensor("mrope_hidden"));
    EXPECT_LE(d, kTol) << name;
    std::cout << "[mrope] " << name << ": last hidden max|d| = " << d << "\n";
    // Three equal rows are 1-D RoPE.
    HybridCache c1 = m.model.make_cache(1, T), c2 = m.model.make_cache(1, T);
    const at::Tensor p1 = at::arange(T, long_opts());
    EXPECT_EQ(max_abs_diff(m.forward(ids, p1, AttentionMetadata::single(T, 0), c1),
                           m.forward(ids, at::stack({p1, p1, p1}), AttentionMetadata::single(T, 0), c2)),
              0.0)
        << name;
  }
}

// ---- loading ----

// A minimal safetensors writer (float32 / int64 CPU tensors) for checkpoints
// in layouts the fixtures do not carry.
void write_safetensors(const fs::path& file, const std::map<std::string, at::Tensor>& tensors) {
  std::string header = "{";
  std::int64_t offset = 0;
  std::vector<at::Tensor> data;
  for (const auto& [name, t0] : tensors) {
    const at::Tensor t = t0.to(at::kCPU).contiguous();
    const std::int64_t n = t.numel() * std::int64_t(t.element_size());
    std::string shape;
    for (std::int64_t i = 0; i < t.dim(); ++i) shape += (i ? "," : "") + std::to_string(t.size(i));
    header += (header.size() > 1 ? "," : "") + std::string("\"") + name + "\":{\"dtype\":\"" +
              (t.scalar_type() == at::kLong ? "I64" : "F32") + "\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + n) + "]}";
    offset += n;
    data.push_back(t);
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  std::ofstream out(file, std::ios::binary);
  const std::uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(header.data(), std::streamsize(header.size()));
  for (const at::Tensor& t : data) {
    out.write(static_cast<const char*>(t.data_ptr()), std::streamsize(t.numel() * std::int64_t(t.element_size())));
  }
}

class HybridLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = fs::temp_directory_path() / ("mmgen_qwen3_5_load_" + std::to_string(::getpid()));
    fs::remove_all(tmp_);
    fs::create_directories(tmp_);
  }
  void TearDown() override { fs::remove_all(tmp_); }
  // The fixture's tensors by name.
  static std::map<std::string, at::Tensor> tensors_of(const fs::path& dir) {
    const Checkpoint ckpt = Checkpoint::open(dir);
    std::map<std::string, at::Tensor> out;
    for (const auto& n : ckpt.names()) out[n] = ckpt.tensor(n).clone();
    return out;
  }
  std::string load_error() {
    try {
      Qwen3_5ForCausalLM::load(tmp_, opts());
    } catch (const mmgen::io::LoadError& e) {
      return std::string(mmgen::io::to_string(e.kind())) + ": " + e.what();
    }
    return "no error";
  }
  fs::path tmp_;
};

TEST_F(HybridLoad, FusedExpertsAndMtpWeights) {
  // transformers' in-memory layout: mlp.experts.gate_up_proj [E, 2I, H] (gate
  // rows first) and down_proj [E, H, I]; plus multi-token-prediction weights.
  const fs::path src = kFixtures / "qwen3_5_moe";
  auto t = tensors_of(src);
  const std::string p = "model.language_model.layers.";
  for (int l = 0; l < 4; ++l) {
    const std::string e = p + std::to_string(l) + ".mlp.experts.";
    std::vector<at::Tensor> gate_up, down;
    for (int x = 0; x < 4; ++x) {
      const std::string k = e + std::to_string(x) + ".";
      gate_up.push_back(at::cat({t.at(k + "gate_proj.weight"), t.at(k + "up_proj.weight")}, 0));
      down.push_back(t.at(k + "down_proj.weight"));
      for (const char* w : {"gate_proj.weight", "up_proj.weight", "down_proj.weight"}) t.erase(k + w);
    }
    t[e + "gate_up_proj"] = at::stack(gate_up);
    t[e + "down_proj"] = at::stack(down);
  }
  t["mtp.fc.weight"] = at::randn({64, 128});
  t["mtp.layers.0.input_layernorm.weight"] = at::randn({64});
  write_safetensors(tmp_ / "model.safetensors", t);
  fs::copy_file(src / "config.json", tmp_ / "config.json");

  const Qwen3_5ForCausalLM fused = Qwen3_5ForCausalLM::load(tmp_, opts());
  const Qwen3_5ForCausalLM per_expert = Qwen3_5ForCausalLM::load(src, opts());
  const Checkpoint ref = Checkpoint::open(src / "reference.safetensors");
  const at::Tensor ids = ref.tensor("prompt_ids").clone();
  HybridCache c1 = fused.model.make_cache(1, ids.size(0)), c2 = per_expert.model.make_cache(1, ids.size(0));
  const at::Tensor a = run(fused, c1, ids, 0), b = run(per_expert, c2, ids, 0);
  EXPECT_LE(max_abs_diff(a, b), 1e-6);
  EXPECT_LE(max_abs_diff(a, ref.tensor("logits")), kTol);
}

TEST_F(HybridLoad, CheckpointProblemsNameTheTensor) {
  const fs::path src = kFixtures / "qwen3_next";
  fs::copy_file(src / "config.json", tmp_ / "config.json");
  auto t = tensors_of(src);
  t.erase("model.layers.2.linear_attn.A_log");
  write_safetensors(tmp_ / "model.safetensors", t);
  std::string e = load_error();
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
  EXPECT_NE(e.find("model.layers.2.linear_attn.A_log"), std::string::npos) << e;

  t = tensors_of(src);
  t["model.layers.0.linear_attn.in_proj_qkvz.weight"] = at::randn({100, 64});
  write_safetensors(tmp_ / "model.safetensors", t);
  e = load_error();
  EXPECT_NE(e.find("wrong_shape"), std::string::npos) << e;
  EXPECT_NE(e.find("in_proj_qkvz"), std::string::npos) << e;

  t = tensors_of(src);
  t["model.layers.0.linear_attn.in_proj_qkv.weight"] = at::randn({128, 64});  // a Qwen3.5 key in a Qwen3-Next checkpoint
  write_safetensors(tmp_ / "model.safetensors", t);
  e = load_error();
  EXPECT_NE(e.find("unexpected"), std::string::npos) << e;
  EXPECT_NE(e.find("in_proj_qkv.weight"), std::string::npos) << e;
}

// ---- the delta rule itself ----

struct RuleInputs {
  at::Tensor q, k, v, g, beta, state;
};

RuleInputs random_inputs(std::int64_t T, std::int64_t H, std::int64_t dk, std::int64_t dv) {
  RuleInputs r;
  auto f = at::TensorOptions().dtype(at::kFloat);
  r.q = mmgen::text::l2norm(at::randn({T, H, dk}, f)) * (1.0 / std::sqrt(double(dk)));
  r.k = mmgen::text::l2norm(at::randn({T, H, dk}, f));
  r.v = at::randn({T, H, dv}, f);
  r.g = -at::rand({T, H}, f) * 0.5;  // decays in (exp(-0.5), 1]
  r.beta = at::rand({T, H}, f);
  r.state = at::randn({H, dk, dv}, f) * 0.1;
  return r;
}

TEST(GatedDeltaRule, ChunkedEqualsRecurrence) {
  const std::int64_t T = 150, H = 4, dk = 16, dv = 24;  // crosses two chunk boundaries, dk != dv
  const RuleInputs in = random_inputs(T, H, dk, dv);
  // Step by step.
  at::Tensor S = in.state.clone().unsqueeze(0);
  std::vector<at::Tensor> outs;
  for (std::int64_t t = 0; t < T; ++t) {
    outs.push_back(mmgen::text::recurrent_gated_delta_step(in.q[t].unsqueeze(0), in.k[t].unsqueeze(0),
                                                           in.v[t].unsqueeze(0), in.g[t].unsqueeze(0),
                                                           in.beta[t].unsqueeze(0), S)[0]);
  }
  const at::Tensor o_rec = at::stack(outs);
  for (std::int64_t chunk : {64, 16, 7, 1}) {
    at::Tensor state = in.state.clone();
    const at::Tensor o = mmgen::text::chunk_gated_delta_rule(in.q, in.k, in.v, in.g, in.beta, state, chunk);
    const double d_out = max_abs_diff(o, o_rec), d_state = max_abs_diff(state, S[0]);
    EXPECT_LE(d_out, kChunkTol) << "chunk " << chunk;
    EXPECT_LE(d_state, kChunkTol) << "chunk " << chunk;
    std::cout << "[delta rule] chunk " << chunk << ": max|d| output " << d_out << ", state " << d_state << "\n";
  }
  // Continuing a chunked prefill from a mid-sequence state equals running it whole.
  at::Tensor s1 = in.state.clone();
  const at::Tensor o1 = mmgen::text::chunk_gated_delta_rule(in.q.narrow(0, 0, 70), in.k.narrow(0, 0, 70),
                                                            in.v.narrow(0, 0, 70), in.g.narrow(0, 0, 70),
                                                            in.beta.narrow(0, 0, 70), s1);
  const at::Tensor o2 = mmgen::text::chunk_gated_delta_rule(in.q.narrow(0, 70, T - 70), in.k.narrow(0, 70, T - 70),
                                                            in.v.narrow(0, 70, T - 70), in.g.narrow(0, 70, T - 70),
                                                            in.beta.narrow(0, 70, T - 70), s1);
  EXPECT_LE(max_abs_diff(at::cat({o1, o2}), o_rec), kChunkTol);
  EXPECT_LE(max_abs_diff(s1, S[0]), kChunkTol);
}

TEST(GatedDeltaRule, BatchedStepKeepsSequencesApart) {
  const RuleInputs a = random_inputs(1, 2, 8, 8), b = random_inputs(1, 2, 8, 8);
  at::Tensor sa = a.state.clone().unsqueeze(0), sb = b.state.clone().unsqueeze(0);
  const at::Tensor oa = mmgen::text::recurrent_gated_delta_step(a.q, a.k, a.v, a.g, a.beta, sa);
  const at::Tensor ob = mmgen::text::recurrent_gated_delta_step(b.q, b.k, b.v, b.g, b.beta, sb);
  at::Tensor s = at::stack({a.state, b.state});
  const at::Tensor o = mmgen::text::recurrent_gated_delta_step(at::cat({a.q, b.q}), at::cat({a.k, b.k}),
                                                               at::cat({a.v, b.v}), at::cat({a.g, b.g}),
                                                               at::cat({a.beta, b.beta}), s);
  EXPECT_EQ(max_abs_diff(o, at::cat({oa, ob})), 0.0);
  EXPECT_EQ(max_abs_diff(s, at::cat({sa, sb})), 0.0);
}

// ---- inputs the model rejects ----

TEST(HybridModelInputs, BadInputsAreTypedErrors) {
  const Qwen3_5ForCausalLM m = Qwen3_5ForCausalLM::load(kFixtures / "qwen3_5_dense", opts());
  HybridCache cache = m.model.make_cache(1, 8);
  auto expect_invalid = [&](const at::Tensor& ids, const at::Tensor& pos, const AttentionMetadata& meta,
                            HybridCache& c) {
    try {
      m.forward(ids, pos, meta, c);
      ADD_FAILURE() << "no error";
    } catch (const mmgen::proto::ProtocolError& e) {
      EXPECT_EQ(e.code(), mmgen::proto::ErrorCode::invalid_request) << e.what();
    }
  };
  const auto lo = long_opts();
  expect_invalid(at::tensor({1, 2, 256}, lo), at::arange(3, lo), AttentionMetadata::single(3, 0), cache);
  expect_invalid(at::tensor({1, -1}, lo), at::arange(2, lo), AttentionMetadata::single(2, 0), cache);
  expect_invalid(at::tensor({1, 2}, lo), at::arange(3, lo), AttentionMetadata::single(2, 0), cache);
  expect_invalid(at::arange(9, lo), at::arange(9, lo), AttentionMetadata::single(9, 0), cache);  // > KV slot
  AttentionMetadata bad_slot;
  bad_slot.seqs.push_back(SequenceSlice{0, 2, 0, 3});
  expect_invalid(at::tensor({1, 2}, lo), at::arange(2, lo), bad_slot, cache);
}

}  // namespace
