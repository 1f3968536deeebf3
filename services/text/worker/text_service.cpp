// The text service (text_service.hpp).
//
// GCC 12 at -O2 reports moves of mmgen::Value (a std::variant holding maps and
// vectors) into containers as maybe-uninitialized: a known false positive of
// its variant inlining (GCC bug 105593 family). Silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "text_service.hpp"

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <span>
#include <cmath>
#include <stdexcept>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/log.hpp"
#include "mmgen/protocol.hpp"
#include "mmgen/text/chat.hpp"
#include "mmgen/text/engine.hpp"
#include "mmgen/text/engine_loop.hpp"
#include "mmgen/text/json.hpp"
#include "text_request.hpp"
#if MMGEN_TEXT_VISION
#include "mmgen/media/image.hpp"
#include "mmgen/text/qwen3_5_vision.hpp"
#include "mmgen/text/qwen3_5_vision_input.hpp"
#endif

namespace mmgen::text {

struct TextService::State {
  std::shared_ptr<const Tokenizer> tokenizer;
  ChatTemplate chat_template;
  std::unique_ptr<Engine> engine;  // owns the model (Qwen or hybrid Qwen3.5, by config.json) and its cache
#if MMGEN_TEXT_VISION
  // Image input: the Qwen3.5 vision tower and its processor settings, when
  // config.json has a vision_config and the checkpoint holds the tower.
  std::optional<Qwen3_5VisionModel> vision;
  image::QwenImageProcessorOptions processor;
#endif
  std::unique_ptr<EngineLoop> loop;  // last: its thread stops first
};

namespace {

using Clock = std::chrono::steady_clock;

c10::ScalarType parse_dtype(const std::string& s) {
  if (s == "float32") return at::kFloat;
  if (s == "bfloat16") return at::kBFloat16;
  if (s == "float16") return at::kHalf;
  throw std::invalid_argument("--dtype must be float32, bfloat16 or float16, not '" + s + "'");
}

Value to_value(const Json& j) {
  return std::visit(
      [](const auto& x) -> Value {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::nullptr_t>) {
          return Value();
        } else if constexpr (std::is_same_v<T, JsonArray>) {
          ValueArray a;
          for (const Json& e : x) a.push_back(to_value(e));
          return Value(std::move(a));
        } else if constexpr (std::is_same_v<T, JsonObject>) {
          ValueMap m;
          for (const auto& [k, v] : x) m[k] = to_value(v);
          return Value(std::move(m));
        } else {
          return Value(x);
        }
      },
      j.storage());
}

}  // namespace

std::int64_t parse_byte_size(const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    throw std::invalid_argument("not a size: '" + text + "'");
  }
  std::string unit = text.substr(used);
  double mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB" || unit == "KB") mult = 1024.0;
  else if (unit == "M" || unit == "MiB" || unit == "MB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB" || unit == "GB") mult = 1024.0 * 1024 * 1024;
  else throw std::invalid_argument("unknown size unit in '" + text + "' (use K, M, G)");
  if (!(v > 0)) throw std::invalid_argument("size must be positive: '" + text + "'");
  return std::int64_t(v * mult);
}

