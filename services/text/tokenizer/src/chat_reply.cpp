// Reading a Qwen reply: <think> reasoning, content, <tool_call> blocks.
#include <algorithm>

#include "mmgen/protocol.hpp"
#include "mmgen/text/chat.hpp"

namespace mmgen::text {
namespace {

constexpr std::string_view kOpenThink = "<think>";
constexpr std::string_view kCloseThink = "</think>";
constexpr std::string_view kOpenCall = "<tool_call>";
constexpr std::string_view kCloseCall = "</tool_call>";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view lstrip_space(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}
std::string_view strip_space(std::string_view s) {
  s = lstrip_space(s);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}
std::string_view lstrip_nl(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
std::string_view strip_nl(std::string_view s) {
  s = lstrip_nl(s);
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
std::size_t partial_tag_suffix(std::string_view s, std::string_view tag) {
  for (std::size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

[[noreturn]] void bad_call(const std::string& why) {
  throw proto::ProtocolError(proto::ErrorCode::invalid_request, "tool call " + why);
}

// Qwen3.5's form: <function=NAME>\n<parameter=ARG>\nVALUE\n</parameter>\n...</function>.
// The template writes objects and arrays as JSON and other values as text; a
// value that reads as JSON is taken as that value, any other text as a string.
ToolCall read_xml_tool_call(std::string_view body) {
  constexpr std::string_view kFunction = "<function=", kEndFunction = "</function>";
  constexpr std::string_view kParam = "<parameter=", kEndParam = "</parameter>";
  auto name_end = body.find('>');
  if (name_end == std::string_view::npos) bad_call("<function= has no closing '>'");
  ToolCall call{std::string(strip_space(body.substr(kFunction.size(), name_end - kFunction.size()))),
                Json(JsonObject{})};
  if (call.name.empty()) bad_call("has an empty function name");
  std::string_view rest = body.substr(name_end + 1);
  auto end = rest.rfind(kEndFunction);
  if (end == std::string_view::npos) bad_call("has no </function>");
  rest = rest.substr(0, end);
  JsonObject args;
  for (auto at = rest.find(kParam); at != std::string_view::npos; at = rest.find(kParam)) {
    auto gt = rest.find('>', at);
    if (gt == std::string_view::npos) bad_call("<parameter= has no closing '>'");
    std::string arg(strip_space(rest.substr(at + kParam.size(), gt - at - kParam.size())));
    auto close = rest.find(kEndParam, gt);
    if (close == std::string_view::npos) bad_call("parameter '" + arg + "' has no </parameter>");
    std::string_view value = rest.substr(gt + 1, close - gt - 1);
    if (value.starts_with('\n')) value.remove_prefix(1);
    if (value.ends_with('\n')) value.remove_suffix(1);
    Json parsed;
    try {
      parsed = parse_json(value);
    } catch (const proto::ProtocolError&) {
      parsed = Json(std::string(value));
    }
    args.emplace_back(std::move(arg), std::move(parsed));
    rest = rest.substr(close + kEndParam.size());
  }
  call.arguments = Json(std::move(args));
  return call;
}

ToolCall read_tool_call(std::string_view body) {
  if (strip_space(body).starts_with("<function=")) return read_xml_tool_call(strip_space(body));
  Json call = parse_json(strip_space(body));
  if (!call.is_object())
    throw proto::ProtocolError(proto::ErrorCode::invalid_request, "tool call is not a JSON object");
  const Json* name = call.find("name");
  if (name == nullptr || !name->is_string())
    throw proto::ProtocolError(proto::ErrorCode::invalid_request, "tool call has no \"name\" string");
  const Json* args = call.find("arguments");
  return ToolCall{name->as_string(), args ? *args : Json(JsonObject{})};
}

}  // namespace

ParsedReply parse_reply(std::string_view text, bool starts_in_reasoning) {
  ParsedReply reply;
  std::string_view rest = text;
  bool in_reasoning = starts_in_reasoning;
  if (!in_reasoning && lstrip_space(rest).starts_with(kOpenThink)) {
    rest = lstrip_space(rest).substr(kOpenThink.size());
    in_reasoning = true;
  }
  if (in_reasoning) {
    auto close = rest.find(kCloseThink);
    reply.reasoning = strip_nl(rest.substr(0, close));
    rest = close == std::string_view::npos ? std::string_view()
                                           : lstrip_nl(rest.substr(close + kCloseThink.size()));
  }

  std::string content;
  std::size_t pos = 0;
  for (;;) {
    auto open = rest.find(kOpenCall, pos);
    auto close = open == std::string_view::npos ? open : rest.find(kCloseCall, open);
    if (close == std::string_view::npos) {  // no (complete) block left: plain text
      content += rest.substr(pos);
      break;
    }
    std::size_t after = close + kCloseCall.size();
    try {
      reply.tool_calls.push_back(
          read_tool_call(rest.substr(open + kOpenCall.size(), close - open - kOpenCall.size())));
      content += rest.substr(pos, open - pos);
    } catch (const proto::ProtocolError& e) {
      reply.tool_call_errors.push_back(e.what());
      content += rest.substr(pos, after - pos);
    }
    pos = after;
  }
  // Text around tool calls is the newlines the model puts between blocks.
  reply.content = reply.tool_calls.empty() ? content : std::string(strip_space(content));
  return reply;
}

ReasoningStreamParser::ReasoningStreamParser(bool starts_in_reasoning)
    : mode_(starts_in_reasoning ? Mode::reasoning : Mode::start) {}

ReasoningStreamParser::Delta ReasoningStreamParser::push(std::string_view text) {
  buffer_ += text;
  return step(false);
}

ReasoningStreamParser::Delta ReasoningStreamParser::finish() { return step(true); }

ReasoningStreamParser::Delta ReasoningStreamParser::step(bool final) {
  Delta d;
  for (;;) {
    switch (mode_) {
      case Mode::start: {
        std::string_view t = lstrip_space(buffer_);
        if (t.starts_with(kOpenThink)) {
          buffer_.erase(0, buffer_.size() - t.size() + kOpenThink.size());
          mode_ = Mode::reasoning;
          continue;
        }
        if (!final && kOpenThink.starts_with(t)) return d;  // could still be the tag
        mode_ = Mode::content;
        continue;
      }
      case Mode::reasoning: {
        // Leading newlines of the reasoning are dropped, as parse_reply does.
        if (!reasoning_started_) {
          std::size_t nl = buffer_.find_first_not_of('\n');
          buffer_.erase(0, nl == std::string::npos ? buffer_.size() : nl);
          if (buffer_.empty()) return d;
          reasoning_started_ = true;
        }
        auto close = buffer_.find(kCloseThink);
        if (close != std::string::npos) {
          d.reasoning += strip_nl(std::string_view(buffer_).substr(0, close));
          buffer_.erase(0, close + kCloseThink.size());
          mode_ = Mode::content_start;
          continue;
        }
        if (final) {
          d.reasoning += strip_nl(buffer_);
          buffer_.clear();
          return d;
        }
        // Hold back a possible partial "</think>" and the newlines before it.
        std::size_t hold = partial_tag_suffix(buffer_, kCloseThink);
        std::size_t keep_from = buffer_.size() - hold;
        while (keep_from > 0 && buffer_[keep_from - 1] == '\n') --keep_from;
        d.reasoning += buffer_.substr(0, keep_from);
        buffer_.erase(0, keep_from);
        return d;
      }
      case Mode::content_start: {
        std::size_t nl = buffer_.find_first_not_of('\n');
        if (nl == std::string::npos) {
          buffer_.clear();
          return d;
        }
        buffer_.erase(0, nl);
        mode_ = Mode::content;
        continue;
      }
      case Mode::content:
        d.content += buffer_;
        buffer_.clear();
        return d;
    }
  }
}

}  // namespace mmgen::text
