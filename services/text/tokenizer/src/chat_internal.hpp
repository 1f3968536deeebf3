// Pieces shared by the chat renderers (not installed).
#pragma once

#include <span>
#include <string>

#include "mmgen/text/chat.hpp"

namespace mmgen::text::detail {

// The Qwen3.5 template (chat_qwen3_5.cpp).
void render_qwen3_5(std::string& out, std::span<const ChatMessage> messages, const ChatOptions& options);

}  // namespace mmgen::text::detail
