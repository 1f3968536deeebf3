// Job params of the text service -> a prompt and sampling params.
//
// params: prompt (string) [+ system] or messages ([{role, content}]); think
// (bool, Qwen3 enable_thinking, default true); raw (bool: the prompt is fed as
// is, no chat template); max_tokens, temperature, top_k, top_p, min_p, seed,
// repetition_penalty, presence_penalty, frequency_penalty, stop (array of
// strings), stop_token_ids (array of ints), ignore_eos, logprobs; tools
// (function definitions [{"type":"function","function":{...}}], as an array or
// as its JSON text — the text keeps your key order, which the chat templates
// print verbatim); messages[i].tool_calls on assistant turns. Sampling params
// default to the model's generation_config.json.
#pragma once

#include <string>
#include <vector>

#include "mmgen/text/chat.hpp"
#include "mmgen/text/sampling.hpp"
#include "mmgen/value.hpp"

namespace mmgen::text {

struct TextRequest {
  std::string prompt_text;          // what gets tokenized
  bool starts_in_reasoning = false; // the prompt ends inside an open <think> block
  SamplingParams sampling;
};

// The text an image part renders as (Qwen3.5's chat template, add_vision_id off).
extern const char* const kImagePlaceholder;

// Throws ProtocolError(invalid_request) naming the bad param.
TextRequest parse_text_request(const Params& params, const ChatTemplate& tmpl, const GenerationDefaults& defaults);
// Same, with `num_images` "image" blobs: image parts must number as many
// (ProtocolError(invalid_request) otherwise).
TextRequest parse_text_request(const Params& params, const ChatTemplate& tmpl, const GenerationDefaults& defaults,
                               std::size_t num_images);

}  // namespace mmgen::text
