// Job params -> TextRequest (text_request.hpp).
#include "text_request.hpp"

#include <algorithm>

#include "mmgen/protocol.hpp"
#include "mmgen/text/json.hpp"

namespace mmgen::text {

namespace {

[[noreturn]] void bad(const std::string& msg) { throw proto::ProtocolError(proto::ErrorCode::invalid_request, msg); }

const Value* find(const Params& p, std::string_view key) {
  auto it = p.map().find(key);
  return it == p.map().end() || it->second.is_null() ? nullptr : &it->second;
}

// A params value as chat JSON. msgpack maps arrive as sorted ValueMaps, so
// keys come out sorted; send the JSON text (a string) to keep your order,
// which the templates print verbatim.
Json to_json(const Value& v, const std::string& where) {
  if (v.is_null()) return Json(nullptr);
  if (v.is_bool()) return Json(v.as_bool());
  if (v.is_int()) return Json(v.as_int());
  if (v.is_double()) return Json(v.as_double());
  if (v.is_string()) return Json(v.as_string());
  if (v.is_array()) {
    JsonArray a;
    for (const Value& e : v.as_array()) a.push_back(to_json(e, where));
    return Json(std::move(a));
  }
  if (v.is_map()) {
    JsonObject o;
    for (const auto& [k, e] : v.as_map()) o.emplace_back(k, to_json(e, where));
    return Json(std::move(o));
  }
  bad(where + " holds a value JSON cannot express (binary)");
}

// An array, or its JSON text.
std::vector<Json> json_list(const Value& v, const std::string& where) {
  Json j;
  if (v.is_string()) {
    try {
      j = parse_json(v.as_string());
    } catch (const std::exception& e) {
      bad(where + " is not valid JSON: " + e.what());
    }
  } else {
    j = to_json(v, where);
  }
  if (!j.is_array()) bad(where + " must be an array");
  return j.as_array();
}

std::vector<ToolCall> read_tool_calls(const Value& v, const std::string& where) {
  std::vector<ToolCall> out;
  std::size_t i = 0;
  for (const Json& c : json_list(v, where)) {
    const std::string w = where + "[" + std::to_string(i++) + "]";
    const Json* fn = c.is_object() ? c.find("function") : nullptr;
    const Json& f = fn ? *fn : c;  // {"type":"function","function":{...}} or {name, arguments}
    const Json* name = f.is_object() ? f.find("name") : nullptr;
    if (!name || !name->is_string()) bad(w + " needs a function name");
    const Json* args = f.find("arguments");
    out.push_back({name->as_string(), args ? *args : Json(JsonObject{})});
  }
  return out;
}

// A content list: text parts concatenated, each image part the template's
// placeholder. Counts the image parts into `images`.
std::string read_content_parts(const Value& v, const std::string& where, std::size_t& images) {
  std::string out;
  std::size_t i = 0;
  for (const Value& part : v.as_array()) {
    const std::string w = where + "[" + std::to_string(i++) + "]";
    if (!part.is_map()) bad(w + " must be a map with a type");
    const auto& pm = part.as_map();
    auto type = pm.find("type");
    if (type == pm.end() || !type->second.is_string()) bad(w + ".type must be \"image\" or \"text\"");
    const std::string& t = type->second.as_string();
    if (t == "image") {
      out += kImagePlaceholder;
      ++images;
    } else if (t == "text") {
      auto text = pm.find("text");
      if (text == pm.end() || !text->second.is_string()) bad(w + ".text must be a string");
      out += text->second.as_string();
    } else {
      bad(w + ".type must be \"image\" or \"text\", not \"" + t + "\"");
    }
  }
  return out;
}

std::vector<ChatMessage> read_messages(const Value& v, std::size_t& images) {
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
    if (content != mm.end() && !content->second.is_string() && !content->second.is_null() &&
        !content->second.is_array())
      bad(where + ".content must be a string or a list of parts");
    ChatMessage msg;
    msg.role = role->second.as_string();
    if (content != mm.end() && content->second.is_string()) msg.content = content->second.as_string();
    if (content != mm.end() && content->second.is_array()) {
      const std::size_t before = images;
      msg.content = read_content_parts(content->second, where + ".content", images);
      if (images > before && msg.role == "system") bad(where + ": a system message cannot contain images");
    }
    if (auto rc = mm.find("reasoning_content"); rc != mm.end() && rc->second.is_string())
      msg.reasoning_content = rc->second.as_string();
    if (auto tc = mm.find("tool_calls"); tc != mm.end() && !tc->second.is_null())
      msg.tool_calls = read_tool_calls(tc->second, where + ".tool_calls");
    out.push_back(std::move(msg));
  }
  if (out.empty()) bad("messages is empty");
  return out;
}

}  // namespace

const char* const kImagePlaceholder = "<|vision_start|><|image_pad|><|vision_end|>";

TextRequest parse_text_request(const Params& p, const ChatTemplate& tmpl, const GenerationDefaults& defaults) {
  return parse_text_request(p, tmpl, defaults, 0);
}

TextRequest parse_text_request(const Params& p, const ChatTemplate& tmpl, const GenerationDefaults& defaults,
                               std::size_t num_images) {
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
  std::size_t image_parts = 0;
  if (const Value* m = find(p, "messages")) {
    messages = read_messages(*m, image_parts);
    if (find(p, "prompt")) messages.push_back({"user", p.get_string("prompt", ""), std::nullopt, {}});
  } else if (find(p, "prompt")) {
    const std::string prompt = p.get_string("prompt", "");
    if (prompt.empty() && num_images == 0) bad("prompt is empty");
    messages.push_back({"user", prompt, std::nullopt, {}});
  } else {
    bad("give a prompt or messages");
  }
  if (image_parts == 0 && num_images > 0) {
    // No image parts: the images open the last user message, before its text.
    std::string lead;
    for (std::size_t i = 0; i < num_images; ++i) lead += kImagePlaceholder;
    auto user = std::find_if(messages.rbegin(), messages.rend(), [](const ChatMessage& m) { return m.role == "user"; });
    if (user == messages.rend()) bad("images need a user message");
    user->content = lead + user->content;
  } else if (image_parts != num_images) {
    bad("messages have " + std::to_string(image_parts) + " image parts but the job has " +
        std::to_string(num_images) + " image inputs");
  }
  if (find(p, "system")) messages.insert(messages.begin(), {"system", p.get_string("system", ""), std::nullopt, {}});
  ChatOptions opts;
  opts.enable_thinking = think;
  if (const Value* t = find(p, "tools")) opts.tools = json_list(*t, "tools");
  r.prompt_text = render_chat(tmpl, messages, opts);
  r.starts_in_reasoning = generation_starts_in_reasoning(tmpl, opts);
  return r;
}

}  // namespace mmgen::text
