// The engine thread and its mailbox (engine_loop.hpp).
#include "mmgen/text/engine_loop.hpp"

#include <cstdio>

namespace mmgen::text {

// ---- RequestStream -------------------------------------------------------------

std::optional<TokenEvent> RequestStream::next(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return !events_.empty() || failure_; });
  if (failure_) std::rethrow_exception(failure_);
  if (events_.empty()) return std::nullopt;
  TokenEvent ev = std::move(events_.front());
  events_.pop_front();
  return ev;
}

bool RequestStream::finished() const {
  std::lock_guard lk(mu_);
  return finished_;
}

void RequestStream::push(const TokenEvent& ev) {
  {
    std::lock_guard lk(mu_);
    events_.push_back(ev);
    if (ev.finished) finished_ = true;
  }
  cv_.notify_all();
}

void RequestStream::fail(std::exception_ptr e) {
  {
    std::lock_guard lk(mu_);
    failure_ = std::move(e);
    finished_ = true;
  }
  cv_.notify_all();
}

// ---- EngineLoop -------------------------------------------------------------------

EngineLoop::EngineLoop(Engine& engine) : engine_(engine), thread_([this] { run(); }) {}

EngineLoop::~EngineLoop() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<RequestStream> EngineLoop::submit(std::vector<TokenId> prompt, SamplingParams params) {
  auto stream = std::make_shared<RequestStream>();
  {
    std::lock_guard lk(mu_);
    submissions_.push_back({stream, std::move(prompt), std::move(params), std::nullopt});
  }
  cv_.notify_all();
  return stream;
}

std::shared_ptr<RequestStream> EngineLoop::submit(std::vector<TokenId> prompt, SamplingParams params,
                                                  PromptEmbeddings embeddings) {
  auto stream = std::make_shared<RequestStream>();
  {
    std::lock_guard lk(mu_);
    submissions_.push_back({stream, std::move(prompt), std::move(params), std::move(embeddings)});
  }
  cv_.notify_all();
  return stream;
}

void EngineLoop::cancel(const std::shared_ptr<RequestStream>& stream) {
  {
    std::lock_guard lk(mu_);
    cancels_.push_back(stream);
  }
  cv_.notify_all();
}

std::size_t EngineLoop::steps() const {
  std::lock_guard lk(mu_);
  return steps_;
}

void EngineLoop::run() {
  for (;;) {
    std::vector<Submission> subs;
    std::vector<std::shared_ptr<RequestStream>> cancels;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !submissions_.empty() || !cancels_.empty() || engine_.has_work(); });
      if (stop_) return;
      subs.swap(submissions_);
      cancels.swap(cancels_);
    }
    for (auto& c : cancels) {
      c->cancelled_ = true;  // only the engine thread reads or writes it
      if (c->id_) engine_.cancel(*c->id_);
    }
    for (auto& s : subs) {
      if (s.stream->cancelled_) continue;
      try {
        std::weak_ptr<RequestStream> weak = s.stream;
        auto sink = [weak](const TokenEvent& ev) {
          if (auto st = weak.lock()) st->push(ev);
        };
        s.stream->id_ = s.embeddings ? engine_.add(std::move(s.prompt), s.params, sink, std::move(*s.embeddings))
                                     : engine_.add(std::move(s.prompt), s.params, sink);
      } catch (...) {
        s.stream->fail(std::current_exception());
      }
    }
    if (engine_.has_work()) {
      try {
        engine_.step();
      } catch (const std::exception& e) {  // a scheduler bug must not take the worker down silently
        std::fprintf(stderr, "engine step failed: %s\n", e.what());
      }
      std::lock_guard lk(mu_);
      ++steps_;
    }
  }
}

}  // namespace mmgen::text