TextService::TextService(const TextServiceOptions& opts) : s_(std::make_unique<State>()) {
  if (opts.model_dir.empty()) throw std::invalid_argument("mmgen-text needs --model DIR");
  if (opts.threads > 0) at::set_num_threads(int(opts.threads));
  model_name_ = opts.model_dir.filename().string();
  if (model_name_.empty()) model_name_ = opts.model_dir.parent_path().filename().string();
  io::LoadOptions lo{parse_dtype(opts.dtype), c10::Device(opts.device)};
  // QwenForCausalLM, or Qwen3_5ForCausalLM when config.json's architectures name a hybrid model.
  std::unique_ptr<EngineModel> model = load_engine_model(opts.model_dir, lo);
  const std::string architecture = model->architecture();
  s_->tokenizer = std::make_shared<const Tokenizer>(Tokenizer::from_directory(opts.model_dir));
  s_->chat_template = ChatTemplate::from_model_dir(opts.model_dir);
  GenerationDefaults defaults = GenerationDefaults::load(opts.model_dir);
  if (defaults.eos_token_ids.empty()) {
    for (auto id : model->eos_token_ids()) defaults.eos_token_ids.push_back(TokenId(id));
  }
#if MMGEN_TEXT_VISION
  if (model->accepts_embeddings() && io::HfConfig::load(opts.model_dir).has("vision_config")) {
    try {
      s_->vision.emplace(Qwen3_5VisionModel::load(opts.model_dir, lo));
      s_->processor = load_qwen3_5_processor(opts.model_dir, s_->vision->config());
      log::info("image input on", {{"vision_blocks", std::int64_t(s_->vision->blocks.size())}});
    } catch (const io::LoadError& e) {
      // A text-only export keeps vision_config but not the tower's weights.
      if (e.kind() != io::LoadErrorKind::missing) throw;
      log::warn(std::string("image input off: the checkpoint has no vision tower (") + e.what() + ")");
    }
  }
#endif
  EngineConfig ec;
  ec.kv_cache_bytes = opts.kv_cache_bytes;
  ec.block_size = opts.block_size;
  ec.max_num_seqs = opts.max_num_seqs;
  ec.max_num_batched_tokens = opts.max_num_batched_tokens;
  ec.max_model_len = opts.max_model_len;
  ec.enable_prefix_caching = opts.enable_prefix_caching;
  s_->engine = std::make_unique<Engine>(std::move(model), s_->tokenizer, std::move(defaults), ec);
  const KvCacheManager& cache = s_->engine->scheduler().cache();
  log::info("text engine ready", {{"model", model_name_},
                                  {"architecture", architecture},
                                  {"kv_blocks", cache.num_blocks()},
                                  {"block_size", cache.block_size()},
                                  {"state_slots", cache.num_state_slots()},
                                  {"prefix_caching", cache.pool().prefix_caching() ? "on" : "off"}});
  if (!s_->engine->prefix_caching_note().empty()) log::warn(s_->engine->prefix_caching_note());
  s_->loop = std::make_unique<EngineLoop>(*s_->engine);
}

TextService::~TextService() {
  if (s_) s_->loop.reset();  // stop the engine thread before the engine and model go
}

worker::Outcome TextService::run(worker::JobContext& ctx) {
  std::vector<const worker::Input*> images;
  for (const worker::Input& in : ctx.inputs()) {
    if (in.name != "image")
      throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                                 "unknown input '" + in.name + "' (the text service takes inputs named image)");
    images.push_back(&in);
  }
  const TextRequest req =
      parse_text_request(ctx.params(), s_->chat_template, s_->engine->defaults(), images.size());
  std::vector<TokenId> prompt = s_->tokenizer->encode(req.prompt_text);
  std::optional<PromptEmbeddings> embeddings;
#if MMGEN_TEXT_VISION
  if (s_->vision) {
    const Qwen3_5VisionConfig& vc = s_->vision->config();
    const bool placeholders = std::any_of(prompt.begin(), prompt.end(), [&](TokenId t) {
      return t == vc.image_token_id || t == vc.video_token_id;
    });
    if (!images.empty() || placeholders) {
      // Decode, preprocess and encode the images, then splice them into the prompt.
      std::vector<media::Image> decoded;
      media::DecodeOptions dopts;
      dopts.alpha = media::AlphaMode::keep;  // the processor converts to RGB as PIL does
      for (std::size_t i = 0; i < images.size(); ++i) {
        const std::string_view b = images[i]->bytes();
        decoded.push_back(media::decode_image(
            "image " + std::to_string(i + 1) + " of " + std::to_string(images.size()),
            std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()), dopts));
      }
      if (decoded.empty())
        throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                                   "the prompt holds image placeholders but the job has no image inputs");
      const std::vector<media::ImageView> views(decoded.begin(), decoded.end());
      const image::ProcessedImages px = preprocess_images(views, s_->processor);
      const at::Tensor image_embeds = s_->vision->forward(px.pixel_values.to(s_->vision->device()), px.grid_thw);
      const std::vector<std::int64_t> ids64(prompt.begin(), prompt.end());
      MultimodalPrompt mm =
          build_multimodal_prompt(ids64, s_->engine->model().embed_tokens(), image_embeds, px.grid_thw, vc);
      prompt.assign(mm.input_ids.begin(), mm.input_ids.end());
      embeddings = PromptEmbeddings{mm.inputs_embeds, mm.positions, mm.rope_delta};
    }
  }
