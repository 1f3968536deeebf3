// See submit.hpp.
#include "cli/submit.hpp"

#include <cmath>
#include <filesystem>

#include "cli/json_parse.hpp"
#include "cli/outputs.hpp"
#include "mmgen/client.hpp"

namespace mmgen::cli {

ValueArray read_chat_messages(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  Value doc;
  try {
    doc = parse_json(text);
  } catch (const JsonError& e) {
    throw UsageError("chat file " + path + " is not valid JSON: " + e.what());
  }
  if (doc.is_map()) {
    auto it = doc.as_map().find("messages");
    if (it == doc.as_map().end()) throw UsageError("chat file " + path + ": object without \"messages\"");
    Value inner = it->second;
    doc = std::move(inner);
  }
  if (!doc.is_array()) throw UsageError("chat file " + path + ": expected an array of messages");
  const auto& msgs = doc.as_array();
  if (msgs.empty()) throw UsageError("chat file " + path + ": no messages");
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const auto where = "chat file " + path + ": message " + std::to_string(i + 1);
    if (!msgs[i].is_map()) throw UsageError(where + " is not an object");
    auto role = msgs[i].as_map().find("role");
    if (role == msgs[i].as_map().end() || !role->second.is_string()) {
      throw UsageError(where + " has no \"role\" string");
    }
    if (msgs[i].as_map().find("content") == msgs[i].as_map().end()) {
      throw UsageError(where + " has no \"content\"");
    }
  }
  return msgs;
}

SubmitPlan build_submit(const Command& cmd) {
  SubmitPlan plan;
  proto::Submit& s = plan.submit;
  s.service = std::string(service_of(*cmd.verb));
  s.model = cmd.model;
  s.params = cmd.params;
  s.priority = cmd.priority;
  s.key = cmd.key;
  if (cmd.timeout_s) {
    s.timeout_ms = static_cast<std::uint64_t>(std::max(1.0, std::round(*cmd.timeout_s * 1000.0)));
  }
  if (!cmd.chat_file.empty()) s.params["messages"] = read_chat_messages(cmd.chat_file);
  if (!cmd.tools_file.empty()) {
    // Sent as JSON text: the chat templates print tools verbatim, and a
    // msgpack map would reach the worker with its keys sorted.
    std::string text;
    try {
      text = read_file(cmd.tools_file);
      if (!parse_json(text).is_array()) throw UsageError("tools file " + cmd.tools_file + ": expected a JSON array");
    } catch (const JsonError& e) {
      throw UsageError("tools file " + cmd.tools_file + " is not valid JSON: " + e.what());
    } catch (const UsageError&) {
      throw;
    } catch (const std::exception& e) {
      throw UsageError(e.what());
    }
    s.params["tools"] = text;
  }
  for (const auto& in : cmd.inputs) {
    std::string bytes;
    try {
      bytes = read_file(in.path);
    } catch (const std::exception& e) {
      throw UsageError(e.what());
    }
    client::add_input(s, plan.inputs, in.role, guess_mime(in.path), bytes);
  }
  if (!cmd.output.empty()) {
    const auto parent = std::filesystem::path(cmd.output).parent_path();
    std::error_code ec;
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
      throw UsageError("-o " + cmd.output + ": directory " + parent.string() + " does not exist");
    }
  }
  return plan;
}

}  // namespace mmgen::cli
