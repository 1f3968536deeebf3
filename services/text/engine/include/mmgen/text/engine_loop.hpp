// A thread around the single-threaded Engine: one engine thread runs the
// continuous-batching loop; any number of other threads submit requests and
// read each request's events from its own RequestStream.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "mmgen/text/engine.hpp"

namespace mmgen::text {

// One request's events, filled by the engine thread.
class RequestStream {
 public:
  // The next event, waiting up to `timeout`; nullopt on timeout. Rethrows the
  // engine's refusal of the request (ProtocolError) if add() failed.
  std::optional<TokenEvent> next(std::chrono::milliseconds timeout);
  bool finished() const;

 private:
  friend class EngineLoop;
  void push(const TokenEvent& ev);
  void fail(std::exception_ptr e);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TokenEvent> events_;
  std::exception_ptr failure_;
  bool finished_ = false;
  bool cancelled_ = false;
  std::optional<RequestId> id_;  // set on the engine thread once added
};

class EngineLoop {
 public:
  explicit EngineLoop(Engine& engine);
  ~EngineLoop();  // stops the thread (pending requests are dropped)
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  std::shared_ptr<RequestStream> submit(std::vector<TokenId> prompt, SamplingParams params);
  // A prompt with embeddings (image input): Engine::add's second form.
  std::shared_ptr<RequestStream> submit(std::vector<TokenId> prompt, SamplingParams params,
                                        PromptEmbeddings embeddings);
  // Removes the request from the engine (frees its blocks) on the next loop turn.
  void cancel(const std::shared_ptr<RequestStream>& stream);

  // Engine-thread counters, for logs and tests.
  std::size_t steps() const;

 private:
  struct Submission {
    std::shared_ptr<RequestStream> stream;
    std::vector<TokenId> prompt;
    SamplingParams params;
    std::optional<PromptEmbeddings> embeddings;
  };
  void run();

  Engine& engine_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Submission> submissions_;
  std::vector<std::shared_ptr<RequestStream>> cancels_;
  bool stop_ = false;
  std::size_t steps_ = 0;
  std::thread thread_;
};

}  // namespace mmgen::text