#endif
  if (!images.empty() && !embeddings)
    throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                               "model " + model_name_ + " takes no image input (no Qwen3.5 vision tower)");
  const auto t0 = Clock::now();
  auto stream = embeddings ? s_->loop->submit(prompt, req.sampling, std::move(*embeddings))
                           : s_->loop->submit(prompt, req.sampling);
  // Whatever ends this handler early (cancel, an exception) takes the request out of the engine.
  struct CancelGuard {
    EngineLoop& loop;
    std::shared_ptr<RequestStream>& s;
    ~CancelGuard() {
      if (!s->finished()) loop.cancel(s);
    }
  } guard{*s_->loop, stream};

  ReasoningStreamParser parser(req.starts_in_reasoning);
  std::string raw;
  ValueArray tokens;
  std::optional<Clock::time_point> first, last;
  TokenEvent final_event;
  for (;;) {
    ctx.check_cancelled();
    std::optional<TokenEvent> ev = stream->next(std::chrono::milliseconds(50));
    if (!ev) continue;
    raw += ev->text;
    auto delta = parser.push(ev->text);
    if (ev->finished) {
      auto tail = parser.finish();
      delta.content += tail.content;
      delta.reasoning += tail.reasoning;
    }
    if (ev->token) {
      last = Clock::now();
      if (!first) first = last;
      tokens.push_back(Value(std::int64_t(*ev->token)));
      ValueMap part;
      part["text"] = delta.content;
      part["reasoning"] = delta.reasoning;
      part["token"] = std::int64_t(*ev->token);
      if (!ev->top_logprobs.empty() || req.sampling.logprobs > 0) {
        ValueArray top;
        for (const auto& t : ev->top_logprobs) {
          ValueMap entry;  // (assignments: GCC 12 misreads brace-built maps of Values as uninitialized)
          entry["token"] = std::int64_t(t.token);
          entry["logprob"] = double(t.logprob);
          top.push_back(std::move(entry));
        }
        part["logprob"] = double(ev->logprob);
        part["top_logprobs"] = std::move(top);
      }
      ctx.partial(std::move(part));
    }
    if (ev->finished) {
      final_event = std::move(*ev);
      break;
    }
  }
  if (final_event.finish_reason == "error") throw proto::ProtocolError(proto::ErrorCode::internal, final_event.error);

  const ParsedReply reply = parse_reply(raw, req.starts_in_reasoning);
  ValueArray calls;
  for (const ToolCall& c : reply.tool_calls) {
    ValueMap call;
    call["name"] = c.name;
    call["arguments"] = to_value(c.arguments);
    calls.push_back(std::move(call));
  }
  const auto n = std::int64_t(tokens.size());
  const double ttft_ms = first ? std::chrono::duration<double, std::milli>(*first - t0).count() : 0.0;
  double tps = 0;
  if (first && last && n > 1) {
    const double s = std::chrono::duration<double>(*last - *first).count();
    if (s > 0) tps = double(n - 1) / s;
  }
  worker::Outcome out;
  ValueMap& d = out.data;
  d["text"] = reply.content;
  d["reasoning"] = reply.reasoning;
  d["tool_calls"] = std::move(calls);
  d["finish_reason"] = final_event.finish_reason;
  d["prompt_tokens"] = std::int64_t(prompt.size());
  d["completion_tokens"] = n;
  d["tokens"] = std::move(tokens);
  d["ttft_ms"] = ttft_ms;
  d["tokens_per_s"] = tps;
  out.metrics["ttft_ms"] = ttft_ms;
  out.metrics["tokens_per_s"] = tps;
  out.metrics["completion_tokens"] = n;
  return out;
}

}  // namespace mmgen::text
