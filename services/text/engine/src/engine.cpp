// The batching engine (engine.hpp).
#include "mmgen/text/engine.hpp"

#include <ATen/Parallel.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <exception>

#include "mmgen/protocol.hpp"

namespace mmgen::text {

SchedulerConfig scheduler_config_for(const QwenConfig& model, const EngineConfig& cfg) {
  SchedulerConfig s;
  s.max_num_seqs = cfg.max_num_seqs;
  s.max_num_batched_tokens = cfg.max_num_batched_tokens;
  s.max_model_len = cfg.max_model_len > 0 ? std::min(cfg.max_model_len, model.max_position_embeddings)
                                          : model.max_position_embeddings;
  return s;
}

KvCacheConfig cache_config_for(const QwenConfig& model, c10::ScalarType dtype, const EngineConfig& cfg) {
  KvCacheConfig c;
  c.block_size = cfg.block_size;
  c.enable_prefix_caching = cfg.enable_prefix_caching;
  c.num_blocks = KvCacheConfig::blocks_for_budget(cfg.kv_cache_bytes, cfg.block_size, model.num_hidden_layers,
                                                  model.num_key_value_heads, model.head_dim,
                                                  std::int64_t(c10::elementSize(dtype)));
  if (c.num_blocks < 1) {
    throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                               "--kv-cache-memory " + std::to_string(cfg.kv_cache_bytes) +
                                   " bytes holds no KV block of " + std::to_string(cfg.block_size) + " tokens");
  }
  return c;
}

const char* const kHybridPrefixCachingNote =
    "prefix caching is off for hybrid (linear-attention) models: a cached KV prefix is useless without the "
    "recurrent state after that prefix, and states are not snapshotted at block boundaries";

SchedulerConfig scheduler_config_for(const EngineModel& model, const EngineConfig& cfg) {
  SchedulerConfig s;
  s.max_num_seqs = cfg.max_num_seqs;
  s.max_num_batched_tokens = cfg.max_num_batched_tokens;
  s.max_model_len = cfg.max_model_len > 0 ? std::min(cfg.max_model_len, model.max_position_embeddings())
                                          : model.max_position_embeddings();
  return s;
}

KvCacheConfig cache_config_for(const EngineModel& model, const EngineConfig& cfg) {
  if (cfg.block_size <= 0) {
    throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                               "--block-size must be positive, not " + std::to_string(cfg.block_size));
  }
  const CacheSpec spec = model.cache_spec();
  const std::int64_t per_block = spec.kv_bytes_per_block(cfg.block_size);
  KvCacheConfig c;
  c.block_size = cfg.block_size;
  c.enable_prefix_caching = cfg.enable_prefix_caching;
  std::int64_t budget = cfg.kv_cache_bytes;
  if (spec.hybrid()) {
    // Every running sequence needs a state slot and at least one block.
    const std::int64_t per_seq = spec.state_bytes_per_slot + per_block;
    const std::int64_t slots = std::min<std::int64_t>(std::max(cfg.max_num_seqs, 1), budget / per_seq);
    if (slots < 1) {
      throw proto::ProtocolError(
          proto::ErrorCode::invalid_request,
          "--kv-cache-memory " + std::to_string(cfg.kv_cache_bytes) + " bytes holds no recurrent-state slot (" +
              std::to_string(spec.state_bytes_per_slot) + " bytes per sequence) plus one KV block of " +
              std::to_string(cfg.block_size) + " tokens (" + std::to_string(per_block) + " bytes)");
    }
    c.num_state_slots = std::int32_t(slots);
    budget -= slots * spec.state_bytes_per_slot;
    c.enable_prefix_caching = false;  // kHybridPrefixCachingNote
  }
  c.num_blocks = per_block > 0 ? std::int32_t(std::min<std::int64_t>(budget / per_block, INT32_MAX)) : 0;
  if (c.num_blocks < 1) {
    throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                               "--kv-cache-memory " + std::to_string(cfg.kv_cache_bytes) +
                                   " bytes holds no KV block of " + std::to_string(cfg.block_size) + " tokens");
  }
  return c;
}

