// The batching engine: runs the scheduler's plans on a Qwen model over a
// paged KV cache and turns sampled tokens into per-request events.
//
// Single-threaded by design (DESIGN.md "logic apart from I/O"): add(),
// cancel() and step() are called from one thread; EngineLoop
// (engine_loop.hpp) puts a thread and a mailbox around it for the worker.
//
// The model is seen through EngineModel (engine_model.hpp): the plain Qwen
// decoders (KV cache only) or the hybrid Qwen3.5 / Qwen3-Next ones, whose
// cache adds one recurrent-state slot per running sequence (the scheduler
// hands the slot out with the blocks; the engine passes it to the model as
// SequenceSlice::cache_slot). For hybrid models prefix caching is off: a
// cached KV prefix is useless without the recurrent state at that point,
// which the engine does not snapshot.
//
// One step: schedule -> flatten the plan into ids [T], positions [T] and paged
// attention metadata -> model forward (new K/V written into the cache blocks)
// -> logits of the last token of each sequence that completes its known
// tokens -> each request's own Sampler -> stop checks (stop ids, max tokens,
// stop strings on the detokenized text) -> events -> scheduler update.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "mmgen/text/attention.hpp"
#include "mmgen/text/detokenizer.hpp"
#include "mmgen/text/engine_model.hpp"
#include "mmgen/text/qwen_model.hpp"
#include "mmgen/text/sampling.hpp"
#include "mmgen/text/scheduler.hpp"
#include "mmgen/text/tokenizer.hpp"

namespace mmgen::text {

struct EngineConfig {
  std::int64_t kv_cache_bytes = std::int64_t(256) << 20;  // --kv-cache-memory
  std::int32_t block_size = 16;
  std::int32_t max_num_seqs = 16;
  std::int64_t max_num_batched_tokens = 512;  // per step: the chunked-prefill budget
  std::int64_t max_model_len = 0;             // 0: the model's max_position_embeddings
  bool enable_prefix_caching = true;
};

// What the engine tells a request, once per sampled token; the last event has finished set.
struct TokenEvent {
  RequestId id = 0;
  std::optional<TokenId> token;       // none on an event that only finishes (error, cancel)
  float logprob = 0;
  std::vector<TokenLogprob> top_logprobs;
  std::string text;                   // detokenized text made complete by this token (never half a UTF-8 char)
  bool finished = false;
  std::string finish_reason;          // "stop" | "length" | "error"
  std::string error;                  // with finish_reason "error"
};
using EventSink = std::function<void(const TokenEvent&)>;

// A prompt given as embeddings (image input, built by the worker with the
// vision tower and build_multimodal_prompt): its rows replace the token
// embeddings of the prompt's ids, and its 3-row M-RoPE positions replace
// 0..T-1. A token at sequence index p >= T (generated, or recomputed after a
// preemption) gets position p + rope_delta on all three rows, as transformers
// does for generated tokens. Chunked prefill slices both by sequence index.
struct PromptEmbeddings {
  at::Tensor inputs_embeds;     // [T, H], model dtype (moved to the model's device)
  at::Tensor positions;         // [3, T] int64
  std::int64_t rope_delta = 0;
};

class Engine {
 public:
  // `tokenizer` may be null (no text in events: benchmarks, token-level tests).
  // The model must outlive the engine.
  Engine(const QwenForCausalLM& model, std::shared_ptr<const Tokenizer> tokenizer, GenerationDefaults defaults,
         EngineConfig cfg);
  Engine(const Qwen3_5ForCausalLM& model, std::shared_ptr<const Tokenizer> tokenizer, GenerationDefaults defaults,
         EngineConfig cfg);
  // Any model behind the adapter interface (load_engine_model); the engine
  // allocates its cache through it. Throws ProtocolError(invalid_request)
  // when the budget holds no block (or, hybrid, no state slot).
  Engine(std::unique_ptr<EngineModel> model, std::shared_ptr<const Tokenizer> tokenizer, GenerationDefaults defaults,
         EngineConfig cfg);

  // Queues a request; `sink` is called from step() for each of its tokens.
  // Throws ProtocolError(invalid_request) for bad params, an empty prompt or
  // one beyond the context or the cache.
  RequestId add(std::vector<TokenId> prompt, const SamplingParams& params, EventSink sink);
  // Same, the prompt given as embeddings too (`prompt`: the ids the sequence
  // holds, e.g. the expanded image placeholders, T of them). Throws
  // ProtocolError(invalid_request) when the model takes no embeddings or the
  // shapes disagree with the prompt.
  RequestId add(std::vector<TokenId> prompt, const SamplingParams& params, EventSink sink,
                PromptEmbeddings embeddings);
  // Removes the request and frees its blocks at once; no further events.
  bool cancel(RequestId id);
  // Runs one scheduler step; false when there was nothing to do.
  bool step();
  bool has_work() const { return scheduler_.has_work(); }

  const GenerationDefaults& defaults() const { return defaults_; }
  const Scheduler& scheduler() const { return scheduler_; }
  std::int64_t max_model_len() const { return scheduler_.config().max_model_len; }
  std::int64_t cached_prefix_tokens(RequestId id) const { return scheduler_.cached_prefix_tokens(id); }
  std::int64_t total_preemptions() const { return preemptions_; }
  const EngineModel& model() const { return *model_; }
  // Why prefix caching is off although the config asked for it ("" when it is
  // on or was not asked for): for the worker's log.
  const std::string& prefix_caching_note() const { return prefix_caching_note_; }

 private:
  struct Live {
    RequestId id = 0;
    Sampler sampler;
    std::int64_t max_new = 0;
    std::int64_t generated = 0;
    std::unordered_set<TokenId> stop_ids;
    std::optional<IncrementalDetokenizer> detok;
    StopStringMatcher stops;
    EventSink sink;
    std::optional<PromptEmbeddings> embeddings;
  };
  // Inputs of a step holding a sequence with prompt embeddings: embeddings
  // [T, H] and positions [3, T] for the whole flattened batch.
  std::pair<at::Tensor, at::Tensor> step_embeddings(const SchedulePlan& plan, const std::vector<std::int64_t>& ids);
  void finish_with_error(const std::vector<RequestId>& ids, const std::string& message);

  std::unique_ptr<EngineModel> model_;  // owns the cache tensors
  std::shared_ptr<const Tokenizer> tokenizer_;
  GenerationDefaults defaults_;
  Scheduler scheduler_;
  std::string prefix_caching_note_;
  std::unordered_map<RequestId, std::unique_ptr<Live>> live_;
  RequestId next_id_ = 1;
  std::int64_t preemptions_ = 0;
};

// Builds the engine's scheduler/cache configuration for a model (blocks from
// the byte budget in the model dtype). Exposed for tests and the benchmark.
SchedulerConfig scheduler_config_for(const QwenConfig& model, const EngineConfig& cfg);
KvCacheConfig cache_config_for(const QwenConfig& model, c10::ScalarType dtype, const EngineConfig& cfg);

// Same for any model. A hybrid model's budget (--kv-cache-memory) pays for
// its state slots first: num_state_slots = min(max_num_seqs, what the budget
// holds at one state slot + one KV block each), the rest goes to KV blocks of
// the full-attention layers; prefix caching is off (see prefix_caching_note).
SchedulerConfig scheduler_config_for(const EngineModel& model, const EngineConfig& cfg);
KvCacheConfig cache_config_for(const EngineModel& model, const EngineConfig& cfg);

// The reason a hybrid model runs without prefix caching (logged, and in the README).
extern const char* const kHybridPrefixCachingNote;

}  // namespace mmgen::text
