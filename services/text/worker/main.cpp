// mmgen-text: the common worker flags plus the engine's own. See text_service.hpp.
#include <memory>

#include "mmgen/worker.hpp"
#include "text_service.hpp"

int main(int argc, char** argv) {
  using mmgen::worker::ExtraFlag;
  std::string kv_cache_memory = "512MiB";
  std::int64_t max_model_len = 0, block_size = 16, max_batched_tokens = 512, max_num_seqs = 0;
  bool no_prefix_caching = false;
  const std::vector<ExtraFlag> extra = {
      {"kv-cache-memory", "KV cache budget in bytes (K/M/G suffixes; default 512MiB)", &kv_cache_memory},
      {"max-model-len", "context length (prompt + output); 0: the model's max_position_embeddings", &max_model_len, 0,
       1 << 24},
      {"block-size", "tokens per KV block (default 16)", &block_size, 1, 1024},
      {"max-num-batched-tokens", "tokens computed per engine step: the chunked-prefill budget (default 512)",
       &max_batched_tokens, 1, 1 << 20},
      {"max-num-seqs",
       "sequences the engine runs at once (for hybrid models also the recurrent-state slots); 0: --capacity",
       &max_num_seqs, 0, 1 << 16},
      {"no-prefix-caching", "turn off prefix caching", &no_prefix_caching},
  };
  mmgen::worker::WorkerFlags defaults;
  defaults.capacity = 16;
  return mmgen::worker::worker_main(
      argc, argv, "text",
      [&](const mmgen::worker::WorkerFlags& f) {
        mmgen::text::TextServiceOptions o;
        o.model_dir = f.model;
        o.device = f.device;
        o.dtype = f.dtype;
        o.threads = f.threads;
        o.kv_cache_bytes = mmgen::text::parse_byte_size(kv_cache_memory);
        o.max_model_len = max_model_len;
        o.block_size = std::int32_t(block_size);
        o.max_num_batched_tokens = max_batched_tokens;
        o.enable_prefix_caching = !no_prefix_caching;
        o.max_num_seqs = std::int32_t(max_num_seqs > 0 ? max_num_seqs : std::int64_t(f.capacity));
        return std::make_unique<mmgen::text::TextService>(o);
      },
      MMGEN_VERSION, extra, defaults);
}