Engine::Engine(const QwenForCausalLM& model, std::shared_ptr<const Tokenizer> tokenizer, GenerationDefaults defaults,
               EngineConfig cfg)
    : Engine(make_engine_model(model), std::move(tokenizer), std::move(defaults), cfg) {}

Engine::Engine(const Qwen3_5ForCausalLM& model, std::shared_ptr<const Tokenizer> tokenizer,
               GenerationDefaults defaults, EngineConfig cfg)
    : Engine(make_engine_model(model), std::move(tokenizer), std::move(defaults), cfg) {}

Engine::Engine(std::unique_ptr<EngineModel> model, std::shared_ptr<const Tokenizer> tokenizer,
               GenerationDefaults defaults, EngineConfig cfg)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      defaults_(std::move(defaults)),
      scheduler_(scheduler_config_for(*model_, cfg), cache_config_for(*model_, cfg)) {
  const KvCacheManager& cm = scheduler_.cache();
  model_->allocate_cache(cm.num_blocks(), cm.block_size(), cm.num_state_slots());
  if (cfg.enable_prefix_caching && model_->cache_spec().hybrid()) prefix_caching_note_ = kHybridPrefixCachingNote;
}

RequestId Engine::add(std::vector<TokenId> prompt, const SamplingParams& params, EventSink sink) {
  params.validate();
  const std::int64_t vocab = model_->vocab_size();
  for (TokenId t : prompt) {
    if (t < 0 || t >= vocab) {
      throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                                 "prompt token " + std::to_string(t) + " is outside the model's vocabulary of " +
                                     std::to_string(vocab));
    }
  }
  const RequestId id = next_id_++;
  auto live = std::make_unique<Live>(Live{id, Sampler(params, prompt), 0, 0, {}, std::nullopt,
                                          StopStringMatcher(params.stop), std::move(sink), std::nullopt});
  live->max_new = scheduler_.add(id, std::move(prompt), params.max_tokens);
  if (!params.ignore_eos) live->stop_ids.insert(defaults_.eos_token_ids.begin(), defaults_.eos_token_ids.end());
  live->stop_ids.insert(params.stop_token_ids.begin(), params.stop_token_ids.end());
  if (tokenizer_) live->detok.emplace(*tokenizer_, /*skip_special_tokens=*/true);
  live_.emplace(id, std::move(live));
  return id;
}

RequestId Engine::add(std::vector<TokenId> prompt, const SamplingParams& params, EventSink sink,
                      PromptEmbeddings embeddings) {
  auto bad = [](const std::string& m) { throw proto::ProtocolError(proto::ErrorCode::invalid_request, m); };
  if (!model_->accepts_embeddings()) bad(model_->architecture() + " takes no image input");
  const auto T = std::int64_t(prompt.size());
  const at::Tensor& e = embeddings.inputs_embeds;
  const at::Tensor& p = embeddings.positions;
  const at::Tensor table = model_->embed_tokens();
  if (!e.defined() || e.dim() != 2 || e.size(0) != T || e.size(1) != table.size(1))
    bad("prompt embeddings must be [" + std::to_string(T) + ", " + std::to_string(table.size(1)) + "]");
  if (!p.defined() || p.dim() != 2 || p.size(0) != 3 || p.size(1) != T)
    bad("prompt positions must be [3, " + std::to_string(T) + "]");
  embeddings.inputs_embeds = e.to(model_->device(), model_->dtype()).contiguous();
  embeddings.positions = p.to(at::kCPU, at::kLong).contiguous();
  const RequestId id = add(std::move(prompt), params, std::move(sink));
  live_.at(id)->embeddings = std::move(embeddings);
  return id;
}

