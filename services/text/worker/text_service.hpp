// The text service: chat/completion jobs on the batching engine.
//
// Handler threads (the SDK's, `capacity` of them) tokenize, submit to the one
// engine thread (EngineLoop) and block on their own request's event stream,
// sending one PARTIAL per generated token: {text, reasoning, token} where
// text/reasoning are the deltas of the reply's content and reasoning (never
// half a UTF-8 character). RESULT data: text, reasoning, tool_calls,
// finish_reason, prompt_tokens, completion_tokens, cached_tokens, tokens,
// ttft_ms, tokens_per_s. A cancelled job leaves the engine at once (its KV
// blocks, and a hybrid model's recurrent-state slot, are freed).
//
// The model class comes from config.json's "architectures": Qwen3.5 /
// Qwen3.5-MoE / Qwen3-Next checkpoints run as Qwen3_5ForCausalLM (hybrid
// cache: KV blocks + one state slot per running sequence, prefix caching off),
// every other Qwen as QwenForCausalLM (engine_model.hpp).
//
// Image input (Qwen3.5): when config.json has a vision_config and the
// checkpoint holds the vision tower, the job's input blobs named "image" are
// decoded, preprocessed (preprocessor_config.json) and encoded once per job;
// their embeddings and M-RoPE positions go to the engine with the expanded
// prompt (text_request.hpp says how messages refer to them).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mmgen/worker.hpp"

namespace mmgen::text {

// (No torch in this header: main.cpp stays a cheap translation unit.)
struct TextServiceOptions {
  std::filesystem::path model_dir;
  std::string device = "cpu";
  std::string dtype = "float32";
  std::uint32_t threads = 0;  // intra-op threads; 0: libtorch's default
  // EngineConfig fields (engine.hpp).
  std::int64_t kv_cache_bytes = std::int64_t(512) << 20;
  std::int32_t block_size = 16;
  std::int32_t max_num_seqs = 16;  // also the most recurrent-state slots (hybrid models)
  std::int64_t max_num_batched_tokens = 512;
  std::int64_t max_model_len = 0;
  bool enable_prefix_caching = true;
};

class TextService : public worker::Service {
 public:
  explicit TextService(const TextServiceOptions& opts);
  ~TextService() override;

  std::string name() const override { return "text"; }
  std::vector<std::string> models() const override { return {model_name_}; }
  worker::Outcome run(worker::JobContext& ctx) override;

 private:
  struct State;  // model, tokenizer, chat template, engine and its thread
  std::string model_name_;
  std::unique_ptr<State> s_;
};

// "512MiB", "2G", "1048576" -> bytes. Throws std::invalid_argument.
std::int64_t parse_byte_size(const std::string& text);

}  // namespace mmgen::text
