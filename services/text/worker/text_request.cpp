// Job params -> TextRequest (text_request.hpp).
#include "text_request.hpp"

#include "mmgen/protocol.hpp"

namespace mmgen::text {

namespace {

[[noreturn]] void bad(const std::string& msg) { throw proto::ProtocolError(proto::ErrorCode::invalid_request, msg); }

const Value* find(const Params& p, std::string_view key) {
  auto it = p.map().find(key);
  return it == p.map().end() || it->second.is_null() ? nullptr : &it->second;
}

std::vector<ChatMessage> read_messages(const Value& v) {
  if (!v.is_array()) bad("messages must be an array of {role, content}");
  std::vector<ChatMessage> out;
  std::size_t i = 0;
  for (const Value& m : v.as_array()) {
    const std::string where = "messages[" + std::to_string(i++) + "]";
    if (!m.is_map()) bad(where + " must be a map with role and content");
    const auto& mm = m.as_map();
    auto role = mm.find("role");
    auto content = mm.find("content");
    if (role == mm.end() || !role->second.is_string()) bad(where + ".role must be a string");
    if (content != mm.end() && !content->second.is_string() && !content->second.is_null())
      bad(where + ".content must be a string");
    ChatMessage msg;
    msg.role = role->second.as_string();
    if (content != mm.end() && content->second.is_string()) msg.content = content->second.as_string();
    if (auto rc = mm.find("reasoning_content"); rc != mm.end() && rc->second.is_string())
      msg.reasoning_content = rc->second.as_string();
    out.push_back(std::move(msg));
  }
  if (out.empty()) bad("messages is empty");
  return out;
}

}  // namespace

TextRequest parse_text_request(const Params& p, const ChatTemplate& tmpl, const GenerationDefaults& defaults) {
  TextRequest r;
  SamplingParams& s = r.sampling;
  s = SamplingParams::from_defaults(defaults);
  s.max_tokens = p.get_int("max_tokens", 256, 1, 1 << 20);
  s.temperature = p.get_double("temperature", s.temperature, 0.0, 100.0);
  s.top_k = p.get_int("top_k", s.top_k, -1, INT32_MAX);
  s.top_p = p.get_double("top_p", s.top_p, 0.0, 1.0);
  s.min_p = p.get_double("min_p", s.min_p, 0.0, 1.0);
  s.repetition_penalty = p.get_double("repetition_penalty", s.repetition_penalty, 0.0, 100.0);
  s.presence_penalty = p.get_double("presence_penalty", 0.0, -2.0, 2.0);
  s.frequency_penalty = p.get_double("frequency_penalty", 0.0, -2.0, 2.0);
  s.logprobs = p.get_int("logprobs", 0, 0, 20);
  s.ignore_eos = p.get_bool("ignore_eos", false);
  if (p.has("seed") && find(p, "seed")) s.seed = std::uint64_t(p.get_int("seed", 0, 0, INT64_MAX));
  if (const Value* v = find(p, "stop")) {
    if (v->is_string()) {
      s.stop.push_back(v->as_string());
    } else if (v->is_array()) {
      for (const Value& e : v->as_array()) {
        if (!e.is_string()) bad("stop must be a string or an array of strings");
        s.stop.push_back(e.as_string());
      }
    } else {
      bad("stop must be a string or an array of strings");
    }
  }
  if (const Value* v = find(p, "stop_token_ids")) {
    if (!v->is_array()) bad("stop_token_ids must be an array of integers");
    for (const Value& e : v->as_array()) {
      if (!e.is_int()) bad("stop_token_ids must be an array of integers");
      s.stop_token_ids.push_back(TokenId(e.as_int()));
    }
  }
  s.validate();

  const bool think = p.get_bool("think", true);
  if (p.get_bool("raw", false)) {
    if (!find(p, "prompt")) bad("raw needs a prompt");
    r.prompt_text = p.get_string("prompt", "");
    if (r.prompt_text.empty()) bad("prompt is empty");
    return r;
  }
  std::vector<ChatMessage> messages;
  if (const Value* m = find(p, "messages")) {
    messages = read_messages(*m);
    if (find(p, "prompt")) messages.push_back({"user", p.get_string("prompt", ""), std::nullopt, {}});
  } else if (find(p, "prompt")) {
    const std::string prompt = p.get_string("prompt", "");
    if (prompt.empty()) bad("prompt is empty");
    messages.push_back({"user", prompt, std::nullopt, {}});
  } else {
    bad("give a prompt or messages");
  }
  if (find(p, "system")) messages.insert(messages.begin(), {"system", p.get_string("system", ""), std::nullopt, {}});
  ChatOptions opts;
  opts.enable_thinking = think;
  r.prompt_text = render_chat(tmpl, messages, opts);
  r.starts_in_reasoning = tmpl.format == ChatFormat::qwen3 && tmpl.generation_opens_think && think;
  return r;
}

}  // namespace mmgen::text