std::pair<at::Tensor, at::Tensor> Engine::step_embeddings(const SchedulePlan& plan,
                                                          const std::vector<std::int64_t>& ids) {
  // Token rows come from the embedding table; a sequence's prompt rows with
  // embeddings are taken from them instead. Positions: the prompt's M-RoPE
  // rows, else index + rope_delta on all three rows (0 delta: plain text).
  const c10::Device device = model_->device();
  auto long_opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor table = model_->embed_tokens();
  std::vector<at::Tensor> parts;
  std::vector<std::int64_t> rows[3];
  std::size_t offset = 0;
  for (const ScheduledSeq& s : plan.seqs) {
    const auto n = std::int64_t(s.tokens.size());
    auto it = live_.find(s.id);
    const PromptEmbeddings* pe =
        it != live_.end() && it->second->embeddings ? &*it->second->embeddings : nullptr;
    const std::int64_t T = pe ? pe->inputs_embeds.size(0) : 0;
    const std::int64_t delta = pe ? pe->rope_delta : 0;
    const std::int64_t begin = s.context_len, end = s.context_len + n;
    // [begin, min(end, T)): from the prompt embeddings; the rest: token rows.
    const std::int64_t split = std::clamp(T, begin, end);
    if (split > begin) {
      parts.push_back(pe->inputs_embeds.slice(0, begin, split));
      const std::int64_t* pos = pe->positions.data_ptr<std::int64_t>();
      for (int r = 0; r < 3; ++r)
        for (std::int64_t i = begin; i < split; ++i) rows[r].push_back(pos[r * T + i]);
    }
    if (end > split) {
      std::vector<std::int64_t> tok(ids.begin() + std::ptrdiff_t(offset + std::size_t(split - begin)),
                                    ids.begin() + std::ptrdiff_t(offset + std::size_t(n)));
      parts.push_back(table.index_select(0, at::tensor(tok, long_opts).to(device)));
      for (int r = 0; r < 3; ++r)
        for (std::int64_t i = split; i < end; ++i) rows[r].push_back(i + delta);
    }
    offset += std::size_t(n);
  }
  std::vector<std::int64_t> flat;
  for (auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  at::Tensor positions = at::tensor(flat, long_opts).view({3, std::int64_t(ids.size())});
  return {at::cat(parts, 0), positions};
}

bool Engine::cancel(RequestId id) {
  live_.erase(id);
  return scheduler_.cancel(id);
}

void Engine::finish_with_error(const std::vector<RequestId>& ids, const std::string& message) {
  for (RequestId id : ids) {
    auto it = live_.find(id);
    if (it == live_.end()) continue;
    TokenEvent ev;
    ev.id = id;
    ev.finished = true;
    ev.finish_reason = "error";
    ev.error = message;
    EventSink sink = std::move(it->second->sink);
    live_.erase(it);
    scheduler_.cancel(id);
    if (sink) sink(ev);
  }
}

bool Engine::step() {
  SchedulePlan plan = scheduler_.schedule();
  preemptions_ += std::int64_t(plan.preempted.size());
  if (plan.empty()) return false;

  // ---- flatten the plan -------------------------------------------------------------
  std::vector<std::int64_t> ids, positions, sample_rows;
  std::vector<SequenceSlice> slices;
  std::vector<std::vector<std::int32_t>> tables;
  std::vector<RequestId> sampling;
  ids.reserve(std::size_t(plan.num_tokens));
  positions.reserve(std::size_t(plan.num_tokens));
  for (const ScheduledSeq& s : plan.seqs) {
    const auto start = std::int64_t(ids.size());
    const auto n = std::int64_t(s.tokens.size());
    for (std::int64_t j = 0; j < n; ++j) {
      ids.push_back(s.tokens[std::size_t(j)]);
      positions.push_back(s.context_len + j);
    }
    // cache_slot: the recurrent-state slot of a hybrid model (unused by paged KV).
    slices.push_back(SequenceSlice{start, n, s.context_len, s.state_slot.value_or(0)});
    tables.push_back(s.blocks);
    if (s.samples) {
      sample_rows.push_back(start + n - 1);
      sampling.push_back(s.id);
    }
  }

  StepResult result;
  at::Tensor logits;  // [N, V] float32 on the CPU
  try {
    const c10::Device device = model_->device();
    auto long_opts = at::TensorOptions().dtype(at::kLong);
    AttentionMetadata meta =
        AttentionMetadata::build_paged(std::move(slices), tables, scheduler_.cache().block_size(), device);
    bool with_embeddings = false;
    for (const ScheduledSeq& s : plan.seqs) {
      auto it = live_.find(s.id);
      if (it != live_.end() && it->second->embeddings) with_embeddings = true;
    }
    at::Tensor hidden;
    if (with_embeddings) {
      auto [embeds, pos3] = step_embeddings(plan, ids);
      hidden = model_->forward_embeds(embeds, pos3.to(device), meta);
    } else {
      hidden = model_->forward(at::tensor(ids, long_opts), at::tensor(positions, long_opts), meta);
    }
    if (!sample_rows.empty()) {
      at::Tensor last = hidden.index_select(0, at::tensor(sample_rows, long_opts).to(device));  // [N, H]
      logits = model_->logits(last).to(at::kCPU).to(at::kFloat).contiguous();                   // [N, V]
    }
  } catch (const std::exception& e) {
    std::vector<RequestId> all;
    for (const auto& s : plan.seqs) all.push_back(s.id);
    scheduler_.update(result);
    finish_with_error(all, std::string("model step failed: ") + e.what());
    return true;
  }

  // ---- sample -----------------------------------------------------------------------------
  // Each request's sampler owns its generator and history and reads only its
  // own logits row, so the rows are sampled in parallel (a batch of 16 spends
  // milliseconds here: a copy, the penalties and the log-softmax over the
  // vocabulary per row) with the same result as one after another.
  const std::int64_t V = logits.defined() ? logits.size(1) : 0;
  std::vector<Live*> rows(sampling.size(), nullptr);
  for (std::size_t i = 0; i < sampling.size(); ++i) {
    auto it = live_.find(sampling[i]);
    if (it != live_.end()) rows[i] = it->second.get();
  }
  std::vector<SampleOutput> outs(sampling.size());
  at::parallel_for(0, std::int64_t(rows.size()), 1, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      if (!rows[std::size_t(i)]) continue;
      const float* row = logits.data_ptr<float>() + i * V;
      outs[std::size_t(i)] = rows[std::size_t(i)]->sampler.sample(std::span<const float>(row, std::size_t(V)));
    }
  });

  // ---- check stops, in batch order ------------------------------------------------------
  std::vector<std::pair<EventSink, TokenEvent>> events;
  for (std::size_t i = 0; i < sampling.size(); ++i) {
    auto it = live_.find(sampling[i]);
    if (it == live_.end()) continue;
    Live& r = *it->second;
    SampleOutput& out = outs[i];
    ++r.generated;
    TokenEvent ev;
    ev.id = r.id;
    ev.token = out.token;
    ev.logprob = out.logprob;
    ev.top_logprobs = std::move(out.top);
    const bool stop_token = r.stop_ids.count(out.token) > 0;
    bool stopped = stop_token;
    if (!stop_token && r.detok) {
      auto m = r.stops.push(r.detok->push(out.token));
      ev.text = std::move(m.text);
      stopped = m.stopped;
    }
    if (stopped || r.generated >= r.max_new) {
      ev.finished = true;
      ev.finish_reason = stopped ? "stop" : "length";
      if (!stopped && r.detok) {
        auto m = r.stops.push(r.detok->finish());
        ev.text += m.text;
        if (!m.stopped) ev.text += r.stops.finish();
      }
      result.finished.push_back(r.id);
      events.emplace_back(std::move(r.sink), std::move(ev));
      live_.erase(it);
    } else {
      result.sampled.push_back({r.id, out.token});
      events.emplace_back(r.sink, std::move(ev));
    }
  }
  scheduler_.update(result);
  for (auto& [sink, ev] : events)
    if (sink) sink(ev);
  return true;
}

}  // namespace mmgen::text
